//! StartContainer: a created container's process starts.

use podhost_cri_api::{StartContainerRequest, StartContainerResponse};
use tonic::Status;

use crate::{error, Cri};

impl Cri {
    pub(crate) async fn start_container(
        &self,
        req: StartContainerRequest,
    ) -> Result<StartContainerResponse, Status> {
        let id = self.container_id(&req.container_id).await?;
        self.runtime
            .start_container(&id)
            .await
            .map_err(error::status)?;
        Ok(StartContainerResponse {})
    }
}
