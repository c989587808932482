//! Exec, Attach and PortForward: checked here (a CRI container that runs, a CRI sandbox
//! that is ready, a sensible set of streams), then handed to the [`StreamingProvider`],
//! which answers with the URL of a streaming session.

use podhost_cri_api::*;
use podhost_runtime::{ContainerState, SandboxState};
use tonic::Status;

use crate::{error, Cri, StreamingProvider};

/// The provider until podhost has a streaming server: every session is UNIMPLEMENTED,
/// saying so.
pub struct Unsupported;

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what}: podhost's CRI streaming server is not there yet (use ExecSync, `crictl exec -s`)"
    ))
}

impl StreamingProvider for Unsupported {
    fn get_exec(&self, _: &ExecRequest) -> Result<ExecResponse, Status> {
        Err(unsupported("exec"))
    }
    fn get_attach(&self, _: &AttachRequest) -> Result<AttachResponse, Status> {
        Err(unsupported("attach"))
    }
    fn get_port_forward(&self, _: &PortForwardRequest) -> Result<PortForwardResponse, Status> {
        Err(unsupported("port-forward"))
    }
}

/// The streams a session asks for, as kubelet checks them.
fn check_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<(), Status> {
    if !(stdin || stdout || stderr) {
        return Err(error::invalid(
            "one of stdin, stdout and stderr must be requested",
        ));
    }
    if tty && stderr {
        // A terminal merges stderr into stdout.
        return Err(error::invalid("tty and stderr cannot both be requested"));
    }
    Ok(())
}

impl Cri {
    /// The full id of a running CRI container.
    async fn running_container(&self, id: &str) -> Result<String, Status> {
        let status = self.container(id).await?;
        match status.state {
            ContainerState::Running => Ok(status.id),
            s => Err(Status::failed_precondition(format!(
                "container {} is not running ({s:?})",
                status.id
            ))),
        }
    }

    pub(crate) async fn exec(&self, mut req: ExecRequest) -> Result<ExecResponse, Status> {
        if req.cmd.is_empty() {
            return Err(error::invalid("exec: empty command"));
        }
        check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
        req.container_id = self.running_container(&req.container_id).await?;
        self.streaming.get_exec(&req)
    }

    pub(crate) async fn attach(&self, mut req: AttachRequest) -> Result<AttachResponse, Status> {
        check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
        req.container_id = self.running_container(&req.container_id).await?;
        self.streaming.get_attach(&req)
    }

    pub(crate) async fn port_forward(
        &self,
        mut req: PortForwardRequest,
    ) -> Result<PortForwardResponse, Status> {
        let status = self.sandbox(&req.pod_sandbox_id).await?;
        if status.state != SandboxState::Ready {
            return Err(Status::failed_precondition(format!(
                "sandbox {} is not ready",
                status.id
            )));
        }
        if req.port.iter().any(|p| !(1..=65535).contains(p)) {
            return Err(error::invalid(format!("invalid ports {:?}", req.port)));
        }
        req.pod_sandbox_id = status.id;
        self.streaming.get_port_forward(&req)
    }
}
