//! UpdateContainerResources: new CPU and memory limits in a created or running
//! container's cgroup (the kubelet resizes pods this way).

use podhost_cri_api::{UpdateContainerResourcesRequest, UpdateContainerResourcesResponse};
use tonic::Status;

use crate::{convert, error, Cri};

impl Cri {
    pub(crate) async fn update_container_resources(
        &self,
        req: UpdateContainerResourcesRequest,
    ) -> Result<UpdateContainerResourcesResponse, Status> {
        let id = self.container_id(&req.container_id).await?;
        let linux = req
            .linux
            .as_ref()
            .ok_or_else(|| error::invalid("no Linux resources to update"))?;
        let mut resources = convert::resources(linux);
        // The OOM score is fixed when the container starts.
        resources.oom_score_adj = None;
        self.runtime
            .update_container_resources(&id, &resources)
            .await
            .map_err(error::status)?;
        Ok(UpdateContainerResourcesResponse {})
    }
}
