//! RemoveContainer: a running container is killed first (CRI asks for a forced removal),
//! then its root filesystem and records go. Idempotent: an unknown id succeeds.

use std::time::Duration;

use podhost_cri_api::{RemoveContainerRequest, RemoveContainerResponse};
use tonic::Status;

use crate::{error, unless_gone, Cri};

impl Cri {
    pub(crate) async fn remove_container(
        &self,
        req: RemoveContainerRequest,
    ) -> Result<RemoveContainerResponse, Status> {
        let Some(id) = unless_gone(self.container_id(&req.container_id).await)? else {
            return Ok(RemoveContainerResponse {});
        };
        self.stop(&id, Duration::ZERO).await?;
        self.runtime
            .remove_container(&id)
            .await
            .map_err(error::status)?;
        Ok(RemoveContainerResponse {})
    }
}
