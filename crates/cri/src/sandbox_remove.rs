//! RemovePodSandbox: a running sandbox is stopped first (forcibly, as CRI asks), then
//! its containers, files, mounts and cgroup are removed. Idempotent: an unknown id
//! succeeds, as the kubelet expects of a sandbox removed meanwhile.

use podhost_cri_api::{RemovePodSandboxRequest, RemovePodSandboxResponse};
use tonic::Status;

use crate::{error, unless_gone, Cri};

impl Cri {
    pub(crate) async fn remove_pod_sandbox(
        &self,
        req: RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse, Status> {
        let Some(id) = unless_gone(self.sandbox_id(&req.pod_sandbox_id).await)? else {
            return Ok(RemovePodSandboxResponse {});
        };
        self.runtime
            .stop_pod_sandbox(&id)
            .await
            .map_err(error::status)?;
        self.runtime
            .remove_pod_sandbox(&id)
            .await
            .map_err(error::status)?;
        Ok(RemovePodSandboxResponse {})
    }
}
