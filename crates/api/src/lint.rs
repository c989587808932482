//! Lint: advice about pods that are valid but probably do not do what their author
//! wants. `podhost apply` prints each finding as a `Warning:` (the pod is still
//! created), `podhost lint -f FILE` prints them alone, and `podhost lint pod NAME` adds
//! what only a running pod shows (who listens on 0.0.0.0).
//!
//! Each finding names the field it is about and what to do. The rules:
//!
//! | id | what |
//! |---|---|
//! | `duplicate-container-port` | two containers (or one twice) declare the same containerPort: they share one network namespace, only one can listen (Kubernetes 1.26+ warns too) |
//! | `host-port-in-use` | a hostPort a program of this machine already listens on |
//! | `privileged-host-port` | a hostPort below 1024 (22 is the machine's ssh) |
//! | `sidecar-without-limits` | a sidecar (native, or a regular container beside the main one) without a memory limit |
//! | `secret-env-shared-pid` | secrets in env with `shareProcessNamespace`: every container reads them in `/proc/<pid>/environ` |
//! | `wait-for-sidecar` | a container that sleeps or polls until a regular sidecar is up (the pre-1.29 pattern) |
//! | `wildcard-listener` | (running pods) a server on 0.0.0.0 or `::` on a port no containerPort declares |
//! | `unsupported` | a valid field this podhost ignores or does not fully apply |

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

/// A lint rule; its [`Rule::id`] is printed after each finding of `podhost lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The same containerPort and protocol declared twice in the pod.
    DuplicateContainerPort,
    /// A hostPort already bound by a program of this machine.
    HostPortInUse,
    /// A hostPort below 1024.
    PrivilegedHostPort,
    /// A sidecar without a memory limit.
    SidecarWithoutLimits,
    /// Secrets in env while the pod shares one PID namespace.
    SecretEnvSharedPid,
    /// A container waiting for a regular sidecar by sleeping or polling.
    WaitForSidecar,
    /// A server of a running pod bound to every address on an undeclared port.
    WildcardListener,
    /// A valid field podhost ignores or does not fully apply.
    Unsupported,
}

impl Rule {
    /// The rule's name, as printed and documented.
    pub fn id(self) -> &'static str {
        match self {
            Rule::DuplicateContainerPort => "duplicate-container-port",
            Rule::HostPortInUse => "host-port-in-use",
            Rule::PrivilegedHostPort => "privileged-host-port",
            Rule::SidecarWithoutLimits => "sidecar-without-limits",
            Rule::SecretEnvSharedPid => "secret-env-shared-pid",
            Rule::WaitForSidecar => "wait-for-sidecar",
            Rule::WildcardListener => "wildcard-listener",
            Rule::Unsupported => "unsupported",
        }
    }
}

