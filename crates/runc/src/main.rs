//! `podhost-runc`: a short-lived OCI runtime helper around youki's libcontainer.
//!
//! The per-pod shim links no container library; it runs this helper for each
//! operation. `create` leaves the container init as a child of this process
//! (libcontainer clones it with CLONE_PARENT from its intermediate process),
//! then exits, so the init is reparented to the shim, a child subreaper.
//! The process is single-threaded on purpose: libcontainer forks/clones.

mod seal;
mod tenant;
mod trace;

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::syscall::syscall::SyscallType;
use nix::errno::Errno;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

mod named_cgroups;
mod teardown;

/// Command line of the helper.
#[derive(Parser, Debug)]
#[command(
    name = "podhost-runc",
    version,
    about = "podhost's OCI runtime helper (libcontainer)"
)]
struct Cli {
    /// Directory holding the state of the containers (one subdirectory per id).
    #[arg(long)]
    root: PathBuf,
    /// On failure, also write the error message to this file.
    #[arg(long)]
    error_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Operations on containers.
#[derive(Subcommand, Debug)]
enum Command {
    /// Create a container from a bundle and leave it in the "created" state.
    Create {
        /// Bundle directory containing config.json.
        #[arg(long)]
        bundle: PathBuf,
        /// File receiving the pid of the container init (written atomically).
        #[arg(long)]
        pid_file: PathBuf,
        /// Unix socket that receives the pty master (only when process.terminal is true).
        #[arg(long)]
        console_socket: Option<PathBuf>,
        id: String,
    },
    /// Start a created container (exec of its user process).
    Start { id: String },
    /// Run a process in a running container, wait for it and exit with its code.
    Exec {
        /// Allocate a pty and send its master to this unix socket.
        #[arg(long)]
        console_socket: Option<PathBuf>,
        id: String,
        /// Command and arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Delete a container (its state dir and cgroup); no-op if it does not exist.
    Delete {
        /// Kill the container's processes first if it is still running.
        #[arg(long)]
        force: bool,
        id: String,
    },
    /// Print the container state as JSON.
    State { id: String },
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE at start-up, and an ignored disposition survives exec: reset it
    // so the container's processes start with the default, as under runc.
    // SAFETY: plain signal(2) call before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let trace = trace::Trace::install();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // One paragraph: the operation's context, then the cause chain; then what
            // libcontainer logged on the way, its container processes' errors included
            // (their own error reaches us as one top-level line, without the failed
            // mount or path).
            let mut msg = format!("podhost-runc: {err:#}");
            if let Some(log) = trace
                .as_ref()
                .map(trace::Trace::read)
                .filter(|l| !l.is_empty())
            {
                msg.push_str("\nlibcontainer log:\n");
                msg.push_str(log.trim_end());
            }
            eprintln!("{msg}");
            if let Some(path) = &cli.error_file {
                if let Err(e) = fs::write(path, format!("{msg}\n")) {
                    eprintln!("podhost-runc: cannot write error file {path:?}: {e}");
                }
            }
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<u8> {
    let root = &cli.root;
    if let Command::Create { .. } = &cli.command {
        fs::create_dir_all(root).with_context(|| format!("create state root {root:?}"))?;
    }
    // Only create and exec put processes into containers; without a state root there is
    // no container to exec in.
    if matches!(cli.command, Command::Create { .. } | Command::Exec { .. }) && root.is_dir() {
        seal::ensure_sealed(root).context("run from a sealed copy of the helper")?;
    }
    match &cli.command {
        Command::Create {
            bundle,
            pid_file,
            console_socket,
            id,
        } => create(root, bundle, pid_file, console_socket.as_deref(), id)
            .with_context(|| format!("create container {id:?} from bundle {bundle:?}"))
            .map(|()| 0),
        Command::Start { id } => start(root, id)
            .with_context(|| format!("start container {id:?}"))
            .map(|()| 0),
        Command::Exec {
            console_socket,
            id,
            command,
        } => exec(root, id, command, console_socket.as_deref())
            .with_context(|| format!("exec {command:?} in container {id:?}")),
        Command::Delete { force, id } => delete(root, id, *force)
            .with_context(|| format!("delete container {id:?}"))
            .map(|()| 0),
        Command::State { id } => state(root, id)
            .with_context(|| format!("state of container {id:?}"))
            .map(|()| 0),
    }
}

fn builder(root: &Path, id: &str) -> Result<ContainerBuilder> {
    ContainerBuilder::new(id.to_string(), SyscallType::default())
        .validate_id()
        .context("invalid container id")?
        .with_root_path(root)
        .with_context(|| format!("invalid state root {root:?}"))
}

fn create(
    root: &Path,
    bundle: &Path,
    pid_file: &Path,
    console_socket: Option<&Path>,
    id: &str,
) -> Result<()> {
    let bundle = fs::canonicalize(bundle).context("bundle directory")?;
    let config = bundle.join("config.json");
    if !config.is_file() {
        bail!("{config:?} does not exist");
    }
    let cgroups_path = Spec::load(&config)
        .with_context(|| format!("load {config:?}"))?
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    // The init inherits this helper's cgroups in the v1 hierarchies libcontainer leaves
    // alone (name=systemd): its own there, not the host's.
    let joined = match &cgroups_path {
        Some(p) => Some(named_cgroups::join(&p.to_string_lossy())?),
        None => None,
    };
    // stdio is not set on the builder: the container init inherits ours
    // (the shim's pipes and /dev/null). The pid file is written by us, not by
    // libcontainer, so that it only appears once the container is fully
    // created, and atomically.
    let built = builder(root, id).and_then(|b| {
        b.with_console_socket(console_socket)
            .as_init(&bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .context("libcontainer failed to create the container")
    });
    let result = built.and_then(|container| {
        container
            .pid()
            .ok_or_else(|| anyhow!("libcontainer returned no init pid"))
            .and_then(|pid| write_pid_file(pid_file, pid.as_raw()))
            .inspect_err(|_| {
                // Undo: nothing half-created may be left behind.
                let mut c = container;
                let _ = c.delete(true);
            })
    });
    if let (Err(_), Some(j)) = (&result, joined) {
        j.leave();
    }
    result
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("create pid file {tmp:?}"))?;
    f.write_all(pid.to_string().as_bytes())
        .with_context(|| format!("write pid file {tmp:?}"))?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("rename pid file to {path:?}"))?;
    Ok(())
}

fn load(root: &Path, id: &str) -> Result<Option<Container>> {
    let dir = root.join(id);
    if !dir.exists() {
        return Ok(None);
    }
    Container::load(dir)
        .map(Some)
        .with_context(|| format!("load state from {:?}", root.join(id)))
}

fn load_existing(root: &Path, id: &str) -> Result<Container> {
    load(root, id)?.ok_or_else(|| anyhow!("container does not exist in {root:?}"))
}

fn start(root: &Path, id: &str) -> Result<()> {
    let mut container = load_existing(root, id)?;
    container
        .start()
        .context("libcontainer failed to start the container")
}

/// Process to exec, written next to the container state and handed to
/// libcontainer: the container's own process (env, cwd, user, caps,
/// rlimits…) with other args, which is what `runc exec --process` does, run under the
/// container's seccomp filter too ([`tenant::SecuredExec`]).
fn exec(root: &Path, id: &str, command: &[String], console_socket: Option<&Path>) -> Result<u8> {
    let container = load_existing(root, id)?;
    if container.status() != ContainerStatus::Running {
        bail!("container is {}, not running", container.status());
    }
    let config = container.bundle().join("config.json");
    let spec = Spec::load(&config).with_context(|| format!("load {config:?}"))?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| anyhow!("{config:?} has no process section"))?;
    if console_socket.is_some() {
        // What docker and the CRI runtimes give a TTY exec, so shells and pagers know
        // what they talk to; the image's own TERM wins.
        let mut env = process.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
            process.set_env(Some(env));
        }
    }
    process
        .set_args(Some(command.to_vec()))
        .set_terminal(Some(console_socket.is_some()))
        .set_console_size(None);
    // Before the process file is written: it may lend capabilities for loading the filter.
    let executor = tenant::SecuredExec::new(seccomp, &mut process)?;
    let process_file = container
        .root
        .join(format!("exec-{}.json", std::process::id()));
    // It holds the container's environment, Secrets included: root's only.
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&process_file)
        .and_then(|mut f| f.write_all(&serde_json::to_vec(&process)?))
        .with_context(|| format!("write {process_file:?}"))?;

    let built = builder(root, id).and_then(|b| {
        b.with_console_socket(console_socket)
            .with_executor(executor)
            .as_tenant()
            .with_process(Some(&process_file))
            // "detached" only decides whether a terminal needs a console
            // socket; we wait for the process in any case (it is our child).
            .with_detach(console_socket.is_some())
            .build()
            .context("libcontainer failed to start the process")
    });
    let _ = fs::remove_file(&process_file);
    if let Some(sock) = console_socket {
        remove_console_links(&container.root, sock);
    }
    let pid = built?;
    forward_signals(pid)?;
    wait_exit_code(pid)
}

