//! End-to-end: cgroup limits, QoS, OOMKilled, and the security context, run for real.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{container_status, Env};

/// Host directory of a process's cgroup in v1 hierarchy `ctrl` (or the v2 tree).
fn cgroup_dir(pid: u32, ctrl: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup file");
    let v2 = common::cgroup_v2();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if v2 && ctrls.is_empty() {
            return PathBuf::from(format!("/sys/fs/cgroup{path}"));
        }
        if !v2 && ctrls.split(',').any(|c| c == ctrl) {
            return PathBuf::from(format!("/sys/fs/cgroup/{ctrl}{path}"));
        }
    }
    panic!("no {ctrl} cgroup for {pid} in:\n{text}");
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0)
}

const LIMITED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: limited}
spec:
  containers:
  - name: busy
    image: busybox
    command: ["sh", "-c", "while :; do :; done"]
    resources:
      limits: {cpu: 100m, memory: 64Mi}
"#;

#[test]
fn limits_in_cgroup_files_pod_cgroup_and_cpu_throttling() {
    let mut env = Env::new();
    env.apply("limited.yaml", LIMITED);
    let pod = env.wait_ready("limited");
    assert_eq!(pod["status"]["qosClass"], "Guaranteed");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let busy = env.pid_of("limited", "busy");
    let pause = env.pid_of("limited", "POD");
    let v2 = common::cgroup_v2();

    let mem = cgroup_dir(busy, "memory");
    let cpu = cgroup_dir(busy, "cpu");
    let pod_mem = mem.parent().expect("pod cgroup").to_path_buf();
    // Guaranteed pods sit right under the parent: <parent>/pod<uid>/<container>.
    assert!(
        pod_mem.ends_with(format!("{}/pod{uid}", env.cgroup_parent)),
        "{}",
        pod_mem.display()
    );
    if v2 {
        assert_eq!(read(mem.join("memory.max")), "67108864");
        assert_eq!(read(cpu.join("cpu.max")), "10000 100000");
        assert_eq!(read(pod_mem.join("memory.max")), "67108864");
        assert_eq!(read(pod_mem.join("pids.max")), "4096");
        // 100m → 102 shares → weight 17 with runc 1.3's conversion, in the container's
        // cgroup (libcontainer) and the pod's (podhost) alike.
        assert_eq!(read(cpu.join("cpu.weight")), "17");
        assert_eq!(read(pod_mem.join("cpu.weight")), "17");
    } else {
        assert_eq!(read(mem.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "10000");
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        // 100m → 102 shares (kubelet's milliCPUToShares).
        assert_eq!(read(cpu.join("cpu.shares")), "102");
        assert_eq!(read(pod_mem.join("memory.limit_in_bytes")), "67108864");
        let pod_cpu = cpu.parent().expect("pod cpu cgroup").to_path_buf();
        assert_eq!(read(pod_cpu.join("cpu.cfs_quota_us")), "10000");
        let pod_pids = cgroup_dir(busy, "pids")
            .parent()
            .expect("pod")
            .to_path_buf();
        assert_eq!(read(pod_pids.join("pids.max")), "4096");
    }
    // The pause lives in the pod cgroup too, in its own leaf.
    let pause_mem = cgroup_dir(pause, "memory");
    assert_eq!(pause_mem, pod_mem.join("pause"));

    // Guaranteed asks for -997; without CAP_SYS_RESOURCE it is clamped, never fatal.
    let adj: i32 = read(PathBuf::from(format!("/proc/{busy}/oom_score_adj")))
        .parse()
        .expect("oom_score_adj");
    assert!((-997..=0).contains(&adj), "oom_score_adj {adj}");

    // The busy loop is held to 10% of a CPU: the CFS throttles it.
    std::thread::sleep(Duration::from_millis(1500));
    let stat = read(cpu.join("cpu.stat"));
    let throttled = keyed(&stat, "nr_throttled ");
    eprintln!("cpu.stat after 1.5s at 100m:\n{stat}\noom_score_adj {adj}");
    assert!(throttled > 0, "not throttled:\n{stat}");

    // top: the busy loop runs at its 100m limit; the pod line sums it and the pause.
    let top = env.ok(&["top", "pod", "limited", "--containers"]);
    eprintln!("{top}");
    let busy_cpu: u64 = top
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("busy"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|c| c.trim_end_matches('m').parse().ok())
        .unwrap_or_else(|| panic!("no busy row in:\n{top}"));
    assert!(
        (50..=150).contains(&busy_cpu),
        "busy at {busy_cpu}m:\n{top}"
    );
    let pods = env.ok(&["top", "pod"]);
    eprintln!("{pods}");
    assert!(pods.lines().any(|l| l.starts_with("limited")), "{pods}");

    // The API socket is root's only: 0600 in a directory only root enters.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: PathBuf| std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(env.root.join("run/podhost.sock")), 0o600);
    assert_eq!(mode(env.root.join("run")), 0o700);

    let describe = env.ok(&["describe", "pod", "limited"]);
    assert!(describe.contains("Guaranteed"), "{describe}");
    env.teardown();
}

const OOM: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Always
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    resources:
      limits: {memory: 64Mi}
  - name: leaky
    image: busybox
    # tail keeps the whole (newline-free) input in memory: 100 MiB of anonymous memory.
    command: ["sh", "-c", "head -c 100m /dev/zero | tail"]
    resources:
      limits: {memory: 32Mi}
"#;

#[test]
fn leaking_sidecar_is_oom_killed_alone_and_restarted() {
    let mut env = Env::new();
    env.apply("oom.yaml", OOM);
    let main = {
        env.wait_for("oom", "main running", Duration::from_secs(60), |p| {
            container_status(p, "main")["state"]["running"].is_object()
        });
        env.pid_of("oom", "main")
    };
    let pod = env.wait_for("oom", "leaky OOMKilled", Duration::from_secs(90), |p| {
        let s = container_status(p, "leaky");
        s["restartCount"].as_i64().unwrap_or(0) >= 1
            && s["lastState"]["terminated"]["reason"] == "OOMKilled"
    });
    let leaky = container_status(&pod, "leaky");
    assert_eq!(leaky["lastState"]["terminated"]["exitCode"], 137, "{leaky}");
    let m = container_status(&pod, "main");
    assert_eq!(m["restartCount"], 0, "main must survive: {m}");
    assert!(m["state"]["running"].is_object(), "{m}");
    assert!(common::alive(main));
    assert_eq!(pod["status"]["qosClass"], "Burstable");
    env.teardown();
}

const SECURITY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sec}
spec:
  restartPolicy: Never
  containers:
  - name: caps
    image: busybox
    command: ["sh", "-c", "grep CapEff /proc/self/status"]
  - name: mount
    image: busybox
    command: ["sh", "-c", "mkdir -p /mnt && mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED || echo DENIED"]
  - name: reboot
    image: busybox
    command: ["sh", "-c", "reboot -f 2>/dev/null; echo rc=$?"]
  - name: user
    image: busybox
    command: ["sh", "-c", "echo uid=$(id -u) gid=$(id -g) groups=$(id -G)"]
    securityContext: {runAsUser: 1000, runAsGroup: 3000}
  - name: rofs
    image: busybox
    command: ["sh", "-c", "touch /x 2>/dev/null && echo WROTE || echo READONLY"]
    securityContext: {readOnlyRootFilesystem: true}
  - name: seccomp
    image: busybox
    command: ["sh", "-c", "unshare -U true 2>/dev/null && echo ALLOWED || echo BLOCKED"]
    securityContext: {seccompProfile: {type: RuntimeDefault}}
  - name: unconfined
    image: busybox
    command: ["sh", "-c", "unshare -U true 2>/dev/null && echo ALLOWED || echo BLOCKED"]
    securityContext: {seccompProfile: {type: Unconfined}}
  - name: priv
    image: busybox
    command: ["sh", "-c", "mkdir -p /mnt && mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED || echo DENIED"]
    securityContext: {privileged: true}
  - name: nnp
    image: busybox
    command: ["sh", "-c", "grep NoNewPrivs /proc/self/status"]
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
"#;

