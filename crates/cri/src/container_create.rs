//! CreateContainer: a container in a CRI sandbox, from the image the kubelet pulled
//! (overlay root, OCI bundle, created by the pod's shim; not started).

use podhost_cri_api::{CreateContainerRequest, CreateContainerResponse};
use tonic::Status;

use crate::{convert, error, Cri};

impl Cri {
    pub(crate) async fn create_container(
        &self,
        req: CreateContainerRequest,
    ) -> Result<CreateContainerResponse, Status> {
        // The sandbox as it was made (its sysctls, namespaces, log directory), whatever
        // the request repeats of it.
        let sandbox = self.sandbox(&req.pod_sandbox_id).await?;
        let (sandbox_id, sandbox) = (sandbox.id, sandbox.config);
        let config = req
            .config
            .as_ref()
            .ok_or_else(|| error::invalid("no container config"))?;
        let config = convert::container_config(config, &sandbox)?;
        let id = self
            .runtime
            .create_container(&sandbox_id, &config, &sandbox)
            .await
            .map_err(error::status)?;
        Ok(CreateContainerResponse { container_id: id })
    }
}
