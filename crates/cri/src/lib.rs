//! podhost's CRI v1 server: what a kubelet or `crictl` talks to, on a root-only unix
//! socket, as they talk to containerd or CRI-O.
//!
//! Each RPC is a thin mapping of protobuf to podhost's [`Runtime`] trait, seen through the
//! CRI owner's view ([`podhost_runtime::owned::Owned`] with [`Owner::Cri`]): sandboxes made
//! here are CRI's, and the podhost CLI's pods are never listed or touched (a kubelet
//! removes every sandbox it does not know). Images are shared by both.
//!
//! # Layout
//! - [`authority`]: the socket's connection layer (repairs the `:authority` older
//!   gRPC-Go clients send, which tonic would refuse).
//! - `service`: the two gRPC services, dispatching to one file per RPC group:
//!   `status_version`, `sandbox_run`, `sandbox_stop`, `sandbox_remove`, `sandbox_status`,
//!   `sandbox_list`, `container_create`, `container_start`, `container_stop`,
//!   `container_remove`, `container_status`, `container_list`, `container_update`,
//!   `container_reopen_log`, `exec_sync`, `stream` (exec/attach/port-forward, handed to a
//!   [`StreamingProvider`]), `stats`, `images`.
//! - [`convert`]: every protobuf ↔ runtime type mapping; [`filter`]: list filters;
//!   [`error`]: runtime errors as gRPC codes.

pub mod authority;
pub mod convert;
pub mod error;
pub mod filter;

mod container_create;
mod container_list;
mod container_remove;
mod container_reopen_log;
mod container_start;
mod container_status;
mod container_stop;
mod container_update;
mod exec_sync;
mod images;
mod sandbox_list;
mod sandbox_remove;
mod sandbox_run;
mod sandbox_status;
mod sandbox_stop;
mod service;
mod stats;
mod status_version;
mod stream;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use podhost_cri_api::image_service_server::ImageServiceServer;
use podhost_cri_api::runtime_service_server::RuntimeServiceServer;
use podhost_cri_api::{
    AttachRequest, AttachResponse, ExecRequest, ExecResponse, PortForwardRequest,
    PortForwardResponse,
};
use podhost_runtime::owned::Owned;
use podhost_runtime::{ContainerStatus, Owner, Runtime, SandboxStatus};
use tokio::net::UnixListener;
use tonic::Status;

pub use stream::Unsupported;

/// Where Exec, Attach and PortForward go: kubelet's streaming server, which answers with
/// the URL of a session on an HTTP server of its own (one-time token). The requests have
/// been checked (the container or sandbox is CRI's and running) before they get here.
pub trait StreamingProvider: Send + Sync + 'static {
    /// The URL of an exec session.
    fn get_exec(&self, req: &ExecRequest) -> Result<ExecResponse, Status>;
    /// The URL of an attach session.
    fn get_attach(&self, req: &AttachRequest) -> Result<AttachResponse, Status>;
    /// The URL of a port-forward session.
    fn get_port_forward(&self, req: &PortForwardRequest) -> Result<PortForwardResponse, Status>;
}

/// Settings of the CRI server that are not the runtime's.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The CNI config directory: the network is ready when it holds a config.
    pub cni_conf_dir: Option<PathBuf>,
}

/// The CRI server's state: the runtime as CRI sees it, the streaming provider.
pub struct Cri {
    /// The shared runtime restricted to CRI's own sandboxes.
    runtime: Arc<dyn Runtime>,
    /// Exec, attach and port-forward sessions.
    streaming: Arc<dyn StreamingProvider>,
    options: Options,
    /// Pod CIDR the kubelet gave with UpdateRuntimeConfig, reported by Status.
    pod_cidr: Mutex<Option<String>>,
}

impl Cri {
    /// A CRI server on the shared `runtime`, seeing only the sandboxes it creates.
    pub fn new(
        runtime: Arc<dyn Runtime>,
        streaming: Arc<dyn StreamingProvider>,
        options: Options,
    ) -> Arc<Self> {
        Arc::new(Cri {
            runtime: Arc::new(Owned::new(runtime, Owner::Cri)),
            streaming,
            options,
            pod_cidr: Mutex::new(None),
        })
    }

    /// The full id of a CRI sandbox from an id or a unique prefix of one (crictl's short
    /// ids).
    async fn sandbox_id(&self, id: &str) -> Result<String, Status> {
        let refs = self.runtime.sandbox_refs().await.map_err(error::status)?;
        resolve("sandbox", id, refs.into_iter().map(|r| r.id))
    }

    /// The full id of a CRI container from an id or a unique prefix.
    async fn container_id(&self, id: &str) -> Result<String, Status> {
        let refs = self.runtime.container_refs().await.map_err(error::status)?;
        resolve("container", id, refs.into_iter().map(|r| r.id))
    }

    /// A CRI sandbox's status, by id or unique prefix.
    async fn sandbox(&self, id: &str) -> Result<SandboxStatus, Status> {
        let id = self.sandbox_id(id).await?;
        self.runtime
            .pod_sandbox_status(&id)
            .await
            .map_err(error::status)
    }

    /// A CRI container's status, by id or unique prefix.
    async fn container(&self, id: &str) -> Result<ContainerStatus, Status> {
        let id = self.container_id(id).await?;
        self.runtime
            .container_status(&id)
            .await
            .map_err(error::status)
    }
}

/// For the idempotent stops and removals: `Ok(None)` when the id is unknown (already gone).
fn unless_gone(resolved: Result<String, Status>) -> Result<Option<String>, Status> {
    match resolved {
        Ok(id) => Ok(Some(id)),
        Err(e) if e.code() == tonic::Code::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `id` itself when known, else the one id it is a prefix of.
fn resolve(what: &str, id: &str, ids: impl Iterator<Item = String>) -> Result<String, Status> {
    if id.is_empty() {
        return Err(error::invalid(format!("no {what} id given")));
    }
    let found: Vec<String> = ids.filter(|i| i.starts_with(id)).collect();
    if found.iter().any(|i| i == id) {
        return Ok(id.to_string());
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Status::not_found(format!("{what} {id} not found"))),
        _ => Err(error::invalid(format!(
            "{what} id prefix {id} is ambiguous ({} match)",
            found.len()
        ))),
    }
}

/// Largest message accepted or sent: a kubelet allows 16 MiB (many containers listed).
const MAX_MESSAGE: usize = 16 << 20;

/// Serve CRI's RuntimeService and ImageService on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: UnixListener,
    cri: Arc<Cri>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let runtime = RuntimeServiceServer::from_arc(cri.clone())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let images = ImageServiceServer::from_arc(cri)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    tonic::transport::Server::builder()
        .add_service(runtime)
        .add_service(images)
        .serve_with_incoming_shutdown(authority::incoming(listener), shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_exactly_or_by_unique_prefix() {
        let ids = || ["abc1".to_string(), "abc2".to_string(), "def".to_string()].into_iter();
        assert_eq!(resolve("sandbox", "def", ids()).unwrap(), "def");
        assert_eq!(resolve("sandbox", "abc2", ids()).unwrap(), "abc2");
        assert_eq!(resolve("sandbox", "d", ids()).unwrap(), "def");
        assert_eq!(
            resolve("sandbox", "abc", ids()).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            resolve("sandbox", "x", ids()).unwrap_err().code(),
            tonic::Code::NotFound
        );
        assert_eq!(
            resolve("sandbox", "", ids()).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
