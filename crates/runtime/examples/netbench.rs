//! Time of a pod's network setup and teardown: create + pin a netns and CNI ADD of the
//! default network (bridge + host-local, portmap, loopback), then CNI DEL + unpin.
//! Runs on a private bridge, CIDR and state dir that it removes at the end.
//!
//! Usage: netbench [-n N] [--host-port]   (root; see bench/net.sh)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use podhost_runtime::config::NetworkSettings;
use podhost_runtime::network::{Network, PodRef, PortMapping};

fn stats(name: &str, v: &mut [Duration]) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    println!(
        "{name:<9} n={:<4} median {:7.1} ms   p10 {:7.1} ms   p90 {:7.1} ms   min {:7.1} ms   max {:7.1} ms",
        v.len(),
        ms(pct(50)),
        ms(pct(10)),
        ms(pct(90)),
        ms(v[0]),
        ms(v[v.len() - 1]),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = match args.iter().position(|a| a == "-n") {
        Some(i) => args.get(i + 1).ok_or("-n needs a number")?.parse()?,
        None => 100,
    };
    let with_port = args.iter().any(|a| a == "--host-port");
    let tag = std::process::id();
    let root = std::env::temp_dir().join(format!("podhost-netbench-{tag}"));
    let settings = NetworkSettings {
        cni_conf_dir: root.join("net.d"),
        cni_bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
        cluster_cidr: format!("10.{}.{}.0/24", 128 + tag % 100, (tag / 100) % 256),
        bridge: format!("pb{:x}", tag % 0x00ff_ffff),
        ipam_data_dir: root.join("ipam"),
    };
    let net = Network::open(&settings, &root.join("records"), &root.join("netns"))?;
    let ports = match with_port {
        true => vec![PortMapping {
            protocol: "TCP".into(),
            container_port: 80,
            host_port: 39080,
            host_ip: String::new(),
        }],
        false => Vec::new(),
    };
    // Cycles alternate between a podhost pod (the default list without the plugins that
    // change nothing for it) and a kubelet's pod (every plugin of the list, as all pods
    // got before): the same machine state, one run.
    let pods = [false, true].map(|kubelet| PodRef {
        name: "bench",
        namespace: "default",
        uid: "bench",
        kubelet,
    });
    let mut setup = [Vec::with_capacity(n), Vec::with_capacity(n)];
    let mut teardown = [Vec::with_capacity(n), Vec::with_capacity(n)];
    let mut failure = None;
    for i in 0..2 * n {
        let id = format!("{i:08x}{tag:08x}");
        let (setup, teardown) = (&mut setup[i % 2], &mut teardown[i % 2]);
        let pod = &pods[i % 2];
        let t = Instant::now();
        let att = match net.attach(&id, pod, &ports).await {
            Ok(a) => a,
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        };
        setup.push(t.elapsed());
        let t = Instant::now();
        if let Err(e) = net.detach(&att).await {
            failure = Some(e.to_string());
            break;
        }
        teardown.push(t.elapsed());
    }
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &settings.bridge])
        .status();
    let _ = std::fs::remove_dir_all(&root);
    if let Some(e) = failure {
        return Err(e.into());
    }
    println!(
        "pod network setup/teardown, {n} cycles, hostPort: {}",
        if with_port { "yes" } else { "no" }
    );
    let [s_podhost, s_kubelet] = &mut setup;
    let [t_podhost, t_kubelet] = &mut teardown;
    stats("setup, podhost pod (default list trimmed)", s_podhost);
    stats("setup, kubelet pod (every plugin)", s_kubelet);
    stats("teardown, podhost pod (default list trimmed)", t_podhost);
    stats("teardown, kubelet pod (every plugin)", t_kubelet);
    Ok(())
}
