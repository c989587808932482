//! The `podhost` command: kubectl habits over the daemon's API.
//!
//! - [`client`]: HTTP over the unix socket.
//! - [`output`]: tables, `describe`, yaml/json printing.
//! - [`exec`]: the client side of an exec session (and of an attach: [`attach`]).
//! - [`portforward`]: local listeners forwarding to a pod's ports.
//! - [`objects`]: ConfigMaps and Secrets (get, describe, delete).
//! - [`lint`]: `podhost lint`, the advice of `podhost_api::lint` alone.

mod attach;
/// `print!` that ends the CLI quietly when stdout's reader went away (`| head`).
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::write_stdout(format_args!($($t)*)) };
}

/// `println!` that ends the CLI quietly when stdout's reader went away (`| head`).
macro_rules! outln {
    () => { $crate::cli::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::cli::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

pub mod client;
mod cp;
mod debug;
mod exec;
mod get;
mod gotemplate;
mod jsonpath;
pub mod lint;
mod logs;
mod node;
mod objects;
pub(crate) mod output;
mod portforward;
mod procinfo;
mod pull;
mod top;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use hyper::Method;
use k8s_openapi::api::core::v1::Pod;

use crate::config::{Config, RuntimeConfig};
use client::{enc, Client};

/// podhost: run Kubernetes Pods on this machine.
#[derive(Debug, Parser)]
#[command(name = "podhost", version, about)]
pub struct Cli {
    /// Keep all state, runtime files and logs under this directory (tests, sandboxes).
    #[arg(long, global = true, env = "PODHOST_ROOT")]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Pod network settings of `podhost serve` (defaults: `podhost0` on 10.77.0.0/16).
#[derive(Debug, Args)]
pub struct NetFlags {
    /// CNI network config directory, the first file by name is used (default
    /// /etc/podhost/cni/net.d, or ROOT/cni/net.d with --root); podhost writes its
    /// default conflist there when it is empty. Point it at /etc/cni/net.d on a node.
    #[arg(long, env = "PODHOST_CNI_CONF_DIR")]
    pub cni_conf_dir: Option<PathBuf>,
    /// CNI plugin directories, colon-separated (default /opt/cni/bin:/usr/lib/cni).
    #[arg(long, env = "PODHOST_CNI_BIN_DIR")]
    pub cni_bin_dir: Option<String>,
    /// Pod CIDR of the default network, like kubelet's --cluster-cidr (default 10.77.0.0/16).
    #[arg(long, env = "PODHOST_CLUSTER_CIDR")]
    pub cluster_cidr: Option<String>,
    /// Bridge of the default network, which is named after it (default podhost0).
    #[arg(long, env = "PODHOST_CNI_BRIDGE")]
    pub cni_bridge: Option<String>,
    /// host-local IPAM store of the default network (default STATE/cni/networks).
    #[arg(long, env = "PODHOST_CNI_DATA_DIR")]
    pub cni_data_dir: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (API on a root-only unix socket).
    Serve(ServeArgs),
    /// Create pods, and create or update ConfigMaps and Secrets, from Kubernetes YAML.
    Apply {
        /// Files with Pod, ConfigMap and Secret manifests (`-` for stdin), or directories
        /// of them (their .yaml, .yml and .json files); several documents per file.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Directories' subdirectories too.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// `server` or `client`: check and report everything, change nothing (both are
        /// checked by the daemon); `none` applies.
        #[arg(long, value_parser = ["none", "client", "server"], default_value = "none")]
        dry_run: String,
    },
    /// Advice about pods: `lint -f FILE|DIR` (no daemon needed) or `lint pod NAME` (a
    /// running pod, its listening sockets too). Exit status 0 clean, 1 findings, 2 a
    /// file or pod that cannot be read.
    Lint(lint::LintArgs),
    /// Copy files and directories to and from a container (`POD:PATH`), as kubectl cp.
    Cp {
        /// Source: a local path or `[NAMESPACE/]POD:PATH`.
        src: String,
        /// Destination: a local path or `[NAMESPACE/]POD:PATH`.
        dst: String,
        /// Container (default: the first).
        #[arg(short = 'c', long)]
        container: Option<String>,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Start a one-off pod: `podhost run NAME --image=IMAGE [-- ARGS]`; with `-i` (and
    /// `-t`) attach to it, with `--rm` delete it when the session ends.
    Run(RunArgs),
    /// Debug a running pod with an ephemeral container (kubectl debug): `podhost debug
    /// POD -it --image=IMAGE [--target=CONTAINER] [-- CMD]`.
    Debug(debug::DebugArgs),
    /// Add, change (--overwrite) or remove (`key-`) labels of pods, ConfigMaps, Secrets.
    Label(MetaArgs),
    /// Add, change (--overwrite) or remove (`key-`) annotations.
    Annotate(MetaArgs),
    /// List pods, events, ConfigMaps or Secrets.
    Get(GetArgs),
    /// Show a pod, ConfigMap or Secret in detail.
    Describe {
        /// Resource type (`pod`, `configmap`, `secret`), or `TYPE/NAME`.
        kind: String,
        /// Names (every object of the type when none).
        names: Vec<String>,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// CPU and memory of pods (or their containers), from their cgroups, like `kubectl top`.
    Top {
        /// Resource type (`pod`).
        kind: String,
        /// Only this pod.
        name: Option<String>,
        /// One line per container.
        #[arg(long)]
        containers: bool,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Pods of every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Print a container's logs.
    Logs(LogsCmd),
    /// Run a command in a container.
    Exec {
        /// Pod name, or pod/NAME.
        pod: String,
        /// Container (default: the first).
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Pass stdin to the command.
        #[arg(short = 'i', long)]
        stdin: bool,
        /// Run the command on a TTY (with -i and a terminal as stdin, as kubectl).
        #[arg(short = 't', long)]
        tty: bool,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Attach to a running container's output (and its stdin with -i), like
    /// `kubectl attach`.
    Attach {
        /// Pod name.
        pod: String,
        /// Container (default: the first).
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Pass stdin to the container (it needs `stdin: true`).
        #[arg(short = 'i', long)]
        stdin: bool,
        /// Stdin is a TTY: use the container's terminal (it needs `tty: true`).
        #[arg(short = 't', long)]
        tty: bool,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Forward local ports (on 127.0.0.1) to a pod's ports, like `kubectl port-forward`.
    PortForward {
        /// `pod/NAME` (or `NAME`).
        pod: String,
        /// `LOCAL:REMOTE`, `:REMOTE` (a free local port) or `PORT` (the same on both sides).
        #[arg(required = true)]
        ports: Vec<String>,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Delete pods, ConfigMaps or Secrets by name, or what a file names.
    Delete(DeleteArgs),
    /// List containers, each pod's pause included (like `crictl ps`).
    Ps {
        /// Show all containers, exited ones too.
        #[arg(short = 'a', long)]
        all: bool,
        /// Only the containers of this pod (and its pause).
        #[arg(short = 'p', long)]
        pod: Option<String>,
        /// Namespace of --pod.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// List images.
    Images,
    /// Pull an image from its registry (progress per layer).
    Pull {
        /// Reference: `busybox`, `registry.example.com/team/app:1`, `…@sha256:…`.
        image: String,
    },
    /// Remove images (refused while a container uses them).
    Rmi {
        /// References or ids.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Image commands.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Wait for a pod condition or its deletion (like `kubectl wait`).
    Wait {
        /// `--for=condition=Ready`, `--for=delete`, `--for=jsonpath={.status.phase}=Running`.
        #[arg(long = "for")]
        for_: String,
        /// `pod/NAME`.
        target: String,
        #[arg(long, default_value = "30s")]
        timeout: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
}

/// `podhost serve` knobs.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Cgroup parent of every pod (`<parent>/pod<uid>/<container>`).
    #[arg(long, env = "PODHOST_CGROUP_PARENT", default_value = "podhost")]
    pub cgroup_parent: String,
    /// Most processes a pod may run (its cgroup's pids.max; 0 = unlimited).
    #[arg(long, env = "PODHOST_POD_PIDS_LIMIT", default_value_t = 4096)]
    pub pod_pids_limit: i64,
    /// Pod networking of the daemon (`serve`); see [`NetFlags`].
    #[command(flatten)]
    pub net: NetFlags,
    /// Registry configuration file (mirrors, plain HTTP, CAs, credentials).
    /// Default /etc/podhost/registries.json, or ROOT/registries.json with --root.
    #[arg(long, env = "PODHOST_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// Image GC starts above this disk usage of the image filesystem (percent, 100 = never).
    #[arg(long, env = "PODHOST_IMAGE_GC_HIGH_THRESHOLD", default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub image_gc_high_threshold: u8,
    /// Image GC frees space down to this disk usage (percent).
    #[arg(long, env = "PODHOST_IMAGE_GC_LOW_THRESHOLD", default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_low_threshold: u8,
    /// First CrashLoopBackOff delay (kubelet: 10s), e.g. `1s`, `500ms`.
    #[arg(long, env = "PODHOST_BACKOFF_INITIAL", value_parser = parse_duration_arg)]
    pub backoff_initial: Option<Duration>,
    /// CrashLoopBackOff cap (kubelet: 300s), e.g. `10s`, `5m`.
    #[arg(long, env = "PODHOST_BACKOFF_MAX", value_parser = parse_duration_arg)]
    pub backoff_max: Option<Duration>,
    /// How often pods' disk usage is measured for ephemeral-storage and emptyDir
    /// sizeLimit eviction (default 10s, kubelet's housekeeping period), e.g. `1s`.
    #[arg(long, env = "PODHOST_EVICTION_INTERVAL", value_parser = parse_duration_arg)]
    pub eviction_interval: Option<Duration>,
    /// Hard eviction thresholds, kubelet's syntax and default:
    /// `memory.available<100Mi,nodefs.available<10%` (also nodefs.inodesFree,
    /// pid.available; an empty value: none).
    #[arg(long, env = "PODHOST_EVICTION_HARD", value_parser = parse_eviction_hard)]
    pub eviction_hard: Option<crate::lifecycle::eviction::thresholds::Thresholds>,
    /// Resources kept from pods for the host, kubelet's syntax: `memory=500Mi,cpu=500m`
    /// (default memory: a tenth of the memory, at most 1Gi).
    #[arg(long, env = "PODHOST_SYSTEM_RESERVED", value_parser = parse_reserved_arg)]
    pub system_reserved: Option<crate::lifecycle::eviction::thresholds::Reserved>,
    /// Resources kept from pods for the daemon and its shims, as --system-reserved
    /// (default memory: 256Mi, at most a tenth of the memory). Pods live in a cgroup
    /// limited to the memory less both reservations.
    #[arg(long, env = "PODHOST_KUBE_RESERVED", value_parser = parse_reserved_arg)]
    pub kube_reserved: Option<crate::lifecycle::eviction::thresholds::Reserved>,
    /// Rotate a container's log before it grows past this size (default 10Mi, kubelet's
    /// containerLogMaxSize; a quantity such as 64Ki; negative = never rotate).
    #[arg(long, env = "PODHOST_CONTAINER_LOG_MAX_SIZE", value_parser = parse_log_max_size, allow_hyphen_values = true)]
    pub container_log_max_size: Option<i64>,
    /// Log files kept per container run, the current one included (default 5, kubelet's
    /// containerLogMaxFiles; at least 2).
    #[arg(long, env = "PODHOST_CONTAINER_LOG_MAX_FILES", value_parser = clap::value_parser!(u32).range(2..))]
    pub container_log_max_files: Option<u32>,
    /// Where the streaming server (exec, attach, port-forward over kubelet's SPDY
    /// protocols) listens: a loopback address; port 0 picks a free one (default
    /// 127.0.0.1:0).
    #[arg(long, env = "PODHOST_STREAMING_ADDRESS")]
    pub streaming_address: Option<std::net::SocketAddr>,
    /// The CRI socket for a kubelet or crictl (default /run/podhost/cri.sock, or
    /// ROOT/run/cri.sock with --root); an empty path disables the CRI server.
    #[arg(long, env = "PODHOST_CRI_SOCKET")]
    pub cri_socket: Option<PathBuf>,
    /// No CRI server (same as `--cri-socket ''`).
    #[arg(long, conflicts_with = "cri_socket")]
    pub no_cri: bool,
    /// Log where each pod's start-up time goes: one `podhost-startup` line per sandbox,
    /// container create and start, with the time of every step (netns, CNI plugins, shim,
    /// pause, overlay, bundle, `podhost-runc`).
    #[arg(long, env = "PODHOST_TRACE_STARTUP")]
    pub trace_startup: bool,
}

/// A log size limit: bytes of a quantity; 0 is refused (kubelet would rotate at every
/// check), a negative value turns rotation off.
fn parse_log_max_size(s: &str) -> Result<i64, String> {
    match podhost_api::quantity::parse_bytes(s) {
        Ok(0) => Err(
            "0 would rotate at every line: give a size such as 10Mi, or -1 to never rotate".into(),
        ),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_eviction_hard(
    s: &str,
) -> Result<crate::lifecycle::eviction::thresholds::Thresholds, String> {
    crate::lifecycle::eviction::thresholds::parse_thresholds(s)
        .map(crate::lifecycle::eviction::thresholds::Thresholds)
        .map_err(|e| e.to_string())
}

fn parse_reserved_arg(s: &str) -> Result<crate::lifecycle::eviction::thresholds::Reserved, String> {
    crate::lifecycle::eviction::thresholds::parse_reserved(s).map_err(|e| e.to_string())
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// `podhost image …`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Load a docker-archive, OCI archive or OCI layout directory.
    Load {
        /// The archive or directory.
        #[arg(short = 'i', long)]
        input: PathBuf,
        /// Name to give the image when the archive carries none.
        #[arg(long)]
        tag: Option<String>,
    },
    /// List images.
    Ls,
    /// Pull an image from its registry.
    Pull {
        /// The reference.
        image: String,
    },
    /// Remove images.
    Rm {
        /// References or ids.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images no container uses: untagged ones, or all with --all.
    Prune {
        /// Every unused image, not only untagged ones.
        #[arg(short = 'a', long)]
        all: bool,
    },
}

/// `podhost run NAME --image=IMAGE [-- ARGS…]`, kubectl's generator of one pod.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pod's (and its container's) name.
    pub name: String,
    /// The container's image.
    #[arg(long)]
    pub image: String,
    /// The pod's restartPolicy: Always, OnFailure or Never.
    #[arg(long, default_value = "Always", value_parser = ["Always", "OnFailure", "Never"])]
    pub restart: String,
    /// Labels, `k=v,k2=v2` (default run=NAME).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// Environment variables, `--env K=V` (repeatable).
    #[arg(long)]
    pub env: Vec<String>,
    /// A containerPort the container exposes.
    #[arg(long)]
    pub port: Option<i32>,
    /// The container's imagePullPolicy.
    #[arg(long)]
    pub image_pull_policy: Option<String>,
    /// The words after `--` are the command, not arguments of the image's entrypoint.
    #[arg(long)]
    pub command: bool,
    /// `client`: print the pod (with -o) or what would be created; `server`: checked by
    /// the daemon; nothing is created.
    #[arg(long, value_parser = ["none", "client", "server"], default_value = "none")]
    pub dry_run: String,
    /// With --dry-run=client: print the pod as yaml or json.
    #[arg(short = 'o', long, value_parser = ["yaml", "json"])]
    pub output: Option<String>,
    /// Keep the container's stdin open and attach to it (the pod's `stdin`, `stdinOnce`).
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a TTY for the container (with -i).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Delete the pod when the attached session ends (also on Ctrl-C or a closed
    /// terminal).
    #[arg(long)]
    pub rm: bool,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Arguments (or with --command, the command).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// The Pod `podhost run` creates, as kubectl's generator makes it.
fn run_pod(a: &RunArgs) -> Result<serde_json::Value> {
    let mut labels = serde_json::Map::new();
    match &a.labels {
        Some(l) => {
            for kv in l.split(',').filter(|s| !s.is_empty()) {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("invalid label {kv:?}: expected KEY=VALUE"))?;
                labels.insert(k.into(), v.into());
            }
        }
        None => {
            labels.insert("run".into(), a.name.clone().into());
        }
    }
    let mut c = serde_json::json!({ "name": a.name, "image": a.image });
    if !a.args.is_empty() {
        let key = if a.command { "command" } else { "args" };
        c[key] = serde_json::json!(a.args);
    }
    if !a.env.is_empty() {
        c["env"] = serde_json::json!(debug::env_list(&a.env)?);
    }
    if a.stdin {
        // kubectl run -i: the session's input is the container's, once.
        c["stdin"] = serde_json::json!(true);
        c["stdinOnce"] = serde_json::json!(true);
        c["tty"] = serde_json::json!(a.tty);
    }
    if let Some(p) = a.port {
        c["ports"] = serde_json::json!([{ "containerPort": p }]);
    }
    if let Some(p) = &a.image_pull_policy {
        c["imagePullPolicy"] = serde_json::json!(p);
    }
    Ok(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": a.name, "namespace": a.namespace, "labels": labels },
        "spec": { "containers": [c], "restartPolicy": a.restart },
    }))
}

/// `podhost run`.
async fn run_cmd(client: &Client, a: RunArgs) -> Result<i32> {
    if a.tty && !a.stdin {
        bail!("-i/--stdin is required for containers with -t/--tty=true");
    }
    if a.rm && !a.stdin {
        bail!("--rm should only be used for attached containers (with -i)");
    }
    let pod = run_pod(&a)?;
    if a.dry_run == "client" {
        match a.output.as_deref() {
            Some("json") => outln!("{}", serde_json::to_string_pretty(&pod)?),
            Some(_) => out!("{}", serde_saphyr::to_string(&pod)?),
            None => outln!("pod/{} created (dry run)", a.name),
        }
        return Ok(0);
    }
    // JSON is YAML: the daemon's apply checks it as any manifest.
    let body = serde_json::json!({
        "yaml": serde_json::to_string(&pod)?,
        "source": "podhost run",
        "dry_run": a.dry_run == "server",
        "create_only": true,
    });
    let resp: crate::server::ApplyResponse =
        client.call(Method::POST, "/v1/apply", Some(body)).await?;
    for w in &resp.warnings {
        eprintln!("Warning: {w}");
    }
    if let Some(e) = resp.errors.first() {
        bail!("{e}");
    }
    if !a.stdin || a.dry_run == "server" {
        for r in &resp.results {
            outln!("{r}");
        }
        return Ok(0);
    }
    let args = attach::AttachArgs {
        pod: a.name.clone(),
        namespace: a.namespace.clone(),
        container: Some(a.name.clone()),
        stdin: true,
        tty: a.tty,
    };
    let session = async {
        let code = debug::session(client, args).await?;
        // A pod that does not restart ends with its container: its exit code is the
        // session's, as kubectl run's.
        if a.restart == "Never" && code == 0 {
            let exited = debug::exit_code(client, &a.namespace, &a.name, &a.name).await;
            return Ok(exited.unwrap_or(0));
        }
        Ok(code)
    };
    let code = if a.rm {
        debug::until_signal(session).await
    } else {
        session.await
    };
    if a.rm {
        // Whatever ended the session (its end, an error, Ctrl-C, a closed terminal).
        let path = format!("/v1/pods/{}/{}", enc(&a.namespace), enc(&a.name));
        let deleted: Result<serde_json::Value> = client.call(Method::DELETE, &path, None).await;
        match deleted {
            Ok(_) => outln!("pod \"{}\" deleted", a.name),
            Err(e) => eprintln!("error: deleting pod {}: {e}", a.name),
        }
    }
    code
}

/// `podhost label|annotate TYPE NAME… KEY=VALUE… KEY-…`.
#[derive(Debug, Args)]
pub struct MetaArgs {
    /// The type (`pod`, `cm`, `secret`) or `TYPE/NAME`, then names, then `KEY=VALUE`
    /// to set and `KEY-` to remove.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Replace a value already set.
    #[arg(long)]
    pub overwrite: bool,
    /// Every object of the type.
    #[arg(long)]
    pub all: bool,
    /// The objects of the type whose labels match.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

/// `podhost logs …`.
#[derive(Debug, Args)]
pub struct LogsCmd {
    /// Pod name or pod/NAME (none with -l).
    pub pod: Option<String>,
    /// Container (default: the first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Follow the log.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The previous (terminated) container's log.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Prefix each line with its timestamp.
    #[arg(long)]
    pub timestamps: bool,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Only the last N lines (default all; 10 with -l, as kubectl).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub tail: i64,
    /// Only lines newer than this duration (`10s`, `5m`, `1h`).
    #[arg(long, conflicts_with = "since_time")]
    pub since: Option<String>,
    /// Only lines at or after this RFC 3339 time.
    #[arg(long)]
    pub since_time: Option<String>,
    /// Every container of the pod (init containers first).
    #[arg(long)]
    pub all_containers: bool,
    /// Prefix each line with its source, `[pod/NAME/CONTAINER]`.
    #[arg(long)]
    pub prefix: bool,
    /// Pods by label selector instead of a name.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// `podhost get …`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// `pods` (`pod`, `po`), `events` (`ev`), `configmaps` (`cm`), `secrets`, several
    /// comma-separated (`pods,cm`), or `TYPE/NAME`.
    pub kind: String,
    /// Names (all when none), or more `TYPE/NAME`.
    pub names: Vec<String>,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// All namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output: wide, yaml, json, name, jsonpath=TEMPLATE, custom-columns=SPEC,
    /// go-template=TEMPLATE, go-template-file=PATH.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Label selector: `app=web`, `tier!=db`, `app in (a,b)`, `!canary`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector: `status.phase=Running`, `metadata.name!=x`, `spec.nodeName=…`.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// A LABELS column with every label.
    #[arg(long)]
    pub show_labels: bool,
    /// A column per label key given (`-L app -L tier`, or `-L app,tier`).
    #[arg(short = 'L', long = "label-columns")]
    pub label_columns: Vec<String>,
    /// Sort by the value of a JSONPath, e.g. `--sort-by=.metadata.creationTimestamp`.
    #[arg(long)]
    pub sort_by: Option<String>,
    /// No header row.
    #[arg(long)]
    pub no_headers: bool,
    /// After the listing, print each change (until interrupted).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Print changes only, not the current listing.
    #[arg(long)]
    pub watch_only: bool,
    /// With --watch: the kind of change (ADDED, MODIFIED, DELETED) first on each line.
    #[arg(long)]
    pub output_watch_events: bool,
}

/// `podhost delete …`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kind and names, e.g. `delete pod web`, `delete configmap cfg`, `delete secret/db`.
    pub args: Vec<String>,
    /// Files whose pods to delete.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Seconds given to the pod to end (default: its terminationGracePeriodSeconds).
    #[arg(long)]
    pub grace_period: Option<i64>,
    /// Kill immediately.
    #[arg(long)]
    pub force: bool,
    /// Wait until the pods are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub wait: bool,
    /// Every object of the types given (`delete pods --all`).
    #[arg(long)]
    pub all: bool,
    /// The objects of the types given whose labels match.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// A name that does not exist is no error.
    #[arg(long)]
    pub ignore_not_found: bool,
}

impl Cli {
    /// The config these flags select: a client needs only the root (where the socket
    /// is); the daemon's own knobs come with `serve`.
    pub fn config(&self) -> Config {
        let base = match &self.root {
            Some(r) => Config::rooted(r),
            None => Config::default(),
        };
        match &self.command {
            Command::Serve(serve) => serve.config(base),
            _ => base,
        }
    }
}

impl ServeArgs {
    fn config(&self, base: Config) -> Config {
        let mut network = base.runtime.network.clone();
        let n = &self.net;
        if let Some(d) = &n.cni_conf_dir {
            network.cni_conf_dir = d.clone();
        }
        if let Some(d) = &n.cni_bin_dir {
            network.cni_bin_dirs = std::env::split_paths(d).collect();
        }
        if let Some(c) = &n.cluster_cidr {
            network.cluster_cidr = c.clone();
        }
        if let Some(b) = &n.cni_bridge {
            network.bridge = b.clone();
        }
        if let Some(d) = &n.cni_data_dir {
            network.ipam_data_dir = d.clone();
        }
        let runtime = RuntimeConfig {
            cgroup_parent: self.cgroup_parent.clone(),
            pod_pids_limit: (self.pod_pids_limit > 0).then_some(self.pod_pids_limit),
            network,
            registry_config: self
                .registry_config
                .clone()
                .unwrap_or(base.runtime.registry_config.clone()),
            ..base.runtime
        };
        let mut config = Config {
            runtime,
            image_gc_high_percent: self.image_gc_high_threshold,
            image_gc_low_percent: self
                .image_gc_low_threshold
                .min(self.image_gc_high_threshold),
            ..base
        };
        let serve = self;
        if let Some(d) = serve.backoff_initial {
            config.backoff_initial = d;
        }
        if let Some(d) = serve.backoff_max {
            config.backoff_max = d;
        }
        if let Some(d) = serve.eviction_interval {
            // A zero period would spin: a millisecond is the floor.
            config.eviction_interval = d.max(Duration::from_millis(1));
        }
        if let Some(t) = &serve.eviction_hard {
            config.eviction_hard = t.0.clone();
        }
        config.system_reserved = serve.system_reserved.clone();
        config.kube_reserved = serve.kube_reserved.clone();
        // kubelet's --enforce-node-allocatable=pods: the pods' cgroup parent is bounded.
        let node = config.node();
        let capacity = crate::lifecycle::eviction::node::Capacity::detect(&node.root_dir);
        config.runtime.pods_memory_limit = Some(
            crate::lifecycle::eviction::node::pods_memory_limit(&node, &capacity),
        );
        // A cap below the first delay would make the first delay the cap.
        config.backoff_max = config.backoff_max.max(config.backoff_initial);
        let default = config.runtime.container_log_rotation;
        let max_files = serve.container_log_max_files.map_or(
            default.map_or(podhost_shim::logrotate::DEFAULT_MAX_FILES, |p| p.max_files),
            |n| n as usize,
        );
        let max_size = match serve.container_log_max_size {
            Some(n) => u64::try_from(n).ok(),
            None => default.map(|p| p.max_size),
        };
        config.runtime.container_log_rotation =
            max_size.map(|max_size| podhost_shim::logrotate::Policy {
                max_size,
                max_files,
            });
        if let Some(addr) = serve.streaming_address {
            config.streaming_addr = addr;
        }
        if let Some(p) = &serve.cri_socket {
            config.cri_socket = Some(p.clone()).filter(|p| !p.as_os_str().is_empty());
        }
        if serve.no_cri {
            config.cri_socket = None;
        }
        config
    }
}

fn read_manifest(path: &PathBuf) -> Result<(String, String)> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        return Ok((s, "<stdin>".into()));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((text, path.display().to_string()))
}

fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {s:?}"),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Run the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    let config = cli.config();
    let client = Client::new(&config.api_socket());
    match cli.command {
        Command::Serve(_) => unreachable_serve(),
        Command::Run(a) => run_cmd(&client, a).await,
        Command::Debug(a) => {
            let pod = pod_arg(&a.pod)?.to_string();
            debug::run(&client, a, &pod).await
        }
        Command::Cp {
            src,
            dst,
            container,
            namespace,
        } => cp::run(&client, &src, &dst, container.as_deref(), &namespace).await,
        Command::Label(a) => set_meta(&client, a, "labels").await,
        Command::Annotate(a) => set_meta(&client, a, "annotations").await,
        Command::Apply {
            files,
            recursive,
            dry_run,
        } => {
            // Each object on its own, as kubectl: what failed is reported at the end,
            // the rest is applied.
            let mut errors = Vec::new();
            let dry = dry_run != "none";
            let files = manifest_files(&files, recursive)?;
            for f in &files {
                let r = async {
                    let (yaml, source) = read_manifest(f)?;
                    let body =
                        serde_json::json!({ "yaml": yaml, "source": source, "dry_run": dry });
                    client
                        .call::<crate::server::ApplyResponse>(Method::POST, "/v1/apply", Some(body))
                        .await
                };
                match r.await {
                    Ok(resp) => {
                        for w in &resp.warnings {
                            eprintln!("Warning: {w}");
                        }
                        for r in &resp.results {
                            match dry_run.as_str() {
                                // The daemon checked it; kubectl's client dry run says so.
                                "client" => {
                                    outln!("{}", r.replace(" (server dry run)", " (dry run)"))
                                }
                                _ => outln!("{r}"),
                            }
                        }
                        errors.extend(resp.errors);
                    }
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            for e in &errors {
                eprintln!("error: {e}");
            }
            Ok(i32::from(!errors.is_empty()))
        }
        Command::Lint(a) => lint::run(&client, a).await,
        Command::Get(args) => get::run(&client, args).await,
        Command::Top {
            kind,
            name,
            containers,
            namespace,
            all_namespaces,
        } => {
            if !is_pod_kind(&kind) {
                bail!("podhost top knows pods only: `podhost top pod [NAME] [--containers]`");
            }
            let rows: Vec<crate::server::Usage> = client.call(Method::GET, "/v1/top", None).await?;
            let ns = (!all_namespaces).then_some(namespace.as_str());
            if let Some(n) = &name {
                if !rows
                    .iter()
                    .any(|u| ns.is_none_or(|x| u.namespace == x) && &u.pod == n)
                {
                    bail!("pod {n:?} not found or not running");
                }
            }
            out!("{}", top::top_table(&rows, ns, name.as_deref(), containers));
            Ok(0)
        }
        Command::Describe {
            kind,
            names,
            namespace,
        } => describe(&client, &kind, names, &namespace).await,
        Command::Logs(args) => logs_cmd(&client, args).await,
        Command::Exec {
            pod,
            container,
            stdin,
            tty,
            namespace,
            cmd,
        } => {
            // kubectl's rules: a TTY needs -i (without it -t is dropped silently) and a
            // terminal to read from (else a warning, and on without a TTY).
            let tty = tty && stdin && {
                let terminal = std::io::stdin().is_terminal();
                if !terminal {
                    eprintln!(
                        "Unable to use a TTY - input is not a terminal or the right kind of file"
                    );
                }
                terminal
            };
            let pod = pod_arg(&pod)?;
            let mut path = format!(
                "/v1/pods/{namespace}/{pod}/exec?cmd={}",
                enc(&serde_json::to_string(&cmd)?)
            );
            if let Some(c) = container {
                path.push_str(&format!("&container={}", enc(&c)));
            }
            let size = if tty { exec::terminal_size() } else { None };
            if tty {
                path.push_str("&tty=true");
                if let Some(size) = size {
                    path.push_str(&format!("&width={}&height={}", size.width, size.height));
                }
            }
            let io = client.upgrade(&path).await?;
            // A session that ends without the command's exit code lost it.
            let code = if tty {
                let _raw = exec::RawMode::enter()?;
                exec::relay_tty(io, size).await
            } else {
                exec::relay(io, stdin).await
            };
            code.map(|c| c.unwrap_or(1))
        }
        Command::Attach {
            pod,
            container,
            stdin,
            tty,
            namespace,
        } => {
            let args = attach::AttachArgs {
                pod,
                namespace,
                container,
                stdin,
                tty,
            };
            attach::run(&client, args).await
        }
        Command::PortForward {
            pod,
            ports,
            namespace,
        } => portforward::run(&client, &namespace, &pod, &ports).await,
        Command::Delete(args) => delete(&client, args).await,
        Command::Ps {
            all,
            pod,
            namespace,
        } => {
            let mut rows: Vec<crate::server::ContainerRow> =
                client.call(Method::GET, "/v1/containers", None).await?;
            if let Some(p) = &pod {
                let key = format!("{namespace}/{}", pod_arg(p)?);
                rows.retain(|r| r.pod == key);
            }
            out!(
                "{}",
                output::ps_table(&rows, all, crate::timefmt::now_nanos())
            );
            Ok(0)
        }
        Command::Images
        | Command::Image {
            command: ImageCommand::Ls,
        } => {
            let images: Vec<podhost_runtime::ImageInfo> =
                client.call(Method::GET, "/v1/images", None).await?;
            out!("{}", output::images_table(&images));
            Ok(0)
        }
        Command::Pull { image }
        | Command::Image {
            command: ImageCommand::Pull { image },
        } => pull::pull(&client, &image).await,
        Command::Rmi { images }
        | Command::Image {
            command: ImageCommand::Rm { images },
        } => {
            let mut code = 0;
            for image in images {
                let r: Result<serde_json::Value> = client
                    .call(
                        Method::POST,
                        "/v1/images/remove",
                        Some(serde_json::json!({ "reference": image })),
                    )
                    .await;
                match r {
                    Ok(_) => outln!("Deleted: {image}"),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        Command::Image {
            command: ImageCommand::Prune { all },
        } => {
            let r: crate::server::PruneResult = client
                .call(
                    Method::POST,
                    "/v1/images/prune",
                    Some(serde_json::json!({ "all": all })),
                )
                .await?;
            for id in &r.removed {
                outln!("Deleted: {id}");
            }
            outln!("Total reclaimed space: {}", output::human_size(r.reclaimed));
            Ok(0)
        }
        Command::Image {
            command: ImageCommand::Load { input, tag },
        } => {
            let path = std::fs::canonicalize(&input)
                .with_context(|| format!("open {}", input.display()))?;
            let images: Vec<podhost_runtime::ImageInfo> = client
                .call(
                    Method::POST,
                    "/v1/images/load",
                    Some(serde_json::json!({ "path": path, "tag": tag })),
                )
                .await?;
            for i in images {
                let name = i.repo_tags.first().cloned().unwrap_or_else(|| i.id.clone());
                outln!("Loaded image: {name}");
            }
            Ok(0)
        }
        Command::Wait {
            for_,
            target,
            timeout,
            namespace,
        } => wait(&client, &for_, &target, &timeout, &namespace).await,
    }
}

/// Writes to stdout. A reader that stopped early (`get pods -o yaml | head -1`) ends
/// the CLI as it ends kubectl or cat: by SIGPIPE, with nothing on stderr. Rust's
/// `print!` would panic instead (Rust ignores SIGPIPE); the signal stays ignored for the
/// daemon's socket, whose hang-up is an error the client reports.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            die_of_sigpipe();
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// Ends the process by SIGPIPE's default action, as a shell pipeline expects.
pub(crate) fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default action of SIGPIPE and raising it in this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

/// `describe TYPE [NAMES]` or `describe TYPE/NAME`: each found object, one error per
/// missing name (kubectl's habit), every object of the type when no name is given.
async fn describe(client: &Client, kind: &str, names: Vec<String>, ns: &str) -> Result<i32> {
    let (kind, mut names) = match kind.split_once('/') {
        Some((k, n)) => (k, std::iter::once(n.to_string()).chain(names).collect()),
        None => (kind, names),
    };
    if matches!(kind, "node" | "nodes" | "no") {
        return describe_node(client, &names).await;
    }
    let object_kind = objects::ObjectKind::parse(kind);
    if object_kind.is_none() && !is_pod_kind(kind) {
        bail!("the server doesn't have a resource type {kind:?} (podhost knows: pods, nodes, configmaps, secrets)");
    }
    if names.is_empty() {
        names = match object_kind {
            Some(k) => objects::names(client, k, ns).await?,
            None => {
                let pods: Vec<Pod> = client
                    .call(
                        Method::GET,
                        &format!("/v1/pods?namespace={}", enc(ns)),
                        None,
                    )
                    .await?;
                pods.into_iter().filter_map(|p| p.metadata.name).collect()
            }
        };
    }
    let mut code = 0;
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            outln!();
        }
        let r = match object_kind {
            Some(k) => objects::describe(client, k, ns, name).await,
            None => describe_pod(client, ns, name).await,
        };
        if let Err(e) = r {
            eprintln!("Error from server (NotFound): {e:#}");
            code = 1;
        }
    }
    Ok(code)
}

async fn describe_pod(client: &Client, namespace: &str, name: &str) -> Result<i32> {
    let pod: Pod = client
        .call(Method::GET, &format!("/v1/pods/{namespace}/{name}"), None)
        .await?;
    let events: Vec<crate::lifecycle::PodEvent> = client
        .call(
            Method::GET,
            &format!("/v1/pods/{namespace}/{name}/events"),
            None,
        )
        .await?;
    let rows: Vec<crate::server::ContainerRow> =
        client.call(Method::GET, "/v1/containers", None).await?;
    out!(
        "{}",
        output::describe(&pod, &events, &rows, crate::timefmt::now_nanos())
    );
    Ok(0)
}

/// `logs`: one pod's container, every container (`--all-containers`), or the pods a
/// selector picks (`-l`); several followed at once, as kubectl.
async fn logs_cmd(client: &Client, a: LogsCmd) -> Result<i32> {
    let pods: Vec<String> = match (&a.selector, &a.pod) {
        (Some(sel), _) => {
            let q = format!(
                "/v1/pods?namespace={}&selector={}",
                enc(&a.namespace),
                enc(sel)
            );
            let pods: Vec<Pod> = client.call(Method::GET, &q, None).await?;
            let names: Vec<String> = pods.into_iter().filter_map(|p| p.metadata.name).collect();
            if names.is_empty() {
                eprintln!("No resources found in {} namespace.", a.namespace);
                return Ok(0);
            }
            names
        }
        (None, Some(p)) => vec![pod_arg(p)?.to_string()],
        (None, None) => {
            bail!("a pod name (or -l SELECTOR) is required: podhost logs POD [-c CONTAINER]")
        }
    };
    // kubectl shows the last 10 lines of each pod a selector picks, unless told.
    let tail = if a.selector.is_some() && a.tail < 0 {
        10
    } else {
        a.tail
    };
    let since_time = match (&a.since, &a.since_time) {
        (Some(d), _) => {
            let d = parse_duration(d)?;
            let at = crate::timefmt::now_nanos() - i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
            Some(crate::timefmt::k8s_time(at).0.to_string())
        }
        (None, t) => t.clone(),
    };
    // Which containers: named, all, or the default one (named when lines carry it).
    let mut targets: Vec<(String, Option<String>)> = Vec::new();
    for pod in pods {
        let needs_names =
            a.all_containers || (a.container.is_none() && (a.prefix || a.selector.is_some()));
        if !needs_names {
            targets.push((pod, a.container.clone()));
            continue;
        }
        let p: Pod = client
            .call(
                Method::GET,
                &format!("/v1/pods/{}/{pod}", a.namespace),
                None,
            )
            .await?;
        let spec = p.spec.unwrap_or_default();
        let names: Vec<String> = if a.all_containers {
            spec.init_containers
                .iter()
                .flatten()
                .chain(&spec.containers)
                .map(|c| c.name.clone())
                .collect()
        } else {
            spec.containers
                .first()
                .map(|c| c.name.clone())
                .into_iter()
                .collect()
        };
        targets.extend(names.into_iter().map(|c| (pod.clone(), Some(c))));
    }
    let many = targets.len() > 1;
    let runs = targets.into_iter().map(|(pod, container)| {
        logs::run(
            client,
            logs::LogsArgs {
                namespace: a.namespace.clone(),
                pod,
                container,
                follow: a.follow,
                previous: a.previous,
                timestamps: a.timestamps,
                tail,
                since_time: since_time.clone(),
                prefix: a.prefix,
            },
        )
    });
    let mut code = 0;
    if a.follow && many {
        for r in futures_util::future::join_all(runs).await {
            code = code.max(report(r));
        }
    } else {
        for run in runs {
            code = code.max(report(run.await));
        }
    }
    Ok(code)
}

/// A per-target result: errors printed, the worst exit code kept.
fn report(r: Result<i32>) -> i32 {
    match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// The manifest files `-f` names: files as given, directories' `.yaml`, `.yml` and
/// `.json` files by name (with `-R`, their subdirectories' too), as kubectl.
fn manifest_files(paths: &[PathBuf], recursive: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() != "-" && p.is_dir() {
            let mut found = Vec::new();
            collect_manifests(p, recursive, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn collect_manifests(dir: &std::path::Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = e?.path();
        if path.is_dir() {
            if recursive {
                collect_manifests(&path, true, out)?;
            }
        } else if path
            .extension()
            .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// `label` and `annotate`: the objects named (or all, or by selector) get the changes;
/// kubectl's lines (`pod/web labeled`, `… not labeled` when nothing changed).
async fn set_meta(client: &Client, a: MetaArgs, field: &str) -> Result<i32> {
    let verb = if field == "labels" {
        "labeled"
    } else {
        "annotated"
    };
    let (kind, rest) = a.args.split_first().context("a resource type is needed")?;
    let (kind, mut names): (&str, Vec<String>) = match kind.split_once('/') {
        Some((k, n)) => (k, vec![n.to_string()]),
        None => (kind.as_str(), Vec::new()),
    };
    let mut changes = serde_json::Map::new();
    for arg in rest {
        if let Some((k, v)) = arg.split_once('=') {
            changes.insert(k.to_string(), serde_json::Value::String(v.to_string()));
        } else if let Some(k) = arg.strip_suffix('-') {
            changes.insert(k.to_string(), serde_json::Value::Null);
        } else if changes.is_empty() {
            names.push(pod_arg(arg).map_or(arg.clone(), str::to_string));
        } else {
            bail!("{arg:?}: a change is KEY=VALUE or KEY-");
        }
    }
    if changes.is_empty() {
        bail!(
            "at least one {} update is required",
            &field[..field.len() - 1]
        );
    }
    let (plural, singular) = match objects::ObjectKind::parse(kind) {
        Some(k) => (k.plural(), k.singular()),
        None if is_pod_kind(kind) => ("pods", "pod"),
        None => bail!("the server doesn't have a resource type {kind:?} (podhost knows: pods, configmaps, secrets)"),
    };
    if a.all || a.selector.is_some() {
        let mut q = format!("namespace={}", enc(&a.namespace));
        if let Some(sel) = &a.selector {
            q.push_str(&format!("&selector={}", enc(sel)));
        }
        let list: Vec<serde_json::Value> = client
            .call(Method::GET, &format!("/v1/{plural}?{q}"), None)
            .await?;
        names.extend(
            list.iter()
                .filter_map(|v| v.pointer("/metadata/name")?.as_str().map(str::to_string)),
        );
    } else if names.is_empty() {
        bail!("one or more resources must be specified as <resource> <name> or <resource>/<name>");
    }
    let mut code = 0;
    for name in names {
        let body = serde_json::json!({ field: changes, "overwrite": a.overwrite });
        let r: Result<crate::server::MetaResult> = client
            .call(
                Method::POST,
                &format!("/v1/{plural}/{}/{name}/metadata", a.namespace),
                Some(body),
            )
            .await;
        match r {
            Ok(r) if r.changed => outln!("{singular}/{name} {verb}"),
            Ok(_) => outln!("{singular}/{name} not {verb}"),
            Err(e) => {
                eprintln!("error: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn unreachable_serve() -> Result<i32> {
    bail!("`serve` is handled by main before the CLI runs")
}

/// The pod a `NAME` or `pod/NAME` argument names (exec, logs, describe, …).
fn pod_arg(arg: &str) -> Result<&str> {
    match arg.split_once('/') {
        None => Ok(arg),
        Some((kind, name)) if is_pod_kind(kind) && !name.is_empty() => Ok(name),
        Some((kind, _)) => bail!(
            "the server doesn't have a resource type {kind:?} here (give a pod: NAME or pod/NAME)"
        ),
    }
}

/// `describe node [NAME]`: the one node, with every pod's requests and limits.
async fn describe_node(client: &Client, names: &[String]) -> Result<i32> {
    let n = node::fetch(client).await?;
    let own = n.metadata.name.clone().unwrap_or_default();
    if let Some(other) = names.iter().find(|x| **x != own) {
        eprintln!("Error from server (NotFound): nodes \"{other}\" not found");
        return Ok(1);
    }
    let pods: Vec<Pod> = client
        .call(Method::GET, "/v1/pods?all_namespaces=true", None)
        .await?;
    outln!(
        "{}",
        node::describe(&n, &pods, crate::timefmt::now_nanos()).trim_end()
    );
    Ok(0)
}

fn is_pod_kind(k: &str) -> bool {
    matches!(k, "pod" | "pods" | "po")
}

/// Pod deletions `delete` has in flight at once.
const DELETES_IN_FLIGHT: usize = 16;

async fn delete(client: &Client, args: DeleteArgs) -> Result<i32> {
    use futures_util::StreamExt;
    let mut targets: Vec<(String, String)> = Vec::new();
    // ConfigMaps and Secrets: (kind, namespace, name).
    let mut others: Vec<(objects::ObjectKind, String, String)> = Vec::new();
    for f in &args.files {
        let (yaml, source) = read_manifest(f)?;
        for m in podhost_api::parse_manifests(&yaml, &source).map_err(|e| anyhow::anyhow!("{e}"))? {
            let meta = m.metadata();
            let ns = meta
                .namespace
                .clone()
                .unwrap_or_else(|| args.namespace.clone());
            let name = meta.name.clone().unwrap_or_default();
            match objects::ObjectKind::parse(m.kind()) {
                Some(k) => others.push((k, ns, name)),
                None => targets.push((ns, name)),
            }
        }
    }
    let mut rest = args.args.iter();
    if args.all || args.selector.is_some() {
        // Types only (`delete pods,cm -l app=x`): every object that matches.
        let kinds = args.args.first().map(String::as_str).unwrap_or_default();
        if kinds.is_empty() || args.args.len() > 1 {
            bail!("--all and -l take resource types only, e.g. `podhost delete pods --all`");
        }
        let mut q = format!("namespace={}", enc(&args.namespace));
        if let Some(sel) = &args.selector {
            q.push_str(&format!("&selector={}", enc(sel)));
        }
        for kind in kinds.split(',').filter(|k| !k.is_empty()) {
            let plural = match objects::ObjectKind::parse(kind) {
                Some(k) => k.plural(),
                None if is_pod_kind(kind) => "pods",
                None => bail!("the server doesn't have a resource type {kind:?} (podhost knows: pods, configmaps, secrets)"),
            };
            let list: Vec<serde_json::Value> = client
                .call(Method::GET, &format!("/v1/{plural}?{q}"), None)
                .await?;
            let names = list
                .iter()
                .filter_map(|v| v.pointer("/metadata/name")?.as_str().map(str::to_string));
            match objects::ObjectKind::parse(kind) {
                Some(k) => others.extend(names.map(|n| (k, args.namespace.clone(), n))),
                None => targets.extend(names.map(|n| (args.namespace.clone(), n))),
            }
        }
        if targets.is_empty() && others.is_empty() {
            eprintln!("No resources found");
            return Ok(0);
        }
        rest = [].iter();
    }
    if let Some(first) = rest.next() {
        let (kind_word, first_name) = match first.split_once('/') {
            Some((k, n)) => (k, Some(n)),
            None => (first.as_str(), None),
        };
        let names: Vec<String> = first_name
            .map(str::to_string)
            .into_iter()
            .chain(rest.map(|n| n.split_once('/').map_or(n.as_str(), |(_, n)| n).to_string()))
            .collect();
        if let Some(k) = objects::ObjectKind::parse(kind_word) {
            others.extend(names.into_iter().map(|n| (k, args.namespace.clone(), n)));
        } else if is_pod_kind(kind_word) {
            targets.extend(names.into_iter().map(|n| (args.namespace.clone(), n)));
        } else {
            bail!("the server doesn't have a resource type {kind_word:?} (podhost knows: pods, configmaps, secrets)");
        }
    }
    if targets.is_empty() && others.is_empty() {
        bail!("resource(s) were provided, but no name was specified");
    }
    let mut objects_failed = false;
    for (k, ns, name) in &others {
        if !objects::delete(client, *k, ns, name, args.ignore_not_found).await {
            objects_failed = true;
        }
    }
    if targets.is_empty() {
        return Ok(i32::from(objects_failed));
    }
    let mut code = i32::from(objects_failed);
    let mut q = format!("force={}", args.force);
    if let Some(g) = args.grace_period {
        q.push_str(&format!("&grace={g}"));
    }
    if args.force {
        eprintln!("Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated.");
    }
    let mut deleted = Vec::new();
    // Several requests in flight, answers printed in the order asked: each answer waits
    // until its pod's worker shows it Terminating, which one after another made a delete
    // of hundreds of pods take as long as their workers took to notice, one by one.
    let q = &q;
    let mut answers =
        futures_util::stream::iter(targets.into_iter().map(|(ns, name)| async move {
            let r: Result<serde_json::Value> = client
                .call(Method::DELETE, &format!("/v1/pods/{ns}/{name}?{q}"), None)
                .await;
            (ns, name, r)
        }))
        .buffered(DELETES_IN_FLIGHT);
    while let Some((ns, name, r)) = answers.next().await {
        match r {
            Ok(_) => {
                outln!("pod \"{name}\" deleted");
                deleted.push((ns, name));
            }
            Err(e) if args.ignore_not_found && e.to_string().ends_with("not found") => {}
            Err(e) => {
                eprintln!("Error from server (NotFound): {e}");
                code = 1;
            }
        }
    }
    if args.wait {
        for (ns, name) in deleted {
            wait_gone(client, &ns, &name, Duration::from_secs(600)).await?;
        }
    }
    Ok(code)
}

async fn wait_gone(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    // A forced delete is done in about 100 ms: polled every 100 ms from the start, it
    // showed as 100 or 200. Every 10 ms for the first second, then every 100 ms.
    let quick_until = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let r: Result<Pod> = client
            .call(Method::GET, &format!("/v1/pods/{ns}/{name}"), None)
            .await;
        if r.is_err() {
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(false);
        }
        let quick = tokio::time::Instant::now() < quick_until;
        tokio::time::sleep(Duration::from_millis(if quick { 10 } else { 100 })).await;
    }
}

async fn wait(client: &Client, for_: &str, target: &str, timeout: &str, ns: &str) -> Result<i32> {
    let name = target
        .strip_prefix("pod/")
        .or_else(|| target.strip_prefix("pods/"))
        .unwrap_or(target);
    let timeout = parse_duration(timeout)?;
    if for_ == "delete" {
        if wait_gone(client, ns, name, timeout).await? {
            outln!("pod/{name} condition met");
            return Ok(0);
        }
        bail!("timed out waiting for the condition on pods/{name}");
    }
    let check: Box<dyn Fn(&Pod) -> bool> = if let Some(cond) = for_.strip_prefix("condition=") {
        let (ctype, want) = cond.split_once('=').unwrap_or((cond, "True"));
        let (ctype, want) = (ctype.to_lowercase(), want.to_lowercase());
        Box::new(move |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_.to_lowercase() == ctype && c.status.to_lowercase() == want)
                })
        })
    } else if let Some(jp) = for_.strip_prefix("jsonpath=") {
        let (path, want) = jp.split_once('=').context("jsonpath needs `={value}`")?;
        let path = path
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim_start_matches('.')
            .to_string();
        let want = want.to_string();
        Box::new(move |p: &Pod| {
            let v = serde_json::to_value(p).unwrap_or_default();
            let got = path.split('.').try_fold(&v, |v, k| v.get(k));
            got.and_then(|g| g.as_str()) == Some(want.as_str())
        })
    } else {
        bail!("unrecognized condition: {for_:?} (use condition=Ready, delete or jsonpath={{.status.phase}}=Running)");
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let pod: Pod = client
            .call(Method::GET, &format!("/v1/pods/{ns}/{name}"), None)
            .await?;
        if check(&pod) {
            outln!("pod/{name} condition met");
            return Ok(0);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for the condition on pods/{name}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
