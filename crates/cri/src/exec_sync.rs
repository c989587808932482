//! ExecSync: a command in a running container, to completion (probes, `crictl exec -s`):
//! its output (capped) and exit code; past the timeout it is killed and the call fails
//! with DeadlineExceeded.

use std::time::Duration;

use podhost_cri_api::{ExecSyncRequest, ExecSyncResponse};
use tonic::Status;

use crate::{error, Cri};

/// What "no timeout" (0) means in practice.
const NO_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

impl Cri {
    pub(crate) async fn exec_sync(&self, req: ExecSyncRequest) -> Result<ExecSyncResponse, Status> {
        let id = self.container_id(&req.container_id).await?;
        if req.cmd.is_empty() {
            return Err(error::invalid("exec: empty command"));
        }
        let timeout = match u64::try_from(req.timeout) {
            Ok(s) if s > 0 => Duration::from_secs(s),
            _ => NO_TIMEOUT,
        };
        let r = self
            .runtime
            .exec_sync(&id, req.cmd, timeout)
            .await
            .map_err(error::status)?;
        Ok(ExecSyncResponse {
            stdout: r.stdout,
            stderr: r.stderr,
            exit_code: r.exit_code,
        })
    }
}
