//! The pod network at the runtime level, without pods: many attach/detach cycles and
//! failures injected in the middle of CNI ADD leave nothing behind (IPAM store, bridge
//! ports, iptables rules, netns pins, attachment records). Needs root and Debian's
//! containernetworking-plugins, like the e2e tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use podhost_runtime::config::NetworkSettings;
use podhost_runtime::network::{Network, PodRef, PortMapping, DEFAULT_CONFLIST};

/// A private network (own bridge, /24, dirs) under a temp root.
struct NetEnv {
    root: PathBuf,
    settings: NetworkSettings,
}

impl NetEnv {
    fn new(extra_bin_dir: Option<&Path>) -> NetEnv {
        let b: [u8; 4] = rand::random();
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let root = std::env::temp_dir().join(format!("podhost-net-{hex}"));
        let mut bins: Vec<PathBuf> = extra_bin_dir.map(Path::to_path_buf).into_iter().collect();
        bins.extend([PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]);
        let settings = NetworkSettings {
            cni_conf_dir: root.join("net.d"),
            cni_bin_dirs: bins,
            cluster_cidr: format!("10.{}.{}.0/24", 128 + b[0] % 100, b[1]),
            bridge: format!("pn{hex}"),
            ipam_data_dir: root.join("ipam"),
        };
        NetEnv { root, settings }
    }

    fn open(&self) -> Network {
        Network::open(
            &self.settings,
            &self.root.join("records"),
            &self.root.join("netns"),
        )
        .expect("open network")
    }

    /// Replace the default conflist's plugin list (written by `open`).
    fn set_plugins(&self, plugins: serde_json::Value) {
        let mut list = Network::default_conflist(&self.settings);
        list["plugins"] = plugins;
        std::fs::write(
            self.settings.cni_conf_dir.join(DEFAULT_CONFLIST),
            serde_json::to_string(&list).expect("json"),
        )
        .expect("write conflist");
    }

    fn default_plugins(&self) -> serde_json::Value {
        Network::default_conflist(&self.settings)["plugins"].clone()
    }

    fn leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.settings.bridge])
            .output()
            .expect("ip link");
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            leaks.push(format!("bridge port: {l}"));
        }
        let ipam = self.settings.ipam_data_dir.join(&self.settings.bridge);
        for e in std::fs::read_dir(&ipam).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n != "lock" && !n.starts_with("last_reserved_ip") {
                leaks.push(format!("IP allocated: {n}"));
            }
        }
        for d in ["records", "netns"] {
            for e in std::fs::read_dir(self.root.join(d))
                .into_iter()
                .flatten()
                .flatten()
            {
                leaks.push(format!("left in {d}: {}", e.file_name().to_string_lossy()));
            }
        }
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let root = self.root.display().to_string();
        leaks.extend(
            mounts
                .lines()
                .filter(|l| l.contains(&root))
                .map(|l| format!("mount: {l}")),
        );
        let tag = format!("name: \\\"{}\\\"", self.settings.bridge);
        let save = Command::new("iptables-save")
            .args(["-t", "nat"])
            .output()
            .expect("iptables-save");
        for l in String::from_utf8_lossy(&save.stdout)
            .lines()
            .filter(|l| l.contains(&tag))
        {
            leaks.push(format!("iptables: {l}"));
        }
        leaks
    }
}

impl Drop for NetEnv {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.settings.bridge])
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn pod(i: usize) -> (String, String) {
    (format!("p{i}"), format!("uid-{i}"))
}

fn sandbox_id(i: usize) -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{i:04}{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn port() -> PortMapping {
    PortMapping {
        protocol: "TCP".into(),
        container_port: 80,
        host_port: 30000 + rand::random::<u16>() % 20000,
        host_ip: String::new(),
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_attach_detach_cycles_leave_nothing() {
    let env = NetEnv::new(None);
    let net = env.open();
    let (mut add, mut del) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for i in 0..200 {
        let id = sandbox_id(i);
        let (name, uid) = pod(i);
        // Every third one is a kubelet's: the whole list runs (podhost's own pods skip
        // loopback, and portmap when they publish no port).
        let pr = PodRef {
            name: &name,
            namespace: "default",
            uid: &uid,
            kubelet: i % 3 == 0,
        };
        // Every tenth one publishes a hostPort, so portmap's rules come and go too.
        let ports = if i % 10 == 0 {
            vec![port()]
        } else {
            Vec::new()
        };
        let t = Instant::now();
        let att = net
            .attach(&id, &pr, &ports)
            .await
            .unwrap_or_else(|e| panic!("attach {i}: {e}"));
        add.push(t.elapsed());
        assert_eq!(att.ips.len(), 1, "one IPv4 address: {att:?}");
        let t = Instant::now();
        net.detach(&att)
            .await
            .unwrap_or_else(|e| panic!("detach {i}: {e}"));
        del.push(t.elapsed());
    }
    eprintln!(
        "200 cycles in {:?}: median attach {:?}, median detach {:?}",
        start.elapsed(),
        median(&mut add),
        median(&mut del)
    );
    let leaks = env.leaks();
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));
}

#[tokio::test]
async fn missing_plugin_fails_naming_it_and_undoes_the_bridge() {
    let env = NetEnv::new(None);
    let net = env.open();
    let mut plugins = env.default_plugins();
    let list = plugins.as_array_mut().expect("array");
    list.insert(1, serde_json::json!({"type": "no-such-plugin"}));
    env.set_plugins(plugins);
    let pr = PodRef {
        name: "a",
        namespace: "default",
        uid: "u",
        kubelet: false,
    };
    let err = net
        .attach(&sandbox_id(0), &pr, &[port()])
        .await
        .expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("\"no-such-plugin\"")
            && msg.contains("/usr/lib/cni")
            && msg.contains("/opt/cni/bin"),
        "{msg}"
    );
    let leaks = env.leaks();
    assert!(
        leaks.is_empty(),
        "leaks after a failed ADD:\n{}",
        leaks.join("\n")
    );
}

