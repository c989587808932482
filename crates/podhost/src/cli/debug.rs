//! `podhost debug POD --image=IMG [--target=C] [-it] [-- CMD]` (kubectl debug with an
//! ephemeral container) and the attached session of `podhost run -i [--rm]`: both make a
//! container, wait for it to run and attach to it (`podhost attach`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use hyper::Method;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::attach::{self, AttachArgs};
use super::client::{enc, Client};

/// `podhost debug`.
#[derive(Debug, Args)]
pub struct DebugArgs {
    /// The pod (NAME or pod/NAME).
    pub pod: String,
    /// The debug container's image.
    #[arg(long, required = true)]
    pub image: String,
    /// A container of the pod whose processes the debug container sees (it joins that
    /// container's PID namespace).
    #[arg(long)]
    pub target: Option<String>,
    /// The debug container's name (default: debugger-xxxxx).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep the container's stdin open and attach to it.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a TTY for the container (with -i).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The debug container's imagePullPolicy.
    #[arg(long, value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: Option<String>,
    /// Environment variables, `--env K=V` (repeatable).
    #[arg(long)]
    pub env: Vec<String>,
    /// The words after `--` are arguments of the image's entrypoint, not the command.
    #[arg(long)]
    pub arguments_only: bool,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The command (or with --arguments-only, its arguments).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Characters of generated name suffixes, as Kubernetes' (no vowels, no look-alikes).
const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `debugger-` and five random characters, as kubectl names debug containers.
fn debugger_name() -> String {
    let suffix: String = (0..5)
        .map(|_| NAME_CHARS[usize::from(rand::random::<u8>()) % NAME_CHARS.len()] as char)
        .collect();
    format!("debugger-{suffix}")
}

/// The ephemeral container `podhost debug` adds, as kubectl builds it.
fn debug_container(a: &DebugArgs, name: &str) -> Result<serde_json::Value> {
    let mut c = serde_json::json!({
        "name": name,
        "image": a.image,
        "stdin": a.stdin,
        "tty": a.tty,
        "terminationMessagePolicy": "File",
    });
    if let Some(t) = &a.target {
        c["targetContainerName"] = serde_json::json!(t);
    }
    if let Some(p) = &a.image_pull_policy {
        c["imagePullPolicy"] = serde_json::json!(p);
    }
    if !a.args.is_empty() {
        let key = if a.arguments_only { "args" } else { "command" };
        c[key] = serde_json::json!(a.args);
    }
    if !a.env.is_empty() {
        c["env"] = serde_json::json!(env_list(&a.env)?);
    }
    Ok(c)
}

/// `K=V` flags as a container's `env`.
pub fn env_list(env: &[String]) -> Result<Vec<serde_json::Value>> {
    env.iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("invalid env {kv:?}: expected KEY=VALUE"))?;
            Ok(serde_json::json!({ "name": k, "value": v }))
        })
        .collect()
}

/// `podhost debug`: add the ephemeral container, then with -i attach to it.
pub async fn run(client: &Client, a: DebugArgs, pod: &str) -> Result<i32> {
    if a.tty && !a.stdin {
        bail!("-i/--stdin is required for containers with -t/--tty=true");
    }
    let path = format!("/v1/pods/{}/{}", enc(&a.namespace), enc(pod));
    let current: Pod = client.call(Method::GET, &path, None).await?;
    let spec = current.spec.clone().unwrap_or_default();
    let taken: Vec<String> = podhost_api::all_containers(&spec)
        .into_iter()
        .map(|c| c.name)
        .collect();
    let name = match &a.container {
        Some(n) => n.clone(),
        None => {
            let mut n = debugger_name();
            while taken.contains(&n) {
                n = debugger_name();
            }
            eprintln!("Defaulting debug container name to {n}.");
            n
        }
    };
    let mut list: Vec<serde_json::Value> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    list.push(debug_container(&a, &name)?);
    let body = serde_json::json!({ "ephemeralContainers": list });
    let _: Pod = client
        .call(
            Method::POST,
            &format!("{path}/ephemeralcontainers"),
            Some(body),
        )
        .await?;
    if let Some(t) = &a.target {
        eprintln!("Targeting container {t:?}. If you don't see processes from this container it may be because the container runtime doesn't support this feature.");
    }
    if !a.stdin {
        return Ok(0);
    }
    let args = AttachArgs {
        pod: pod.to_string(),
        namespace: a.namespace.clone(),
        container: Some(name),
        stdin: true,
        tty: a.tty,
    };
    session(client, args).await
}

