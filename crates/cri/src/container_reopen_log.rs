//! ReopenContainerLog: after the kubelet renamed a container's log file to rotate it, the
//! pod's shim writes to a new file at the same path.

use podhost_cri_api::{ReopenContainerLogRequest, ReopenContainerLogResponse};
use tonic::Status;

use crate::{error, Cri};

impl Cri {
    pub(crate) async fn reopen_container_log(
        &self,
        req: ReopenContainerLogRequest,
    ) -> Result<ReopenContainerLogResponse, Status> {
        let id = self.container_id(&req.container_id).await?;
        self.runtime
            .reopen_container_log(&id)
            .await
            .map_err(error::status)?;
        Ok(ReopenContainerLogResponse {})
    }
}
