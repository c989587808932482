//! The `podhost` command: kubectl habits over the daemon's API.
//!
//! - [`client`]: HTTP over the unix socket.
//! - [`output`]: tables, `describe`, yaml/json printing.
//! - [`exec`]: the client side of an exec session.
//! - [`objects`]: ConfigMaps and Secrets (get, describe, delete).

pub mod client;
mod exec;
mod logs;
mod objects;
mod output;
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
    /// Cgroup parent of every pod (`<parent>/pod<uid>/<container>`); daemon only.
    #[arg(
        long,
        global = true,
        env = "PODHOST_CGROUP_PARENT",
        default_value = "podhost"
    )]
    pub cgroup_parent: String,
    /// Most processes a pod may run (its cgroup's pids.max; 0 = unlimited); daemon only.
    #[arg(
        long,
        global = true,
        env = "PODHOST_POD_PIDS_LIMIT",
        default_value_t = 4096
    )]
    pub pod_pids_limit: i64,
    /// Pod networking of the daemon (`serve`); see [`NetFlags`].
    #[command(flatten)]
    pub net: NetFlags,
    /// Registry configuration file (mirrors, plain HTTP, CAs, credentials); daemon only.
    /// Default /etc/podhost/registries.json, or ROOT/registries.json with --root.
    #[arg(long, global = true, env = "PODHOST_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// Image GC starts above this disk usage of the image filesystem (percent, 100 = never); daemon only.
    #[arg(long, global = true, env = "PODHOST_IMAGE_GC_HIGH_THRESHOLD", default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub image_gc_high_threshold: u8,
    /// Image GC frees space down to this disk usage (percent); daemon only.
    #[arg(long, global = true, env = "PODHOST_IMAGE_GC_LOW_THRESHOLD", default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_low_threshold: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Pod network settings of `podhost serve` (defaults: `podhost0` on 10.77.0.0/16).
