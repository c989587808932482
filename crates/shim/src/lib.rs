//! podhost-shim: the per-pod supervisor process.
//!
//! One shim per pod is the parent (child subreaper) of the pod's pause
//! process and containers. It creates containers through the short-lived
//! `podhost-runc` helper, keeps their exit codes, writes their output to CRI
//! log files, runs exec sessions and answers the daemon on
//! `<state-dir>/shim.sock` using the protocol in [`proto`].

pub mod crilog;
mod launch;
pub mod logrotate;
mod pause;
pub mod proto;
mod server;
mod sys;

pub use launch::Config;

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

/// Entry point of the `podhost-shim` binary; returns the process exit code.
pub fn main_entry() -> i32 {
    let cfg = match Config::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("podhost-shim: {e}");
            return 2;
        }
    };
    if let Err(e) = make_state_dir(&cfg) {
        eprintln!("podhost-shim: {e}");
        return 1;
    }
    let ready = match launch::fork_daemon() {
        Ok(launch::Forked::Parent(code)) => return code,
        Ok(launch::Forked::Child(w)) => w,
        Err(e) => {
            eprintln!("podhost-shim: sandbox {}: {e}", cfg.id);
            return 1;
        }
    };
    let mut shim = match setup(cfg) {
        Ok((shim, line)) => {
            launch::report(ready, &format!("OK {line}"));
            shim
        }
        Err(e) => {
            launch::report(ready, &format!("ERR {e}"));
            return 1;
        }
    };
    shim.run();
    0
}

fn make_state_dir(cfg: &Config) -> Result<(), String> {
    if !cfg.dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.dir)
            .map_err(|e| format!("create state dir {}: {e}", cfg.dir.display()))?;
        fs::set_permissions(&cfg.dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod state dir {}: {e}", cfg.dir.display()))?;
    }
    Ok(())
}

/// Everything between the fork and readiness; returns the shim and the JSON line.
fn setup(cfg: Config) -> Result<(server::Shim, String), String> {
    let fail = |e: io::Error| format!("sandbox {}: {e}", cfg.id);
    launch::detach().map_err(fail)?;
    let mut diag = server::open_diag(&cfg.dir);
    let set = sys::block_signals(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT])
        .map_err(|e| fail(sys::ctx(e, "block signals")))?;
    let sigfd = sys::signalfd(&set).map_err(|e| fail(sys::ctx(e, "signalfd")))?;
    // How long the pause took to start, for the daemon's start-up trace.
    let pause_t0 = std::time::Instant::now();
    let pause_pid = match pause::start_pause(&cfg) {
        Ok(p) => p,
        Err(e) => {
            let msg = fail(e);
            server::diag_line(&mut diag, &msg);
            return Err(msg);
        }
    };
    let undo = |msg: String| {
        // Do not leave a pod half-started: the pause must not outlive us.
        let _ = sys::kill(pause_pid, libc::SIGKILL);
        let _ = sys::wait_pid(pause_pid);
        msg
    };
    let write = |name: &str, pid: i32| {
        let p = cfg.dir.join(name);
        fs::write(&p, format!("{pid}\n")).map_err(|e| format!("write {}: {e}", p.display()))
    };
    write("pause.pid", pause_pid).map_err(undo)?;
    let pause_us = pause_t0.elapsed().as_micros();
    let shim_pid = std::process::id() as i32;
    let shim = server::Shim::new(cfg.clone(), diag, pause_pid, sigfd).map_err(|e| undo(fail(e)))?;
    write("shim.pid", shim_pid).map_err(undo)?;
    Ok((
        shim,
        format!("{{\"pause_pid\":{pause_pid},\"shim_pid\":{shim_pid},\"pause_us\":{pause_us}}}"),
    ))
}
