//! End-to-end: the classic pause-container demonstrations, run for real (root).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{alive, container_status, ns, Env};

fn example(name: &str) -> String {
    format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn exec(env: &Env, pod: &str, c: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "-c", c, "--"];
    args.extend_from_slice(cmd);
    env.ok(&args)
}

#[test]
fn web_sidecar_share_net_ipc_uts_and_an_empty_dir() {
    let mut env = Env::new();
    env.ok(&["apply", "-f", &example("web-sidecar.yaml")]);
    env.wait_ready("web-sidecar");
    let table = env.ok(&["get", "pods"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web-sidecar") && l.contains("2/2") && l.contains("Running")),
        "{table}"
    );

    // The sidecar reaches the web server on localhost: one network namespace, lo up.
    let page = exec(
        &env,
        "web-sidecar",
        "sidecar",
        &["wget", "-qO-", "http://localhost:80/"],
    );
    assert!(page.contains("hello from web-sidecar"), "page: {page}");
    // The web server's access log, written to the emptyDir, is visible from the sidecar.
    let log = exec(
        &env,
        "web-sidecar",
        "sidecar",
        &["cat", "/var/log/web/access.log"],
    );
    assert!(log.contains("response:200"), "access log: {log}");
    // Hostname is the pod name (UTS namespace of the pause).
    assert_eq!(
        exec(&env, "web-sidecar", "web", &["hostname"]).trim(),
        "web-sidecar"
    );

    let pause = env.pid_of("web-sidecar", "POD");
    let web = env.pid_of("web-sidecar", "web");
    let sidecar = env.pid_of("web-sidecar", "sidecar");
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(ns(web, kind), ns(pause, kind), "{kind} of web vs pause");
        assert_eq!(
            ns(sidecar, kind),
            ns(pause, kind),
            "{kind} of sidecar vs pause"
        );
        assert_ne!(
            ns(pause, kind),
            ns(std::process::id(), kind),
            "{kind} of pause vs host"
        );
    }
    assert_ne!(ns(web, "mnt"), ns(sidecar, "mnt"));
    assert_ne!(ns(web, "mnt"), ns(pause, "mnt"));
    // Without shareProcessNamespace each container has its own PID namespace.
    assert_ne!(ns(web, "pid"), ns(sidecar, "pid"));

    // The sidecar's own log (CRI format on disk, plain text through `logs`).
    env.wait_for(
        "web-sidecar",
        "sidecar log",
        Duration::from_secs(20),
        |_| {
            String::from_utf8_lossy(&env.run(&["logs", "web-sidecar", "-c", "sidecar"]).stdout)
                .contains("fetched page")
        },
    );
    let files: Vec<_> = walk(&env.root.join("log"));
    let sidecar_log = files
        .iter()
        .find(|p| p.ends_with("sidecar/0.log"))
        .expect("sidecar/0.log");
    let text = std::fs::read_to_string(sidecar_log).expect("read log");
    let first = text.lines().next().expect("a line");
    let parts: Vec<&str> = first.splitn(4, ' ').collect();
    assert!(
        parts[0].ends_with('Z') && parts[0].contains('T') && parts[0].contains('.'),
        "timestamp: {first}"
    );
    assert!(
        matches!(parts[1], "stdout" | "stderr") && matches!(parts[2], "F" | "P"),
        "CRI line: {first}"
    );

    env.ok(&["delete", "-f", &example("web-sidecar.yaml")]);
    for pid in [pause, web, sidecar] {
        assert!(!alive(pid), "pid {pid} survived delete");
    }
    env.teardown();
}

#[test]
fn shared_pid_namespace_has_pause_as_pid_1_reaping_zombies() {
    let mut env = Env::new();
    env.ok(&["apply", "-f", &example("shared-pid.yaml")]);
    env.wait_ready("shared-pid");
    let ps = exec(&env, "shared-pid", "sidecar", &["ps", "-o", "pid,comm"]);
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or("");
    assert!(pid1.contains("pause"), "PID 1 should be the pause:\n{ps}");
    assert!(
        ps.contains("httpd"),
        "the web's httpd should be visible:\n{ps}"
    );
    let pause = env.pid_of("shared-pid", "POD");
    let web = env.pid_of("shared-pid", "web");
    let sidecar = env.pid_of("shared-pid", "sidecar");
    assert_eq!(ns(web, "pid"), ns(pause, "pid"));
    assert_eq!(ns(sidecar, "pid"), ns(pause, "pid"));

    // An orphan is reparented to the pause (PID 1) and reaped when it exits.
    let out = exec(
        &env,
        "shared-pid",
        "sidecar",
        &[
            "sh",
            "-c",
            "(sleep 1 &); sleep 0.3; ps -o pid,ppid,comm | grep 'sleep$' | grep -v ' 0 '",
        ],
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().nth(1) == Some("1")),
        "orphaned sleep should have PPID 1:\n{out}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let stat = exec(&env, "shared-pid", "sidecar", &["ps", "-o", "stat,comm"]);
    assert!(
        !stat.lines().any(|l| l.trim_start().starts_with('Z')),
        "zombie left:\n{stat}"
    );
    env.teardown();
}

