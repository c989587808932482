//! The daemon: HTTP/JSON API on a root-only unix socket, owning one worker per pod, and
//! beside it the CRI server (`podhost_cri`) for a kubelet or crictl on its own socket.
//!
//! - [`apply`]: manifests in, validated pods out, workers started.
//! - [`logs`]: CRI log files streamed as plain text (`logs -f`).
//! - [`exec`]: HTTP upgrade, then the shim's frame protocol end to end; [`attach`] the
//!   same for a running container's stdio; [`portforward`] one TCP connection inside the
//!   pod's network namespace per upgrade.
//! - [`streaming`]: URLs of sessions on the daemon's streaming server (kubelet's SPDY
//!   protocols, `podhost_streaming::server`).

mod apply;
pub use apply::{ApplyRequest, ApplyResponse};
mod attach;
mod ephemeral;
pub use ephemeral::EphemeralRequest;
mod exec;
mod portforward;
mod streaming;
pub use streaming::{StreamingRequest, StreamingUrl};
mod images;
pub use images::{PruneResult, PullLine};
mod logfiles;
mod logs;
pub use logs::CONTAINER_ID_HEADER;
mod meta;
pub use meta::MetaResult;
mod objects;
mod startup;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::lifecycle::restart::BackoffPolicy;
use crate::lifecycle::worker::{Clock, Settings};
use crate::lifecycle::{PodEvent, PodHandle, PodRecord, PodWorker, WorkerCmd};
use crate::store::PodStore;
use podhost_runtime::owned::Owned;
use podhost_runtime::{Owner, Runtime};

/// Shared state of the daemon.
pub struct Daemon {
    /// podhost's view of the runtime: only the sandboxes it created.
    runtime: Arc<dyn Runtime>,
    store: PodStore<PodRecord>,
    objects: crate::objects::Objects,
    pods: Mutex<HashMap<String, PodHandle>>,
    settings: Settings,
    /// Exec, attach and port-forward sessions in kubelet's protocols, for podhost's pods
    /// as for CRI's (the same streaming server).
    streaming: Arc<dyn podhost_cri::StreamingProvider>,
    /// The node as the eviction manager last saw it (`get node`, `describe node`).
    node: tokio::sync::watch::Receiver<k8s_openapi::api::core::v1::Node>,
}

/// An API error: status code and a message for the user.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl ApiError {
    fn not_found(what: &str, name: &str) -> Self {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("{what} \"{name}\" not found"),
        )
    }
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::UNPROCESSABLE_ENTITY, msg.into())
    }
    fn internal(msg: impl ToString) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
    }
}

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another daemon holds the state directory.
    #[error("another podhost daemon is already running on {0} (lock held); stop it first")]
    AlreadyRunning(std::path::PathBuf),
    /// Setting up a directory or the socket failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime could not open its state.
    #[error(transparent)]
    Runtime(#[from] podhost_runtime::RuntimeError),
    /// Something already answers on the CRI socket's path (another runtime).
    #[error("{0} is in use by a running server (another CRI runtime?): choose another --cri-socket or stop it")]
    CriSocketInUse(std::path::PathBuf),
}

