//! End-to-end tests of podhost-runc against real namespaces and cgroups.
//! They need root; every test cleans up its containers, cgroups and holder
//! processes (also on panic) and they can run in parallel.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::symlink;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use podhost_oci::{
    container_spec, write_bundle, BindMount, ContainerParams, PodNamespaces, Seccomp,
};

mod seccomp_probe;
use seccomp_probe::security_status;

/// The binary under test; PODHOST_RUNC_BIN overrides it (e.g. to time a
/// release build).
fn runc_bin() -> String {
    std::env::var("PODHOST_RUNC_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_podhost-runc").into())
}
const CONTROLLERS: [&str; 8] = [
    "memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "blkio",
];

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Makes this test process the subreaper of everything it starts, like the
/// shim: a container init outliving podhost-runc is reparented to us.
fn become_subreaper() {
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
}

fn ns_inode(pid: i32, ns: &str) -> u64 {
    fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .unwrap_or_else(|e| panic!("stat /proc/{pid}/ns/{ns}: {e}"))
        .ino()
}

fn ppid_of(pid: i32) -> i32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" of comm: state, ppid, ...
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A pause-like process owning new net/ipc/uts/pid namespaces.
struct Holder {
    unshare: Child,
    /// PID (host view) of the process inside the new PID namespace.
    pid: i32,
    hostname: String,
}