#[tokio::test]
async fn plugin_failing_on_add_after_portmap_is_undone() {
    let bin = tempfile::tempdir().expect("tempdir");
    // A plugin that fails on ADD with a CNI error and succeeds on DEL.
    let script = bin.path().join("fail-on-add");
    std::fs::write(
        &script,
        "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then\n  echo '{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"injected failure\",\"details\":\"on purpose\"}'\n  exit 1\nfi\nif [ \"$CNI_COMMAND\" = VERSION ]; then echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}'; fi\nexit 0\n",
    )
    .expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let env = NetEnv::new(Some(bin.path()));
    let net = env.open();
    let mut plugins = env.default_plugins();
    plugins
        .as_array_mut()
        .expect("array")
        .push(serde_json::json!({"type": "fail-on-add"}));
    env.set_plugins(plugins);
    let pr = PodRef {
        name: "a",
        namespace: "default",
        uid: "u",
        kubelet: false,
    };
    for i in 0..3 {
        let err = net
            .attach(&sandbox_id(i), &pr, &[port()])
            .await
            .expect_err("must fail");
        let msg = err.to_string();
        assert!(
            msg.contains("\"fail-on-add\"") && msg.contains("injected failure: on purpose"),
            "{msg}"
        );
    }
    let leaks = env.leaks();
    assert!(
        leaks.is_empty(),
        "leaks after failed ADDs:\n{}",
        leaks.join("\n")
    );
    // And the network works again once the config is fixed.
    env.set_plugins(env.default_plugins());
    let att = net.attach(&sandbox_id(9), &pr, &[]).await.expect("attach");
    net.detach(&att).await.expect("detach");
    assert!(env.leaks().is_empty());
}

#[tokio::test]
async fn records_left_by_a_crash_are_collected() {
    let env = NetEnv::new(None);
    let net = env.open();
    let pr = PodRef {
        name: "a",
        namespace: "default",
        uid: "u",
        kubelet: false,
    };
    // "Crash": attached, never detached, and a stray pin without a record.
    let _att = net
        .attach(&sandbox_id(0), &pr, &[port()])
        .await
        .expect("attach");
    let stray = env.root.join("netns").join("stray");
    std::fs::write(&stray, "").expect("stray pin");
    let net2 = env.open();
    let (orphans, pins) = net2.garbage(&Default::default());
    assert_eq!((orphans.len(), pins.len()), (1, 1));
    net2.collect_garbage(orphans, pins).await;
    let leaks = env.leaks();
    assert!(
        leaks.is_empty(),
        "leaks after garbage collection:\n{}",
        leaks.join("\n")
    );
}

/// A pin file holding no namespace (a daemon killed between creating the pin file and
/// bind-mounting the netns; or the netns lost) is released anyway: the plugins get no
/// netns on DEL, as the CNI spec allows, and free the IP and the host's rules. Before,
/// the bridge plugin refused the file ("unknown FS magic") at every start, for ever.
#[tokio::test]
async fn a_pin_without_its_namespace_is_released() {
    let env = NetEnv::new(None);
    let net = env.open();
    let pr = PodRef {
        name: "a",
        namespace: "default",
        uid: "u",
        kubelet: false,
    };
    let att = net
        .attach(&sandbox_id(0), &pr, &[port()])
        .await
        .expect("attach");
    nix::mount::umount2(&att.netns, nix::mount::MntFlags::MNT_DETACH).expect("unmount pin");
    assert!(att.netns.exists(), "the empty pin file stays");
    net.detach(&att).await.expect("detach without the netns");
    let leaks = env.leaks();
    assert!(
        leaks.is_empty(),
        "leaks after detaching an empty pin:\n{}",
        leaks.join("\n")
    );
}
