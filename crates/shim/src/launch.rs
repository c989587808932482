//! Command line and daemonizing.

use crate::sys::{self, ctx};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

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
    /// How often subscribers get an `alive` event (`--heartbeat-ms`): the daemon's proof
    /// that this loop still answers, cheaper than a status request per pod.
    pub heartbeat: Duration,
}

const USAGE: &str = "usage: podhost-shim --id <sandbox-id> --dir <state-dir> --netns <netns-file> \
--hostname <name> --pause <pause-binary> --runc <podhost-runc> --runc-root <dir> \
[--host-pid] [--host-ipc] [--host-uts] [--log-max-size <bytes> [--log-max-files <n>]] \
[--heartbeat-ms <ms>]";

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
        let mut heartbeat = crate::proto::HEARTBEAT;
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
            if flag == "--heartbeat-ms" {
                let v = it
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
                heartbeat = v
                    .to_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| format!("invalid --heartbeat-ms {v:?}: a number of ms > 0"))?;
                continue;
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
            heartbeat,
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