#[derive(Debug, Args)]
pub struct NetFlags {
    /// CNI network config directory, the first file by name is used (default
    /// /etc/podhost/cni/net.d, or ROOT/cni/net.d with --root); podhost writes its
    /// default conflist there when it is empty. Point it at /etc/cni/net.d on a node.
    #[arg(long, global = true, env = "PODHOST_CNI_CONF_DIR")]
    pub cni_conf_dir: Option<PathBuf>,
    /// CNI plugin directories, colon-separated (default /opt/cni/bin:/usr/lib/cni).
    #[arg(long, global = true, env = "PODHOST_CNI_BIN_DIR")]
    pub cni_bin_dir: Option<String>,
    /// Pod CIDR of the default network, like kubelet's --cluster-cidr (default 10.77.0.0/16).
    #[arg(long, global = true, env = "PODHOST_CLUSTER_CIDR")]
    pub cluster_cidr: Option<String>,
    /// Bridge of the default network, which is named after it (default podhost0).
    #[arg(long, global = true, env = "PODHOST_CNI_BRIDGE")]
    pub cni_bridge: Option<String>,
    /// host-local IPAM store of the default network (default STATE/cni/networks).
    #[arg(long, global = true, env = "PODHOST_CNI_DATA_DIR")]
    pub cni_data_dir: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (API on a root-only unix socket).
    Serve(ServeArgs),
    /// Create pods, and create or update ConfigMaps and Secrets, from Kubernetes YAML.
    Apply {
        /// Files with Pod, ConfigMap and Secret manifests (`-` for stdin); several documents per file.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// List pods, events, ConfigMaps or Secrets.
    Get(GetArgs),
    /// Show a pod, ConfigMap or Secret in detail.
    Describe {
        /// Resource type (`pod`, `configmap`, `secret`).
        kind: String,
        /// Pod name.
        name: String,
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
    Logs {
        /// Pod name.
        pod: String,
        /// Container (default: the first).
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Follow the log.
        #[arg(short = 'f', long)]
        follow: bool,
        /// The previous (terminated) container's log.
        #[arg(short = 'p', long)]
        previous: bool,
        /// Prefix each line with its timestamp.
        #[arg(long)]
        timestamps: bool,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Run a command in a container.
    Exec {
        /// Pod name.
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
    /// Delete pods, ConfigMaps or Secrets by name, or what a file names.
    Delete(DeleteArgs),
    /// List containers, each pod's pause included (like `crictl ps`).
    Ps {
        /// Show all containers, exited ones too.
        #[arg(short = 'a', long)]
        all: bool,
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
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// First CrashLoopBackOff delay (kubelet: 10s), e.g. `1s`, `500ms`.
    #[arg(long, env = "PODHOST_BACKOFF_INITIAL", value_parser = parse_duration_arg)]
    pub backoff_initial: Option<Duration>,
    /// CrashLoopBackOff cap (kubelet: 300s), e.g. `10s`, `5m`.
    #[arg(long, env = "PODHOST_BACKOFF_MAX", value_parser = parse_duration_arg)]
    pub backoff_max: Option<Duration>,
    /// Rotate a container's log before it grows past this size (default 10Mi, kubelet's
    /// containerLogMaxSize; a quantity such as 64Ki; negative = never rotate).
    #[arg(long, env = "PODHOST_CONTAINER_LOG_MAX_SIZE", value_parser = parse_log_max_size, allow_hyphen_values = true)]
    pub container_log_max_size: Option<i64>,
    /// Log files kept per container run, the current one included (default 5, kubelet's
    /// containerLogMaxFiles; at least 2).
    #[arg(long, env = "PODHOST_CONTAINER_LOG_MAX_FILES", value_parser = clap::value_parser!(u32).range(2..))]
    pub container_log_max_files: Option<u32>,
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

/// `podhost get …`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// `pods` (`pod`, `po`), `events` (`ev`), `configmaps` (`cm`) or `secrets`.
    pub kind: String,
    /// Pod names (all when none).
    pub names: Vec<String>,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// All namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output: wide, yaml, json, name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Label selector (`app=web,tier!=db`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
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
}

impl Cli {
    /// The config these flags select.
    pub fn config(&self) -> Config {
        let base = match &self.root {
            Some(r) => Config::rooted(r),
            None => Config::default(),
        };
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
        if let Command::Serve(serve) = &self.command {
            if let Some(d) = serve.backoff_initial {
                config.backoff_initial = d;
            }
            if let Some(d) = serve.backoff_max {
                config.backoff_max = d;
            }
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
            if let Some(p) = &serve.cri_socket {
                config.cri_socket = Some(p.clone()).filter(|p| !p.as_os_str().is_empty());
            }
            if serve.no_cri {
                config.cri_socket = None;
            }
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
        Command::Apply { files } => {
            for f in &files {
                let (yaml, source) = read_manifest(f)?;
                let resp: crate::server::ApplyResponse = client
                    .call(
                        Method::POST,
                        "/v1/apply",
                        Some(serde_json::json!({ "yaml": yaml, "source": source })),
                    )
                    .await?;
                for w in &resp.warnings {
                    eprintln!("Warning: {w}");
                }
                for r in &resp.results {
                    println!("{r}");
                }
            }
            Ok(0)
        }
        Command::Get(args) => get(&client, args).await,
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
            print!("{}", top::top_table(&rows, ns, name.as_deref(), containers));
            Ok(0)
        }
        Command::Describe {
            kind,
            name,
            namespace,
        } => {
            if let Some(k) = objects::ObjectKind::parse(&kind) {
                return objects::describe(&client, k, &namespace, &name).await;
            }
            if !is_pod_kind(&kind) {
                bail!("the server doesn't have a resource type {kind:?} (podhost knows: pods, configmaps, secrets)");
            }
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
            print!(
                "{}",
                output::describe(&pod, &events, &rows, crate::timefmt::now_nanos())
            );
            Ok(0)
        }
        Command::Logs {
            pod,
            container,
            follow,
            previous,
            timestamps,
            namespace,
        } => {
            let args = logs::LogsArgs {
                namespace,
                pod,
                container,
                follow,
                previous,
                timestamps,
            };
            logs::run(&client, args).await
        }
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
            if tty {
                let _raw = exec::RawMode::enter()?;
                exec::relay_tty(io, size).await
            } else {
                exec::relay(io, stdin).await
            }
        }
        Command::Delete(args) => delete(&client, args).await,
        Command::Ps { all } => {
            let rows: Vec<crate::server::ContainerRow> =
                client.call(Method::GET, "/v1/containers", None).await?;
            print!(
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
            print!("{}", output::images_table(&images));
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
                    Ok(_) => println!("Deleted: {image}"),
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
                println!("Deleted: {id}");
            }
            println!("Total reclaimed space: {}", output::human_size(r.reclaimed));
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
                println!("Loaded image: {name}");
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

fn unreachable_serve() -> Result<i32> {
    bail!("`serve` is handled by main before the CLI runs")
}

fn is_pod_kind(k: &str) -> bool {
    matches!(k, "pod" | "pods" | "po")
}

async fn get(client: &Client, args: GetArgs) -> Result<i32> {
    let kind = args.kind.as_str();
    let kind_name = kind
        .split_once('/')
        .map(|(k, n)| (k, Some(n)))
        .unwrap_or((kind, None));
    let mut names = args.names.clone();
    if let Some(n) = kind_name.1 {
        names.push(n.to_string());
    }
    let mut q = format!(
        "/v1/pods?namespace={}&all_namespaces={}",
        enc(&args.namespace),
        args.all_namespaces
    );
    if let Some(s) = &args.selector {
        q.push_str(&format!("&selector={}", enc(s)));
    }
    if let Some(k) = objects::ObjectKind::parse(kind_name.0) {
        return objects::get(client, k, &names, &args).await;
    }
    match kind_name.0 {
        k if is_pod_kind(k) => {
            let mut pods: Vec<Pod> = client.call(Method::GET, &q, None).await?;
            if !names.is_empty() {
                for n in &names {
                    if !pods.iter().any(|p| p.metadata.name.as_deref() == Some(n)) {
                        bail!("pods \"{n}\" not found");
                    }
                }
                pods.retain(|p| names.iter().any(|n| p.metadata.name.as_deref() == Some(n)));
            }
            let single = names.len() == 1;
            match args.output.as_deref() {
                Some("yaml") => print!("{}", output::to_yaml(&pods, single)?),
                Some("json") => println!("{}", output::to_json(&pods, single)?),
                Some("name") => pods.iter().for_each(|p| println!("pod/{}", p.metadata.name.as_deref().unwrap_or(""))),
                Some("wide") => print!("{}", output::pods_table(&pods, true, args.all_namespaces, crate::timefmt::now_nanos())),
                None => {
                    if pods.is_empty() {
                        let where_ = if args.all_namespaces { String::new() } else { format!(" in {} namespace", args.namespace) };
                        eprintln!("No resources found{where_}.");
                    } else {
                        print!("{}", output::pods_table(&pods, false, args.all_namespaces, crate::timefmt::now_nanos()));
                    }
                }
                Some(o) => bail!("unable to match a printer suitable for the output format {o:?}, allowed formats are: json,name,wide,yaml"),
            }
            Ok(0)
        }
        "events" | "event" | "ev" => {
            let pods: Vec<Pod> = client.call(Method::GET, &q, None).await?;
            let mut rows = Vec::new();
            for p in pods {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                let evs: Vec<crate::lifecycle::PodEvent> = client
                    .call(Method::GET, &format!("/v1/pods/{ns}/{name}/events"), None)
                    .await?;
                rows.extend(evs.into_iter().map(|e| (format!("pod/{name}"), e)));
            }
            print!(
                "{}",
                output::events_table(&rows, crate::timefmt::now_nanos())
            );
            Ok(0)
        }
        other => {
            bail!("the server doesn't have a resource type {other:?} (podhost knows: pods, events, configmaps, secrets)")
        }
    }
}

async fn delete(client: &Client, args: DeleteArgs) -> Result<i32> {
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
        if !objects::delete(client, *k, ns, name).await {
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
    for (ns, name) in targets {
        let r: Result<serde_json::Value> = client
            .call(Method::DELETE, &format!("/v1/pods/{ns}/{name}?{q}"), None)
            .await;
        match r {
            Ok(_) => {
                println!("pod \"{name}\" deleted");
                deleted.push((ns, name));
            }
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
        tokio::time::sleep(Duration::from_millis(100)).await;
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
            println!("pod/{name} condition met");
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
            println!("pod/{name} condition met");
            return Ok(0);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for the condition on pods/{name}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
