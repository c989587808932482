//! What the CLI prints: kubectl-style tables, `describe`, YAML/JSON.

use std::fmt::Write as _;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use podhost_api::display;

use super::procinfo;
use crate::lifecycle::PodEvent;
use crate::server::ContainerRow;
use crate::timefmt::{from_k8s_time, rfc1123z};
use podhost_runtime::ImageInfo;
use serde::{Deserialize, Serialize};

/// Columns padded like kubectl's tabwriter (3 spaces between columns).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{:w$}   ", c, w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn age_since(nanos: Option<i64>, now: i64) -> String {
    match nanos {
        Some(t) => display::age(Duration::from_nanos(now.saturating_sub(t).max(0) as u64)),
        None => "<unknown>".into(),
    }
}

/// `get pods` as a table the daemon makes (`/v1/pods?table=true`), as kubectl asks the
/// API server for `as=Table`: the CLI then decodes rows, not hundreds of whole Pods.
#[derive(Debug, Serialize, Deserialize)]
pub struct PodTable {
    /// Column names.
    pub header: Vec<String>,
    /// One per pod, in the listing's order.
    pub rows: Vec<PodTableRow>,
}

/// One pod of a [`PodTable`]: what `get` prints and filters by, without the Pod.
#[derive(Debug, Serialize, Deserialize)]
pub struct PodTableRow {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.labels` (for `--show-labels`, `-L`).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The cells, under [`PodTable::header`].
    pub cells: Vec<String>,
}

/// [`pod_rows`] as a [`PodTable`].
pub fn pod_table(pods: &[Pod], wide: bool, all_namespaces: bool, now: i64) -> PodTable {
    let mut rows = pod_rows(pods, wide, all_namespaces, now).into_iter();
    let header = rows.next().unwrap_or_default();
    PodTable {
        header,
        rows: pods
            .iter()
            .zip(rows)
            .map(|(p, cells)| PodTableRow {
                name: p.metadata.name.clone().unwrap_or_default(),
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                labels: p.metadata.labels.clone().unwrap_or_default(),
                cells,
            })
            .collect(),
    }
}

/// The rows of `get pods` (and `-o wide`), header first.
pub fn pod_rows(pods: &[Pod], wide: bool, all_namespaces: bool, now: i64) -> Vec<Vec<String>> {
    let mut header: Vec<String> = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE".into());
    }
    header.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"].map(String::from));
    if wide {
        header.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"].map(String::from));
    }
    let mut rows = vec![header];
    for p in pods {
        let mut r = Vec::new();
        if all_namespaces {
            r.push(p.metadata.namespace.clone().unwrap_or_default());
        }
        r.push(p.metadata.name.clone().unwrap_or_default());
        r.push(display::ready_column(p));
        r.push(display::status_column(p));
        r.push(display::restarts_column(p, crate::timefmt::k8s_time(now).0));
        r.push(age_since(
            p.metadata.creation_timestamp.as_ref().map(from_k8s_time),
            now,
        ));
        if wide {
            let st = p.status.as_ref();
            r.push(
                st.and_then(|s| s.pod_ip.clone())
                    .unwrap_or_else(|| "<none>".into()),
            );
            r.push(
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_else(|| "<none>".into()),
            );
            r.push("<none>".into());
            r.push("<none>".into());
        }
        rows.push(r);
    }
    rows
}

/// `ps`, like `crictl ps -a` (the pause appears as container `POD`).
pub fn ps_table(rows: &[ContainerRow], all: bool, now: i64) -> String {
    let mut out = vec![[
        "CONTAINER",
        "IMAGE",
        "CREATED",
        "STATE",
        "NAME",
        "ATTEMPT",
        "POD ID",
        "POD",
        "PID",
    ]
    .map(String::from)
    .to_vec()];
    for r in rows.iter().filter(|r| all || r.state == "Running") {
        out.push(vec![
            r.id.chars().take(13).collect(),
            r.image.clone(),
            format!("{} ago", age_since(Some(r.created), now)),
            r.state.clone(),
            r.name.clone(),
            r.attempt.to_string(),
            r.pod_id.chars().take(13).collect(),
            r.pod.clone(),
            r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        ]);
    }
    table(&out)
}

pub(crate) fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}{}", units[i]).replace(".000", "")
    }
}

/// `images`: REPOSITORY TAG IMAGE ID SIZE.
pub fn images_table(images: &[ImageInfo]) -> String {
    let mut rows = vec![["REPOSITORY", "TAG", "IMAGE ID", "SIZE"]
        .map(String::from)
        .to_vec()];
    for i in images {
        let id: String =
            i.id.trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect();
        // An image pulled by digest only shows its repository, tag <none> (as Docker does).
        let by_digest = i
            .repo_digests
            .first()
            .and_then(|d| d.split_once('@'))
            .map(|(name, _)| format!("{name}:<none>"));
        let refs = if !i.repo_tags.is_empty() {
            i.repo_tags.clone()
        } else if let Some(r) = by_digest {
            vec![r]
        } else {
            vec!["<none>:<none>".to_string()]
        };
        for r in refs {
            let (repo, tag) = match r.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
                _ => (r.clone(), "<none>".into()),
            };
            rows.push(vec![repo, tag, id.clone(), human_size(i.size)]);
        }
    }
    table(&rows)
}

fn state_lines(
    out: &mut String,
    title: &str,
    st: Option<&k8s_openapi::api::core::v1::ContainerState>,
) {
    let Some(st) = st else { return };
    if let Some(r) = &st.running {
        let _ = writeln!(out, "    {title}:          Running");
        if let Some(t) = &r.started_at {
            let _ = writeln!(out, "      Started:      {}", rfc1123z(from_k8s_time(t)));
        }
    } else if let Some(w) = &st.waiting {
        let _ = writeln!(out, "    {title}:          Waiting");
        let _ = writeln!(
            out,
            "      Reason:       {}",
            w.reason.clone().unwrap_or_default()
        );
        if let Some(m) = &w.message {
            let _ = writeln!(out, "      Message:      {m}");
        }
    } else if let Some(t) = &st.terminated {
        let _ = writeln!(out, "    {title}:          Terminated");
        let _ = writeln!(
            out,
            "      Reason:       {}",
            t.reason.clone().unwrap_or_default()
        );
        let _ = writeln!(out, "      Exit Code:    {}", t.exit_code);
        if let Some(s) = &t.started_at {
            let _ = writeln!(out, "      Started:      {}", rfc1123z(from_k8s_time(s)));
        }
        if let Some(f) = &t.finished_at {
            let _ = writeln!(out, "      Finished:     {}", rfc1123z(from_k8s_time(f)));
        }
    }
}

/// A probe as `kubectl describe` prints it:
/// `exec [cat /tmp/ok] delay=0s timeout=1s period=10s #success=1 #failure=3`.
pub fn probe_line(p: &k8s_openapi::api::core::v1::Probe) -> String {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let port = |p: &IntOrString| match p {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    let what = if let Some(e) = &p.exec {
        format!("exec [{}]", e.command.clone().unwrap_or_default().join(" "))
    } else if let Some(h) = &p.http_get {
        format!(
            "http-get {}://{}:{}{}",
            h.scheme.as_deref().unwrap_or("HTTP").to_lowercase(),
            h.host.clone().unwrap_or_default(),
            port(&h.port),
            h.path.clone().unwrap_or_default()
        )
    } else if let Some(t) = &p.tcp_socket {
        format!(
            "tcp-socket {}:{}",
            t.host.clone().unwrap_or_default(),
            port(&t.port)
        )
    } else if let Some(g) = &p.grpc {
        format!(
            "grpc <pod>:{} {}",
            g.port,
            g.service.clone().unwrap_or_default()
        )
    } else {
        "unknown".to_string()
    };
    format!(
        "{what} delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    )
}

/// `Limits:` or `Requests:` of a container, one quantity a line.
fn quantities(
    o: &mut String,
    title: &str,
    q: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) {
    let Some(q) = q.filter(|q| !q.is_empty()) else {
        return;
    };
    let _ = writeln!(o, "    {title}");
    // kubectl's tabwriter: the longest `key:` and two spaces.
    let width = q.keys().map(String::len).max().unwrap_or(0) + 3;
    for (k, v) in q {
        let _ = writeln!(o, "      {:<width$}{}", format!("{k}:"), v.0);
    }
}

/// The value of a downward API field of the pod, as `kubectl describe` resolves it.
fn field_value(pod: &Pod, path: &str) -> String {
    let m = &pod.metadata;
    let key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    if let Some(k) = key("metadata.labels") {
        return m
            .labels
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default();
    }
    if let Some(k) = key("metadata.annotations") {
        return m
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default();
    }
    let spec = pod.spec.as_ref();
    let st = pod.status.as_ref();
    match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => st.and_then(|s| s.pod_ip.clone()),
        "status.hostIP" => st.and_then(|s| s.host_ip.clone()),
        _ => None,
    }
    .unwrap_or_default()
}

/// A container's `resourceFieldRef` value as kubectl computes it from the container's
/// own requests and limits (0 when unset), in units of the divisor, rounded up.
fn resource_value(
    c: &k8s_openapi::api::core::v1::Container,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
) -> String {
    use podhost_api::quantity::{parse_bytes, parse_cpu_millis};
    let (which, name) = r
        .resource
        .split_once('.')
        .unwrap_or(("", r.resource.as_str()));
    let res = c.resources.as_ref();
    let q = match which {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        _ => res.and_then(|r| r.requests.as_ref()),
    }
    .and_then(|m| m.get(name));
    let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
    let (value, unit) = if name == "cpu" {
        (
            q.and_then(|q| parse_cpu_millis(&q.0).ok()).unwrap_or(0),
            divisor
                .and_then(|d| parse_cpu_millis(d).ok())
                .unwrap_or(1000),
        )
    } else {
        (
            q.and_then(|q| parse_bytes(&q.0).ok()).unwrap_or(0),
            divisor.and_then(|d| parse_bytes(d).ok()).unwrap_or(1),
        )
    };
    if unit <= 0 {
        return value.to_string();
    }
    ((value + unit - 1).div_euclid(unit)).to_string()
}

/// `Environment Variables from:` and `Environment:` of a container, as kubectl prints
/// them: where each value comes from, never a Secret's value.
fn env_lines(o: &mut String, pod: &Pod, c: &k8s_openapi::api::core::v1::Container) {
    let from = c.env_from.as_deref().unwrap_or_default();
    if !from.is_empty() {
        let mut rows = Vec::new();
        for e in from {
            let (kind, name, optional) = if let Some(r) = &e.config_map_ref {
                ("ConfigMap", r.name.clone(), r.optional.unwrap_or(false))
            } else if let Some(r) = &e.secret_ref {
                ("Secret", r.name.clone(), r.optional.unwrap_or(false))
            } else {
                continue;
            };
            let kind = match e.prefix.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => format!("{kind} with prefix '{p}'"),
                None => kind.to_string(),
            };
            rows.push(vec![
                format!("      {name}"),
                kind,
                format!("Optional: {optional}"),
            ]);
        }
        let _ = writeln!(o, "    Environment Variables from:");
        o.push_str(&table(&rows));
    }
    let env = c.env.as_deref().unwrap_or_default();
    if env.is_empty() {
        let _ = writeln!(o, "    Environment:    <none>");
        return;
    }
    let _ = writeln!(o, "    Environment:");
    let mut rows = Vec::new();
    for e in env {
        let name = format!("      {}:", e.name);
        let Some(vf) = &e.value_from else {
            let value = e.value.clone().unwrap_or_default();
            let mut lines = value.split('\n');
            rows.push(vec![name, lines.next().unwrap_or("").to_string()]);
            rows.extend(lines.map(|l| vec![String::new(), l.to_string()]));
            continue;
        };
        let text = if let Some(f) = &vf.field_ref {
            format!(
                "{} ({}:{})",
                field_value(pod, &f.field_path),
                f.api_version.as_deref().unwrap_or("v1"),
                f.field_path
            )
        } else if let Some(r) = &vf.resource_field_ref {
            format!("{} ({})", resource_value(c, r), r.resource)
        } else if let Some(k) = &vf.secret_key_ref {
            format!(
                "<set to the key '{}' in secret '{}'>   Optional: {}",
                k.key,
                k.name,
                k.optional.unwrap_or(false)
            )
        } else if let Some(k) = &vf.config_map_key_ref {
            format!(
                "<set to the key '{}' of config map '{}'>   Optional: {}",
                k.key,
                k.name,
                k.optional.unwrap_or(false)
            )
        } else {
            String::new()
        };
        rows.push(vec![name, text]);
    }
    o.push_str(&table(&rows));
}

/// The lines of a volume other than emptyDir and hostPath, as `kubectl describe`.
fn volume_lines(o: &mut String, v: &k8s_openapi::api::core::v1::Volume) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row = |k: &str, v: String| rows.push(vec![format!("    {k}:"), v]);
    let opt = |b: Option<bool>| b.map_or("<nil>".to_string(), |b| b.to_string());
    let items = |items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>| {
        items
            .into_iter()
            .flatten()
            .map(|i| format!("{} -> {}", i.key, i.path))
            .collect::<Vec<_>>()
    };
    if let Some(c) = &v.config_map {
        row(
            "Type",
            "ConfigMap (a volume populated by a ConfigMap)".into(),
        );
        row("Name", c.name.clone());
        row("Optional", c.optional.unwrap_or(false).to_string());
        for i in items(c.items.as_ref()) {
            row("Item", i);
        }
    } else if let Some(s) = &v.secret {
        row("Type", "Secret (a volume populated by a Secret)".into());
        row("SecretName", s.secret_name.clone().unwrap_or_default());
        row("Optional", s.optional.unwrap_or(false).to_string());
        for i in items(s.items.as_ref()) {
            row("Item", i);
        }
    } else if let Some(d) = &v.downward_api {
        row(
            "Type",
            "DownwardAPI (a volume populated by information about the pod)".into(),
        );
        for i in d.items.iter().flatten() {
            let what = match (&i.field_ref, &i.resource_field_ref) {
                (Some(f), _) => f.field_path.clone(),
                (_, Some(r)) => r.resource.clone(),
                _ => String::new(),
            };
            row("Item", format!("{what} -> {}", i.path));
        }
    } else if let Some(p) = &v.projected {
        row(
            "Type",
            "Projected (a volume that contains injected data from multiple sources)".into(),
        );
        for src in p.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                row("ConfigMapName", c.name.clone());
                row("ConfigMapOptional", opt(c.optional));
            }
            if let Some(s) = &src.secret {
                row("SecretName", s.name.clone());
                row("SecretOptional", opt(s.optional));
            }
            if src.downward_api.is_some() {
                row("DownwardAPI", "true".into());
            }
            if let Some(t) = &src.service_account_token {
                row(
                    "TokenExpirationSeconds",
                    t.expiration_seconds.unwrap_or(3600).to_string(),
                );
            }
        }
    } else if let Some(c) = &v.persistent_volume_claim {
        row(
            "Type",
            "PersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)"
                .into(),
        );
        row("ClaimName", c.claim_name.clone());
        row("ReadOnly", c.read_only.unwrap_or(false).to_string());
    } else if v.image.is_some() {
        row("Type", "Image (a container image or OCI artifact)".into());
    }
    o.push_str(&table(&rows));
}