/// How a container ended up once waited for.
enum Reached {
    /// It runs: attach.
    Running,
    /// It ran to its end before anyone attached: its log is all there is.
    Terminated,
}

/// Waiting reasons that will not go away by waiting.
const FAILED: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerError",
    "CreateContainerConfigError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// How long a container may take to run, as kubectl's `--pod-running-timeout`.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(60);

/// The status of container `name` of `pod`, whatever its kind.
fn status_of<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    let st = pod.status.as_ref()?;
    st.container_statuses
        .iter()
        .chain(st.init_container_statuses.iter())
        .chain(st.ephemeral_container_statuses.iter())
        .flatten()
        .find(|s| s.name == name)
}

/// Polls the pod until container `name` runs or has ended.
async fn wait_for_container(client: &Client, ns: &str, pod: &str, name: &str) -> Result<Reached> {
    let path = format!("/v1/pods/{}/{}", enc(ns), enc(pod));
    let deadline = Instant::now() + RUNNING_TIMEOUT;
    loop {
        let p: Pod = client.call(Method::GET, &path, None).await?;
        if p.metadata.deletion_timestamp.is_some() {
            bail!("pod {pod} is being deleted");
        }
        let state = status_of(&p, name).and_then(|s| s.state.clone());
        if let Some(state) = state {
            if state.running.is_some() {
                return Ok(Reached::Running);
            }
            if state.terminated.is_some() {
                return Ok(Reached::Terminated);
            }
            if let Some(w) = state.waiting {
                let reason = w.reason.unwrap_or_default();
                if FAILED.contains(&reason.as_str()) {
                    bail!(
                        "container {name} of pod {pod} cannot run: {reason}: {}",
                        w.message.unwrap_or_default()
                    );
                }
            }
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for container {name} of pod {pod} to run");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits for the container to run and attaches to it; a container that already ended
/// has its log printed instead (kubectl run does the same).
pub async fn session(client: &Client, a: AttachArgs) -> Result<i32> {
    let name = a.container.clone().unwrap_or_default();
    match wait_for_container(client, &a.namespace, &a.pod, &name).await? {
        Reached::Running => attach::run(client, a).await,
        Reached::Terminated => {
            let args = super::logs::LogsArgs {
                namespace: a.namespace.clone(),
                pod: a.pod.clone(),
                container: a.container.clone(),
                follow: false,
                previous: false,
                timestamps: false,
                tail: -1,
                since_time: None,
                prefix: false,
            };
            super::logs::run(client, args).await
        }
    }
}

/// `fut`, or the exit code 128+N of the first SIGINT, SIGTERM or SIGHUP (Ctrl-C without a
/// TTY, `kill`, a closed terminal) that comes first: what ends a `run --rm` session, whose
/// pod is deleted either way.
pub async fn until_signal(fut: impl std::future::Future<Output = Result<i32>>) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("watch SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("watch SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("watch SIGHUP")?;
    tokio::select! {
        r = fut => r,
        Some(()) = int.recv() => Ok(128 + libc::SIGINT),
        Some(()) = term.recv() => Ok(128 + libc::SIGTERM),
        Some(()) = hup.recv() => Ok(128 + libc::SIGHUP),
    }
}

/// The exit code of container `name` once it terminated (kubectl run waits for a pod
/// that does not restart), within a short wait; `None` if it still runs then.
pub async fn exit_code(client: &Client, ns: &str, pod: &str, name: &str) -> Option<i32> {
    let path = format!("/v1/pods/{}/{}", enc(ns), enc(pod));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let p: Pod = client.call(Method::GET, &path, None).await.ok()?;
        let terminated = status_of(&p, name)
            .and_then(|s| s.state.as_ref())
            .and_then(|s| s.terminated.as_ref());
        if let Some(t) = terminated {
            return Some(t.exit_code);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid_container_names() {
        for _ in 0..50 {
            let n = debugger_name();
            assert_eq!(n.len(), "debugger-".len() + 5);
            assert!(n
                .bytes()
                .skip("debugger-".len())
                .all(|b| NAME_CHARS.contains(&b)));
        }
    }
}
