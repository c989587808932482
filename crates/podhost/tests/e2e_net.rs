//! End-to-end pod networking: pod IPs from the daemon's CIDR, eth0/route/hosts in the
//! container, pod-to-pod, hostPort on 127.0.0.1, hostNetwork, a stable IP across
//! container and pause deaths, CNI errors in the pod status. Traffic stays on 127.0.0.1
//! and on the test's own bridge.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{container_status, ns, Env};

fn exec(env: &Env, pod: &str, c: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "-c", c, "--"];
    args.extend_from_slice(cmd);
    env.ok(&args)
}

fn pod_ip(p: &serde_json::Value) -> String {
    p["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Whether `ip` is inside the env's /24.
fn in_cidr(env: &Env, ip: &str) -> bool {
    let net = env.cidr.trim_end_matches("0/24");
    ip.starts_with(net) && ip != format!("{net}0") && ip != format!("{net}1")
}

fn web(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: busybox\n    command: [sh, -c, 'echo hello-from-{name} > /tmp/index.html; exec httpd -f -p 80 -h /tmp']\n{extra}"
    )
}

/// `GET /` on 127.0.0.1:port from the host, retried while portmap's rules settle.
fn http_get_localhost(port: u16) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains("200") {
                    return body;
                }
                last = body;
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("GET 127.0.0.1:{port} failed: {last}");
}

#[test]
fn pod_ip_from_the_cidr_with_eth0_route_hosts_and_resolv_conf() {
    let env = Env::new();
    env.apply(
        "a.yaml",
        &web(
            "a",
            "  dnsConfig:\n    searches: [svc.example]\n    options: [{name: ndots, value: \"5\"}]\n  hostAliases: [{ip: 10.1.2.3, hostnames: [db.local]}]\n",
        ),
    );
    let p = env.wait_ready("a");
    let ip = pod_ip(&p);
    assert!(in_cidr(&env, &ip), "pod IP {ip} not in {}", env.cidr);
    assert_eq!(p["status"]["podIPs"][0]["ip"], ip.as_str());
    let wide = env.ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.contains(&ip), "{wide}");
    let yaml = env.ok(&["get", "pod", "a", "-o", "yaml"]);
    assert!(
        yaml.contains(&format!("podIP: {ip}\n")) || yaml.contains(&format!("podIP: \"{ip}\"")),
        "{yaml}"
    );
    let addr = exec(
        &env,
        "a",
        "web",
        &["ip", "-o", "-4", "addr", "show", "eth0"],
    );
    assert!(addr.contains(&format!("inet {ip}/24")), "{addr}");
    let route = exec(&env, "a", "web", &["ip", "route"]);
    assert!(route.contains("default via"), "{route}");
    let hosts = exec(&env, "a", "web", &["cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{ip}\ta\n")), "{hosts}");
    assert!(hosts.contains("10.1.2.3\tdb.local"), "{hosts}");
    let resolv = exec(&env, "a", "web", &["cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains("svc.example") && resolv.contains("ndots:5"),
        "{resolv}"
    );
    env.teardown();
}

#[test]
fn pods_reach_each_other_and_containers_share_localhost() {
    let env = Env::new();
    env.apply(
        "a.yaml",
        &web(
            "a",
            "  - name: side\n    image: busybox\n    command: [sleep, '3600']\n",
        ),
    );
    env.apply(
        "b.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: busybox, command: [sleep, '3600']}\n",
    );
    let ip_a = pod_ip(&env.wait_ready("a"));
    let ip_b = pod_ip(&env.wait_ready("b"));
    assert_ne!(ip_a, ip_b);
    let got = exec(
        &env,
        "b",
        "c",
        &["wget", "-qO-", &format!("http://{ip_a}/")],
    );
    assert_eq!(got.trim(), "hello-from-a");
    let local = exec(&env, "a", "side", &["wget", "-qO-", "http://localhost/"]);
    assert_eq!(local.trim(), "hello-from-a");
    env.teardown();
}

