//! StopContainer: the image's STOPSIGNAL (SIGTERM without one), SIGKILL once the timeout
//! passed. A container that is not running is already stopped: no error.

use std::time::Duration;

use podhost_cri_api::{StopContainerRequest, StopContainerResponse};
use podhost_runtime::linux::signal_number;
use podhost_runtime::ContainerState;
use tonic::Status;

use crate::{error, Cri};

impl Cri {
    pub(crate) async fn stop_container(
        &self,
        req: StopContainerRequest,
    ) -> Result<StopContainerResponse, Status> {
        let timeout = Duration::from_secs(u64::try_from(req.timeout).unwrap_or(0));
        self.stop(&req.container_id, timeout).await?;
        Ok(StopContainerResponse {})
    }

    /// Stop container `id` (or a unique prefix) within `timeout` (zero: SIGKILL at once).
    pub(crate) async fn stop(&self, id: &str, timeout: Duration) -> Result<(), Status> {
        let status = self.container(id).await?;
        if status.state != ContainerState::Running {
            return Ok(());
        }
        let signal = match timeout.is_zero() {
            true => libc::SIGKILL,
            false => self
                .runtime
                .image_status(&status.image_id)
                .await
                .ok()
                .flatten()
                .and_then(|i| i.stop_signal)
                .and_then(|s| signal_number(&s))
                .unwrap_or(libc::SIGTERM),
        };
        self.runtime
            .stop_container(&status.id, timeout, signal)
            .await
            .map_err(error::status)
    }
}
