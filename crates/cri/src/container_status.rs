//! ContainerStatus: state, exit code and reason, mounts, resources; with `verbose`, the
//! pid and the config as JSON `info` (`crictl inspect`).

use podhost_cri_api::{ContainerStatusRequest, ContainerStatusResponse};
use tonic::Status;

use crate::{convert, error, Cri};

impl Cri {
    pub(crate) async fn container_status(
        &self,
        req: ContainerStatusRequest,
    ) -> Result<ContainerStatusResponse, Status> {
        let id = self.container_id(&req.container_id).await?;
        let status = self
            .runtime
            .container_status(&id)
            .await
            .map_err(error::status)?;
        Ok(ContainerStatusResponse {
            status: Some(convert::container_status(&status)),
            info: match req.verbose {
                true => convert::container_info(&status),
                false => Default::default(),
            },
        })
    }
}