/// One piece of advice: the field it is about, what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Which rule found it.
    pub rule: Rule,
    /// The field path, e.g. `spec.containers[1].ports[0].containerPort`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Finding {
    fn new(rule: Rule, field: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            rule,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A validation warning (`FIELD: DETAIL`, a field podhost ignores) as a finding.
    pub fn unsupported(warning: &str) -> Finding {
        let (field, message) = warning.split_once(": ").unwrap_or(("spec", warning));
        Finding::new(Rule::Unsupported, field, message)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// What this machine says about a host port, for the rules that depend on it.
pub trait HostPorts {
    /// Whether a program already listens on `port` (`TCP`, `UDP`, `SCTP`) at `host_ip`
    /// (every address when `None` or empty).
    fn in_use(&self, protocol: &str, host_ip: Option<&str>, port: u16) -> bool;
}

/// Asks nothing: for a pod that runs already (its own ports would count) and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHost;

impl HostPorts for NoHost {
    fn in_use(&self, _: &str, _: Option<&str>, _: u16) -> bool {
        false
    }
}

/// This machine, by a bind test: what a hostNetwork container's bind would meet, and
/// the program whose connections a hostPort's redirection would take over. Binding
/// the wildcard address fails while any address of the port is bound.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThisHost;

impl HostPorts for ThisHost {
    fn in_use(&self, protocol: &str, host_ip: Option<&str>, port: u16) -> bool {
        let ip = host_ip
            .filter(|ip| !ip.is_empty())
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let addr = SocketAddr::new(ip, port);
        // The sockets close at once: the test holds nothing.
        let bound = match protocol {
            "UDP" => UdpSocket::bind(addr).map(drop),
            // No SCTP socket in std; SCTP host ports are rare enough to skip.
            "SCTP" => return false,
            _ => TcpListener::bind(addr).map(drop),
        };
        matches!(bound, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// A listening socket of a running container, as describe's `Listening:` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The container whose process holds the socket.
    pub container: String,
    /// The address it is bound to.
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
    /// The program's name (`comm`).
    pub program: String,
}

/// Every static finding about `pod` (defaulted and valid), in field order per rule.
pub fn lint_pod(pod: &Pod, host: &dyn HostPorts) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(spec) = &pod.spec else { return out };
    duplicate_container_ports(spec, &mut out);
    host_ports(spec, host, &mut out);
    sidecars_without_limits(pod, spec, &mut out);
    secret_env_shared_pid(spec, &mut out);
    wait_for_sidecar(spec, &mut out);
    unsupported(spec, &mut out);
    out
}

/// A container with its field path and whether it runs beside the others (a regular
/// container or a native sidecar) rather than before them (an init container).
struct Placed<'a> {
    path: String,
    container: &'a Container,
    concurrent: bool,
    sidecar: bool,
}

fn placed(spec: &PodSpec) -> Vec<Placed<'_>> {
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let sidecar = crate::is_sidecar(c);
            Placed {
                path: format!("spec.initContainers[{i}]"),
                container: c,
                concurrent: sidecar,
                sidecar,
            }
        });
    let regular = spec.containers.iter().enumerate().map(|(i, c)| Placed {
        path: format!("spec.containers[{i}]"),
        container: c,
        concurrent: true,
        sidecar: false,
    });
    init.chain(regular).collect()
}

/// Kubernetes' "duplicate port definition" warning (1.26+), over the containers that
/// run at the same time.
fn duplicate_container_ports(spec: &PodSpec, out: &mut Vec<Finding>) {
    let mut seen: Vec<(i32, &str, String, &str)> = Vec::new();
    for p in placed(spec).into_iter().filter(|p| p.concurrent) {
        for (i, port) in p.container.ports.iter().flatten().enumerate() {
            let proto = port.protocol.as_deref().unwrap_or("TCP");
            let here = format!("{}.ports[{i}]", p.path);
            if let Some((_, _, first, name)) = seen
                .iter()
                .find(|(n, pr, _, _)| *n == port.container_port && *pr == proto)
            {
                out.push(Finding::new(
                    Rule::DuplicateContainerPort,
                    format!("{here}.containerPort"),
                    format!(
                        "duplicate port definition with {first} ({}/{proto} of {name:?}): the containers of a pod share one network namespace, so only one of them can listen on it; give each server its own port, or remove the duplicate",
                        port.container_port
                    ),
                ));
            } else {
                seen.push((port.container_port, proto, here, &p.container.name));
            }
        }
    }
}

/// Host ports a program of the machine already uses, and privileged ones.
fn host_ports(spec: &PodSpec, host: &dyn HostPorts, out: &mut Vec<Finding>) {
    let host_network = spec.host_network == Some(true);
    for p in placed(spec).into_iter().filter(|p| p.concurrent) {
        for (i, port) in p.container.ports.iter().flatten().enumerate() {
            let hp = port
                .host_port
                .filter(|hp| *hp > 0)
                .or((host_network).then_some(port.container_port));
            let Some(hp) = hp.and_then(|hp| u16::try_from(hp).ok()) else {
                continue;
            };
            let proto = port.protocol.as_deref().unwrap_or("TCP");
            let field = format!("{}.ports[{i}].hostPort", p.path);
            let what = if host_network {
                "with hostNetwork the container binds it on the machine itself"
            } else {
                "the pod's port mapping sends the connections other machines make to it into the pod"
            };
            if hp < 1024 {
                out.push(Finding::new(
                    Rule::PrivilegedHostPort,
                    field.clone(),
                    format!(
                        "{hp}/{proto} is a privileged port of this machine, where its own services listen (22 is ssh): {what}, so such a service becomes unreachable; use a port from 1024 up (e.g. {})",
                        u32::from(hp) + 8000
                    ),
                ));
            }
            if host.in_use(proto, port.host_ip.as_deref(), hp) {
                let then = if host_network {
                    "the container's server will fail to bind it"
                } else {
                    "connections from other machines would reach the pod instead of that program"
                };
                out.push(Finding::new(
                    Rule::HostPortInUse,
                    field,
                    format!(
                        "{hp}/{proto} is already in use on this machine (a program listens on it): {then}; choose a free hostPort (`ss -ltnu` lists the ports in use)"
                    ),
                ));
            }
        }
    }
}