/// `describe pod`: the pod, its containers, conditions, volumes and events.
pub fn describe(pod: &Pod, events: &[PodEvent], rows: &[ContainerRow], now: i64) -> String {
    let mut o = String::new();
    let m = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let st = pod.status.clone().unwrap_or_default();
    let name = m.name.clone().unwrap_or_default();
    let ns = m.namespace.clone().unwrap_or_default();
    let _ = writeln!(o, "Name:             {name}");
    let _ = writeln!(o, "Namespace:        {ns}");
    let node = spec.node_name.clone().unwrap_or_default();
    match st.host_ip.as_deref() {
        Some(ip) => {
            let _ = writeln!(o, "Node:             {node}/{ip}");
        }
        None => {
            let _ = writeln!(o, "Node:             {node}");
        }
    }
    if let Some(t) = &st.start_time {
        let _ = writeln!(o, "Start Time:       {}", rfc1123z(from_k8s_time(t)));
    }
    let labels = m.labels.clone().unwrap_or_default();
    let lbl: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        o,
        "Labels:           {}",
        if lbl.is_empty() {
            "<none>".into()
        } else {
            lbl.join("\n                  ")
        }
    );
    if m.deletion_timestamp.is_some() {
        let _ = writeln!(
            o,
            "Status:           Terminating (lasts {}s)",
            m.deletion_grace_period_seconds.unwrap_or(0)
        );
    } else {
        let _ = writeln!(
            o,
            "Status:           {}",
            st.phase.clone().unwrap_or_default()
        );
    }
    // kubectl shows the pod's own reason and message (Evicted, a lost node …) here.
    if let Some(r) = st.reason.as_deref().filter(|r| !r.is_empty()) {
        let _ = writeln!(o, "Reason:           {r}");
    }
    if let Some(msg) = st.message.as_deref().filter(|m| !m.is_empty()) {
        let _ = writeln!(o, "Message:          {msg}");
    }
    let _ = writeln!(
        o,
        "IP:               {}",
        st.pod_ip.clone().unwrap_or_default()
    );
    let pod_key = format!("{ns}/{name}");
    let pause = rows
        .iter()
        .find(|r| r.pod == pod_key && r.name == "POD" && r.state == "Running");
    let pause_pid = pause.and_then(|p| p.pid);
    if let Some(pause) = pause {
        let _ = writeln!(o, "Sandbox:          {}", pause.id);
        if let Some(pid) = pause.pid {
            let _ = writeln!(o, "  Pause PID:      {pid}");
            let _ = writeln!(o, "  Namespaces:     {}", procinfo::ns_line(pid));
        }
    }
    let section = |o: &mut String,
                   title: &str,
                   containers: &[k8s_openapi::api::core::v1::Container],
                   statuses: &[ContainerStatus]| {
        if containers.is_empty() {
            return;
        }
        let _ = writeln!(o, "{title}:");
        for c in containers {
            let s = statuses.iter().find(|s| s.name == c.name);
            let _ = writeln!(o, "  {}:", c.name);
            if let Some(id) = s.and_then(|s| s.container_id.clone()) {
                let _ = writeln!(o, "    Container ID:   {id}");
            }
            let _ = writeln!(
                o,
                "    Image:          {}",
                c.image.clone().unwrap_or_default()
            );
            if let Some(s) = s {
                let _ = writeln!(o, "    Image ID:       {}", s.image_id);
            }
            let ports = |port: &dyn Fn(&k8s_openapi::api::core::v1::ContainerPort) -> i32| {
                let list: Vec<String> = c
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| {
                        let proto = p.protocol.as_deref().unwrap_or("TCP");
                        format!("{}/{proto}", port(p))
                    })
                    .collect();
                if list.is_empty() {
                    "<none>".to_string()
                } else {
                    list.join(", ")
                }
            };
            let _ = writeln!(o, "    Port:           {}", ports(&|p| p.container_port));
            let _ = writeln!(
                o,
                "    Host Port:      {}",
                ports(&|p| p.host_port.unwrap_or(0))
            );
            if let Some(cmd) = &c.command {
                let _ = writeln!(o, "    Command:\n      {}", cmd.join("\n      "));
            }
            if let Some(args) = &c.args {
                let _ = writeln!(o, "    Args:\n      {}", args.join("\n      "));
            }
            state_lines(o, "State", s.and_then(|s| s.state.as_ref()));
            state_lines(o, "Last State", s.and_then(|s| s.last_state.as_ref()));
            if let Some(s) = s {
                let _ = writeln!(
                    o,
                    "    Ready:          {}",
                    if s.ready { "True" } else { "False" }
                );
                let _ = writeln!(o, "    Restart Count:  {}", s.restart_count);
                let cid = s.container_id.clone().unwrap_or_default();
                let cid = cid.trim_start_matches("podhost://");
                if let Some(pid) = rows.iter().find(|r| r.id == cid).and_then(|r| r.pid) {
                    let _ = writeln!(o, "    PID (host):     {pid}");
                    let _ = writeln!(
                        o,
                        "    Namespaces:     {}",
                        procinfo::ns_sharing(pid, pause_pid)
                    );
                    let _ = writeln!(o, "    Listening:      {}", procinfo::listening(pid));
                }
            }
            if let Some(r) = &c.resources {
                quantities(o, "Limits:", r.limits.as_ref());
                quantities(o, "Requests:", r.requests.as_ref());
            }
            for (label, probe) in [
                ("Liveness:", &c.liveness_probe),
                ("Readiness:", &c.readiness_probe),
                ("Startup:", &c.startup_probe),
            ] {
                if let Some(p) = probe {
                    let _ = writeln!(o, "    {label:<16}{}", probe_line(p));
                }
            }
            env_lines(o, pod, c);
            let mounts: Vec<String> = c
                .volume_mounts
                .iter()
                .flatten()
                .map(|v| {
                    format!(
                        "{} from {} ({})",
                        v.mount_path,
                        v.name,
                        if v.read_only == Some(true) {
                            "ro"
                        } else {
                            "rw"
                        }
                    )
                })
                .collect();
            let _ = writeln!(
                o,
                "    Mounts:         {}",
                if mounts.is_empty() {
                    "<none>".into()
                } else {
                    mounts.join("\n                    ")
                }
            );
        }
    };
    section(
        &mut o,
        "Init Containers",
        &spec.init_containers.clone().unwrap_or_default(),
        &st.init_container_statuses.clone().unwrap_or_default(),
    );
    section(
        &mut o,
        "Containers",
        &spec.containers,
        &st.container_statuses.clone().unwrap_or_default(),
    );
    let ephemeral: Vec<_> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(podhost_api::ephemeral_as_container)
        .collect();
    section(
        &mut o,
        "Ephemeral Containers",
        &ephemeral,
        &st.ephemeral_container_statuses.clone().unwrap_or_default(),
    );
    let _ = writeln!(o, "Conditions:\n  Type                        Status");
    for c in st.conditions.iter().flatten() {
        let _ = writeln!(o, "  {:<27} {}", c.type_, c.status);
    }
    let vols = spec.volumes.clone().unwrap_or_default();
    if vols.is_empty() {
        let _ = writeln!(o, "Volumes:            <none>");
    } else {
        let _ = writeln!(o, "Volumes:");
        for v in vols {
            let _ = writeln!(o, "  {}:", v.name);
            if let Some(e) = v.empty_dir {
                let _ = writeln!(
                    o,
                    "    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)"
                );
                let _ = writeln!(o, "    Medium:     {}", e.medium.unwrap_or_default());
            } else if let Some(h) = v.host_path {
                let _ = writeln!(o, "    Type:       HostPath (bare host directory volume)");
                let _ = writeln!(o, "    Path:       {}", h.path);
            } else {
                volume_lines(&mut o, &v);
            }
        }
    }
    let _ = writeln!(
        o,
        "QoS Class:        {}",
        st.qos_class.clone().unwrap_or_default()
    );
    if events.is_empty() {
        let _ = writeln!(o, "Events:           <none>");
    } else {
        let _ = writeln!(o, "Events:");
        let mut rows = vec![["  Type", "Reason", "Age", "From", "Message"]
            .map(String::from)
            .to_vec()];
        rows.push(
            ["  ----", "------", "----", "----", "-------"]
                .map(String::from)
                .to_vec(),
        );
        for e in events {
            let age = if e.count > 1 {
                // kubectl: the last time, then the series' count since its first.
                let first = if e.first_time > 0 {
                    e.first_time
                } else {
                    e.time
                };
                format!(
                    "{} (x{} over {})",
                    age_since(Some(e.time), now),
                    e.count,
                    age_since(Some(first), now)
                )
            } else {
                age_since(Some(e.time), now)
            };
            let from = if e.reason == "Scheduled" {
                "default-scheduler"
            } else {
                "kubelet"
            };
            rows.push(vec![
                format!("  {}", e.kind),
                e.reason.clone(),
                age,
                from.into(),
                e.message.clone(),
            ]);
        }
        o.push_str(&table(&rows));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon's table is what the CLI made from the Pods itself: the same header
    /// and cells, with each pod's name, namespace and labels beside them.
    #[test]
    fn the_pod_table_is_the_rows_of_the_same_pods() {
        let pod = |name: &str, ns: &str, app: &str| {
            let mut p = Pod::default();
            p.metadata.name = Some(name.into());
            p.metadata.namespace = Some(ns.into());
            p.metadata.labels = Some([("app".to_string(), app.to_string())].into());
            p
        };
        let pods = [pod("a", "default", "web"), pod("b", "kube-system", "dns")];
        for (wide, all) in [(false, false), (true, true)] {
            let rows = pod_rows(&pods, wide, all, 0);
            let table = pod_table(&pods, wide, all, 0);
            assert_eq!(table.header, rows[0]);
            let cells: Vec<&Vec<String>> = table.rows.iter().map(|r| &r.cells).collect();
            assert_eq!(cells, rows[1..].iter().collect::<Vec<_>>());
        }
        let t = pod_table(&pods, false, true, 0);
        let b = &t.rows[1];
        assert_eq!(
            (b.name.as_str(), b.namespace.as_str()),
            ("b", "kube-system")
        );
        assert_eq!(b.labels.get("app").map(String::as_str), Some("dns"));
    }
}
