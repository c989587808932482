//! `podhost lint -f FILE|DIR` and `podhost lint pod NAME`: the advice of
//! [`podhost_api::lint`] on its own, as a linter prints it. Files are checked here,
//! without the daemon (validation errors included); a running pod adds what only it
//! shows (servers on 0.0.0.0, from its network namespace).
//!
//! Exit status, as shellcheck's: 0 clean, 1 findings (or invalid objects), 2 a file
//! that cannot be read or parsed, a pod that cannot be found, or bad arguments.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use hyper::Method;
use k8s_openapi::api::core::v1::Pod;
use podhost_api::lint::{self, Finding, Listener};
use podhost_api::Manifest;

use super::client::Client;
use super::procinfo;

/// `podhost lint …`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// `pod NAME…` (or `pod/NAME…`): running pods, their listening sockets included.
    pub args: Vec<String>,
    /// Files with Pod, ConfigMap and Secret manifests (`-` for stdin), or directories.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Directories' subdirectories too.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

/// Runs the lint; returns the exit status.
pub async fn run(client: &Client, a: LintArgs) -> Result<i32> {
    let names: Vec<&str> = match (a.files.is_empty(), a.args.as_slice()) {
        (false, []) => return Ok(lint_files(&a.files, a.recursive)),
        (true, [kind, names @ ..]) if super::is_pod_kind(kind) && !names.is_empty() => {
            names.iter().map(String::as_str).collect()
        }
        (true, all) if !all.is_empty() && all.iter().all(|a| a.contains('/')) => all
            .iter()
            .map(|a| super::pod_arg(a))
            .collect::<Result<_>>()?,
        _ => {
            eprintln!("error: give files (`podhost lint -f FILE|DIR`) or a running pod (`podhost lint pod NAME`)");
            return Ok(2);
        }
    };
    let mut code = 0;
    for name in names {
        code = code.max(lint_running(client, &a.namespace, name).await?);
    }
    Ok(code)
}

/// A finding as printed: `SOURCE: pod/NAME: FIELD: MESSAGE [rule]`.
fn line(source: &str, name: &str, f: &Finding) -> String {
    format!("{source}pod/{name}: {f} [{}]", f.rule.id())
}

/// The 0/1 ending: findings were printed, or "No findings." said on stderr.
fn verdict(findings: usize) -> i32 {
    if findings == 0 {
        eprintln!("No findings.");
        0
    } else {
        1
    }
}

fn lint_files(paths: &[PathBuf], recursive: bool) -> i32 {
    let files = match super::manifest_files(paths, recursive) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    let mut findings = 0;
    let mut broken = false;
    for f in &files {
        let parsed = super::read_manifest(f).and_then(|(yaml, source)| {
            podhost_api::parse_manifests(&yaml, &source)
                .map(|m| (m, source))
                .map_err(|e| anyhow::anyhow!("{e}"))
        });
        let (manifests, source) = match parsed {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e:#}");
                broken = true;
                continue;
            }
        };
        for m in manifests {
            let (kind, name, invalid) = match m {
                Manifest::Pod(mut pod) => {
                    podhost_api::default_pod(&mut pod);
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let v = podhost_api::validate_pod(&pod);
                    let mut all: Vec<Finding> =
                        v.warnings.iter().map(|w| Finding::unsupported(w)).collect();
                    if v.is_ok() {
                        all.extend(lint::lint_pod(&pod, &lint::ThisHost));
                    }
                    for finding in &all {
                        outln!("{}", line(&format!("{source}: "), &name, finding));
                    }
                    findings += all.len();
                    let invalid = v.into_result(&name).err().map(|e| e.to_string());
                    ("pod", name, invalid)
                }
                Manifest::ConfigMap(mut cm) => {
                    podhost_api::default_config_map(&mut cm);
                    let invalid = podhost_api::validate_config_map(&cm).err();
                    let name = cm.metadata.name.clone().unwrap_or_default();
                    ("configmap", name, invalid.map(|e| e.to_string()))
                }
                Manifest::Secret(mut s) => {
                    podhost_api::default_secret(&mut s);
                    let invalid = podhost_api::validate_secret(&s).err();
                    let name = s.metadata.name.clone().unwrap_or_default();
                    ("secret", name, invalid.map(|e| e.to_string()))
                }
            };
            if let Some(e) = invalid {
                outln!("{source}: {kind}/{name}: {e}");
                findings += 1;
            }
        }
    }
    if broken {
        return 2;
    }
    verdict(findings)
}

/// A running pod: its spec's findings (without the host-port bind test: its own ports
/// would count) and its containers' listeners.
async fn lint_running(client: &Client, ns: &str, name: &str) -> Result<i32> {
    let r: Result<Pod> = client
        .call(Method::GET, &format!("/v1/pods/{ns}/{name}"), None)
        .await;
    let pod = match r {
        Ok(p) => p,
        Err(e) => {
            let e = format!("{e:#}");
            if e.ends_with("not found") {
                eprintln!("Error from server (NotFound): {e}");
            } else {
                eprintln!("error: {e}");
            }
            return Ok(2);
        }
    };
    let rows: Vec<crate::server::ContainerRow> =
        client.call(Method::GET, "/v1/containers", None).await?;
    let mut listeners = Vec::new();
    let statuses = pod.status.iter().flat_map(|s| {
        s.init_container_statuses
            .iter()
            .flatten()
            .chain(s.container_statuses.iter().flatten())
    });
    for s in statuses {
        let id = s.container_id.as_deref().unwrap_or_default();
        let id = id.trim_start_matches("podhost://");
        let Some(pid) = rows.iter().find(|r| r.id == id).and_then(|r| r.pid) else {
            continue;
        };
        listeners.extend(
            procinfo::listeners(pid)
                .into_iter()
                .map(|(addr, program)| Listener {
                    container: s.name.clone(),
                    ip: addr.ip(),
                    port: addr.port(),
                    program,
                }),
        );
    }
    let mut all = lint::lint_pod(&pod, &lint::NoHost);
    all.extend(lint::wildcard_listeners(&pod, &listeners));
    for f in &all {
        outln!("{}", line("", name, f));
    }
    Ok(verdict(all.len()))
}
