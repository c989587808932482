//! RemoveContainer: a running container is killed first (CRI asks for a forced removal),
//! then its root filesystem and records go. Idempotent: an unknown id succeeds.

use std::time::Duration;

use podhost_cri_api::{RemoveContainerRequest, RemoveContainerResponse};
use tonic::{Code, Status};

use crate::{error, Cri};

impl Cri {
    pub(crate) async fn remove_container(
        &self,
        req: RemoveContainerRequest,
    ) -> Result<RemoveContainerResponse, Status> {
        let id = match self.container_id(&req.container_id).await {
            Ok(id) => id,
            Err(e) if e.code() == Code::NotFound => return Ok(RemoveContainerResponse {}),
            Err(e) => return Err(e),
        };
        self.stop(&id, Duration::ZERO).await?;
        self.runtime
            .remove_container(&id)
            .await
            .map_err(error::status)?;
        Ok(RemoveContainerResponse {})
    }
}
