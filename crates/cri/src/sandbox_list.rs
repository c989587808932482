//! ListPodSandbox: CRI's sandboxes only, filtered by id prefix, state and labels.

use podhost_cri_api::{ListPodSandboxRequest, ListPodSandboxResponse};
use tonic::Status;

use crate::{convert, error, filter, Cri};

impl Cri {
    pub(crate) async fn list_pod_sandbox(
        &self,
        req: ListPodSandboxRequest,
    ) -> Result<ListPodSandboxResponse, Status> {
        let f = req.filter.unwrap_or_default();
        let all = self
            .runtime
            .list_pod_sandboxes()
            .await
            .map_err(error::status)?;
        Ok(ListPodSandboxResponse {
            items: all
                .iter()
                .filter(|s| filter::sandbox(&f, s))
                .map(convert::pod_sandbox)
                .collect(),
        })
    }
}
