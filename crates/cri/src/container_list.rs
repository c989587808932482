//! ListContainers: the containers of CRI's sandboxes, filtered by id prefix, sandbox,
//! state and labels.

use podhost_cri_api::{ListContainersRequest, ListContainersResponse};
use tonic::Status;

use crate::{convert, error, filter, Cri};

impl Cri {
    pub(crate) async fn list_containers(
        &self,
        req: ListContainersRequest,
    ) -> Result<ListContainersResponse, Status> {
        let f = req.filter.unwrap_or_default();
        let all = self
            .runtime
            .list_containers(None)
            .await
            .map_err(error::status)?;
        Ok(ListContainersResponse {
            containers: all
                .iter()
                .filter(|c| filter::container(&f, c))
                .map(convert::container)
                .collect(),
        })
    }
}
