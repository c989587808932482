//! PodSandboxStatus: state, IPs, namespaces; with `verbose`, the pause's pid, netns and
//! settings as JSON `info` (`crictl inspectp`).

use podhost_cri_api::{PodSandboxStatusRequest, PodSandboxStatusResponse};
use tonic::Status;

use crate::{convert, Cri};

impl Cri {
    pub(crate) async fn pod_sandbox_status(
        &self,
        req: PodSandboxStatusRequest,
    ) -> Result<PodSandboxStatusResponse, Status> {
        let status = self.sandbox(&req.pod_sandbox_id).await?;
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