#[test]
fn security_context_caps_seccomp_user_readonly_privileged() {
    let env = Env::new();
    env.apply("sec.yaml", SECURITY);
    let names = [
        "caps",
        "mount",
        "reboot",
        "user",
        "rofs",
        "seccomp",
        "unconfined",
        "priv",
        "nnp",
    ];
    env.wait_for("sec", "all containers ran", Duration::from_secs(90), |p| {
        names
            .iter()
            .all(|n| container_status(p, n)["state"]["terminated"].is_object())
    });
    let log = |c: &str| env.ok(&["logs", "sec", "-c", c]).trim().to_string();
    // containerd's default set: CapEff 00000000a80425fb.
    assert_eq!(log("caps"), "CapEff:\t00000000a80425fb");
    assert_eq!(log("mount").lines().last().unwrap_or(""), "DENIED");
    let reboot = log("reboot");
    assert!(
        reboot.contains("rc=") && !reboot.contains("rc=0"),
        "{reboot}"
    );
    assert_eq!(log("user"), "uid=1000 gid=3000 groups=3000");
    assert_eq!(log("rofs").lines().last().unwrap_or(""), "READONLY");
    assert_eq!(log("seccomp").lines().last().unwrap_or(""), "BLOCKED");
    assert_eq!(log("unconfined"), "ALLOWED");
    assert_eq!(log("priv"), "MOUNTED");
    assert_eq!(log("nnp"), "NoNewPrivs:\t1");
    env.teardown();
}

