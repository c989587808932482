//! StopPodSandbox: every container of the sandbox is killed (their exit codes are kept),
//! the pause stops, the pod's network is released. Idempotent: a sandbox that is already
//! stopped, or gone, is fine.

use podhost_cri_api::{StopPodSandboxRequest, StopPodSandboxResponse};
use tonic::Status;

use crate::{error, unless_gone, Cri};

impl Cri {
    pub(crate) async fn stop_pod_sandbox(
        &self,
        req: StopPodSandboxRequest,
    ) -> Result<StopPodSandboxResponse, Status> {
        if let Some(id) = unless_gone(self.sandbox_id(&req.pod_sandbox_id).await)? {
            self.runtime
                .stop_pod_sandbox(&id)
                .await
                .map_err(error::status)?;
        }
        Ok(StopPodSandboxResponse {})
    }
}
