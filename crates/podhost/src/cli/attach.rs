//! `podhost attach`: a running container's output from now on, and with `-i` its stdin,
//! on a raw local terminal with `-it` if the container has a TTY (`kubectl attach`).

use std::io::IsTerminal;

use anyhow::{bail, Result};
use hyper::Method;
use k8s_openapi::api::core::v1::Pod;

use super::client::{enc, Client};
use super::exec;

/// What to attach to.
pub struct AttachArgs {
    /// The pod.
    pub pod: String,
    /// Its namespace.
    pub namespace: String,
    /// The container (default: the first).
    pub container: Option<String>,
    /// Pass stdin (`-i`).
    pub stdin: bool,
    /// Use the container's terminal (`-t`).
    pub tty: bool,
}

/// Attaches; returns 0 when the session ends (the container exited, or the end of
/// input ended it), as kubectl does: the container's exit code is in its status.
pub async fn run(client: &Client, a: AttachArgs) -> Result<i32> {
    let path = format!("/v1/pods/{}/{}", a.namespace, a.pod);
    let pod: Pod = client.call(Method::GET, &path, None).await?;
    let spec = pod.spec.unwrap_or_default();
    let all = podhost_api::all_containers(&spec);
    let chosen = match &a.container {
        Some(c) => all.iter().find(|x| &x.name == c),
        None => spec.containers.first(),
    };
    let Some(container) = chosen else {
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "container {} is not valid for pod {}: choose one of: [{}]",
            a.container.unwrap_or_default(),
            a.pod,
            names.join(" ")
        );
    };
    // kubectl's rules: a TTY only if the container has one, and raw mode only with -i
    // and a terminal to read from.
    let mut tty = a.tty;
    if tty && container.tty != Some(true) {
        eprintln!(
            "error: Unable to use a TTY - container {} did not allocate one",
            container.name
        );
        tty = false;
    }
    if tty && a.stdin && !std::io::stdin().is_terminal() {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        tty = false;
    }
    if a.stdin && container.stdin != Some(true) {
        eprintln!(
            "warning: container {} was not created with stdin: true; its input is not attached",
            container.name
        );
    }
    let path = format!(
        "/v1/pods/{}/{}/attach?container={}&stdin={}",
        a.namespace,
        a.pod,
        enc(&container.name),
        a.stdin
    );
    let io = client.upgrade(&path).await?;
    if tty && a.stdin {
        eprintln!("If you don't see a command prompt, try pressing enter.");
        let _raw = exec::RawMode::enter()?;
        // No size was sent yet: the current one goes first.
        exec::relay_tty(io, None).await?;
    } else {
        exec::relay(io, a.stdin).await?;
    }
    Ok(0)
}
