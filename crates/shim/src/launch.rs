//! Command line, daemonizing, and starting the pause process.

use crate::sys::{self, ctx};
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Parsed command line of `podhost-shim`.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub dir: PathBuf,
    pub netns: PathBuf,
    pub hostname: String,
    pub pause: PathBuf,
    pub runc: PathBuf,
    pub runc_root: PathBuf,
    /// `hostPID`: the pause stays in the host's PID namespace.
    pub host_pid: bool,
    /// `hostIPC`: the pause stays in the host's IPC namespace.
    pub host_ipc: bool,
    /// `hostNetwork`: the pause stays in the host's UTS namespace too (UTS follows the
    /// network, as with containerd and CRI-O), and sets no hostname.
    pub host_uts: bool,
    /// Rotation of the containers' logs (`--log-max-size`, `--log-max-files`); none
    /// when the daemon that started us did not ask for it.
    pub log_rotation: Option<crate::logrotate::Policy>,
}

const USAGE: &str = "usage: podhost-shim --id <sandbox-id> --dir <state-dir> --netns <netns-file> \
--hostname <name> --pause <pause-binary> --runc <podhost-runc> --runc-root <dir> \
[--host-pid] [--host-ipc] [--host-uts] [--log-max-size <bytes> [--log-max-files <n>]]";

impl Config {
    /// Parses `--flag value` pairs (all required, no defaults) and the optional
    /// `--host-pid` / `--host-ipc` / `--host-uts` switches.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Config, String> {
        let mut vals: [Option<OsString>; 7] = Default::default();
        const NAMES: [&str; 7] = [
            "--id",
            "--dir",
            "--netns",
            "--hostname",
            "--pause",
            "--runc",
            "--runc-root",
        ];
        let mut it = args.into_iter();
        let (mut host_pid, mut host_ipc, mut host_uts) = (false, false, false);
        let mut log_flags = crate::logrotate::Flags::default();
        while let Some(flag) = it.next() {
            let flag = flag.to_string_lossy().into_owned();
            match flag.as_str() {
                "--host-pid" => {
                    host_pid = true;
                    continue;
                }
                "--host-ipc" => {
                    host_ipc = true;
                    continue;
                }
                "--host-uts" => {
                    host_uts = true;
                    continue;
                }
                _ => {}
            }
            if crate::logrotate::Flags::NAMES.contains(&flag.as_str()) {
                let v = it
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
                log_flags.set(&flag, &v.to_string_lossy())?;
                continue;
            }
            let slot = NAMES
                .iter()
                .position(|n| *n == flag)
                .ok_or_else(|| format!("unknown argument {flag:?}\n{USAGE}"))?;
            let v = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            vals[slot] = Some(v);
        }
        let mut take = |i: usize| {
            vals[i]
                .take()
                .ok_or_else(|| format!("missing {}\n{USAGE}", NAMES[i]))
        };
        let string = |v: OsString, name: &str| {
            v.into_string()
                .map_err(|_| format!("{name} is not valid UTF-8"))
        };
        let id = string(take(0)?, "--id")?;
        let dir = PathBuf::from(take(1)?);
        let netns = PathBuf::from(take(2)?);
        let hostname = string(take(3)?, "--hostname")?;
        let pause = PathBuf::from(take(4)?);
        let runc = PathBuf::from(take(5)?);
        let runc_root = PathBuf::from(take(6)?);
        if id.is_empty() || id.contains('/') {
            return Err(format!("invalid --id {id:?}"));
        }
        Ok(Config {
            id,
            dir,
            netns,
            hostname,
            pause,
            runc,
            runc_root,
            host_pid,
            host_ipc,
            host_uts,
            log_rotation: log_flags.policy()?,
        })
    }
}

/// Result of [`fork_daemon`], seen from each side of the fork.
pub enum Forked {
    /// We are the original process; exit with this code.
    Parent(i32),
    /// We are the shim; report readiness on this pipe.
    Child(OwnedFd),
}

/// Forks the shim off the caller (see [`Forked`]).
pub fn fork_daemon() -> io::Result<Forked> {
    let (r, w) = sys::pipe().map_err(|e| ctx(e, "create readiness pipe"))?;
    // SAFETY: the process is single-threaded here, so fork is safe.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(ctx(io::Error::last_os_error(), "fork shim"));
    }
    if pid == 0 {
        drop(r);
        return Ok(Forked::Child(w));
    }
    drop(w);
    // The child writes one line: "OK <json>" or "ERR <message>". EOF without
    // a line means it died before finishing start-up.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match sys::read(r.as_raw_fd(), &mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.contains(&b'\n') {
                    break;
                }
            }
            Err(e) => {
                eprintln!("podhost-shim: reading readiness pipe: {e}");
                return Ok(Forked::Parent(1));
            }
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next().unwrap_or("");
    if let Some(json) = line.strip_prefix("OK ") {
        println!("{json}");
        Ok(Forked::Parent(0))
    } else if let Some(msg) = line.strip_prefix("ERR ") {
        eprintln!("podhost-shim: {msg}");
        Ok(Forked::Parent(1))
    } else {
        // Reap it if it already died so the caller does not inherit a zombie.
        let status = sys::try_wait(pid)
            .ok()
            .flatten()
            .map(|(_, s)| sys::decode_status(s));
        eprintln!("podhost-shim: shim process {pid} exited during start-up (status {status:?})");
        Ok(Forked::Parent(1))
    }
}

/// Sends the readiness line to the waiting parent (and closes the pipe).
pub fn report(ready: OwnedFd, line: &str) {
    let mut msg = line.replace('\n', " ");
    msg.push('\n');
    let _ = sys::write_all(ready.as_raw_fd(), msg.as_bytes());
}