/// The kubectl annotation naming a pod's main container.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// Sidecars (native ones, and regular containers other than the main one: the one
/// `kubectl.kubernetes.io/default-container` names, else the first) without a memory
/// limit: the notes' log agent that leaks until the OOM killer picks someone.
fn sidecars_without_limits(pod: &Pod, spec: &PodSpec, out: &mut Vec<Finding>) {
    let main = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER))
        .filter(|n| spec.containers.iter().any(|c| &c.name == *n))
        .or(spec.containers.first().map(|c| &c.name));
    for p in placed(spec) {
        let regular_sidecar = !p.sidecar && p.concurrent && Some(&p.container.name) != main;
        if !(p.sidecar || regular_sidecar) {
            continue;
        }
        let limits = p
            .container
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref());
        if limits.is_some_and(|l| l.contains_key("memory")) {
            continue;
        }
        let cpu = if limits.is_some_and(|l| l.contains_key("cpu")) {
            ""
        } else {
            " (and limits.cpu)"
        };
        out.push(Finding::new(
            Rule::SidecarWithoutLimits,
            format!("{}.resources.limits.memory", p.path),
            format!(
                "sidecar {:?} has no memory limit: a sidecar that leaks (a log agent, a proxy) grows until the kernel's OOM killer ends a process of the pod or of the machine; set resources.limits.memory{cpu}",
                p.container.name
            ),
        ));
    }
}

/// Words in an env name that suggest a secret.
const SECRET_WORDS: [&str; 4] = ["PASSWORD", "TOKEN", "SECRET", "KEY"];

/// Secrets in env with a shared PID namespace: `/proc/<pid>/environ` of every process
/// is readable by the other containers (same user, or root).
fn secret_env_shared_pid(spec: &PodSpec, out: &mut Vec<Finding>) {
    if spec.share_process_namespace != Some(true) {
        return;
    }
    const WHY: &str = "with shareProcessNamespace every container of the pod can read it in /proc/<pid>/environ; mount secrets as files (a secret volume) instead";
    for p in placed(spec) {
        for (j, e) in p.container.env.iter().flatten().enumerate() {
            let upper = e.name.to_ascii_uppercase();
            let from_secret = e
                .value_from
                .as_ref()
                .is_some_and(|v| v.secret_key_ref.is_some());
            if from_secret || SECRET_WORDS.iter().any(|w| upper.contains(w)) {
                out.push(Finding::new(
                    Rule::SecretEnvSharedPid,
                    format!("{}.env[{j}]", p.path),
                    format!("{} {WHY}", crate::validate::quote(&e.name)),
                ));
            }
        }
        for (j, e) in p.container.env_from.iter().flatten().enumerate() {
            if let Some(s) = &e.secret_ref {
                out.push(Finding::new(
                    Rule::SecretEnvSharedPid,
                    format!("{}.envFrom[{j}].secretRef", p.path),
                    format!(
                        "the keys of secret {} {WHY}",
                        crate::validate::quote(&s.name)
                    ),
                ));
            }
        }
    }
}

