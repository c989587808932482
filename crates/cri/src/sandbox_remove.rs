//! RemovePodSandbox: a running sandbox is stopped first (forcibly, as CRI asks), then
//! its containers, files, mounts and cgroup are removed. Idempotent: an unknown id
//! succeeds, as the kubelet expects of a sandbox removed meanwhile.

use podhost_cri_api::{RemovePodSandboxRequest, RemovePodSandboxResponse};
use tonic::{Code, Status};

use crate::{error, Cri};

impl Cri {
    pub(crate) async fn remove_pod_sandbox(
        &self,
        req: RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse, Status> {
        let id = match self.sandbox_id(&req.pod_sandbox_id).await {
            Ok(id) => id,
            Err(e) if e.code() == Code::NotFound => return Ok(RemovePodSandboxResponse {}),
            Err(e) => return Err(e),
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