fn io_err(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> ServeError {
    let path = path.to_path_buf();
    move |source| ServeError::Io {
        action,
        path,
        source,
    }
}

/// How long a starting daemon waits for the state lock before refusing to run.
const LOCK_GRACE: Duration = Duration::from_secs(5);

/// Hold an exclusive lock on `<state>/podhost.lock` for the daemon's lifetime.
fn lock_state_dir(config: &Config) -> Result<std::fs::File, ServeError> {
    use std::os::fd::AsRawFd;
    let path = config.runtime.state_dir.join("podhost.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("opening", &path))?;
    // A supervisor restarting a killed daemon at once can find the lock still held for a
    // moment (the chaos test saw it right after reaping the old one): a few seconds'
    // grace, then a second daemon is refused.
    let deadline = std::time::Instant::now() + LOCK_GRACE;
    loop {
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(f);
        }
        if std::time::Instant::now() >= deadline {
            return Err(ServeError::AlreadyRunning(config.runtime.state_dir.clone()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long a stopping daemon lets open streams (logs -f, exec) finish.
const STOP_STREAMS_AFTER: Duration = Duration::from_secs(2);

/// What `podhost serve` holds before it has a runtime: the state directory and its
/// exclusive lock, and the bound API socket (clients that connect while the daemon is
/// still starting wait for their answer instead of being refused).
pub struct Prepared {
    /// Held for the daemon's lifetime: a second daemon on the same root is refused.
    _lock: std::fs::File,
    /// The root-only API socket.
    listener: tokio::net::UnixListener,
    /// Its path, removed when the daemon stops.
    socket: std::path::PathBuf,
    /// The root-only CRI socket and its path, unless the CRI server is disabled.
    cri: Option<(tokio::net::UnixListener, std::path::PathBuf)>,
}

/// Makes the state directory (0700), takes its lock, prepares the run directory (a
/// tmpfs, mounted while still empty) and binds the API socket in it.
pub fn prepare(config: &Config) -> Result<Prepared, ServeError> {
    crate::store::private_dir(&config.runtime.state_dir)?;
    let lock = lock_state_dir(config)?;
    config.runtime.prepare_run_dir()?;
    let socket = config.api_socket();
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).map_err(io_err("binding", &socket))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod", &socket))?;
    let cri = match &config.cri_socket {
        Some(path) => Some((bind_cri_socket(path)?, path.clone())),
        None => None,
    };
    Ok(Prepared {
        _lock: lock,
        listener,
        socket,
        cri,
    })
}

/// Bind the CRI socket, root-only. A leftover file of an earlier daemon is replaced; a
/// socket some server still answers on (a containerd pointed at the same path) is not.
fn bind_cri_socket(path: &std::path::Path) -> Result<tokio::net::UnixListener, ServeError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ServeError::CriSocketInUse(path.to_path_buf()));
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_err("removing", path)(e))
        }
        _ => {}
    }
    // Created with no permissions for group and others from the start: between bind and
    // chmod nobody else can connect.
    // SAFETY: umask only changes this process's file mode mask; it is restored at once.
    let old = unsafe { libc::umask(0o177) };
    let bound = tokio::net::UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(io_err("binding", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod", path))?;
    Ok(listener)
}

/// Resolves on SIGINT or SIGTERM: how `podhost serve` is stopped.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Serve the HTTP API on `prepared`'s socket with pods on `runtime` until `shutdown`
/// resolves, and the CRI server on its socket (exec, attach and port-forward sessions
/// through `streaming`). Pods keep running when it returns. The runtime is podhost's
/// whole view of the machine: the local one in `podhost serve`, the fake in tests. Each
/// front door sees only the sandboxes it created (see [`podhost_runtime::owned`]).
pub async fn run(
    prepared: Prepared,
    runtime: Arc<dyn Runtime>,
    streaming: Arc<dyn podhost_cri::StreamingProvider>,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let shared = runtime;
    let runtime: Arc<dyn Runtime> = Arc::new(Owned::new(shared.clone(), Owner::Podhost));
    crate::store::private_dir(&config.volumes_dir())?;
    let store = PodStore::open(&config.pods_dir())?;
    let objects = crate::objects::Objects::open(&config.runtime.state_dir)?;
    let settings = Settings {
        backoff: BackoffPolicy {
            initial: config.backoff_initial,
            max: config.backoff_max,
        },
        log_dir: config.runtime.log_dir.clone(),
        volumes_dir: config.volumes_dir(),
        clock: Clock::default(),
        resync: Duration::from_secs(1),
        steady_check: Duration::from_secs(10),
        steady_resync: Duration::from_secs(300),
        objects: objects.clone(),
    };
    let (node_tx, node_rx) = tokio::sync::watch::channel(Default::default());
    let daemon = Arc::new(Daemon {
        node: node_rx,
        runtime,
        store,
        objects,
        pods: Mutex::new(HashMap::new()),
        settings,
        streaming: streaming.clone(),
    });
    let records = daemon.store.load_all();
    daemon.store.collect_orphan_requests();
    // An older podhost's records hold resolved environments, Secrets included; they
    // were read without them and are written again so (0600).
    for rec in &records {
        if let Err(e) = daemon.store.save(rec) {
            tracing::warn!("pod {}: rewriting its record: {e}", rec.key());
        }
    }
    // Serve first: the cleanup of what a crash left may take minutes (a pod of
    // hundreds of containers). Each pod waits, marked, until its own part is done.
    let plan = startup::Plan::of(&records);
    let mut holds = HashMap::new();
    for rec in records {
        let uid = rec.uid();
        let key = rec.key();
        let (hold_tx, hold_rx) = tokio::sync::watch::channel(Some(startup::LOOKING.to_string()));
        holds.insert(uid.clone(), hold_tx);
        daemon.start_worker_held(rec, Some(hold_rx));
        // Deletes acknowledged before a crash go on.
        for grace in daemon.store.delete_requests(&uid) {
            let handle = daemon.lock_pods().get(&key).cloned();
            if let Some(h) = handle {
                let _ = h.cmd.send(WorkerCmd::Delete { grace }).await;
            }
        }
    }
    // Logged before the cleanup can say it is done (tests read the two in order).
    tracing::info!(
        "podhost daemon listening on {}",
        config.api_socket().display()
    );
    tokio::spawn(startup::clean_up(daemon.clone(), plan, holds));
    images::spawn_image_gc(
        daemon.clone(),
        config.image_gc_high_percent,
        config.image_gc_low_percent,
        Duration::from_secs(60),
    );
    let pods = daemon.clone();
    crate::lifecycle::eviction::Manager::new(
        daemon.runtime.clone(),
        Arc::new(move || pods.live_handles()),
        crate::lifecycle::eviction::Paths {
            log_dir: config.runtime.log_dir.clone(),
            volumes_dir: config.volumes_dir(),
        },
    )
    .with_node(config.node(), node_tx)
    .spawn(config.eviction_interval);
    let Prepared {
        _lock,
        listener,
        socket,
        cri,
    } = prepared;
    let app = router(daemon);
    // One stop signal for both servers.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut cri_server = cri.map(|(listener, path)| {
        tracing::info!("CRI server listening on {}", path.display());
        let options = podhost_cri::Options {
            cni_conf_dir: Some(config.runtime.network.cni_conf_dir.clone()),
        };
        let cri = podhost_cri::Cri::new(shared.clone(), streaming, options);
        let stop = stopped(stop_rx.clone());
        let task = tokio::spawn(podhost_cri::serve(listener, cri, stop));
        (task, path)
    });
    let serve = axum::serve(listener, app).with_graceful_shutdown(stopped(stop_rx.clone()));
    let both = async {
        let http = serve.await.map_err(io_err("serving on", &socket));
        if let Some((task, _)) = &mut cri_server {
            match task.await {
                Ok(Err(e)) => tracing::warn!("CRI server: {e}"),
                Err(e) => tracing::warn!("CRI server task: {e}"),
                Ok(Ok(())) => {}
            }
        }
        http
    };
    // Graceful shutdown waits for open connections, and `logs -f`, an exec session or a
    // kubelet's connection may stay open for ever: they get a moment, then the daemon
    // exits anyway (pods keep running; a follower resumes once the daemon is back).
    tokio::select! {
        r = both => r?,
        () = async {
            shutdown.await;
            let _ = stop_tx.send(true);
            tokio::time::sleep(STOP_STREAMS_AFTER).await;
        } => tracing::info!("stopping with streams still open (logs -f, exec, CRI clients)"),
    }
    let _ = std::fs::remove_file(&socket);
    if let Some((task, path)) = cri_server {
        task.abort();
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/v1/version", get(version))
        .route("/v1/apply", post(apply::apply))
        .route("/v1/pods", get(list_pods))
        .route("/v1/node", get(get_node))
        .route("/v1/pods/{ns}/{name}", get(get_pod))
        .route("/v1/pods/{ns}/{name}", delete(delete_pod))
        .route("/v1/pods/{ns}/{name}/events", get(pod_events))
        .route("/v1/pods/{ns}/{name}/log", get(logs::logs))
        .route("/v1/pods/{ns}/{name}/exec", post(exec::exec))
        .route("/v1/pods/{ns}/{name}/attach", post(attach::attach))
        .route(
            "/v1/pods/{ns}/{name}/ephemeralcontainers",
            post(ephemeral::update),
        )
        .route(
            "/v1/pods/{ns}/{name}/portforward",
            post(portforward::port_forward),
        )
        .route(
            "/v1/pods/{ns}/{name}/streaming/{kind}",
            post(streaming::streaming_url),
        )
        .route(
            "/v1/{plural}/{ns}/{name}/metadata",
            post(meta::set_metadata),
        )
        .route("/v1/configmaps", get(objects::list_config_maps))
        .route("/v1/configmaps/{ns}/{name}", get(objects::get_config_map))
        .route(
            "/v1/configmaps/{ns}/{name}",
            delete(objects::delete_config_map),
        )
        .route("/v1/secrets", get(objects::list_secrets))
        .route("/v1/secrets/{ns}/{name}", get(objects::get_secret))
        .route("/v1/secrets/{ns}/{name}", delete(objects::delete_secret))
        .route("/v1/containers", get(list_containers))
        .route("/v1/images", get(list_images))
        .route("/v1/top", get(top))
        .route("/v1/images/load", post(load_image))
        .route("/v1/images/pull", post(images::pull))
        .route("/v1/images/remove", post(images::remove))
        .route("/v1/images/prune", post(images::prune))
        .with_state(d)
}

impl Daemon {
    fn start_worker(&self, rec: PodRecord) {
        self.start_worker_held(rec, None);
    }

    fn start_worker_held(
        &self,
        rec: PodRecord,
        hold: Option<tokio::sync::watch::Receiver<Option<String>>>,
    ) {
        let key = rec.key();
        let handle = PodWorker::spawn_held(
            self.runtime.clone(),
            Some(self.store.clone()),
            rec,
            self.settings.clone(),
            hold,
        );
        self.lock_pods().insert(key, handle);
    }

    fn lock_pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodHandle>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handle of a live pod worker; pods whose worker finished deleting are dropped here.
    fn handle(&self, ns: &str, name: &str) -> Option<PodHandle> {
        let key = format!("{ns}/{name}");
        let mut pods = self.lock_pods();
        let closed = pods.get(&key)?.cmd.is_closed();
        if closed {
            pods.remove(&key);
            return None;
        }
        pods.get(&key).cloned()
    }

    /// Latest record of a pod.
    fn record(&self, ns: &str, name: &str) -> Option<PodRecord> {
        self.handle(ns, name).map(|h| view(&h))
    }

    /// Handles of the live pod workers (the eviction manager's view of the pods).
    fn live_handles(&self) -> Vec<PodHandle> {
        let mut pods = self.lock_pods();
        pods.retain(|_, h| !h.cmd.is_closed());
        pods.values().cloned().collect()
    }

    fn records(&self) -> Vec<PodRecord> {
        self.live(view)
    }

    /// The Pods of every live worker, as [`view`] shows them, without the rest of their
    /// records (events, container tracks): a listing of hundreds of pods cloned all of
    /// it under the pods' lock to throw most of it away.
    fn pods(&self) -> Vec<Pod> {
        self.live(view_pod)
    }

    /// `f` of every live worker's handle; finished workers are dropped here.
    fn live<T>(&self, f: fn(&PodHandle) -> T) -> Vec<T> {
        let mut pods = self.lock_pods();
        pods.retain(|_, h| !h.cmd.is_closed());
        pods.values().map(f).collect()
    }
}

/// A worker's latest record with the labels, annotations and ephemeral containers set
/// since it last published.
fn view(h: &PodHandle) -> PodRecord {
    let mut rec = h.snapshot.borrow().clone();
    set_unpublished(h, &mut rec.pod);
    rec
}

/// [`view`]'s Pod alone.
fn view_pod(h: &PodHandle) -> Pod {
    let mut pod = h.snapshot.borrow().pod.clone();
    set_unpublished(h, &mut pod);
    pod
}

/// The labels, annotations and ephemeral containers set since the worker last published.
fn set_unpublished(h: &PodHandle, pod: &mut Pod) {
    h.meta.borrow().set_on(pod);
    crate::lifecycle::worker::set_ephemeral(pod, h.ephemeral.borrow().clone());
}

async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }))
}

