//! ContainerStatus: state, exit code and reason, mounts, resources; with `verbose`, the
//! pid and the config as JSON `info` (`crictl inspect`).

use podhost_cri_api::{ContainerStatusRequest, ContainerStatusResponse};
use tonic::Status;

use crate::{convert, Cri};

impl Cri {
    pub(crate) async fn container_status(
        &self,
        req: ContainerStatusRequest,
    ) -> Result<ContainerStatusResponse, Status> {
        let status = self.container(&req.container_id).await?;
        Ok(ContainerStatusResponse {
            status: Some(convert::container_status(&status)),
            info: match req.verbose {
                true => convert::container_info(&status),
                false => Default::default(),
            },
        })
    }
}
