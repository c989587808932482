//! RunPodSandbox: the pod's network namespace, CNI, its shim and podhost's built-in pause
//! (no pause image is pulled).

use podhost_cri_api::{RunPodSandboxRequest, RunPodSandboxResponse};
use tonic::Status;

use crate::{convert, error, Cri};

impl Cri {
    pub(crate) async fn run_pod_sandbox(
        &self,
        req: RunPodSandboxRequest,
    ) -> Result<RunPodSandboxResponse, Status> {
        if !req.runtime_handler.is_empty() {
            return Err(error::invalid(format!(
                "runtime handler {:?} is not configured: podhost has one runtime (leave it empty)",
                req.runtime_handler
            )));
        }
        let config = req
            .config
            .as_ref()
            .ok_or_else(|| error::invalid("no sandbox config"))?;
        let config = convert::sandbox_config(config)?;
        let id = self
            .runtime
            .run_pod_sandbox(&config)
            .await
            .map_err(error::status)?;
        Ok(RunPodSandboxResponse { pod_sandbox_id: id })
    }
}
