//! StopPodSandbox: every container of the sandbox is killed (their exit codes are kept),
//! the pause stops, the pod's network is released. Idempotent: a sandbox that is already
//! stopped, or gone, is fine.

use podhost_cri_api::{StopPodSandboxRequest, StopPodSandboxResponse};
use tonic::{Code, Status};

use crate::{error, Cri};

impl Cri {
    pub(crate) async fn stop_pod_sandbox(
        &self,
        req: StopPodSandboxRequest,
    ) -> Result<StopPodSandboxResponse, Status> {
        let id = match self.sandbox_id(&req.pod_sandbox_id).await {
            Ok(id) => id,
            Err(e) if e.code() == Code::NotFound => return Ok(StopPodSandboxResponse {}),
            Err(e) => return Err(e),
        };
        self.runtime
            .stop_pod_sandbox(&id)
            .await
            .map_err(error::status)?;
        Ok(StopPodSandboxResponse {})
    }
}