/// libcontainer reaches the console socket through a `tenant-tty-*` symlink it makes in
/// the container's state dir (short socket paths) and never removes; one per exec would
/// pile up for the container's lifetime.
fn remove_console_links(container_dir: &Path, sock: &Path) {
    let Ok(entries) = fs::read_dir(container_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with("tenant-tty-")
            && fs::read_link(e.path()).is_ok_and(|t| t == sock)
        {
            let _ = fs::remove_file(e.path());
        }
    }
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: std::os::raw::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // kill(2) is async-signal-safe.
        if let Ok(sig) = Signal::try_from(sig) {
            let _ = signal::kill(Pid::from_raw(pid), sig);
        }
    }
}

/// Relays termination signals sent to this helper (e.g. by the shim on an
/// exec timeout) to the exec'd process, so it does not outlive us.
fn forward_signals(pid: Pid) -> Result<()> {
    CHILD.store(pid.as_raw(), Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe { signal::sigaction(sig, &action) }
            .with_context(|| format!("install handler for {sig}"))?;
    }
    Ok(())
}

fn wait_exit_code(pid: Pid) -> Result<u8> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128u8.wrapping_add(sig as u8)),
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).with_context(|| format!("wait for exec'd process {pid}")),
        }
    }
}

fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let Some(mut container) = load(root, id)? else {
        return Ok(());
    };
    let config = container.spec().ok();
    if force {
        // Without poststop hooks to run (podhost's bundles have none), a forced delete is
        // done here: libcontainer's reads the host's whole mount table 24 times.
        if let Some(c) = config.as_ref().filter(|c| c.hooks.is_none()) {
            // Every hierarchy, the named ones of named_cgroups included.
            return teardown::delete_forced(&c.cgroup_path.to_string_lossy(), &container.root);
        }
        // Kill every process of the cgroup even when the init is already
        // gone: with a shared PID namespace, children of the init survive it.
        // Errors are ignored because delete() kills and checks again.
        let _ = container.kill(Signal::SIGKILL, true);
    }
    container
        .delete(force)
        .context("libcontainer failed to delete the container")?;
    if let Some(c) = config {
        named_cgroups::remove(&c.cgroup_path.to_string_lossy());
    }
    Ok(())
}

fn state(root: &Path, id: &str) -> Result<()> {
    let container = load_existing(root, id)?;
    let json = serde_json::to_string_pretty(&container.state)?;
    println!("{json}");
    Ok(())
}