/// Filters of list requests, like kubectl's flags.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    namespace: Option<String>,
    #[serde(default)]
    all_namespaces: bool,
    selector: Option<String>,
    /// Pods only: `get`'s table instead of the Pods (`wide`: `-o wide`'s columns).
    #[serde(default)]
    table: bool,
    #[serde(default)]
    wide: bool,
}

impl ListQuery {
    /// The label selector asked for; an invalid one is the client's error (400), as the
    /// API server's, not a filter that silently matches nothing.
    pub(crate) fn selector(&self) -> Result<crate::selector::Selector, ApiError> {
        crate::selector::Selector::parse(self.selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
    }
}

async fn list_pods(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let selector = q.selector()?;
    let ns = q.namespace.unwrap_or_else(|| "default".into());
    let mut pods: Vec<Pod> = d
        .pods()
        .into_iter()
        .filter(|p| q.all_namespaces || p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|p| selector.matches(p.metadata.labels.as_ref()))
        .collect();
    pods.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    if q.table {
        let now = crate::timefmt::now_nanos();
        let table = crate::cli::output::pod_table(&pods, q.wide, q.all_namespaces, now);
        return Ok(Json(table).into_response());
    }
    Ok(Json(pods).into_response())
}

async fn get_node(State(d): State<Arc<Daemon>>) -> Json<k8s_openapi::api::core::v1::Node> {
    Json(d.node.borrow().clone())
}

async fn get_pod(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Pod>, ApiError> {
    d.record(&ns, &name)
        .map(|r| Json(r.pod))
        .ok_or_else(|| ApiError::not_found("pods", &name))
}

async fn pod_events(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Vec<PodEvent>>, ApiError> {
    d.record(&ns, &name)
        .map(|r| Json(r.events))
        .ok_or_else(|| ApiError::not_found("pods", &name))
}

/// Options of `delete`.
#[derive(Debug, Deserialize)]
struct DeleteQuery {
    grace: Option<i64>,
    #[serde(default)]
    force: bool,
}

async fn delete_pod(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = format!("{ns}/{name}");
    let handle = d
        .lock_pods()
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    // --force means no grace, like `kubectl delete --force --grace-period=0`.
    let grace = if q.force { Some(0) } else { q.grace };
    let uid = handle.snapshot.borrow().uid();
    d.store
        .request_delete(&uid, grace)
        .map_err(ApiError::internal)?;
    handle
        .cmd
        .send(WorkerCmd::Delete { grace })
        .await
        .map_err(|_| ApiError::not_found("pods", &name))?;
    // Answer once the worker shows the pod as Terminating (so a `get pods` right after
    // `delete` agrees), but never wait long on a worker busy with a hook or a kill.
    let mut snap = handle.snapshot.clone();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        snap.wait_for(|r| r.pod.metadata.deletion_timestamp.is_some()),
    )
    .await;
    Ok(Json(serde_json::json!({ "deleted": key })))
}

/// One row of `podhost ps`, like `crictl ps -a`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ContainerRow {
    /// Container id.
    pub id: String,
    /// Image reference.
    pub image: String,
    /// Creation time, unix ns.
    pub created: i64,
    /// CRI state word (`Running`, `Exited` …).
    pub state: String,
    /// Container name (`POD` for the pause, like crictl's sandbox rows).
    pub name: String,
    /// Restart attempt.
    pub attempt: u32,
    /// Pod id (sandbox id).
    pub pod_id: String,
    /// `namespace/name` of the pod.
    pub pod: String,
    /// Host pid of the process, when running.
    pub pid: Option<u32>,
}

async fn list_containers(
    State(d): State<Arc<Daemon>>,
) -> Result<Json<Vec<ContainerRow>>, ApiError> {
    let mut rows = Vec::new();
    for s in d
        .runtime
        .list_pod_sandboxes()
        .await
        .map_err(ApiError::internal)?
    {
        rows.push(ContainerRow {
            id: s.id.clone(),
            image: "podhost/pause (built in)".into(),
            created: s.created_at,
            state: match s.state {
                podhost_runtime::SandboxState::Ready => "Running".into(),
                podhost_runtime::SandboxState::NotReady => "Exited".into(),
                podhost_runtime::SandboxState::Unknown => "Unknown".into(),
            },
            name: "POD".into(),
            attempt: s.config.attempt,
            pod_id: s.id.clone(),
            pod: format!("{}/{}", s.config.namespace, s.config.name),
            pid: s.pause_pid,
        });
    }
    let sandboxes: HashMap<String, String> = rows
        .iter()
        .map(|r| (r.pod_id.clone(), r.pod.clone()))
        .collect();
    for c in d
        .runtime
        .list_containers(None)
        .await
        .map_err(ApiError::internal)?
    {
        rows.push(ContainerRow {
            id: c.id.clone(),
            image: c.config.image.clone(),
            created: c.created_at,
            state: format!("{:?}", c.state),
            name: c.config.name.clone(),
            attempt: c.config.attempt,
            pod: sandboxes.get(&c.sandbox_id).cloned().unwrap_or_default(),
            pod_id: c.sandbox_id.clone(),
            pid: c.pid,
        });
    }
    Ok(Json(rows))
}

/// CPU and memory of a pod or container, as `kubectl top` shows them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name; empty for the pod total.
    pub container: String,
    /// CPU in millicores, averaged over the sampling window.
    pub cpu_millis: u64,
    /// Working set in bytes (usage minus inactive file cache, like kubectl top).
    pub memory_bytes: u64,
}