/// Whether a command word is a wait for another container: it starts with
/// `sleep N &&` / `sleep N;` (then something else runs), or polls with
/// `until …`/`while ! …` and nc, wget or curl.
fn waits(word: &str) -> bool {
    let w = word.trim_start();
    if let Some(rest) = w.strip_prefix("sleep ") {
        let rest = rest.trim_start();
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 's'))
            .unwrap_or(rest.len());
        let after = rest[n..].trim_start();
        if n > 0 {
            for sep in ["&&", ";"] {
                if let Some(next) = after.strip_prefix(sep) {
                    return !next.trim().is_empty();
                }
            }
        }
    }
    let polls = w.contains("until ") || w.contains("while !");
    polls
        && [" nc ", "nc -", "wget ", "curl "]
            .iter()
            .any(|t| format!(" {w}").contains(t))
}

/// The pre-1.29 sidecar pattern: a container that sleeps or polls until a regular
/// sidecar is up. A native sidecar starts (and passes its startup probe) before the
/// containers, so the wait goes.
fn wait_for_sidecar(spec: &PodSpec, out: &mut Vec<Finding>) {
    if spec.containers.len() < 2 {
        return;
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let others: Vec<String> = spec
            .containers
            .iter()
            .filter(|o| o.name != c.name)
            .map(|o| format!("{:?}", o.name))
            .collect();
        for (field, words) in [("command", &c.command), ("args", &c.args)] {
            let Some((j, w)) = words.iter().flatten().enumerate().find(|(_, w)| waits(w)) else {
                continue;
            };
            let shown: String = w.trim().chars().take(40).collect();
            let more = if shown.len() < w.trim().len() {
                "…"
            } else {
                ""
            };
            out.push(Finding::new(
                Rule::WaitForSidecar,
                format!("spec.containers[{i}].{field}[{j}]"),
                format!(
                    "{:?} waits for another container ({shown:?}{more}), the sidecar pattern of Kubernetes before 1.29: make {} a native sidecar (move it to spec.initContainers with restartPolicy: Always and a startupProbe): it is then started, and its startup probe passed, before {:?} starts, and the wait can go",
                    c.name,
                    others.join(", "),
                    c.name
                ),
            ));
            break;
        }
    }
}

/// Valid fields this podhost accepts but does not apply (yet), one finding each, so
/// that nothing a user wrote is silently ignored (DESIGN: "rejected or warned about by
/// name"). Shrink as the work lands.
fn unsupported(spec: &PodSpec, out: &mut Vec<Finding>) {
    const NOT_YET: &str = "not implemented yet by podhost: ignored";
    if spec.active_deadline_seconds.is_some() {
        out.push(Finding::new(
            Rule::Unsupported,
            "spec.activeDeadlineSeconds",
            NOT_YET,
        ));
    }
}