/// A container restarted into its pod's PID namespace at a pid the host has no process
/// of: libcontainer's v1 cgroup mount took that pid for the host's and failed the create
/// ("failed to prepare rootfs", /proc/<pid> not found), so long-lived
/// shareProcessNamespace pods (probes and execs use up the low pids, which host kernel
/// threads hold) could not restart containers. podhost now mounts that cgroupfs itself.
#[test]
fn a_container_restarts_into_the_shared_pid_namespace_at_any_pid() {
    const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: pid-gap
spec:
  shareProcessNamespace: true
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
";
    let mut env = Env::new();
    env.apply("pid-gap", POD);
    env.wait_ready("pid-gap");
    // Execs (one pid each in the namespace) until the next pids there are pids no host
    // process has right now (the host's own come and go): the restarted container's
    // init gets one of them.
    const AHEAD: u32 = 8;
    let free =
        |first: u32| (first..first + AHEAD).all(|p| !Path::new(&format!("/proc/{p}")).exists());
    let mut next = 0;
    for _ in 0..500 {
        let last = exec(
            &env,
            "pid-gap",
            "app",
            &["cat", "/proc/sys/kernel/ns_last_pid"],
        );
        next = last.trim().parse::<u32>().expect("ns_last_pid") + 1;
        if free(next) {
            break;
        }
    }
    assert!(free(next), "no free host pids after {next}");
    env.pid_of("pid-gap", "POD");
    let app = env.pid_of("pid-gap", "app");
    // SAFETY: plain kill(2) of a container process we started.
    unsafe { libc::kill(app as i32, libc::SIGKILL) };
    let pod = env.wait_for("pid-gap", "app restarted", Duration::from_secs(60), |p| {
        let s = container_status(p, "app");
        s["restartCount"] == 1 && s["state"]["running"].is_object()
    });
    assert_eq!(container_status(&pod, "app")["restartCount"], 1);
    let app = env.pid_of("pid-gap", "app");
    let status = std::fs::read_to_string(format!("/proc/{app}/status")).expect("status");
    let ns_pid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_default()
        .to_string();
    let ns_pid: u32 = ns_pid.parse().expect("NSpid");
    assert!(ns_pid >= next, "{next}: {status}");
    // On cgroup v1 the container sees its own cgroups, read-only, under each hierarchy's
    // name (a co-mounted one under each of its names too).
    if Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        let own = std::fs::read_to_string(format!("/proc/{app}/cgroup")).expect("cgroup");
        let memory = own
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
            .expect("memory cgroup");
        let limit = std::fs::read_to_string(format!(
            "/sys/fs/cgroup/memory{memory}/memory.limit_in_bytes"
        ))
        .expect("host view of the limit");
        let seen = exec(
            &env,
            "pid-gap",
            "app",
            &["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
        );
        assert_eq!(seen, limit);
        let cpu = exec(&env, "pid-gap", "app", &["ls", "/sys/fs/cgroup/cpu/"]);
        assert!(cpu.contains("cpu.shares"), "{cpu}");
        let write = env.run(&[
            "exec",
            "pid-gap",
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "echo 1 > /sys/fs/cgroup/pids/pids.max",
        ]);
        assert!(!write.status.success());
        assert!(
            String::from_utf8_lossy(&write.stderr).contains("Read-only"),
            "{write:?}"
        );
        assert_own_cgroupfs(app, &own);
    }
    env.teardown();
}