#[test]
fn host_port_on_localhost_and_a_second_pod_asking_for_it_is_refused() {
    let env = Env::new();
    let port = 20000 + rand::random::<u16>() % 10000;
    let ports = format!("    ports: [{{containerPort: 80, hostPort: {port}}}]\n");
    let out = env.apply("a.yaml", &web("a", &ports));
    assert!(!out.contains("hostPort"), "no warning expected: {out}");
    env.wait_ready("a");
    let body = http_get_localhost(port);
    assert!(body.contains("hello-from-a"), "{body}");
    let path = env.manifest("b.yaml", &web("b", &ports));
    let err = env.fails(&["apply", "-f", &path]);
    assert!(
        err.contains(&format!(
            "hostPort {port}/TCP is already allocated to pod default/a"
        )),
        "{err}"
    );
    env.teardown();
}

#[test]
fn second_container_binding_the_same_port_fails_with_address_in_use() {
    let env = Env::new();
    env.apply(
        "a.yaml",
        &web(
            "a",
            "  - name: twin\n    image: busybox\n    command: [sh, -c, 'sleep 1; exec httpd -f -p 80 -h /tmp']\n",
        ),
    );
    let p = env.wait_for("a", "twin to fail", Duration::from_secs(60), |p| {
        let s = container_status(p, "twin");
        s["restartCount"].as_i64().unwrap_or(0) >= 1
            || s["state"]["terminated"]["reason"] == "Error"
    });
    let s = container_status(&p, "twin");
    let reason = s["state"]["terminated"]["reason"]
        .as_str()
        .or(s["state"]["waiting"]["reason"].as_str())
        .or(s["lastState"]["terminated"]["reason"].as_str())
        .unwrap_or_default();
    assert!(matches!(reason, "Error" | "CrashLoopBackOff"), "{s}");
    let logs = match env.run(&["logs", "a", "-c", "twin", "-p"]) {
        o if o.status.success() && !o.stdout.is_empty() => {
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
        _ => env.ok(&["logs", "a", "-c", "twin"]),
    };
    assert!(logs.contains("Address already in use"), "{logs}");
    assert_eq!(container_status(&p, "web")["ready"], true);
    env.teardown();
}

#[test]
fn host_network_pod_shares_the_host_namespace_and_hostname() {
    let mut env = Env::new();
    env.apply(
        "h.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: h}\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: busybox, command: [sleep, '3600']}\n",
    );
    let p = env.wait_ready("h");
    let pid = env.pid_of("h", "c");
    // The daemon's namespace is the host's here (and readable, unlike PID 1's when the
    // bounding set lacks capabilities init has).
    assert_eq!(ns(pid, "net"), ns(std::process::id(), "net"));
    // UTS follows the network, as with containerd and CRI-O.
    assert_eq!(ns(pid, "uts"), ns(std::process::id(), "uts"));
    let host = nix::unistd::gethostname().expect("hostname");
    let inside = exec(&env, "h", "c", &["hostname"]);
    assert_eq!(inside.trim(), host.to_string_lossy());
    assert_eq!(pod_ip(&p), p["status"]["hostIP"].as_str().unwrap_or("?"));
    assert!(env.network_leaks().is_empty(), "no CNI for hostNetwork");
    assert!(std::fs::read_dir(env.root.join("run/netns"))
        .expect("netns dir")
        .next()
        .is_none());
    env.teardown();
}

#[test]
fn ip_stays_when_a_container_crashes_and_when_the_pause_dies() {
    let mut env = Env::new();
    env.apply("a.yaml", &web("a", ""));
    let ip = pod_ip(&env.wait_ready("a"));
    // The pause dies: the sandbox is recreated on the same pinned netns.
    let pause = env.pid_of("a", "POD");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pause as i32),
        nix::sys::signal::SIGKILL,
    )
    .expect("kill pause");
    let p = env.wait_for("a", "a new pause and web", Duration::from_secs(60), |p| {
        common::condition(p, "Ready")
            && container_status(p, "web")["restartCount"].as_i64() == Some(1)
    });
    assert_eq!(pod_ip(&p), ip, "IP changed when the pause was recreated");
    assert_ne!(env.pid_of("a", "POD"), pause);
    // The app crashes: restarted (after back-off) in the same namespace.
    let web_pid = env.pid_of("a", "web");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(web_pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .expect("kill web");
    let p = env.wait_for("a", "web restarted", Duration::from_secs(60), |p| {
        common::condition(p, "Ready")
            && container_status(p, "web")["restartCount"].as_i64() == Some(2)
    });
    assert_eq!(pod_ip(&p), ip, "IP changed when the container restarted");
    let addr = exec(
        &env,
        "a",
        "web",
        &["ip", "-o", "-4", "addr", "show", "eth0"],
    );
    assert!(addr.contains(&format!("inet {ip}/")), "{addr}");
    // One pin, one IP: the old sandbox's network was taken over, not duplicated.
    let pins = std::fs::read_dir(env.root.join("run/netns"))
        .expect("netns")
        .count();
    assert_eq!(pins, 1);
    env.teardown();
}