/// How long CPU time is sampled: kubectl top shows a rate, which needs two readings.
const TOP_WINDOW: Duration = Duration::from_millis(1000);

/// CPU (sampled over [`TOP_WINDOW`]) and memory of running pods and containers.
async fn top(State(d): State<Arc<Daemon>>) -> Result<Json<Vec<Usage>>, ApiError> {
    let first = d
        .runtime
        .list_pod_sandbox_stats()
        .await
        .map_err(ApiError::internal)?;
    tokio::time::sleep(TOP_WINDOW).await;
    let second = d
        .runtime
        .list_pod_sandbox_stats()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(usage_between(&first, &second)))
}

/// Rates between two samples of cumulative counters, like kubelet's summary API. A pod
/// or container missing from either sample (started or gone meanwhile) is left out.
fn usage_between(
    first: &[podhost_runtime::SandboxStats],
    second: &[podhost_runtime::SandboxStats],
) -> Vec<Usage> {
    let millis = |a_ns: Option<u64>, a_t: i64, b_ns: Option<u64>, b_t: i64| {
        let (a, b) = (a_ns?, b_ns?);
        let elapsed = (b_t - a_t).max(1) as u64;
        Some(b.saturating_sub(a) * 1000 / elapsed)
    };
    let mut out = Vec::new();
    for s in second {
        let Some(f) = first.iter().find(|f| f.id == s.id) else {
            continue;
        };
        let row = |container: &str, cpu_millis, memory: Option<u64>| Usage {
            namespace: s.namespace.clone(),
            pod: s.name.clone(),
            container: container.to_string(),
            cpu_millis,
            memory_bytes: memory.unwrap_or(0),
        };
        let Some(cpu) = millis(f.cpu_usage_ns, f.timestamp, s.cpu_usage_ns, s.timestamp) else {
            continue;
        };
        out.push(row("", cpu, s.memory_working_set));
        let running = s
            .containers
            .iter()
            .filter(|c| c.state == podhost_runtime::ContainerState::Running);
        for c in running {
            let Some(fc) = f.containers.iter().find(|fc| fc.id == c.id) else {
                continue;
            };
            if let Some(cpu) = millis(fc.cpu_usage_ns, fc.timestamp, c.cpu_usage_ns, c.timestamp) {
                out.push(row(&c.name, cpu, c.memory_working_set));
            }
        }
    }
    out
}

async fn list_images(
    State(d): State<Arc<Daemon>>,
) -> Result<Json<Vec<podhost_runtime::ImageInfo>>, ApiError> {
    d.runtime
        .list_images()
        .await
        .map(Json)
        .map_err(ApiError::internal)
}

/// Body of `POST /v1/images/load`.
#[derive(Debug, Deserialize)]
struct LoadRequest {
    path: std::path::PathBuf,
    tag: Option<String>,
}

async fn load_image(
    State(d): State<Arc<Daemon>>,
    Json(req): Json<LoadRequest>,
) -> Result<Json<Vec<podhost_runtime::ImageInfo>>, ApiError> {
    d.runtime
        .load_image(&req.path, req.tag.as_deref())
        .await
        .map(Json)
        .map_err(|e| ApiError::bad(e.to_string()))
}
