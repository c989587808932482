//! PodSandboxStatus: state, IPs, namespaces; with `verbose`, the pause's pid, netns and
//! settings as JSON `info` (`crictl inspectp`).

use podhost_cri_api::{PodSandboxStatusRequest, PodSandboxStatusResponse};
use tonic::Status;

use crate::{convert, error, Cri};

impl Cri {
    pub(crate) async fn pod_sandbox_status(
        &self,
        req: PodSandboxStatusRequest,
    ) -> Result<PodSandboxStatusResponse, Status> {
        let id = self.sandbox_id(&req.pod_sandbox_id).await?;
        let status = self
            .runtime
            .pod_sandbox_status(&id)
            .await
            .map_err(error::status)?;
        Ok(PodSandboxStatusResponse {
            status: Some(convert::sandbox_status(&status)),
            info: match req.verbose {
                true => convert::sandbox_info(&status),
                false => Default::default(),
            },
            containers_statuses: Vec::new(),
            timestamp: 0,
        })
    }
}