impl Holder {
    fn start() -> Holder {
        let hostname = unique("holder");
        let hostname = hostname[..hostname.len().min(60)].to_string();
        let unshare = Command::new("unshare")
            .args(["--net", "--ipc", "--uts", "--pid", "--fork", "--kill-child"])
            .args(["/bin/busybox", "sh", "-c"])
            .arg(format!(
                "/bin/busybox hostname {hostname} && exec /bin/busybox sleep 1000"
            ))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let mut holder = Holder {
            pid: 0,
            unshare,
            hostname,
        };
        let upid = holder.unshare.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Wait until the forked child has set the hostname and exec'd sleep.
        loop {
            assert!(Instant::now() < deadline, "holder did not start");
            let children = fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
                .unwrap_or_default();
            if let Some(child) = children.split_whitespace().next() {
                let child: i32 = child.parse().unwrap();
                let cmdline = fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
                if cmdline.windows(7).any(|w| w == b"\0sleep\0") {
                    holder.pid = child;
                    return holder;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The pod's network, IPC, UTS and PID namespaces, all joined.
    fn pod_namespaces(&self) -> PodNamespaces {
        PodNamespaces {
            net: Some(self.ns("net")),
            ipc: Some(self.ns("ipc")),
            uts: Some(self.ns("uts")),
            pid: Some(self.ns("pid")),
            host_pid: false,
        }
    }

    fn ns(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{name}", self.pid))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // --kill-child makes unshare's death kill the PID-namespace init,
        // which takes every process of that namespace with it.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// One container: temp rootfs + bundle + state root, unique cgroup path.
/// Drop force-deletes it, reaps its init and removes the cgroup parent.
struct TestContainer {
    dir: tempfile::TempDir,
    id: String,
    cgroup_parent: String,
    cgroups_path: String,
    init_pid: Option<i32>,
    /// The helper binary to run ([`runc_bin`] unless a test copies it).
    bin: PathBuf,
}

impl TestContainer {
    fn new(args: &[&str], namespaces: PodNamespaces) -> TestContainer {
        Self::with(args, namespaces, |_| {})
    }

    fn with(
        args: &[&str],
        namespaces: PodNamespaces,
        tweak: impl FnOnce(&mut ContainerParams),
    ) -> TestContainer {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "echo", "cat", "sleep", "ps", "hostname", "ls", "ip", "id", "readlink", "grep",
            "unshare",
        ] {
            symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        fs::write(rootfs.join("etc/hosts"), "").unwrap();
        let hosts = dir.path().join("hosts");
        fs::write(&hosts, "127.0.0.1 localhost podhost-test\n").unwrap();

        let id = unique("c");
        let cgroup_parent = unique("/podhost-test");
        let cgroups_path = format!("{cgroup_parent}/{id}");
        let params = ContainerParams {
            rootfs,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["GREETING=hello".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            namespaces,
            mounts: vec![BindMount {
                source: hosts,
                destination: "/etc/hosts".into(),
                readonly: true,
                ..Default::default()
            }],
            cgroups_path: cgroups_path.clone(),
            readonly_rootfs: false,
            terminal: false,
            ..Default::default()
        };
        let mut params = params;
        tweak(&mut params);
        let spec = container_spec(&params).unwrap();
        write_bundle(&dir.path().join("bundle"), &spec).unwrap();
        TestContainer {
            dir,
            id,
            cgroup_parent,
            cgroups_path,
            init_pid: None,
            bin: PathBuf::from(runc_bin()),
        }
    }

    fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn runc(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(self.state_root());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.runc()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run podhost-runc")
    }

    /// `create` with the given pipes as the container's stdout/stderr;
    /// returns the init pid.
    fn create(&mut self, stdout: std::io::PipeWriter) -> i32 {
        self.create_with_stderr(stdout, Stdio::inherit())
    }

    fn create_with_stderr(&mut self, stdout: std::io::PipeWriter, stderr: Stdio) -> i32 {
        let pid_file = self.dir.path().join("init.pid");
        let err_file = self.dir.path().join("error");
        let status = {
            let mut cmd = self.runc();
            cmd.arg("--error-file")
                .arg(&err_file)
                .arg("create")
                .arg("--bundle")
                .arg(self.dir.path().join("bundle"))
                .arg("--pid-file")
                .arg(&pid_file)
                .arg(&self.id)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr);
            // The Command (and our copy of the pipe's write end) is dropped at
            // the end of this block: only the container keeps it open.
            cmd.status().unwrap()
        };
        assert!(
            status.success(),
            "create failed: {}",
            fs::read_to_string(&err_file).unwrap_or_default()
        );
        let pid: i32 = fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        self.init_pid = Some(pid);
        pid
    }

    /// `start`, which must succeed.
    fn start(&self) {
        let out = self.run(&["start", &self.id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `exec -- sleep 999` in the background; returns once the process is in the cgroup.
    fn spawn_exec_sleep(&self) -> Child {
        let helper = self
            .runc()
            .args(["exec", &self.id, "--", "sleep", "999"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let procs = self.cgroup_dir("devices").join("cgroup.procs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(&procs).unwrap().lines().count() < 2 {
            assert!(Instant::now() < deadline, "exec'd process did not appear");
            std::thread::sleep(Duration::from_millis(5));
        }
        helper
    }

    fn state_json(&self) -> serde_json::Value {
        let out = self.run(&["state", &self.id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn cgroup_dir(&self, ctrl: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join(self.cgroups_path.trim_start_matches('/'))
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = self.run(&["delete", "--force", &self.id]);
        if let Some(pid) = self.init_pid {
            // Reap the init if it is (still) our zombie child.
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
        for ctrl in CONTROLLERS {
            let base = Path::new("/sys/fs/cgroup").join(ctrl);
            let _ = fs::remove_dir(base.join(self.cgroups_path.trim_start_matches('/')));
            let _ = fs::remove_dir(base.join(self.cgroup_parent.trim_start_matches('/')));
        }
    }
}

/// Reads lines from a pipe on a thread, so tests can wait with a timeout.
fn line_reader(reader: std::io::PipeReader) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_line(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("no output from the container")
}

fn wait_for_exit(pid: i32) -> WaitStatus {
    waitpid(Pid::from_raw(pid), None).expect("init must be our (reparented) child")
}

#[test]
fn joined_namespaces_full_lifecycle() {
    become_subreaper();
    let holder = Holder::start();
    let mut c = TestContainer::new(
        &[
            "sh",
            "-c",
            "echo started; hostname; cat /etc/hosts; echo $GREETING; exec sleep 1000",
        ],
        holder.pod_namespaces(),
    );
    let (reader, writer) = std::io::pipe().unwrap();
    let lines = line_reader(reader);

    let t0 = Instant::now();
    let pid = c.create(writer);
    let created = t0.elapsed();

    // Created: the init exists, waits for start, and was reparented to us
    // (the subreaper) when podhost-runc exited.
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(ppid_of(pid), std::process::id() as i32);
    assert_eq!(c.state_json()["status"], "created");
    assert!(c.cgroup_dir("memory").is_dir());

    let t1 = Instant::now();
    let out = c.run(&["start", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = t1.elapsed();
    assert_eq!(next_line(&lines), "started");
    eprintln!(
        "timing: create {:?} + start {:?} (+first output {:?}) = {:?}",
        created,
        started,
        t1.elapsed(),
        t0.elapsed()
    );
    assert_eq!(next_line(&lines), holder.hostname);
    assert_eq!(next_line(&lines), "127.0.0.1 localhost podhost-test");
    assert_eq!(next_line(&lines), "hello");
    assert_eq!(c.state_json()["status"], "running");

    for ns in ["net", "ipc", "uts", "pid"] {
        assert_eq!(
            ns_inode(pid, ns),
            ns_inode(holder.pid, ns),
            "{ns} namespace not joined"
        );
    }
    let mnt = ns_inode(pid, "mnt");
    assert_ne!(mnt, ns_inode(holder.pid, "mnt"));
    assert_ne!(mnt, ns_inode(std::process::id() as i32, "mnt"));
    assert_ne!(
        ns_inode(pid, "net"),
        ns_inode(std::process::id() as i32, "net")
    );

    // exec: stdout inherited, exit code propagated, env from config.json.
    let out = c.run(&["exec", &c.id, "--", "echo", "hi"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = c.run(&["exec", &c.id, "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let out = c.run(&["exec", &c.id, "--", "sh", "-c", "echo $GREETING; hostname"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hello\n{}\n", holder.hostname)
    );
    let out = c.run(&["exec", &c.id, "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(128 + 9));
    // The exec'd process is in the container's namespaces.
    let out = c.run(&["exec", &c.id, "--", "readlink", "/proc/self/ns/mnt"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("mnt:[{mnt}]")
    );

    // delete --force kills, removes the cgroup and the state dir.
    let out = c.run(&["delete", "--force", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(matches!(
        wait_for_exit(pid),
        WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
    ));
    c.init_pid = None;
    for ctrl in CONTROLLERS {
        assert!(!c.cgroup_dir(ctrl).exists(), "{ctrl} cgroup left behind");
    }
    assert!(!c.state_root().join(&c.id).exists());
    // Deleting again is a quiet success.
    let out = c.run(&["delete", &c.id]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty());
}

#[test]
fn own_pid_namespace_runs_to_completion() {
    become_subreaper();
    let holder = Holder::start();
    let mut c = TestContainer::new(
        &["sh", "-c", "echo pid=$$; echo err >&2; exit 7"],
        PodNamespaces {
            net: Some(holder.ns("net")),
            ipc: Some(holder.ns("ipc")),
            uts: Some(holder.ns("uts")),
            pid: None,
            host_pid: false,
        },
    );
    let (mut reader, writer) = std::io::pipe().unwrap();
    let (mut ereader, ewriter) = std::io::pipe().unwrap();
    let pid = c.create_with_stderr(writer, ewriter.into());
    assert_ne!(ns_inode(pid, "pid"), ns_inode(holder.pid, "pid"));
    assert_ne!(
        ns_inode(pid, "pid"),
        ns_inode(std::process::id() as i32, "pid")
    );
    let out = c.run(&["start", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // EOF once the container exits: nobody else holds the pipe.
    let mut stdout = String::new();
    reader.read_to_string(&mut stdout).unwrap();
    assert_eq!(stdout, "pid=1\n");
    let mut stderr = String::new();
    ereader.read_to_string(&mut stderr).unwrap();
    assert_eq!(stderr, "err\n");
    assert!(matches!(wait_for_exit(pid), WaitStatus::Exited(_, 7)));
    c.init_pid = None;
    assert_eq!(c.state_json()["status"], "stopped");
    // A stopped container is deleted without --force.
    let out = c.run(&["delete", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!c.cgroup_dir("memory").exists());
    assert!(!c.state_root().join(&c.id).exists());
}

#[test]
fn delete_created_container() {
    become_subreaper();
    let mut c = TestContainer::new(&["echo", "never"], PodNamespaces::default());
    let (reader, writer) = std::io::pipe().unwrap();
    let pid = c.create(writer);
    // Host network: no net namespace entry means the host's.
    assert_eq!(
        ns_inode(pid, "net"),
        ns_inode(std::process::id() as i32, "net")
    );
    let out = c.run(&["delete", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(matches!(wait_for_exit(pid), WaitStatus::Signaled(..)));
    c.init_pid = None;
    assert!(!c.cgroup_dir("memory").exists());
    drop(reader);
}

#[test]
fn errors_are_reported_with_context() {
    let c = TestContainer::new(&["true"], PodNamespaces::default());
    let err_file = c.dir.path().join("err");
    let missing = c.dir.path().join("no-such-bundle");
    let out = c
        .runc()
        .arg("--error-file")
        .arg(&err_file)
        .args(["create", "--bundle"])
        .arg(&missing)
        .args(["--pid-file", "/tmp/never.pid", &c.id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = fs::read_to_string(&err_file).unwrap();
    assert!(msg.contains(&c.id), "{msg}");
    assert!(msg.contains("no-such-bundle"), "{msg}");
    assert!(msg.contains("No such file"), "{msg}");
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), msg.trim());

    let out = c.run(&["exec", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = c.run(&["start", "bad/id"]);
    assert_eq!(out.status.code(), Some(1));
    let out = c.run(&["delete", "--force", "nope"]);
    assert!(out.status.success());
}

#[test]
fn security_defaults_apply() {
    become_subreaper();
    let script = "grep CapEff /proc/self/status; \
        echo x 2>/dev/null >/newfile || echo rootfs-ro; \
        echo 1 2>/dev/null >/proc/sys/kernel/domainname || echo procsys-ro; \
        cat /proc/timer_list /proc/keys | wc -c; \
        ls /dev/null /dev/zero /dev/urandom /dev/tty >/dev/null && echo devices; \
        echo x > /dev/null && echo devnull-rw";
    let mut c = TestContainer::with(&["sh", "-c", script], PodNamespaces::default(), |p| {
        p.readonly_rootfs = true;
    });
    let wc = c.dir.path().join("rootfs/bin/wc");
    symlink("busybox", wc).unwrap();
    let (mut reader, writer) = std::io::pipe().unwrap();
    let pid = c.create(writer);
    let out = c.run(&["start", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stdout = String::new();
    reader.read_to_string(&mut stdout).unwrap();
    // containerd's default capability set is 0xa80425fb.
    assert_eq!(
        stdout,
        "CapEff:\t00000000a80425fb\nrootfs-ro\nprocsys-ro\n0\ndevices\ndevnull-rw\n"
    );
    assert!(matches!(wait_for_exit(pid), WaitStatus::Exited(_, 0)));
    c.init_pid = None;
}

#[test]
fn unprivileged_user() {
    become_subreaper();
    let mut c = TestContainer::with(
        &["sh", "-c", "id -u; id -g; id -G; pwd"],
        PodNamespaces::default(),
        |p| {
            p.uid = 1000;
            p.gid = 2000;
            p.additional_gids = vec![3000];
            p.cwd = "/etc".into();
        },
    );
    let (mut reader, writer) = std::io::pipe().unwrap();
    let pid = c.create(writer);
    let out = c.run(&["start", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stdout = String::new();
    reader.read_to_string(&mut stdout).unwrap();
    assert_eq!(stdout, "1000\n2000\n2000 3000\n/etc\n");
    assert!(matches!(wait_for_exit(pid), WaitStatus::Exited(_, 0)));
    c.init_pid = None;
}

#[test]
fn missing_executable_fails_create() {
    become_subreaper();
    let c = TestContainer::new(&["/no/such/binary"], PodNamespaces::default());
    let err_file = c.dir.path().join("err");
    let pid_file = c.dir.path().join("pid");
    let out = c
        .runc()
        .arg("--error-file")
        .arg(&err_file)
        .arg("create")
        .arg("--bundle")
        .arg(c.dir.path().join("bundle"))
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&c.id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = fs::read_to_string(&err_file).unwrap();
    assert!(msg.contains(&c.id), "{msg}");
    assert!(
        msg.contains("executable '/no/such/binary' not found"),
        "{msg}"
    );
    // Nothing half-created is left behind.
    assert!(!pid_file.exists());
    assert!(!c.state_root().join(&c.id).exists());
    assert!(!c.cgroup_dir("memory").exists());
}

#[test]
fn exec_forwards_termination_signals() {
    become_subreaper();
    let mut c = TestContainer::new(&["sleep", "1000"], PodNamespaces::default());
    let (_reader, writer) = std::io::pipe().unwrap();
    c.create(writer);
    let out = c.run(&["start", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut helper = c.spawn_exec_sleep();
    // The handler is installed right after the process is exec'd.
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(
        Pid::from_raw(helper.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = helper.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
}

#[test]
fn exec_on_a_terminal_sends_the_pty_master_to_the_console_socket() {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::io::IoSliceMut;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;

    become_subreaper();
    // Under the container's seccomp filter, loaded by the executor, like any exec.
    let mut c = TestContainer::with(&["sleep", "1000"], PodNamespaces::default(), |p| {
        p.security.seccomp = Seccomp::RuntimeDefault;
    });
    let (_reader, writer) = std::io::pipe().unwrap();
    c.create(writer);
    let out = c.run(&["start", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sock = c.dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let script = "readlink /proc/self/fd/0; readlink /proc/self/fd/2; echo TERM=$TERM; \
                  read -r pid comm state ppid pgrp sid tty rest < /proc/$$/stat; \
                  [ $sid = $$ ] && [ $tty != 0 ] && echo leader-with-ctty; \
                  grep Seccomp: /proc/self/status; exit 5";
    let mut helper = c
        .runc()
        .arg("exec")
        .arg("--console-socket")
        .arg(&sock)
        .args([&c.id, "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let master = msg
        .cmsgs()
        .unwrap()
        .find_map(|m| match m {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("a descriptor");
    // SAFETY: the descriptor was just received and is ours.
    let mut master = fs::File::from(unsafe { OwnedFd::from_raw_fd(master) });
    let mut screen = Vec::new();
    // Reads until EIO: every holder of the terminal is gone.
    let mut chunk = [0u8; 1024];
    while let Ok(n) = master.read(&mut chunk) {
        if n == 0 {
            break;
        }
        screen.extend_from_slice(&chunk[..n]);
    }
    let screen = String::from_utf8_lossy(&screen);
    assert_eq!(helper.wait().unwrap().code(), Some(5), "{screen}");
    let lines: Vec<&str> = screen.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(
        lines.len() >= 2 && lines[0].starts_with("/dev/pts/") && lines[0] == lines[1],
        "stdin and stderr on the same pty: {screen}"
    );
    assert!(lines.contains(&"TERM=xterm"), "{screen}");
    assert!(lines.contains(&"leader-with-ctty"), "{screen}");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().eq(["Seccomp:", "2"])),
        "{screen}"
    );
    // libcontainer's link to the console socket is not left behind.
    let links: Vec<_> = fs::read_dir(c.state_root().join(&c.id))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tenant-tty-"))
        .collect();
    assert!(links.is_empty(), "{links:?}");
}

/// An exec'd process runs under exactly the container's security context: its seccomp
/// filter (libcontainer's tenant builder drops it), no_new_privs, capability sets, user.
fn exec_gets_the_containers_security_context(tweak: impl FnOnce(&mut ContainerParams)) {
    become_subreaper();
    let mut c = TestContainer::with(
        &["sh", "-c", "seccomp-probe; exec sleep 1000"],
        PodNamespaces::default(),
        |p| {
            p.security.seccomp = Seccomp::RuntimeDefault;
            tweak(p);
        },
    );
    seccomp_probe::build(&c.dir.path().join("rootfs/bin"));
    let (reader, writer) = std::io::pipe().unwrap();
    let lines = line_reader(reader);
    let pid = c.create(writer);
    c.start();
    let init_probe: String = (0..10).map(|_| next_line(&lines) + "\n").collect();
    assert_eq!(
        init_probe,
        seccomp_probe::RUNTIME_DEFAULT,
        "the container's own process"
    );
    // Wait for the exec of sleep: the status of the shell would do, but not its comm.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n" {
        assert!(Instant::now() < deadline, "the init did not exec sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    let init = security_status(&fs::read_to_string(format!("/proc/{pid}/status")).unwrap());
    assert!(init.contains(&"Seccomp: 2".to_string()), "{init:?}");

    let out = c.run(&["exec", &c.id, "--", "cat", "/proc/self/status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        security_status(&String::from_utf8_lossy(&out.stdout)),
        init,
        "exec'd process vs the container's"
    );
    let out = c.run(&["exec", &c.id, "--", "seccomp-probe"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        seccomp_probe::RUNTIME_DEFAULT
    );
    let out = c.run(&["exec", &c.id, "--", "unshare", "-U", "true"]);
    assert!(!out.status.success(), "unshare -U must be refused");
}

#[test]
fn exec_gets_seccomp_and_capabilities_without_no_new_privs() {
    // Kubernetes' default (allowPrivilegeEscalation: true): the filter is loaded with
    // CAP_SYS_ADMIN lent to the process, which must not keep it.
    exec_gets_the_containers_security_context(|_| {});
}

#[test]
fn exec_gets_seccomp_and_no_new_privs_as_a_user_without_capabilities() {
    exec_gets_the_containers_security_context(|p| {
        p.security.no_new_privileges = true;
        p.security.cap_drop = vec!["ALL".into()];
        p.security.cap_add = vec!["NET_BIND_SERVICE".into()];
        p.uid = 1000;
        p.gid = 2000;
        p.additional_gids = vec![3000];
    });
}

#[test]
fn exec_gets_seccomp_as_a_user_without_capabilities_nor_no_new_privs() {
    // CAP_SETPCAP is lent too (to drop CAP_SYS_ADMIN from the bounding set again).
    exec_gets_the_containers_security_context(|p| {
        p.security.cap_drop = vec!["ALL".into()];
        p.uid = 1000;
        p.gid = 2000;
    });
}

#[test]
fn the_probe_sees_no_filter_in_an_unconfined_container() {
    // The control: the same calls, unfiltered, fail (or succeed) for other reasons.
    become_subreaper();
    let mut c = TestContainer::new(&["sleep", "1000"], PodNamespaces::default());
    seccomp_probe::build(&c.dir.path().join("rootfs/bin"));
    let (_reader, writer) = std::io::pipe().unwrap();
    c.create(writer);
    c.start();
    let out = c.run(&["exec", &c.id, "--", "seccomp-probe"]);
    let probe = String::from_utf8_lossy(&out.stdout);
    for line in [
        "io_uring_setup errno14",
        "personality_set ok",
        "clone3 errno22",
    ] {
        assert!(probe.lines().any(|l| l == line), "{line} in:\n{probe}");
    }
    let out = c.run(&["exec", &c.id, "--", "grep", "Seccomp:", "/proc/self/status"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Seccomp:\t0");
}

/// The binary behind `exe` cannot be written: sealed memfd, or read-only mount.
fn is_sealed(exe: &fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl/fstatvfs on a descriptor we own, with a valid out pointer.
    unsafe {
        let seals = libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS);
        let all = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        if seals >= 0 && seals & all == all {
            return true;
        }
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::fstatvfs(exe.as_raw_fd(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0
    }
}

/// `/proc/<pid>/exe` is a sealed copy of the helper, not the helper's file; returns
/// what the link shows.
fn assert_runs_sealed(pid: i32, helper: &Path, what: &str) -> PathBuf {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_ne!(exe, helper, "{what} runs from the helper's own file");
    let f = fs::File::open(format!("/proc/{pid}/exe")).unwrap();
    assert!(is_sealed(&f), "{what} runs from {exe:?}, which is writable");
    exe
}

#[test]
fn container_init_and_exec_run_from_a_sealed_copy_of_the_helper() {
    become_subreaper();
    let mut c = TestContainer::new(&["sleep", "1000"], PodNamespaces::default());
    let (_reader, writer) = std::io::pipe().unwrap();
    let pid = c.create(writer);
    // Created: the init is the helper's clone, waiting for start.
    assert_runs_sealed(pid, &c.bin, "the container init");
    c.start();

    let mut helper = c.spawn_exec_sleep();
    let hpid = helper.id() as i32;
    assert_runs_sealed(hpid, &c.bin, "the exec helper");
    // The attack's own move: hold the binary, wait for the helper to go, open it for
    // writing through /proc/self/fd. Refused, or a sealed memfd (no byte is written).
    let held = fs::File::open(format!("/proc/{hpid}/exe")).unwrap();
    nix::sys::signal::kill(Pid::from_raw(hpid), nix::sys::signal::Signal::SIGTERM).unwrap();
    helper.wait().unwrap();
    use std::os::fd::AsRawFd;
    match fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", held.as_raw_fd()))
    {
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}"),
        Ok(w) => assert!(is_sealed(&w), "the helper's binary opened for writing"),
    }
}

#[test]
fn a_sealed_memfd_copy_serves_where_overlayfs_cannot() {
    // The helper in the directory above its state root: overlayfs refuses nested layers.
    become_subreaper();
    let mut c = TestContainer::new(&["sleep", "1000"], PodNamespaces::default());
    c.bin = c.dir.path().join("podhost-runc");
    fs::copy(runc_bin(), &c.bin).unwrap();
    let (_reader, writer) = std::io::pipe().unwrap();
    let pid = c.create(writer);
    let exe = assert_runs_sealed(pid, &c.bin, "the container init");
    assert!(
        exe.to_string_lossy().starts_with("/memfd:podhost-runc"),
        "{exe:?}"
    );
    c.start();
    let out = c.run(&["exec", &c.id, "--", "echo", "hi"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
}

#[test]
fn forced_delete_kills_what_the_init_left_in_a_shared_pid_namespace() {
    become_subreaper();
    let holder = Holder::start();
    // In the pod's PID namespace the init's children outlive it (reparented to the
    // namespace's init, the holder): delete --force must find them by the cgroup.
    let mut c = TestContainer::new(
        &[
            "sh",
            "-c",
            "sleep 1000 & sleep 1000 & echo forked; exec sleep 1000",
        ],
        holder.pod_namespaces(),
    );
    let (reader, writer) = std::io::pipe().unwrap();
    let lines = line_reader(reader);
    let pid = c.create(writer);
    let out = c.run(&["start", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(next_line(&lines), "forked");
    let procs = c.cgroup_dir("pids").join("cgroup.procs");
    let members: Vec<i32> = fs::read_to_string(&procs)
        .expect("cgroup.procs")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(members.len(), 3, "init and two children: {members:?}");
    // The init dies first, as when its container exits on its own.
    nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .expect("kill init");
    wait_for_exit(pid);
    c.init_pid = None;
    let out = c.run(&["delete", "--force", &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let alive = |p: &i32| {
        fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
        })
    };
    while members.iter().any(alive) {
        assert!(Instant::now() < deadline, "left alive: {members:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for ctrl in CONTROLLERS {
        assert!(!c.cgroup_dir(ctrl).exists(), "{ctrl} cgroup left behind");
    }
    assert!(!c.state_root().join(&c.id).exists());
}