/// Findings about a running pod's listeners: a server bound to every address (0.0.0.0
/// or `::`) on a port no containerPort of the pod declares. Static analysis cannot know
/// who connects; a port nobody declared is most likely for the pod's own containers,
/// which reach it on 127.0.0.1 (the pod shares one network namespace).
pub fn wildcard_listeners(pod: &Pod, listeners: &[Listener]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(spec) = &pod.spec else { return out };
    let all = placed(spec);
    let declared = |port: u16| {
        all.iter().any(|p| {
            p.container
                .ports
                .iter()
                .flatten()
                .any(|d| d.container_port == i32::from(port))
        })
    };
    for l in listeners {
        if !l.ip.is_unspecified() || declared(l.port) {
            continue;
        }
        let Some(p) = all.iter().find(|p| p.container.name == l.container) else {
            continue;
        };
        let addr = SocketAddr::new(l.ip, l.port);
        let local = match l.ip {
            IpAddr::V4(_) => format!("127.0.0.1:{}", l.port),
            IpAddr::V6(_) => format!("[::1]:{}", l.port),
        };
        out.push(Finding::new(
            Rule::WildcardListener,
            format!("{}.ports", p.path),
            format!(
                "{:?} listens on {addr}/TCP ({}), a port no containerPort declares: if only containers of this pod connect to it, bind it to {local} (they share localhost), so that other pods and machines cannot reach it; if it is meant for them, declare it in ports",
                l.container, l.program
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        let mut m = crate::parse_manifests(yaml, "t.yaml").expect("parse");
        let crate::Manifest::Pod(mut p) = m.remove(0) else {
            panic!("not a pod")
        };
        crate::default_pod(&mut p);
        *p
    }

    const HEAD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n";

    fn rules(f: &[Finding]) -> Vec<(&'static str, &str)> {
        f.iter().map(|f| (f.rule.id(), f.field.as_str())).collect()
    }

    fn only(f: Vec<Finding>, rule: Rule) -> Vec<Finding> {
        f.into_iter().filter(|f| f.rule == rule).collect()
    }

    /// Host ports "in use" by the test's say.
    struct Busy(u16);
    impl HostPorts for Busy {
        fn in_use(&self, _: &str, _: Option<&str>, port: u16) -> bool {
            port == self.0
        }
    }

    #[test]
    fn plain_pod_is_clean() {
        let p = pod(&format!("{HEAD}  containers:\n  - {{name: a, image: busybox, ports: [{{containerPort: 80}}]}}\n"));
        assert_eq!(lint_pod(&p, &ThisHost), vec![]);
    }

    #[test]
    fn duplicate_container_port_names_both_fields() {
        let p = pod(&format!("{HEAD}  initContainers:\n  - {{name: s, image: busybox, restartPolicy: Always, ports: [{{containerPort: 9000}}], resources: {{limits: {{memory: 1Mi}}}}}}\n  - {{name: i, image: busybox, ports: [{{containerPort: 8080}}]}}\n  containers:\n  - {{name: a, image: busybox, ports: [{{containerPort: 8080}}, {{containerPort: 8080, protocol: UDP}}]}}\n  - {{name: b, image: busybox, resources: {{limits: {{memory: 1Mi}}}}, ports: [{{containerPort: 9000}}, {{containerPort: 8080}}]}}\n"));
        let f = only(lint_pod(&p, &NoHost), Rule::DuplicateContainerPort);
        assert_eq!(
            rules(&f),
            vec![
                (
                    "duplicate-container-port",
                    "spec.containers[1].ports[0].containerPort"
                ),
                (
                    "duplicate-container-port",
                    "spec.containers[1].ports[1].containerPort"
                ),
            ],
            "{f:?}"
        );
        assert!(
            f[0].message.contains("spec.initContainers[0].ports[0]"),
            "{}",
            f[0]
        );
        assert!(
            f[1].message.contains("spec.containers[0].ports[0]")
                && f[1].message.contains("8080/TCP"),
            "{}",
            f[1]
        );
    }

    #[test]
    fn host_ports_privileged_and_in_use() {
        let p = pod(&format!("{HEAD}  containers:\n  - {{name: a, image: busybox, ports: [{{containerPort: 22, hostPort: 22}}, {{containerPort: 80, hostPort: 8080}}, {{containerPort: 81}}]}}\n"));
        let f = lint_pod(&p, &Busy(8080));
        assert_eq!(
            rules(&f),
            vec![
                (
                    "privileged-host-port",
                    "spec.containers[0].ports[0].hostPort"
                ),
                ("host-port-in-use", "spec.containers[0].ports[1].hostPort"),
            ]
        );
        assert!(f[0].message.contains("8022"), "{}", f[0]);
        assert!(f[1].message.contains("instead of that program"), "{}", f[1]);
        // hostNetwork: containerPort is the host port, bound by the container itself.
        let p = pod(&format!("{HEAD}  hostNetwork: true\n  containers:\n  - {{name: a, image: busybox, ports: [{{containerPort: 8080}}]}}\n"));
        let f = lint_pod(&p, &Busy(8080));
        assert_eq!(
            rules(&f),
            vec![("host-port-in-use", "spec.containers[0].ports[0].hostPort")]
        );
        assert!(f[0].message.contains("fail to bind"), "{}", f[0]);
    }

    #[test]
    fn this_host_sees_a_bound_port() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert!(ThisHost.in_use("TCP", Some("127.0.0.1"), port));
        // The wildcard conflicts with any address of the port.
        assert!(ThisHost.in_use("TCP", None, port));
        drop(l);
        assert!(!ThisHost.in_use("TCP", Some("127.0.0.1"), port));
    }

    #[test]
    fn sidecars_need_a_memory_limit() {
        let p = pod(&format!("{HEAD}  initContainers:\n  - {{name: init, image: busybox}}\n  - {{name: agent, image: busybox, restartPolicy: Always}}\n  containers:\n  - {{name: app, image: busybox}}\n  - {{name: proxy, image: busybox, resources: {{limits: {{cpu: 100m}}}}}}\n  - {{name: ok, image: busybox, resources: {{limits: {{memory: 64Mi}}}}}}\n"));
        let f = only(lint_pod(&p, &NoHost), Rule::SidecarWithoutLimits);
        assert_eq!(
            rules(&f),
            vec![
                (
                    "sidecar-without-limits",
                    "spec.initContainers[1].resources.limits.memory"
                ),
                (
                    "sidecar-without-limits",
                    "spec.containers[1].resources.limits.memory"
                ),
            ]
        );
        assert!(f[0].message.contains("(and limits.cpu)"), "{}", f[0]);
        assert!(!f[1].message.contains("limits.cpu"), "{}", f[1]);
        // The annotated default container is the main one, the first a sidecar.
        let p = pod("apiVersion: v1\nkind: Pod\nmetadata: {name: a, annotations: {kubectl.kubernetes.io/default-container: app}}\nspec:\n  containers:\n  - {name: log, image: busybox}\n  - {name: app, image: busybox}\n");
        let f = only(lint_pod(&p, &NoHost), Rule::SidecarWithoutLimits);
        assert_eq!(
            rules(&f),
            vec![(
                "sidecar-without-limits",
                "spec.containers[0].resources.limits.memory"
            )]
        );
    }

    #[test]
    fn secrets_in_env_with_shared_pid_namespace() {
        let yaml = |share: bool| {
            format!("{HEAD}  shareProcessNamespace: {share}\n  containers:\n  - name: a\n    image: busybox\n    env:\n    - {{name: DB_PASSWORD, value: x}}\n    - {{name: MODE, value: fast}}\n    - {{name: CONN, valueFrom: {{secretKeyRef: {{name: db, key: url}}}}}}\n    envFrom:\n    - secretRef: {{name: creds}}\n    - configMapRef: {{name: cfg}}\n")
        };
        let f = lint_pod(&pod(&yaml(true)), &NoHost);
        assert_eq!(
            rules(&f),
            vec![
                ("secret-env-shared-pid", "spec.containers[0].env[0]"),
                ("secret-env-shared-pid", "spec.containers[0].env[2]"),
                (
                    "secret-env-shared-pid",
                    "spec.containers[0].envFrom[0].secretRef"
                ),
            ]
        );
        assert!(
            f[0].message.contains("DB_PASSWORD") && f[0].message.contains("/proc/<pid>/environ")
        );
        assert_eq!(lint_pod(&pod(&yaml(false)), &NoHost), vec![]);
    }

    #[test]
    fn wait_patterns() {
        for w in [
            "sleep 10 && exec app",
            "sleep 5; ./app",
            "  sleep 2.5s&&run",
            "until nc -z localhost 5432; do sleep 1; done; exec app",
            "while ! wget -q http://localhost:15000/ready; do sleep 1; done && app",
            "until curl -fs localhost:8080; do sleep 1; done",
        ] {
            assert!(waits(w), "{w}");
        }
        for w in [
            "sleep",
            "3600",
            "sleep 3600",
            "sleep 5;",
            "while true; do wget -qO- http://localhost:80/ >/dev/null; sleep 2; done",
            "exec httpd -f -p 80",
            "until [ -f /tmp/x ]; do sleep 1; done",
        ] {
            assert!(!waits(w), "{w}");
        }
    }

    #[test]
    fn waiting_for_a_regular_sidecar_suggests_a_native_one() {
        let p = pod(&format!("{HEAD}  containers:\n  - {{name: app, image: busybox, command: [sh, -c, 'sleep 10 && exec app']}}\n  - {{name: proxy, image: busybox, resources: {{limits: {{memory: 1Mi}}}}, args: [sh, -c, 'until nc -z db 5432; do sleep 1; done']}}\n"));
        let f = lint_pod(&p, &NoHost);
        assert_eq!(
            rules(&f),
            vec![
                ("wait-for-sidecar", "spec.containers[0].command[2]"),
                ("wait-for-sidecar", "spec.containers[1].args[2]"),
            ]
        );
        assert!(
            f[0].message.contains("\"proxy\"") && f[0].message.contains("restartPolicy: Always"),
            "{}",
            f[0]
        );
        // Alone, a sleeping container waits for nobody.
        let p = pod(&format!("{HEAD}  containers:\n  - {{name: app, image: busybox, command: [sh, -c, 'sleep 10 && exec app']}}\n"));
        assert_eq!(lint_pod(&p, &NoHost), vec![]);
    }

    #[test]
    fn unsupported_fields() {
        let p = pod(&format!("{HEAD}  activeDeadlineSeconds: 5\n  containers:\n  - {{name: a, image: busybox}}\n  volumes:\n  - {{name: m, emptyDir: {{medium: Memory, sizeLimit: 1Mi}}}}\n  - {{name: d, emptyDir: {{sizeLimit: 1Mi}}}}\n"));
        let f = lint_pod(&p, &NoHost);
        assert_eq!(
            rules(&f),
            vec![("unsupported", "spec.activeDeadlineSeconds"),]
        );
        // Validation's warnings take the same shape.
        let w = Finding::unsupported("spec.nodeSelector: ignored: one machine");
        assert_eq!(
            (w.field.as_str(), w.message.as_str()),
            ("spec.nodeSelector", "ignored: one machine")
        );
        assert_eq!(w.to_string(), "spec.nodeSelector: ignored: one machine");
    }

    #[test]
    fn networking_tty_probes_and_hooks_are_not_unsupported() {
        let p = pod(&format!("{HEAD}  hostNetwork: true\n  dnsPolicy: None\n  dnsConfig: {{nameservers: [192.0.2.1]}}\n  hostAliases: [{{ip: 10.1.1.1, hostnames: [x]}}]\n  containers:\n  - name: a\n    image: busybox\n    tty: true\n    stdin: true\n    stdinOnce: true\n    ports: [{{containerPort: 8080}}]\n    livenessProbe: {{grpc: {{port: 9000, service: db}}}}\n    readinessProbe: {{httpGet: {{port: 80}}}}\n    startupProbe: {{tcpSocket: {{port: 80}}}}\n    lifecycle: {{postStart: {{httpGet: {{port: 443, scheme: HTTPS}}}}, preStop: {{httpGet: {{port: 80}}}}}}\n"));
        assert_eq!(only(lint_pod(&p, &NoHost), Rule::Unsupported), vec![]);
    }

    #[test]
    fn wildcard_listener_on_an_undeclared_port() {
        let p = pod(&format!("{HEAD}  containers:\n  - {{name: web, image: busybox, ports: [{{containerPort: 8080}}]}}\n  - {{name: db, image: busybox, resources: {{limits: {{memory: 1Mi}}}}}}\n"));
        let l = |container: &str, ip: &str, port: u16| Listener {
            container: container.into(),
            ip: ip.parse().expect("ip"),
            port,
            program: "httpd".into(),
        };
        let f = wildcard_listeners(
            &p,
            &[
                l("web", "0.0.0.0", 8080),
                l("db", "0.0.0.0", 5432),
                l("db", "127.0.0.1", 5433),
                l("db", "::", 6000),
                l("gone", "0.0.0.0", 7000),
            ],
        );
        assert_eq!(
            rules(&f),
            vec![
                ("wildcard-listener", "spec.containers[1].ports"),
                ("wildcard-listener", "spec.containers[1].ports"),
            ]
        );
        assert!(
            f[0].message.contains("0.0.0.0:5432/TCP (httpd)")
                && f[0].message.contains("127.0.0.1:5432"),
            "{}",
            f[0]
        );
        assert!(
            f[1].message.contains("[::]:6000") && f[1].message.contains("[::1]:6000"),
            "{}",
            f[1]
        );
    }
}
