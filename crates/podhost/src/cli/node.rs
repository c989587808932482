//! `get node` and `describe node`, as kubectl prints them: the one node this daemon is.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use hyper::Method;
use k8s_openapi::api::core::v1::{Node, Pod};

use super::client::Client;
use super::output::table;
use crate::timefmt::{from_k8s_time, rfc1123z};

/// The node, from the daemon.
pub async fn fetch(client: &Client) -> Result<Node> {
    client.call(Method::GET, "/v1/node", None).await
}

fn name(n: &Node) -> String {
    n.metadata.name.clone().unwrap_or_default()
}

/// `Ready`, or `NotReady`, as the STATUS column shows it.
fn status(n: &Node) -> &'static str {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if ready {
        "Ready"
    } else {
        "NotReady"
    }
}

fn age(n: &Node, now: i64) -> String {
    match &n.metadata.creation_timestamp {
        Some(t) => podhost_api::display::age(Duration::from_nanos(
            now.saturating_sub(from_k8s_time(t)).max(0) as u64,
        )),
        None => "<unknown>".into(),
    }
}

/// The rows of `get nodes` (and `-o wide`), header first.
pub fn rows(nodes: &[Node], wide: bool, now: i64) -> Vec<Vec<String>> {
    let mut header = vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"];
    if wide {
        header.extend([
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME",
        ]);
    }
    let mut out = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for n in nodes {
        let info = n
            .status
            .as_ref()
            .and_then(|s| s.node_info.clone())
            .unwrap_or_default();
        let mut row = vec![
            name(n),
            status(n).to_string(),
            "<none>".to_string(),
            age(n, now),
            info.kubelet_version.clone(),
        ];
        if wide {
            let ip = n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                .map(|a| a.address.clone())
                .unwrap_or_else(|| "<none>".into());
            row.extend([
                ip,
                "<none>".into(),
                info.os_image,
                info.kernel_version,
                info.container_runtime_version,
            ]);
        }
        out.push(row);
    }
    out
}

/// A quantity's value in the resource's base unit (milli for cpu).
fn amount(resource: &str, q: Option<&str>) -> i64 {
    let Some(q) = q else { return 0 };
    let parsed = if resource == "cpu" {
        podhost_api::quantity::parse_cpu_millis(q)
    } else {
        podhost_api::quantity::parse_bytes(q)
    };
    parsed.unwrap_or(0)
}

/// A pod's requests and limits of `resource`: its containers' sums, or the largest init
/// container's when larger (kubelet's PodRequests / PodLimits).
fn pod_amounts(p: &Pod, resource: &str) -> (i64, i64) {
    let Some(spec) = &p.spec else { return (0, 0) };
    let of = |c: &k8s_openapi::api::core::v1::Container| -> (i64, i64) {
        let r = c.resources.clone().unwrap_or_default();
        let get = |m: &Option<
            std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >| {
            amount(
                resource,
                m.as_ref()
                    .and_then(|m| m.get(resource))
                    .map(|q| q.0.as_str()),
            )
        };
        (get(&r.requests), get(&r.limits))
    };
    let (mut req, mut lim) = (0i64, 0i64);
    for c in &spec.containers {
        let (r, l) = of(c);
        req = req.saturating_add(r);
        lim = lim.saturating_add(l);
    }
    for c in spec.init_containers.iter().flatten() {
        let (r, l) = of(c);
        req = req.max(r);
        lim = lim.max(l);
    }
    (req, lim)
}

/// `100m (5%)`, `64Mi (3%)`: an amount and its share of what the node can allocate.
fn with_share(resource: &str, v: i64, allocatable: i64) -> String {
    let shown = if v == 0 {
        "0".to_string()
    } else if resource == "cpu" {
        if v % 1000 == 0 {
            (v / 1000).to_string()
        } else {
            format!("{v}m")
        }
    } else {
        crate::lifecycle::eviction::local_storage::quantity(v.max(0) as u64)
    };
    let pct = if allocatable > 0 {
        (v as i128 * 100 / allocatable as i128) as i64
    } else {
        0
    };
    format!("{shown} ({pct}%)")
}

