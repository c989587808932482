//! A tonic server with the generated RuntimeService on a unix socket, called through the
//! generated client: the way a kubelet or crictl reaches a CRI runtime.

use hyper_util::rt::TokioIo;
use podhost_cri_api::runtime_service_client::RuntimeServiceClient;
use podhost_cri_api::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use podhost_cri_api::{ListPodSandboxRequest, VersionRequest, VersionResponse, CRI_API_VERSION};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Endpoint, Server};
use tonic::{Code, Request, Response, Status};

/// Answers Version only; every other RPC keeps the generated UNIMPLEMENTED stub.
struct VersionOnly;

#[tonic::async_trait]
impl RuntimeService for VersionOnly {
    async fn version(
        &self,
        request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            // Echo what the client sent, so the test sees the request arrived intact.
            version: request.into_inner().version,
            runtime_name: "podhost".into(),
            runtime_version: "0.1.0".into(),
            runtime_api_version: CRI_API_VERSION.into(),
        }))
    }
}

#[tokio::test]
async fn version_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cri.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(RuntimeServiceServer::new(VersionOnly))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );

    // The URI is required by the API but unused: the connector dials the socket.
    let path = socket.clone();
    let channel = Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap();
    let mut client = RuntimeServiceClient::new(channel);

    let answer = client
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.version, "v1");
    assert_eq!(answer.runtime_name, "podhost");
    assert_eq!(answer.runtime_api_version, "v1");

    let unimplemented = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unimplemented.code(), Code::Unimplemented);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