/// Detaches from the caller's session and makes us the pod's reaper.
pub fn detach() -> io::Result<()> {
    // SAFETY: plain syscalls.
    unsafe {
        sys::cvt(libc::setsid()).map_err(|e| ctx(e, "setsid"))?;
        sys::cvt(libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
            .map_err(|e| ctx(e, "prctl(PR_SET_CHILD_SUBREAPER)"))?;
    }
    let null = sys::dev_null()?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        sys::cvt(unsafe { libc::dup2(null.as_raw_fd(), fd) })
            .map_err(|e| ctx(e, "redirect stdio to /dev/null"))?;
    }
    Ok(())
}

/// Child-side error report through a pipe: errno plus the failing step.
fn child_fail(fd: libc::c_int, step: u8) -> ! {
    // SAFETY: only async-signal-safe calls between fork and exec/_exit.
    unsafe {
        let errno = *libc::__errno_location();
        let mut msg = [0u8; 5];
        msg[0] = step;
        msg[1..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

const STEPS: [&str; 6] = [
    "setns(CLONE_NEWNET)",
    "unshare(CLONE_NEWIPC|CLONE_NEWUTS|CLONE_NEWPID, minus the host's namespaces asked for)",
    "sethostname",
    "fork pause",
    "exec pause binary",
    "set up stdio",
];

/// Starts the pause binary as PID 1 of a new PID namespace, in the pinned
/// network namespace and new IPC/UTS namespaces. Returns its pid (in our
/// namespace); it becomes our child once the intermediate process exits.
pub fn start_pause(cfg: &Config) -> io::Result<libc::pid_t> {
    let netns = std::fs::File::open(&cfg.netns)
        .map_err(|e| ctx(e, format!("open network namespace {}", cfg.netns.display())))?;
    let pause = sys::cpath(&cfg.pause)?;
    let argv0 = pause.clone();
    let hostname = CString::new(cfg.hostname.clone().into_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "hostname contains NUL"))?;
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let (rep_r, rep_w) = sys::pipe().map_err(|e| ctx(e, "create pause report pipe"))?;
    // UTS is the pod's own (its hostname) unless the pod uses the host's network; IPC and
    // PID stay the host's when the pod asks for hostIPC / hostPID.
    let own_uts = !cfg.host_uts;
    let mut unshare_flags = 0;
    if own_uts {
        unshare_flags |= libc::CLONE_NEWUTS;
    }
    if !cfg.host_ipc {
        unshare_flags |= libc::CLONE_NEWIPC;
    }
    if !cfg.host_pid {
        unshare_flags |= libc::CLONE_NEWPID;
    }

    // SAFETY: single-threaded; the child uses only async-signal-safe calls
    // on data prepared before the fork.
    let mid = unsafe { libc::fork() };
    if mid < 0 {
        return Err(ctx(io::Error::last_os_error(), "fork pause launcher"));
    }
    if mid == 0 {
        let w = rep_w.as_raw_fd();
        unsafe {
            if libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                child_fail(w, 0);
            }
            if unshare_flags != 0 && libc::unshare(unshare_flags) != 0 {
                child_fail(w, 1);
            }
            if own_uts && libc::sethostname(hostname.as_ptr(), hostname.as_bytes().len()) != 0 {
                child_fail(w, 2);
            }
            let mut ex = [0 as libc::c_int; 2];
            if libc::pipe2(ex.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                child_fail(w, 3);
            }
            let pid = libc::fork();
            if pid < 0 {
                child_fail(w, 3);
            }
            if pid == 0 {
                // The pause must see SIGTERM/SIGCHLD, which the shim blocks.
                sys::reset_signals_for_exec();
                libc::execv(pause.as_ptr(), argv.as_ptr());
                child_fail(ex[1], 4);
            }
            libc::close(ex[1]);
            // EOF means exec succeeded (CLOEXEC closed the write end).
            let mut msg = [0u8; 5];
            let n = libc::read(ex[0], msg.as_mut_ptr().cast(), msg.len());
            if n == msg.len() as isize {
                libc::waitpid(pid, std::ptr::null_mut(), 0);
                libc::write(w, msg.as_ptr().cast(), msg.len());
                libc::_exit(1);
            }
            let mut ok = [0xffu8; 5];
            ok[1..].copy_from_slice(&pid.to_ne_bytes());
            libc::write(w, ok.as_ptr().cast(), ok.len());
            libc::_exit(0);
        }
    }
    drop(rep_w);
    drop(netns);
    let mut msg = [0u8; 5];
    let mut got = 0;
    while got < msg.len() {
        match sys::read(rep_r.as_raw_fd(), &mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => break,
        }
    }
    let status = sys::wait_pid(mid).map_err(|e| ctx(e, "wait for pause launcher"))?;
    let value = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
    if got == msg.len() && msg[0] == 0xff {
        return Ok(value);
    }
    if got == msg.len() {
        let step = STEPS
            .get(msg[0] as usize)
            .copied()
            .unwrap_or("unknown step");
        let err = io::Error::from_raw_os_error(value);
        let what = match msg[0] {
            0 => format!("{step} into {}", cfg.netns.display()),
            2 => format!("{step} {:?}", cfg.hostname),
            4 => format!("{step} {}", cfg.pause.display()),
            _ => step.to_string(),
        };
        return Err(ctx(err, format!("start pause: {what}")));
    }
    Err(io::Error::other(format!(
        "start pause: launcher exited without report (status {:?})",
        sys::decode_status(status)
    )))
}