/// `describe node`: kubectl's sections.
pub fn describe(n: &Node, pods: &[Pod], now: i64) -> String {
    let mut o = String::new();
    let st = n.status.clone().unwrap_or_default();
    let _ = writeln!(o, "Name:               {}", name(n));
    let _ = writeln!(o, "Roles:              <none>");
    let labels = n.metadata.labels.clone().unwrap_or_default();
    for (i, (k, v)) in labels.iter().enumerate() {
        let head = if i == 0 { "Labels:" } else { "" };
        let _ = writeln!(o, "{head:<20}{k}={v}");
    }
    if labels.is_empty() {
        let _ = writeln!(o, "Labels:             <none>");
    }
    let _ = writeln!(o, "Annotations:        <none>");
    if let Some(t) = &n.metadata.creation_timestamp {
        let _ = writeln!(o, "CreationTimestamp:  {}", rfc1123z(from_k8s_time(t)));
    }
    let _ = writeln!(o, "Taints:             <none>");
    let _ = writeln!(o, "Unschedulable:      false");
    let _ = writeln!(o, "Conditions:");
    let mut rows = vec![
        [
            "Type",
            "Status",
            "LastHeartbeatTime",
            "LastTransitionTime",
            "Reason",
            "Message",
        ]
        .map(String::from)
        .to_vec(),
        [
            "----",
            "------",
            "-----------------",
            "------------------",
            "------",
            "-------",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref()
            .map(|t| rfc1123z(from_k8s_time(t)))
            .unwrap_or_default()
    };
    for c in st.conditions.iter().flatten() {
        rows.push(vec![
            c.type_.clone(),
            c.status.clone(),
            time(&c.last_heartbeat_time),
            time(&c.last_transition_time),
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        ]);
    }
    indent(&mut o, &table(&rows));
    let _ = writeln!(o, "Addresses:");
    for a in st.addresses.iter().flatten() {
        let _ = writeln!(o, "  {}:  {}", a.type_, a.address);
    }
    let quantities = |o: &mut String,
                      title: &str,
                      m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        let _ = writeln!(o, "{title}:");
        let width = m.iter().flatten().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
        for (k, v) in m.iter().flatten() {
            let _ = writeln!(o, "  {:<w$}  {}", format!("{k}:"), v.0, w = width);
        }
    };
    quantities(&mut o, "Capacity", &st.capacity);
    quantities(&mut o, "Allocatable", &st.allocatable);
    let info = st.node_info.clone().unwrap_or_default();
    let _ = writeln!(o, "System Info:");
    for (k, v) in [
        ("Machine ID", &info.machine_id),
        ("Kernel Version", &info.kernel_version),
        ("OS Image", &info.os_image),
        ("Operating System", &info.operating_system),
        ("Architecture", &info.architecture),
        ("Container Runtime Version", &info.container_runtime_version),
        ("Kubelet Version", &info.kubelet_version),
    ] {
        let _ = writeln!(o, "  {:<27}{v}", format!("{k}:"));
    }
    let alloc = |r: &str| {
        amount(
            r,
            st.allocatable
                .as_ref()
                .and_then(|a| a.get(r))
                .map(|q| q.0.as_str()),
        )
    };
    // Pods that hold resources: not Succeeded or Failed.
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded") | Some("Failed")
            )
        })
        .collect();
    let _ = writeln!(o, "Non-terminated Pods:          ({} in total)", live.len());
    let mut rows = vec![
        [
            "Namespace",
            "Name",
            "CPU Requests",
            "CPU Limits",
            "Memory Requests",
            "Memory Limits",
            "Age",
        ]
        .map(String::from)
        .to_vec(),
        [
            "---------",
            "----",
            "------------",
            "----------",
            "---------------",
            "-------------",
            "---",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut totals = std::collections::BTreeMap::<&str, (i64, i64)>::new();
    for p in &live {
        let mut row = vec![
            p.metadata.namespace.clone().unwrap_or_default(),
            p.metadata.name.clone().unwrap_or_default(),
        ];
        for r in ["cpu", "memory", "ephemeral-storage"] {
            let (req, lim) = pod_amounts(p, r);
            let t = totals.entry(r).or_default();
            t.0 = t.0.saturating_add(req);
            t.1 = t.1.saturating_add(lim);
            if r != "ephemeral-storage" {
                row.push(with_share(r, req, alloc(r)));
                row.push(with_share(r, lim, alloc(r)));
            }
        }
        let created = p.metadata.creation_timestamp.as_ref().map(from_k8s_time);
        row.push(match created {
            Some(t) => {
                podhost_api::display::age(Duration::from_nanos(now.saturating_sub(t).max(0) as u64))
            }
            None => "<unknown>".into(),
        });
        rows.push(row);
    }
    if !live.is_empty() {
        indent(&mut o, &table(&rows));
    }
    let _ = writeln!(o, "Allocated resources:");
    let _ = writeln!(
        o,
        "  (Total limits may be over 100 percent, i.e., overcommitted.)"
    );
    let mut rows = vec![
        ["Resource", "Requests", "Limits"]
            .map(String::from)
            .to_vec(),
        ["--------", "--------", "------"]
            .map(String::from)
            .to_vec(),
    ];
    for r in ["cpu", "memory", "ephemeral-storage"] {
        let (req, lim) = totals.get(r).copied().unwrap_or((0, 0));
        rows.push(vec![
            r.to_string(),
            with_share(r, req, alloc(r)),
            with_share(r, lim, alloc(r)),
        ]);
    }
    indent(&mut o, &table(&rows));
    let _ = writeln!(o, "Events:              <none>");
    o
}

fn indent(o: &mut String, text: &str) {
    for l in text.lines() {
        let _ = writeln!(o, "  {l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_allocatable() {
        assert_eq!(with_share("cpu", 100, 2000), "100m (5%)");
        assert_eq!(with_share("cpu", 2000, 2000), "2 (100%)");
        assert_eq!(with_share("memory", 64 << 20, 1 << 30), "64Mi (6%)");
        assert_eq!(with_share("memory", 0, 1 << 30), "0 (0%)");
        assert_eq!(with_share("memory", 5, 0), "5 (0%)");
    }

    #[test]
    fn pod_amounts_sum_containers_and_take_the_largest_init() {
        let p = crate::lifecycle::eviction::test_pod("metadata: {name: p}\nspec:\n  initContainers:\n  - {name: i, image: x, resources: {requests: {cpu: '1'}}}\n  containers:\n  - {name: a, image: x, resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 128Mi}}}\n  - {name: b, image: x, resources: {requests: {cpu: 200m}}}\n");
        assert_eq!(pod_amounts(&p, "cpu"), (1000, 0));
        assert_eq!(pod_amounts(&p, "memory"), (64 << 20, 128 << 20));
    }
}
