//! The two gRPC services: each RPC unwraps its request and calls the method of the file
//! named after its group (see the crate's layout). RPCs not listed here keep the
//! generated UNIMPLEMENTED answer (CheckpointContainer, GetContainerEvents, metrics).

use podhost_cri_api::image_service_server::ImageService;
use podhost_cri_api::runtime_service_server::RuntimeService;
use podhost_cri_api::*;
use tonic::{Request, Response, Status};

use crate::Cri;

type Answer<T> = Result<Response<T>, Status>;

/// Runs `$method` of [`Cri`] on the request's body and wraps its answer.
macro_rules! dispatch {
    ($self:ident . $method:ident ($req:ident)) => {
        $self.$method($req.into_inner()).await.map(Response::new)
    };
}

#[tonic::async_trait]
impl RuntimeService for Cri {
    async fn version(&self, req: Request<VersionRequest>) -> Answer<VersionResponse> {
        dispatch!(self.version(req))
    }
    async fn run_pod_sandbox(
        &self,
        req: Request<RunPodSandboxRequest>,
    ) -> Answer<RunPodSandboxResponse> {
        dispatch!(self.run_pod_sandbox(req))
    }
    async fn stop_pod_sandbox(
        &self,
        req: Request<StopPodSandboxRequest>,
    ) -> Answer<StopPodSandboxResponse> {
        dispatch!(self.stop_pod_sandbox(req))
    }
    async fn remove_pod_sandbox(
        &self,
        req: Request<RemovePodSandboxRequest>,
    ) -> Answer<RemovePodSandboxResponse> {
        dispatch!(self.remove_pod_sandbox(req))
    }
    async fn pod_sandbox_status(
        &self,
        req: Request<PodSandboxStatusRequest>,
    ) -> Answer<PodSandboxStatusResponse> {
        dispatch!(self.pod_sandbox_status(req))
    }
    async fn list_pod_sandbox(
        &self,
        req: Request<ListPodSandboxRequest>,
    ) -> Answer<ListPodSandboxResponse> {
        dispatch!(self.list_pod_sandbox(req))
    }
    async fn create_container(
        &self,
        req: Request<CreateContainerRequest>,
    ) -> Answer<CreateContainerResponse> {
        dispatch!(self.create_container(req))
    }
    async fn start_container(
        &self,
        req: Request<StartContainerRequest>,
    ) -> Answer<StartContainerResponse> {
        dispatch!(self.start_container(req))
    }
    async fn stop_container(
        &self,
        req: Request<StopContainerRequest>,
    ) -> Answer<StopContainerResponse> {
        dispatch!(self.stop_container(req))
    }
    async fn remove_container(
        &self,
        req: Request<RemoveContainerRequest>,
    ) -> Answer<RemoveContainerResponse> {
        dispatch!(self.remove_container(req))
    }
    async fn list_containers(
        &self,
        req: Request<ListContainersRequest>,
    ) -> Answer<ListContainersResponse> {
        dispatch!(self.list_containers(req))
    }
    async fn container_status(
        &self,
        req: Request<ContainerStatusRequest>,
    ) -> Answer<ContainerStatusResponse> {
        dispatch!(self.container_status(req))
    }
    async fn update_container_resources(
        &self,
        req: Request<UpdateContainerResourcesRequest>,
    ) -> Answer<UpdateContainerResourcesResponse> {
        dispatch!(self.update_container_resources(req))
    }
    async fn reopen_container_log(
        &self,
        req: Request<ReopenContainerLogRequest>,
    ) -> Answer<ReopenContainerLogResponse> {
        dispatch!(self.reopen_container_log(req))
    }
    async fn exec_sync(&self, req: Request<ExecSyncRequest>) -> Answer<ExecSyncResponse> {
        dispatch!(self.exec_sync(req))
    }
    async fn exec(&self, req: Request<ExecRequest>) -> Answer<ExecResponse> {
        dispatch!(self.exec(req))
    }
    async fn attach(&self, req: Request<AttachRequest>) -> Answer<AttachResponse> {
        dispatch!(self.attach(req))
    }
    async fn port_forward(&self, req: Request<PortForwardRequest>) -> Answer<PortForwardResponse> {
        dispatch!(self.port_forward(req))
    }
    async fn container_stats(
        &self,
        req: Request<ContainerStatsRequest>,
    ) -> Answer<ContainerStatsResponse> {
        dispatch!(self.container_stats(req))
    }
    async fn list_container_stats(
        &self,
        req: Request<ListContainerStatsRequest>,
    ) -> Answer<ListContainerStatsResponse> {
        dispatch!(self.list_container_stats(req))
    }
    async fn pod_sandbox_stats(
        &self,
        req: Request<PodSandboxStatsRequest>,
    ) -> Answer<PodSandboxStatsResponse> {
        dispatch!(self.pod_sandbox_stats(req))
    }
    async fn list_pod_sandbox_stats(
        &self,
        req: Request<ListPodSandboxStatsRequest>,
    ) -> Answer<ListPodSandboxStatsResponse> {
        dispatch!(self.list_pod_sandbox_stats(req))
    }
    async fn update_runtime_config(
        &self,
        req: Request<UpdateRuntimeConfigRequest>,
    ) -> Answer<UpdateRuntimeConfigResponse> {
        dispatch!(self.update_runtime_config(req))
    }
    async fn status(&self, req: Request<StatusRequest>) -> Answer<StatusResponse> {
        dispatch!(self.status(req))
    }
    async fn runtime_config(
        &self,
        req: Request<RuntimeConfigRequest>,
    ) -> Answer<RuntimeConfigResponse> {
        dispatch!(self.runtime_config(req))
    }
}

#[tonic::async_trait]
impl ImageService for Cri {
    async fn list_images(&self, req: Request<ListImagesRequest>) -> Answer<ListImagesResponse> {
        dispatch!(self.list_images(req))
    }
    async fn image_status(&self, req: Request<ImageStatusRequest>) -> Answer<ImageStatusResponse> {
        dispatch!(self.image_status(req))
    }
    async fn pull_image(&self, req: Request<PullImageRequest>) -> Answer<PullImageResponse> {
        dispatch!(self.pull_image(req))
    }
    async fn remove_image(&self, req: Request<RemoveImageRequest>) -> Answer<RemoveImageResponse> {
        dispatch!(self.remove_image(req))
    }
    async fn image_fs_info(&self, req: Request<ImageFsInfoRequest>) -> Answer<ImageFsInfoResponse> {
        dispatch!(self.image_fs_info(req))
    }
}