#[test]
fn run_as_non_root_refuses_a_root_image() {
    let env = Env::new();
    env.apply(
        "nonroot.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: nonroot}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
"#,
    );
    let pod = env.wait_for(
        "nonroot",
        "CreateContainerConfigError",
        Duration::from_secs(60),
        |p| {
            container_status(p, "app")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        },
    );
    let msg = container_status(&pod, "app")["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        msg.contains("container has runAsNonRoot and image will run as root"),
        "{msg}"
    );
    env.teardown();
}

#[test]
fn host_pid_and_host_ipc_share_the_hosts_namespaces() {
    let mut env = Env::new();
    env.apply(
        "hostns.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hostns}
spec:
  hostPID: true
  hostIPC: true
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
"#,
    );
    env.wait_ready("hostns");
    let app = env.pid_of("hostns", "app");
    let pause = env.pid_of("hostns", "POD");
    let me = std::process::id();
    for kind in ["pid", "ipc"] {
        assert_eq!(common::ns(app, kind), common::ns(me, kind), "{kind} of app");
        assert_eq!(
            common::ns(pause, kind),
            common::ns(me, kind),
            "{kind} of pause"
        );
    }
    // UTS stays the pod's own (its hostname).
    assert_ne!(common::ns(app, "uts"), common::ns(me, "uts"));
    // The host's processes are visible: our own test process among them.
    let ps = env.ok(&[
        "exec",
        "hostns",
        "-c",
        "app",
        "--",
        "cat",
        &format!("/proc/{me}/comm"),
    ]);
    assert!(!ps.trim().is_empty());
    env.teardown();
}

#[test]
fn memory_empty_dir_is_a_sized_tmpfs_unmounted_with_the_pod() {
    let env = Env::new();
    env.apply(
        "memvol.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: memvol}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
  - name: scratch
    emptyDir: {medium: Memory, sizeLimit: 16Mi}
"#,
    );
    env.wait_ready("memvol");
    let df = env.ok(&["exec", "memvol", "-c", "app", "--", "df", "-k", "/scratch"]);
    // 16 MiB = 16384 KiB of tmpfs.
    assert!(
        df.contains("tmpfs") && df.contains("16384"),
        "df of /scratch: {df}"
    );
    // Writing past the size fails: the volume cannot grow beyond sizeLimit.
    let out = env.run(&[
        "exec",
        "memvol",
        "-c",
        "app",
        "--",
        "sh",
        "-c",
        "dd if=/dev/zero of=/scratch/f bs=1M count=20 2>&1; echo rc=$?",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No space left"), "{text}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let root = env.root.display().to_string();
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(&root) && l.contains("empty-dir/scratch") && l.contains("tmpfs")),
        "{mounts}"
    );
    // teardown's leak check covers the mount.
    env.teardown();
}

/// `podhost exec fsg -c app -- sh -c SCRIPT`, stdout trimmed.
fn in_app(env: &Env, script: &str) -> String {
    env.ok(&["exec", "fsg", "-c", "app", "--", "sh", "-c", script])
        .trim()
        .to_string()
}

