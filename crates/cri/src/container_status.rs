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
        let mut cri_status = convert::container_status(&status);
        // The image may be gone since (removed while only an exited container used it).
        if let Ok(Some(image)) = self.runtime.image_status(&status.image_id).await {
            convert::name_image(&mut cri_status, &image);
        }
        Ok(ContainerStatusResponse {
            status: Some(cri_status),
            info: match req.verbose {
                true => convert::container_info(&status),
                false => Default::default(),
            },
        })
    }
}
