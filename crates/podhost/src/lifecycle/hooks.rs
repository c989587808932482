//! postStart and preStop hooks, as kubelet's handler runner runs them.
//!
//! - `exec`: [`Runtime::exec_sync`] in the container; a non-zero exit is a failure.
//! - `httpGet`: a GET inside the pod's network namespace; like kubelet, only a failed
//!   connection or request fails the hook, the status code does not.
//! - `sleep`: waits in the daemon (bounded like the others).
//! - `tcpSocket`: accepted by the API for compatibility, always fails (as in kubelet).
//!
//! Both hooks are bounded: postStart by the pod's grace period (so a hung hook cannot
//! wedge the pod's worker forever), preStop by what remains of the termination grace.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use super::dial;
use super::probes::{http_action, Action};
use podhost_runtime::{Runtime, RuntimeError};

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// After the container started; must finish before the container counts as started.
    PostStart,
    /// Before the stop signal.
    PreStop,
}

impl Hook {
    /// The container's handler for this hook, if any.
    pub fn of(self, c: &Container) -> Option<&LifecycleHandler> {
        let l = c.lifecycle.as_ref()?;
        match self {
            Hook::PostStart => l.post_start.as_ref(),
            Hook::PreStop => l.pre_stop.as_ref(),
        }
    }
}

/// A hook's handler, ports resolved.
pub fn action(h: &LifecycleHandler, c: &Container) -> Action {
    if let Some(e) = &h.exec {
        Action::Exec(e.command.clone().unwrap_or_default())
    } else if let Some(get) = &h.http_get {
        http_action(get, c)
    } else if let Some(s) = &h.sleep {
        Action::Sleep(Duration::from_secs(u64::try_from(s.seconds).unwrap_or(0)))
    } else {
        Action::Invalid("tcpSocket is not supported for lifecycle hooks".into())
    }
}

/// Run the hook to completion within `timeout`. `Err` is kubelet's event message.
pub async fn run(
    rt: &Arc<dyn Runtime>,
    container_id: &str,
    netns: &Path,
    c: &Container,
    handler: &LifecycleHandler,
    pod_ref: &str,
    timeout: Duration,
) -> Result<(), String> {
    let hook = action(handler, c);
    match &hook {
        Action::Exec(cmd) => {
            let r = rt.exec_sync(container_id, cmd.clone(), timeout).await;
            let (err, output) = match r {
                Ok(r) if r.exit_code == 0 => return Ok(()),
                Ok(r) => {
                    let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                    out.push_str(&String::from_utf8_lossy(&r.stderr));
                    (
                        format!("command '{}' exited with {}: ", cmd.join(" "), r.exit_code),
                        out,
                    )
                }
                Err(e @ RuntimeError::ExecTimeout { .. }) => (e.to_string(), String::new()),
                Err(e) => (e.to_string(), String::new()),
            };
            Err(format!(
                "Exec lifecycle hook ({cmd:?}) for Container {:?} in Pod {pod_ref:?} failed - error: {err}, message: {output:?}",
                c.name
            ))
        }
        Action::Http(get) => {
            match tokio::time::timeout(timeout, dial::http_get(netns, get, timeout)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!(
                    "HTTP lifecycle hook ({}) for Container {:?} in Pod {pod_ref:?} failed - error: {e}",
                    get.path, c.name
                )),
                Err(_) => Err(format!(
                    "HTTP lifecycle hook ({}) for Container {:?} in Pod {pod_ref:?} failed - error: timed out after {timeout:?}",
                    get.path, c.name
                )),
            }
        }
        Action::Sleep(d) => {
            tokio::time::sleep((*d).min(timeout)).await;
            Ok(())
        }
        Action::Tcp { .. } | Action::Grpc { .. } | Action::Invalid(_) => {
            let why = match &hook {
                Action::Invalid(w) => w.clone(),
                _ => "unsupported handler".into(),
            };
            Err(format!(
                "Lifecycle hook for Container {:?} in Pod {pod_ref:?} failed - error: {why}",
                c.name
            ))
        }
    }
}