#[test]
fn fs_group_owns_volumes_and_joins_the_groups() {
    let env = Env::new();
    let host_dir = env.root.join("hostdir");
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: fsg-secret}}\nstringData: {{key: hidden}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: fsg}}\nspec:\n  securityContext: {{runAsUser: 1000, fsGroup: 2000, supplementalGroups: [3000], fsGroupChangePolicy: OnRootMismatch}}\n  containers:\n  - name: app\n    image: busybox\n    command: [sh, -c, 'echo groups=$(id -G); sleep 3600']\n    volumeMounts:\n    - {{name: data, mountPath: /data}}\n    - {{name: mem, mountPath: /mem}}\n    - {{name: creds, mountPath: /etc/creds}}\n    - {{name: host, mountPath: /host}}\n  volumes:\n  - {{name: data, emptyDir: {{}}}}\n  - {{name: mem, emptyDir: {{medium: Memory}}}}\n  - name: creds\n    secret: {{secretName: fsg-secret, defaultMode: 0400}}\n  - name: host\n    hostPath: {{path: {}, type: DirectoryOrCreate}}\n",
        host_dir.display()
    );
    let out = env.apply("fsg.yaml", &yaml);
    assert!(!out.contains("fsGroupChangePolicy"), "no warning: {out}");
    let pod = env.wait_ready("fsg");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();

    // fsGroup and supplementalGroups are supplementary groups of the container and of
    // exec sessions.
    let logs = env.ok(&["logs", "fsg", "-c", "app"]);
    let groups: Vec<&str> = logs
        .trim()
        .strip_prefix("groups=")
        .unwrap_or("")
        .split(' ')
        .collect();
    assert!(
        groups.contains(&"2000") && groups.contains(&"3000"),
        "{logs}"
    );
    let ids = in_app(&env, "id -u; id -G");
    assert!(
        ids.starts_with("1000\n") && ids.contains(" 3000") && ids.contains(" 2000"),
        "{ids}"
    );
    // Volumes are group 2000, setgid, group-writable: uid 1000 writes to them and what
    // it creates belongs to the group.
    for vol in ["/data", "/mem"] {
        assert_eq!(
            in_app(&env, &format!("stat -c '%a %g' {vol}")),
            "2777 2000",
            "{vol}"
        );
        assert_eq!(
            in_app(
                &env,
                &format!("touch {vol}/f && mkdir {vol}/d && stat -c %g {vol}/f {vol}/d")
            ),
            "2000\n2000",
            "{vol}"
        );
    }
    // A 0400 secret becomes 0440 group 2000: readable by the non-root user through the group.
    assert_eq!(
        in_app(
            &env,
            "stat -L -c '%a %g' /etc/creds/key; cat /etc/creds/key"
        ),
        "440 2000\nhidden"
    );
    // hostPath is never chowned.
    assert_eq!(in_app(&env, "stat -c %g /host"), "0");
    let host_side = env
        .root
        .join("lib/volumes")
        .join(&uid)
        .join("empty-dir/data");
    let mode = {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let m = std::fs::metadata(&host_side).expect("emptyDir");
        (m.permissions().mode() & 0o7777, m.gid())
    };
    assert_eq!(mode, (0o2777, 2000));

    // Without fsGroup nothing is chowned (and the 0400 secret stays root's).
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: nofsg}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sleep, '3600']\n    volumeMounts:\n    - {name: data, mountPath: /data}\n    - {name: creds, mountPath: /etc/creds}\n  volumes:\n  - {name: data, emptyDir: {}}\n  - name: creds\n    secret: {secretName: fsg-secret, defaultMode: 0400}\n";
    env.apply("nofsg.yaml", yaml);
    env.wait_ready("nofsg");
    assert_eq!(
        env.ok(&[
            "exec",
            "nofsg",
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "stat -c '%a %g' /data; stat -L -c '%a %g' /etc/creds/key"
        ])
        .trim(),
        "777 0\n400 0"
    );
    env.teardown();
}

const CGROUPFS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: cgfs}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    resources:
      limits: {cpu: 250m, memory: 64Mi}
  - name: priv
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {privileged: true}
---
apiVersion: v1
kind: Pod
metadata: {name: neighbour}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
"#;

/// `sh -c SCRIPT` in a container of pod cgfs: its output (stderr merged) trimmed, whatever
/// the script's exit code.
fn sh(env: &Env, container: &str, script: &str) -> String {
    env.ok(&[
        "exec",
        "cgfs",
        "-c",
        container,
        "--",
        "sh",
        "-c",
        &format!("({script}) 2>&1; true"),
    ])
    .trim()
    .to_string()
}