/// What process `pid` sees at `/sys/fs/cgroup` (the visible, last mount of each path):
/// read-only, nosuid, nodev, noexec, and each v1 hierarchy as its own cgroup `own` lists
/// (`/proc/<pid>/cgroup`), never the hierarchy's root or another cgroup of it.
fn assert_own_cgroupfs(pid: u32, own: &str) {
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let mut visible: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let point = fields[4];
        if point == "/sys/fs/cgroup" || point.starts_with("/sys/fs/cgroup/") {
            visible.retain(|(p, _)| *p != point);
            visible.push((point, fields));
        }
    }
    let cgroups = visible
        .iter()
        .filter(|(_, f)| f.contains(&"cgroup"))
        .count();
    assert!(cgroups > 1, "{mountinfo}");
    for (point, fields) in &visible {
        let options: Vec<&str> = fields[5].split(',').collect();
        for want in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(
                options.contains(&want),
                "{want} missing at {point}: {mountinfo}"
            );
        }
        let sep = fields.iter().position(|f| *f == "-").expect("separator");
        if fields[sep + 1] != "cgroup" {
            continue;
        }
        // The hierarchy by its controllers (or name=…) in the super options.
        let supers: Vec<&str> = fields[sep + 3].split(',').collect();
        let path = own
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, ':').skip(1);
                f.next().zip(f.next())
            })
            .find(|(c, _)| !c.is_empty() && c.split(',').all(|c| supers.contains(&c)))
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("no cgroup of {point} in {own}"));
        assert!(path.len() > 1, "{own}");
        assert_eq!(fields[3], path, "{point}: {mountinfo}");
    }
}

#[test]
fn init_container_writes_config_the_app_reads() {
    let env = Env::new();
    env.ok(&["apply", "-f", &example("init-config.yaml")]);
    let pod = env.wait_ready("init-config");
    let init = &pod["status"]["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["reason"], "Completed", "{init}");
    let logs = env.ok(&["logs", "init-config", "-c", "app"]);
    assert!(logs.contains("greeting=hello from init"), "{logs}");
    env.teardown();
}

#[test]
fn killed_container_restarts_while_pause_and_sidecar_keep_running() {
    let mut env = Env::new();
    env.ok(&["apply", "-f", &example("web-sidecar.yaml")]);
    env.wait_ready("web-sidecar");
    let pause = env.pid_of("web-sidecar", "POD");
    let web = env.pid_of("web-sidecar", "web");
    let sidecar = env.pid_of("web-sidecar", "sidecar");
    let net = ns(pause, "net");
    // SAFETY: plain kill(2) of a container process we started.
    unsafe { libc::kill(web as i32, libc::SIGKILL) };
    let pod = env.wait_for(
        "web-sidecar",
        "web restarted",
        Duration::from_secs(30),
        |p| {
            let s = container_status(p, "web");
            s["restartCount"] == 1 && s["state"]["running"].is_object()
        },
    );
    let last = &container_status(&pod, "web")["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{last}");
    assert_eq!(container_status(&pod, "sidecar")["restartCount"], 0);
    let new_web = env.pid_of("web-sidecar", "web");
    assert_ne!(new_web, web);
    assert!(
        alive(pause) && alive(sidecar),
        "pause and sidecar keep running"
    );
    assert_eq!(env.pid_of("web-sidecar", "POD"), pause);
    assert_eq!(
        ns(new_web, "net"),
        net,
        "the restarted container joins the same netns"
    );
    let page = exec(
        &env,
        "web-sidecar",
        "sidecar",
        &["wget", "-qO-", "http://localhost:80/"],
    );
    assert!(page.contains("hello"), "{page}");
    env.teardown();
}

#[test]
fn daemon_sigkill_leaves_pods_running_and_restart_finds_them() {
    let mut env = Env::new();
    env.ok(&["apply", "-f", &example("web-sidecar.yaml")]);
    env.wait_ready("web-sidecar");
    let pids = [
        env.pid_of("web-sidecar", "POD"),
        env.pid_of("web-sidecar", "web"),
        env.pid_of("web-sidecar", "sidecar"),
    ];
    env.kill_daemon();
    std::thread::sleep(Duration::from_millis(500));
    for pid in pids {
        assert!(alive(pid), "pid {pid} died with the daemon");
    }
    env.start_daemon();
    env.wait_ready("web-sidecar");
    assert_eq!(
        env.pid_of("web-sidecar", "web"),
        pids[1],
        "same container after daemon restart"
    );
    let out = exec(
        &env,
        "web-sidecar",
        "sidecar",
        &["wget", "-qO-", "http://localhost:80/"],
    );
    assert!(out.contains("hello"), "{out}");
    env.teardown();
}

#[test]
fn exec_passes_stdin_stdout_and_exit_code() {
    let env = Env::new();
    env.ok(&["apply", "-f", &example("init-config.yaml")]);
    env.wait_ready("init-config");
    let out = env.run(&[
        "exec",
        "init-config",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let mut child = std::process::Command::new(common::bin())
        .args(["exec", "-i", "init-config", "--", "tr", "a-z", "A-Z"])
        .env("PODHOST_ROOT", &env.root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn exec -i");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hello stdin\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO STDIN\n");
    let err = env.fails(&["exec", "init-config", "-c", "nope", "--", "true"]);
    assert!(err.contains("container nope is not valid"), "{err}");
    env.teardown();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