/// On podhost's own network a deleted pod's namespace goes before the plugins' DEL, and
/// the kernel takes the veth with it. A namespace something still holds keeps its veth:
/// the daemon then deletes the veth itself, before the address is given back.
#[test]
fn a_deleted_pods_veth_goes_with_its_namespace_also_when_something_holds_it() {
    let env = Env::new();
    env.apply(
        "a.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: busybox, command: [sleep, '3600']}\n",
    );
    env.wait_ready("a");
    let pins: Vec<_> = std::fs::read_dir(env.root.join("run/netns"))
        .expect("netns dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(pins.len(), 1, "{pins:?}");
    let ports = || {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show", "master", &env.bridge])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(ports(), 1, "the pod's veth is on the bridge");
    // An open descriptor keeps the namespace, and with it the veth, after its pin goes.
    let held = std::fs::File::open(&pins[0]).expect("open the pinned netns");
    env.ok(&["delete", "pod", "a", "--force"]);
    assert_eq!(ports(), 0, "the veth went before the pod did");
    assert!(env.network_leaks().is_empty(), "{:?}", env.network_leaks());
    drop(held);
    assert!(
        env.daemon_log()
            .contains("outlived its pod's network namespace; deleting it"),
        "{}",
        env.daemon_log()
    );
    env.teardown();
}

#[test]
fn cni_error_is_the_pod_status_reason_and_the_pod_recovers() {
    let env = Env::new();
    let conf = env.root.join("cni/net.d/10-podhost.conflist");
    let good = std::fs::read_to_string(&conf).expect("default conflist");
    let mut list: serde_json::Value = serde_json::from_str(&good).expect("json");
    list["plugins"]
        .as_array_mut()
        .expect("plugins")
        .insert(1, serde_json::json!({"type": "no-such-plugin"}));
    std::fs::write(&conf, list.to_string()).expect("write conflist");
    env.apply("a.yaml", &web("a", ""));
    let p = env.wait_for(
        "a",
        "FailedCreatePodSandBox",
        Duration::from_secs(30),
        |p| p["status"]["reason"] == "FailedCreatePodSandBox",
    );
    let msg = p["status"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("\"no-such-plugin\"") && msg.contains("/usr/lib/cni"),
        "{msg}"
    );
    // The failed setup undid the bridge plugin's ADD: no veth, no IP, no pin.
    assert!(env.network_leaks().is_empty(), "{:?}", env.network_leaks());
    assert!(std::fs::read_dir(env.root.join("run/netns"))
        .expect("netns")
        .next()
        .is_none());
    // The shim started the pause while the plugins ran: each failed try shut it down
    // and removed the pod's cgroup. A retry (every 5 s) may be under way: the state
    // between two tries is what must be empty.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut left = sandbox_leftovers(&env);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = sandbox_leftovers(&env);
    }
    assert!(left.is_empty(), "after failed sandbox creations: {left:?}");
    std::fs::write(&conf, good).expect("restore conflist");
    let p = env.wait_ready("a");
    assert!(in_cidr(&env, &pod_ip(&p)));
    assert!(p["status"]["reason"].is_null(), "{}", p["status"]);
    env.teardown();
}

/// A network namespace standing for "outside" the host: a veth pair with the host's end
/// at `host_ip` and the other end at `ip` inside it, on a /30 of the benchmarking range
/// (198.18.0.0/15) with no route back to any pod CIDR. Removed on drop.
struct Outside {
    netns: String,
    host_if: String,
    host_ip: String,
    ip: String,
}

impl Outside {
    fn new() -> Outside {
        let pid = std::process::id();
        let third = pid % 250;
        let o = Outside {
            netns: format!("phm-out-{pid}"),
            host_if: format!("phm{}h", pid % 100_000),
            host_ip: format!("198.18.{third}.1"),
            ip: format!("198.18.{third}.2"),
        };
        let peer = format!("phm{}o", pid % 100_000);
        let host_cidr = format!("{}/30", o.host_ip);
        let ip_cidr = format!("{}/30", o.ip);
        let steps: [Vec<&str>; 6] = [
            vec!["netns", "add", &o.netns],
            vec![
                "link", "add", &o.host_if, "type", "veth", "peer", "name", &peer, "netns", &o.netns,
            ],
            vec!["addr", "add", &host_cidr, "dev", &o.host_if],
            vec!["link", "set", &o.host_if, "up"],
            vec!["-n", &o.netns, "addr", "add", &ip_cidr, "dev", &peer],
            vec!["-n", &o.netns, "link", "set", &peer, "up"],
        ];
        for args in steps {
            let st = std::process::Command::new("ip")
                .args(&args)
                .status()
                .expect("ip");
            assert!(st.success(), "ip {args:?}");
        }
        o
    }

    /// Serves one HTTP request on `ip:port` inside the namespace, answering with the
    /// address the connection came from; returns that address.
    fn serve_once(&self, port: u16) -> std::thread::JoinHandle<String> {
        let (netns, ip) = (format!("/run/netns/{}", self.netns), self.ip.clone());
        std::thread::spawn(move || {
            let f = std::fs::File::open(&netns).expect("open netns");
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this thread only, with a valid netns fd.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let l = std::net::TcpListener::bind((ip.as_str(), port)).expect("bind outside");
            l.set_nonblocking(true).expect("nonblocking");
            let end = std::time::Instant::now() + common::scaled(Duration::from_secs(60));
            loop {
                match l.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut req = [0u8; 1024];
                        let _ = s.read(&mut req);
                        let _ = write!(s, "HTTP/1.0 200 OK\r\n\r\nseen {}\n", peer.ip());
                        return peer.ip().to_string();
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        assert!(std::time::Instant::now() < end, "no connection came");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        })
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        // The namespace takes its veth end, and so the pair, with it.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The default network's nat rules tagged with `tag`.
fn nat_rules(tag: &str) -> Vec<String> {
    let out = std::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .expect("iptables-save");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(tag))
        .map(String::from)
        .collect()
}

/// A pod's traffic to an address outside the host leaves with the host's address, through
/// one masquerade rule the network shares (put in place by the first pod, taken away with
/// the last), not a chain per pod: the reply comes back although "outside" has no route
/// to the pod CIDR.
#[test]
fn traffic_out_of_the_pod_network_is_masqueraded_by_one_shared_rule() {
    let env = Env::new();
    let outside = Outside::new();
    let shared_tag = format!("name: \\\"{}\\\" podhost shared masquerade", env.bridge);
    let per_pod_tag = format!("name: \\\"{}\\\" id:", env.bridge);
    for name in ["a", "b"] {
        env.apply(
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: busybox, command: [sleep, '3600']}}\n"),
        );
    }
    env.wait_ready("a");
    env.wait_ready("b");
    let rules = nat_rules(&shared_tag);
    assert_eq!(
        rules
            .iter()
            .filter(|r| r.starts_with("-A POSTROUTING"))
            .count(),
        1,
        "one jump for both pods: {rules:#?}"
    );
    assert_eq!(
        rules.len(),
        4,
        "the jump and its chain's 3 rules: {rules:#?}"
    );
    assert!(nat_rules(&per_pod_tag).is_empty(), "no per-pod chain");

    let server = outside.serve_once(8080);
    let got = exec(
        &env,
        "a",
        "c",
        &["wget", "-qO-", &format!("http://{}:8080/", outside.ip)],
    );
    let peer = server.join().expect("server thread");
    assert_eq!(peer, outside.host_ip, "masqueraded to the host's address");
    assert_eq!(got.trim(), format!("seen {}", outside.host_ip));

    // The rule stays while a pod needs it, and goes with the last one.
    env.ok(&["delete", "pod", "a"]);
    assert_eq!(nat_rules(&shared_tag).len(), 4, "b still needs it");
    env.ok(&["delete", "pod", "b"]);
    assert!(
        nat_rules(&shared_tag).is_empty(),
        "{:#?}",
        nat_rules(&shared_tag)
    );
    drop(outside);
    env.teardown();
}

/// Removes a shared masquerade rule made by hand, whatever the test's outcome.
struct HandMadeRule {
    jump: Vec<String>,
    chain: String,
}

impl Drop for HandMadeRule {
    fn drop(&mut self) {
        let ipt = |args: &[&str]| {
            let _ = std::process::Command::new("iptables")
                .args(["-w", "-t", "nat"])
                .args(args)
                .stderr(std::process::Stdio::null())
                .status();
        };
        let mut del = vec!["-D"];
        del.extend(self.jump.iter().map(String::as_str));
        ipt(&del);
        ipt(&["-F", &self.chain]);
        ipt(&["-X", &self.chain]);
    }
}

/// A shared masquerade rule no pod needs (left by a daemon that died between the last
/// pod's DEL and the rule's removal) is swept when the daemon starts again.
#[test]
fn a_leftover_shared_masquerade_rule_is_swept_at_start() {
    let mut env = Env::new();
    env.stop_daemon();
    let chain = format!("PH-MASQ-{}", env.bridge);
    let comment = format!("name: \"{}\" podhost shared masquerade", env.bridge);
    let jump: Vec<String> = [
        "POSTROUTING",
        "-s",
        &env.cidr,
        "-m",
        "comment",
        "--comment",
        &comment,
        "-j",
        &chain,
    ]
    .map(String::from)
    .to_vec();
    let rule = HandMadeRule {
        jump: jump.clone(),
        chain: chain.clone(),
    };
    let ipt = |args: &[&str]| {
        let st = std::process::Command::new("iptables")
            .args(["-w", "-t", "nat"])
            .args(args)
            .status()
            .expect("iptables");
        assert!(st.success(), "iptables {args:?}");
    };
    ipt(&["-N", &chain]);
    ipt(&[
        "-A",
        &chain,
        "-m",
        "comment",
        "--comment",
        &comment,
        "-j",
        "MASQUERADE",
    ]);
    let mut add = vec!["-A"];
    add.extend(jump.iter().map(String::as_str));
    ipt(&add);
    let tag = format!("name: \\\"{}\\\" podhost shared masquerade", env.bridge);
    assert_eq!(nat_rules(&tag).len(), 2);
    env.start_daemon();
    let end = std::time::Instant::now() + common::scaled(Duration::from_secs(30));
    while !nat_rules(&tag).is_empty() {
        assert!(std::time::Instant::now() < end, "{:#?}", nat_rules(&tag));
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(rule);
    env.teardown();
}

/// Shim processes of `env` and pod cgroups under its cgroup parent.
fn sandbox_leftovers(env: &Env) -> Vec<String> {
    let root = env.root.display().to_string();
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("podhost-shim") && cmd.contains(&root) {
            left.push(format!("shim {}", entry.file_name().to_string_lossy()));
        }
    }
    let mut dirs = vec![env.cgroup_parent_dir("memory")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                if e.file_name().to_string_lossy().starts_with("pod") {
                    left.push(format!("cgroup {}", e.path().display()));
                }
                dirs.push(e.path());
            }
        }
    }
    left
}