/// Issue 12 item 7: from inside, `echo 209715200 > …/memory.limit_in_bytes` raised the
/// container's own limit and `/sys/fs/cgroup/systemd` was the host's root hierarchy,
/// writable. The cgroupfs is read-only in every hierarchy; on v2 the container has a cgroup
/// namespace of its own and sees its cgroup as the root. A privileged container sees the
/// host's cgroupfs writable and shares the host's cgroup namespace, as under containerd.
#[test]
fn cgroupfs_is_read_only_and_private_inside_containers() {
    let mut env = Env::new();
    env.apply("cgfs.yaml", CGROUPFS);
    let pod = env.wait_ready("cgfs");
    env.wait_ready("neighbour");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let app = env.pid_of("cgfs", "app");
    let v2 = common::cgroup_v2();
    let erofs = "Read-only file system";

    // The attack of the issue, and every other hierarchy and the cgroupfs root.
    let limit_file = if v2 {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let out = sh(&env, "app", &format!("echo 209715200 > {limit_file}"));
    assert!(out.contains(erofs), "raising the own limit: {out}");
    assert_eq!(sh(&env, "app", &format!("cat {limit_file}")), "67108864");
    let host_limit = if v2 {
        cgroup_dir(app, "memory").join("memory.max")
    } else {
        cgroup_dir(app, "memory").join("memory.limit_in_bytes")
    };
    assert_eq!(read(host_limit), "67108864", "the limit is unchanged");
    let out = sh(
        &env,
        "app",
        "touch /sys/fs/cgroup/x; for d in /sys/fs/cgroup/*/; do mkdir \"$d/x\" && echo \"WROTE $d\"; done; true",
    );
    assert!(out.contains(erofs) && !out.contains("WROTE"), "{out}");
    // Nothing of the other pods (nor of this pod's other container) is in sight.
    let out = sh(
        &env,
        "app",
        "find /sys/fs/cgroup -name 'pod*' -o -name 'podhost*' | head -5; echo end",
    );
    assert_eq!(out, "end", "cgroups of other pods visible");

    if v2 {
        assert_eq!(sh(&env, "app", "cat /proc/self/cgroup"), "0::/");
        // Its own cgroup is the root: limits and processes are its own.
        assert_eq!(
            sh(&env, "app", "cat /sys/fs/cgroup/cpu.max"),
            "25000 100000"
        );
        // 250m → 256 shares → weight 35 (runc 1.3's conversion; the linear one gave 10).
        assert_eq!(sh(&env, "app", "cat /sys/fs/cgroup/cpu.weight"), "35");
        // The container's own process too, not only exec sessions like these.
        assert_eq!(sh(&env, "app", "cat /proc/1/cgroup"), "0::/");
        let app_ns = common::ns(app, "cgroup");
        assert_ne!(app_ns, common::ns(std::process::id(), "cgroup"));
        let other = env.pid_of("neighbour", "app");
        assert_ne!(app_ns, common::ns(other, "cgroup"), "one namespace each");
    } else {
        let out = sh(
            &env,
            "app",
            "echo 1 > /sys/fs/cgroup/systemd/notify_on_release",
        );
        assert!(out.contains(erofs), "systemd hierarchy: {out}");
        // The systemd hierarchy shows the container's own cgroup, not the host's root.
        let out = sh(&env, "app", "ls /sys/fs/cgroup/systemd");
        assert!(
            out.contains("cgroup.procs") && !out.contains("release_agent"),
            "{out}"
        );
        let own = std::fs::read_to_string(format!("/proc/{app}/cgroup")).expect("cgroup");
        assert!(
            own.lines()
                .any(|l| l.contains(":name=systemd:/") && l.contains(&format!("/pod{uid}/"))),
            "{own}"
        );
    }

    // Privileged: the host's cgroupfs, writable (here: its own limit, rewritten as is).
    let own = sh(&env, "priv", "cat /proc/self/cgroup");
    if v2 {
        let path = own.strip_prefix("0::").expect("v2 entry");
        assert!(path.contains(&format!("/pod{uid}/")), "{own}");
        let out = sh(
            &env,
            "priv",
            &format!("f=/sys/fs/cgroup{path}/memory.max; v=$(cat $f); echo $v > $f && echo OK"),
        );
        assert_eq!(out, "OK");
    } else {
        let out = sh(
            &env,
            "priv",
            "f=/sys/fs/cgroup/memory/memory.limit_in_bytes; v=$(cat $f); echo $v > $f && echo OK",
        );
        assert_eq!(out, "OK");
    }
    env.teardown();
}
