//! The shim's single-threaded event loop: one poll(2) over the listening
//! socket, client connections, container output pipes, exec pipes and a
//! signalfd. Nothing in here may block on a container or a client, except
//! the short synchronous `podhost-runc` start/delete helpers: a create's helper runs
//! while the loop goes on (creates of one pod overlap), and is answered when it exits.

use crate::crilog::{self, LineSplitter};
use crate::launch::Config;
use crate::logrotate::LogWriter;
use crate::proto::{
    frame, ContainerState, ContainerStatus, ErrorCode, Event, Request, Response, TerminalSize,
    PAUSE_ID,
};
use crate::sys::{self, ctx};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A failed request: its class for the daemon, and the message for people.
#[derive(Debug)]
struct Failure {
    code: ErrorCode,
    message: String,
}

impl Failure {
    fn new(code: ErrorCode, message: String) -> Self {
        Failure { code, message }
    }
}

/// Unclassified failures (a helper or a system call failed) are internal.
impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::new(ErrorCode::Internal, message)
    }
}

/// Stop reading a client's input while this much is queued for it.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// A subscriber that falls this far behind is disconnected.
const OUT_MAX: usize = 8 << 20;
/// Longest request line accepted.
const MAX_REQUEST: usize = 1 << 20;
/// Upper bound on the output drained from an exec after its helper exited
/// (a background process may keep writing forever).
const EXEC_DRAIN_MAX: usize = 1 << 20;
const MAX_CLIENTS: usize = 128;
/// Exits of unknown processes kept while creates are pending (see `Shim::unknown_exits`).
const MAX_UNKNOWN_EXITS: usize = 1024;
/// How long a TTY exec's helper may take to hand over the pty master.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a TTY container's master may take to arrive once its create helper exited
/// (libcontainer sends it before that: this only covers a helper that leaves it to a
/// child).
const CONSOLE_AFTER_CREATE: Duration = Duration::from_secs(10);
const STREAMS: [&str; 2] = ["stdout", "stderr"];

struct Output {
    fd: OwnedFd,
    split: LineSplitter,
}

struct Container {
    token: u64,
    id: String,
    pid: libc::pid_t,
    state: ContainerState,
    exit_code: Option<i32>,
    signal: Option<i32>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    log_path: String,
    log: Option<LogWriter>,
    /// stdout and stderr pipes; with a TTY `[master, None]`: the terminal merges them.
    outputs: [Option<Output>; 2],
    /// Runs on a pseudo-terminal (CRI `tty`).
    tty: bool,
    /// The pty master of a TTY container, for window sizes from attached clients.
    pty: Option<OwnedFd>,
    /// Where attached clients' input goes: the write end of the container's stdin pipe,
    /// or a duplicate of its pty master. `None` without CRI `stdin`, or once closed.
    stdin: Option<OwnedFd>,
    /// Input not yet written to `stdin`.
    stdin_buf: Vec<u8>,
    /// Close `stdin` once `stdin_buf` is written (the container then reads EOF).
    stdin_eof: bool,
    /// CRI `stdin_once`: the first attach session with stdin closes it when it ends.
    stdin_once: bool,
}

/// How a container's stdio is set up (CRI `tty`, `stdin`, `stdin_once`).
#[derive(Clone, Copy, Default)]
struct StdioConfig {
    tty: bool,
    stdin: bool,
    stdin_once: bool,
}

/// A container whose create helper is still running; answered when the helper exits.
struct PendingCreate {
    /// The client waiting for the answer (gone if it gave up).
    client: u64,
    id: String,
    helper: libc::pid_t,
    started: Instant,
    stdio: StdioConfig,
    log_path: String,
    log: LogWriter,
    pid_file: PathBuf,
    out_r: OwnedFd,
    err_r: OwnedFd,
    stdin_w: Option<OwnedFd>,
    console: Option<ConsoleSocket>,
}

struct Exec {
    pid: libc::pid_t,
    /// The pty master of a TTY session, kept for TIOCSWINSZ (stdin and `out[0]` are
    /// duplicates of it; `out[1]` is then the helper's own stderr, since the terminal
    /// merges the process's).
    pty: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdin_buf: Vec<u8>,
    stdin_eof: bool,
    out: [Option<OwnedFd>; 2],
    exit: Option<i32>,
    /// The helper's error file (TTY sessions), removed with the session: the helper may
    /// write it until it exits.
    err_file: Option<PathBuf>,
}

impl Drop for Exec {
    fn drop(&mut self) {
        if let Some(f) = &self.err_file {
            let _ = fs::remove_file(f);
        }
    }
}

/// A client attached to a container's stdio.
struct Attach {
    /// The container's token.
    container: u64,
    /// Its input goes to the container's stdin (until it sends STDIN_CLOSE).
    stdin: bool,
    /// It receives the container's stdout, stderr.
    out: [bool; 2],
}

struct Client {
    token: u64,
    sock: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    subscribed: bool,
    exec: Option<Exec>,
    attach: Option<Attach>,
    /// Close once `outbuf` is flushed.
    closing: bool,
    dead: bool,
}

#[derive(Clone, Copy)]
enum Slot {
    Listener,
    Signal,
    Client(u64),
    CtrOut(u64, usize),
    CtrIn(u64),
    ExecOut(u64, usize),
    ExecIn(u64),
}

/// The running shim: pause process, containers and connections.
pub struct Shim {
    cfg: Config,
    diag: Option<File>,
    listener: UnixListener,
    sigfd: OwnedFd,
    pause_pid: libc::pid_t,
    pause_exit: Option<(i32, Option<i32>)>,
    containers: Vec<Container>,
    /// Creates whose helper runs.
    pending: Vec<PendingCreate>,
    /// Exits of processes not known when they were reaped, kept while creates are
    /// pending: a container's init may die before its create helper has exited.
    unknown_exits: Vec<(libc::pid_t, libc::c_int, i64)>,
    clients: Vec<Client>,
    next_token: u64,
    buf: Vec<u8>,
    stop: bool,
    /// When subscribers get their next `alive` event.
    next_heartbeat: Instant,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Opens `<dir>/shim.log` for appending diagnostics.
pub fn open_diag(dir: &Path) -> Option<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join("shim.log"))
        .ok()
}

/// Appends one timestamped line to the diagnostics log.
pub fn diag_line(f: &mut Option<File>, msg: &str) {
    if let Some(f) = f {
        let line = format!("{} {msg}\n", crilog::rfc3339_nano(sys::now_ns()));
        let _ = f.write_all(line.as_bytes());
    }
}

impl Shim {
    /// Binds the socket and sets up signal handling; the pause is already running.
    pub fn new(
        cfg: Config,
        mut diag: Option<File>,
        pause_pid: libc::pid_t,
        sigfd: OwnedFd,
    ) -> io::Result<Shim> {
        let sock_path = cfg.dir.join("shim.sock");
        match fs::remove_file(&sock_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(ctx(e, format!("remove stale {}", sock_path.display())))
            }
            _ => {}
        }
        let listener = UnixListener::bind(&sock_path)
            .map_err(|e| ctx(e, format!("bind {}", sock_path.display())))?;
        fs::set_permissions(&sock_path, fs::Permissions::from_mode(0o600))
            .map_err(|e| ctx(e, format!("chmod {}", sock_path.display())))?;
        listener.set_nonblocking(true)?;
        diag_line(
            &mut diag,
            &format!("shim {} started, pause pid {pause_pid}", cfg.id),
        );
        Ok(Shim {
            cfg,
            diag,
            listener,
            sigfd,
            pause_pid,
            pause_exit: None,
            containers: Vec::new(),
            pending: Vec::new(),
            unknown_exits: Vec::new(),
            clients: Vec::new(),
            next_token: 1,
            buf: vec![0u8; 64 * 1024],
            stop: false,
            next_heartbeat: Instant::now(),
        })
    }

    fn diag(&mut self, msg: &str) {
        diag_line(&mut self.diag, msg);
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Runs until `shutdown` (request or SIGTERM/SIGINT).
    pub fn run(&mut self) {
        // Children may have died before the signalfd existed.
        self.reap();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut slots: Vec<Slot> = Vec::new();
        while !self.stop {
            fds.clear();
            slots.clear();
            self.build_pollset(&mut fds, &mut slots);
            let timeout = self.heartbeat_due();
            // SAFETY: fds is a valid array of fds.len() pollfd entries.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    self.diag(&format!("poll failed: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            for (pfd, slot) in fds.iter().zip(slots.iter()) {
                if pfd.revents == 0 {
                    continue;
                }
                self.dispatch(*slot, pfd.revents);
                if self.stop {
                    break;
                }
            }
            self.drop_dead_clients();
        }
    }

    /// Sends the heartbeat when it is due; returns poll's timeout until the next one in
    /// ms (-1, none, without subscribers: an idle pod's shim then sleeps for good).
    fn heartbeat_due(&mut self) -> libc::c_int {
        if !self.clients.iter().any(|c| c.subscribed && !c.dead) {
            return -1;
        }
        let now = Instant::now();
        if now >= self.next_heartbeat {
            self.broadcast(&Event::Alive);
            self.next_heartbeat = now + self.cfg.heartbeat;
        }
        let left = self.next_heartbeat.saturating_duration_since(now);
        // Rounded up: woken a little late rather than early and spinning.
        left.as_millis()
            .saturating_add(1)
            .min(libc::c_int::MAX as u128) as libc::c_int
    }

    /// Forgets closed connections. An attach session that had stdin has ended: a
    /// `stdin_once` container's stdin closes with it.
    fn drop_dead_clients(&mut self) {
        let mut i = 0;
        while i < self.clients.len() {
            if !self.clients[i].dead {
                i += 1;
                continue;
            }
            let gone = self.clients.remove(i);
            if let Some(a) = gone.attach.filter(|a| a.stdin) {
                if let Some(c) = self.containers.iter_mut().find(|c| c.token == a.container) {
                    attach_stdin_ended(c);
                }
            }
        }
    }

    fn build_pollset(&self, fds: &mut Vec<libc::pollfd>, slots: &mut Vec<Slot>) {
        let mut push = |fd: RawFd, events: libc::c_short, slot: Slot| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            slots.push(slot);
        };
        if self.clients.len() < MAX_CLIENTS {
            push(self.listener.as_raw_fd(), libc::POLLIN, Slot::Listener);
        }
        push(self.sigfd.as_raw_fd(), libc::POLLIN, Slot::Signal);
        for c in &self.containers {
            for (s, o) in c.outputs.iter().enumerate() {
                if let Some(o) = o {
                    push(o.fd.as_raw_fd(), libc::POLLIN, Slot::CtrOut(c.token, s));
                }
            }
            if let Some(fd) = &c.stdin {
                if !c.stdin_buf.is_empty() {
                    push(fd.as_raw_fd(), libc::POLLOUT, Slot::CtrIn(c.token));
                }
            }
        }
        for c in &self.clients {
            let mut ev = 0;
            if !c.outbuf.is_empty() {
                ev |= libc::POLLOUT;
            }
            // Input waiting for its process (an exec's, or an attached container's, which
            // several clients may feed): read no more from this client until it drains.
            let backlog = match (&c.exec, &c.attach) {
                (Some(e), _) => e.stdin_buf.len(),
                (None, Some(a)) => self
                    .containers
                    .iter()
                    .find(|ctr| ctr.token == a.container)
                    .map_or(0, |ctr| ctr.stdin_buf.len()),
                (None, None) => 0,
            };
            // Nor from one whose create runs (a hang-up still shows as POLLHUP).
            let creating = self.pending.iter().any(|p| p.client == c.token);
            if !c.closing
                && !creating
                && c.outbuf.len() < OUT_HIGH_WATER
                && backlog < OUT_HIGH_WATER
            {
                ev |= libc::POLLIN;
            }
            push(c.sock.as_raw_fd(), ev, Slot::Client(c.token));
            if let Some(e) = &c.exec {
                if c.outbuf.len() < OUT_HIGH_WATER {
                    for (s, fd) in e.out.iter().enumerate() {
                        if let Some(fd) = fd {
                            push(fd.as_raw_fd(), libc::POLLIN, Slot::ExecOut(c.token, s));
                        }
                    }
                }
                if let Some(fd) = &e.stdin {
                    if !e.stdin_buf.is_empty() {
                        push(fd.as_raw_fd(), libc::POLLOUT, Slot::ExecIn(c.token));
                    }
                }
            }
        }
    }

    fn dispatch(&mut self, slot: Slot, revents: libc::c_short) {
        match slot {
            Slot::Listener => self.accept(),
            Slot::Signal => self.on_signals(),
            Slot::CtrOut(tok, s) => self.container_output(tok, s, false),
            Slot::CtrIn(tok) => {
                if let Some(c) = self.containers.iter_mut().find(|c| c.token == tok) {
                    feed_container_stdin(c);
                }
            }
            Slot::Client(tok) => self.client_io(tok, revents),
            Slot::ExecOut(tok, s) => {
                if let Some(i) = self.client_index(tok) {
                    let buf = &mut self.buf;
                    exec_output(&mut self.clients[i], s, buf, false);
                    finish_exec_if_done(&mut self.clients[i]);
                    flush_client(&mut self.clients[i]);
                }
            }
            Slot::ExecIn(tok) => {
                if let Some(i) = self.client_index(tok) {
                    if let Some(e) = self.clients[i].exec.as_mut() {
                        feed_stdin(e);
                    }
                }
            }
        }
    }

    fn client_index(&self, tok: u64) -> Option<usize> {
        self.clients.iter().position(|c| c.token == tok && !c.dead)
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if let Err(e) = sock.set_nonblocking(true) {
                        self.diag(&format!("client socket: set non-blocking: {e}"));
                        continue;
                    }
                    let token = self.token();
                    self.clients.push(Client {
                        token,
                        sock,
                        inbuf: Vec::new(),
                        outbuf: Vec::new(),
                        subscribed: false,
                        exec: None,
                        attach: None,
                        closing: false,
                        dead: false,
                    });
                }
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.diag(&format!("accept on shim.sock: {e}"));
                    return;
                }
            }
        }
    }

    fn on_signals(&mut self) {
        let sigs = sys::read_signals(self.sigfd.as_raw_fd());
        if sigs.contains(&(libc::SIGCHLD as u32)) {
            self.reap();
        }
        if let Some(&s) = sigs.iter().find(|&&s| s != libc::SIGCHLD as u32) {
            self.diag(&format!("received signal {s}, shutting down"));
            self.shutdown(false);
        }
    }

    fn reap(&mut self) {
        let mut exits = Vec::new();
        while let Ok(Some(exit)) = sys::try_wait(-1) {
            exits.push(exit);
        }
        // Create helpers first: a container's init reaped in the same round then finds
        // its container registered.
        exits.sort_by_key(|(pid, _)| !self.pending.iter().any(|p| p.helper == *pid));
        for (pid, status) in exits {
            self.on_exit(pid, status);
        }
    }

    fn on_exit(&mut self, pid: libc::pid_t, status: libc::c_int) {
        if let Some(i) = self.pending.iter().position(|p| p.helper == pid) {
            let p = self.pending.swap_remove(i);
            self.answer_create(p, status);
            return;
        }
        self.container_exited(pid, status, sys::now_ns());
    }

    fn container_exited(&mut self, pid: libc::pid_t, status: libc::c_int, at: i64) {
        let (code, signal) = sys::decode_status(status);
        if pid == self.pause_pid && self.pause_exit.is_none() {
            self.pause_exit = Some((code, signal));
            self.diag(&format!("pause {pid} exited with {code}"));
            self.broadcast(&Event::Exit {
                id: PAUSE_ID.into(),
                exit_code: code,
                signal,
            });
            return;
        }
        if let Some(c) = self
            .containers
            .iter_mut()
            .find(|c| c.pid == pid && c.state != ContainerState::Exited)
        {
            c.state = ContainerState::Exited;
            c.exit_code = Some(code);
            c.signal = signal;
            c.finished_at = Some(at);
            let id = c.id.clone();
            let token = c.token;
            self.broadcast(&Event::Exit {
                id,
                exit_code: code,
                signal,
            });
            self.end_attaches(token, code);
            return;
        }
        if let Some(c) = self.clients.iter_mut().find(|c| {
            c.exec
                .as_ref()
                .is_some_and(|e| e.pid == pid && e.exit.is_none())
        }) {
            if let Some(e) = c.exec.as_mut() {
                e.exit = Some(code);
            }
            // Whatever the command wrote before exiting is in the pipes now;
            // take it, then stop waiting for writers that outlive it.
            let buf = &mut self.buf;
            for s in 0..2 {
                exec_output(c, s, buf, true);
                if let Some(e) = c.exec.as_mut() {
                    e.out[s] = None;
                }
            }
            finish_exec_if_done(c);
            flush_client(c);
            return;
        }
        // An orphan reparented to us, or the init of a container still being created.
        if !self.pending.is_empty() {
            // Bounded: a hostPID container's orphans come here too, at any rate.
            if self.unknown_exits.len() >= MAX_UNKNOWN_EXITS {
                self.unknown_exits.remove(0);
            }
            self.unknown_exits.push((pid, status, at));
        }
    }

    fn broadcast(&mut self, ev: &Event) {
        let Ok(mut line) = serde_json::to_vec(ev) else {
            return;
        };
        line.push(b'\n');
        for c in self.clients.iter_mut().filter(|c| c.subscribed && !c.dead) {
            c.outbuf.extend_from_slice(&line);
            flush_client(c);
            if c.outbuf.len() > OUT_MAX {
                c.dead = true;
            }
        }
    }

    /// Reads a container's output once (with `drain`: all that is buffered, bounded by
    /// [`EXEC_DRAIN_MAX`]) into its log and to the clients attached to that stream.
    fn container_output(&mut self, tok: u64, s: usize, drain: bool) {
        let Shim {
            containers,
            clients,
            buf,
            diag,
            ..
        } = self;
        let Some(c) = containers.iter_mut().find(|c| c.token == tok) else {
            return;
        };
        let mut total = 0;
        let mut failed = None;
        while let Some(out) = c.outputs[s].as_mut() {
            let n = match sys::read(out.fd.as_raw_fd(), buf) {
                Ok(n) => n,
                Err(e) if would_block(&e) => break,
                // A pty master reads EIO once the terminal has no process left.
                Err(_) => 0,
            };
            let mut records = Vec::new();
            let now = sys::now_ns();
            let mut emit = |text: &[u8], full: bool| {
                crilog::format_record(&mut records, now, STREAMS[s], full, text)
            };
            if n == 0 {
                out.split.finish(&mut emit);
                c.outputs[s] = None;
            } else {
                out.split.push(&buf[..n], &mut emit);
                fan_out(clients, tok, s, &buf[..n]);
            }
            if !records.is_empty() {
                if let Some(log) = c.log.as_mut() {
                    if let Err(e) = log.append(&records, now) {
                        failed = Some(format!("container {}: {e}", c.id));
                    }
                }
            }
            total += n;
            if !drain || n == 0 || total >= EXEC_DRAIN_MAX {
                break;
            }
        }
        if c.outputs.iter().all(Option::is_none) {
            c.log = None;
        }
        if let Some(msg) = failed {
            diag_line(diag, &msg);
        }
    }

    /// The container exited: what it wrote before goes out to the attached clients, then
    /// each gets the exit code and its session ends. Its stdin has no reader any more.
    fn end_attaches(&mut self, tok: u64, code: i32) {
        for s in 0..2 {
            self.container_output(tok, s, true);
        }
        if let Some(c) = self.containers.iter_mut().find(|c| c.token == tok) {
            c.stdin = None;
            c.stdin_buf = Vec::new();
        }
        let attached = self.clients.iter_mut().filter(|cl| {
            !cl.dead && !cl.closing && cl.attach.as_ref().is_some_and(|a| a.container == tok)
        });
        for cl in attached {
            frame::encode(&mut cl.outbuf, frame::EXIT, &code.to_be_bytes());
            cl.closing = true;
            flush_client(cl);
        }
    }

    fn client_io(&mut self, tok: u64, revents: libc::c_short) {
        let Some(i) = self.client_index(tok) else {
            return;
        };
        if revents & libc::POLLOUT != 0 {
            flush_client(&mut self.clients[i]);
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            let c = &mut self.clients[i];
            match c.sock.read(&mut self.buf) {
                Ok(0) => {
                    c.dead = true;
                }
                Ok(n) => c.inbuf.extend_from_slice(&self.buf[..n]),
                Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => c.dead = true,
            }
            if c.dead {
                if let Some(e) = &c.exec {
                    if e.exit.is_none() {
                        // Nobody is listening any more (an exec_sync past its timeout):
                        // stop the session, the command included.
                        kill_session(e.pid);
                    }
                }
                return;
            }
            self.process_input(i);
        }
        if let Some(c) = self.clients.get_mut(i) {
            if c.outbuf.is_empty() && c.closing {
                c.dead = true;
            }
        }
    }

    fn process_input(&mut self, i: usize) {
        loop {
            // A client whose create runs gets no further request read until it is answered.
            let token = self.clients[i].token;
            if self.pending.iter().any(|p| p.client == token) {
                return;
            }
            let c = &mut self.clients[i];
            if c.closing || c.dead {
                return;
            }
            if c.exec.is_some() {
                process_frames(c);
                flush_client(c);
                return;
            }
            if c.attach.is_some() {
                self.attach_frames(i);
                flush_client(&mut self.clients[i]);
                return;
            }
            let Some(pos) = c.inbuf.iter().position(|&b| b == b'\n') else {
                if c.inbuf.len() > MAX_REQUEST {
                    c.outbuf
                        .extend_from_slice(b"{\"ok\":false,\"error\":\"request line too long\"}\n");
                    c.closing = true;
                    flush_client(c);
                }
                return;
            };
            let line: Vec<u8> = c.inbuf.drain(..=pos).collect();
            let line = &line[..pos];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let resp = match serde_json::from_slice::<Request>(line) {
                Ok(req) => self.handle(i, req),
                Err(e) => Some(Response::err(format!("invalid request: {e}"))),
            };
            if self.stop {
                return;
            }
            // None: a create, answered when its helper exits.
            if let Some(resp) = resp {
                respond(&mut self.clients[i], &resp);
            }
        }
    }

    /// The answer to `req`, or `None` when it comes later (a create).
    fn handle(&mut self, client: usize, req: Request) -> Option<Response> {
        let res = match req {
            Request::CreateContainer {
                id,
                bundle,
                log_path,
                tty,
                stdin,
                stdin_once,
            } => {
                let stdio = StdioConfig {
                    tty,
                    stdin,
                    stdin_once,
                };
                match self.create(client, &id, &bundle, &log_path, stdio) {
                    Ok(()) => return None,
                    Err(f) => Err(f),
                }
            }
            Request::StartContainer { id } => self.start(&id),
            Request::Signal { id, signal } => self.signal(&id, signal),
            Request::Status => Ok(self.status()),
            Request::Subscribe => {
                self.clients[client].subscribed = true;
                Ok(Response::ok())
            }
            Request::RemoveContainer { id } => self.remove(&id),
            Request::Attach {
                id,
                stdin,
                stdout,
                stderr,
            } => self.attach(client, &id, stdin, [stdout, stderr]),
            Request::ReopenLog { id } => self.reopen_log(&id),
            Request::Exec { id, cmd, tty, size } => {
                if tty {
                    self.exec_tty(client, &id, &cmd, size)
                } else {
                    self.exec(client, &id, &cmd)
                }
            }
            Request::Shutdown { removing } => {
                self.shutdown(removing);
                // Answer synchronously: the process exits right after.
                let c = &mut self.clients[client];
                let _ = c.sock.set_nonblocking(false);
                let _ = c.sock.write_all(&c.outbuf);
                let _ = c.sock.write_all(b"{\"ok\":true}\n");
                return Some(Response::ok());
            }
        };
        Some(res.unwrap_or_else(|f| Response::fail(f.code, f.message)))
    }

    fn find(&mut self, id: &str) -> Result<usize, Failure> {
        self.containers
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| {
                Failure::new(
                    ErrorCode::NotFound,
                    format!("container {id:?} not found in sandbox {}", self.cfg.id),
                )
            })
    }

    fn runc(&self) -> Command {
        let mut cmd = Command::new(&self.cfg.runc);
        cmd.arg("--root").arg(&self.cfg.runc_root);
        // The shim blocks SIGCHLD/SIGTERM/SIGINT for its signalfd; the helper and the
        // containers it creates must start with a clean mask and default dispositions.
        // SAFETY: reset_signals_for_exec only makes async-signal-safe calls.
        unsafe {
            cmd.pre_exec(|| {
                sys::reset_signals_for_exec();
                Ok(())
            });
        }
        cmd
    }

    fn err_file(&self, id: &str) -> PathBuf {
        self.cfg.dir.join(format!("{id}.err"))
    }

    /// Runs a synchronous helper; on failure returns a message with the error file's content.
    fn run_helper(&self, id: &str, what: &str, mut cmd: Command) -> Result<(), String> {
        let out = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| {
                format!(
                    "container {id}: {what}: run {}: {e}",
                    self.cfg.runc.display()
                )
            })?;
        if out.status.success() {
            return Ok(());
        }
        let detail = helper_error(&self.err_file(id), &out.stderr);
        Err(format!(
            "container {id}: {what} failed ({}): {detail}",
            out.status
        ))
    }

    /// Validates and spawns the create helper; the answer goes to `client` when the
    /// helper exits ([`Self::answer_create`]), the loop serving others meanwhile.
    fn create(
        &mut self,
        client: usize,
        id: &str,
        bundle: &str,
        log_path: &str,
        stdio: StdioConfig,
    ) -> Result<(), Failure> {
        if id.is_empty() || id.contains('/') || id == PAUSE_ID {
            return Err(Failure::new(
                ErrorCode::InvalidArgument,
                format!("invalid container id {id:?}"),
            ));
        }
        if self.containers.iter().any(|c| c.id == id) || self.pending.iter().any(|p| p.id == id) {
            return Err(Failure::new(
                ErrorCode::AlreadyExists,
                format!("container {id:?} already exists in sandbox {}", self.cfg.id),
            ));
        }
        if !Path::new(bundle).is_absolute() || !Path::new(log_path).is_absolute() {
            return Err(Failure::new(
                ErrorCode::InvalidArgument,
                format!(
                    "container {id}: bundle {bundle:?} and log_path {log_path:?} must be absolute"
                ),
            ));
        }
        if self.pause_exit.is_some() {
            return Err(Failure::new(
                ErrorCode::FailedPrecondition,
                format!(
                    "container {id}: pause process of sandbox {} has exited",
                    self.cfg.id
                ),
            ));
        }
        let log = LogWriter::open(Path::new(log_path), self.cfg.log_rotation)
            .map_err(|e| format!("container {id}: {e}"))?;
        let err_file = self.err_file(id);
        let pid_file = Path::new(bundle).join("pid");
        let _ = fs::remove_file(&err_file);
        let _ = fs::remove_file(&pid_file);
        let pipes = (|| -> io::Result<_> { Ok((sys::pipe()?, sys::pipe()?)) })()
            .map_err(|e| format!("container {id}: create output pipes: {e}"))?;
        let ((out_r, out_w), (err_r, err_w)) = pipes;
        // CRI `stdin` without a TTY: a pipe whose read end the container inherits.
        let stdin_pipe = match stdio.stdin && !stdio.tty {
            true => Some(sys::pipe().map_err(|e| format!("container {id}: stdin pipe: {e}"))?),
            false => None,
        };
        // With a TTY libcontainer makes the pty in the container's devpts and sends the
        // master here during create, as `runc create --console-socket` does.
        let console = match stdio.tty {
            true => {
                let token = self.token();
                let path = self.cfg.dir.join(format!("tty{token}"));
                Some(
                    ConsoleSocket::bind(path)
                        .map_err(|e| format!("container {id}: console socket: {e}"))?,
                )
            }
            false => None,
        };
        let mut cmd = self.runc();
        cmd.arg("--error-file")
            .arg(&err_file)
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file);
        if let Some(console) = &console {
            cmd.arg("--console-socket").arg(&console.path);
        }
        let (stdin_r, stdin_w) = match stdin_pipe {
            Some((r, w)) => (Stdio::from(r), Some(w)),
            None => (Stdio::null(), None),
        };
        cmd.arg(id)
            .stdin(stdin_r)
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w));
        let started = Instant::now();
        let spawned = cmd.spawn();
        // Drop our copies of the write ends now, or the pipes never hit EOF.
        drop(cmd);
        let child = spawned.map_err(|e| {
            format!(
                "container {id}: run {} create: {e}",
                self.cfg.runc.display()
            )
        })?;
        // From here the helper is reaped by the loop's waitpid(-1).
        self.pending.push(PendingCreate {
            client: self.clients[client].token,
            id: id.to_string(),
            helper: child.id() as libc::pid_t,
            started,
            stdio,
            log_path: log_path.to_string(),
            log,
            pid_file,
            out_r,
            err_r,
            stdin_w,
            console,
        });
        Ok(())
    }

    /// The create helper of `p` exited with `status`: register the container (or undo
    /// a failed create) and answer the client that asked.
    fn answer_create(&mut self, p: PendingCreate, status: libc::c_int) {
        let helper_us = p.started.elapsed().as_micros() as u64;
        let client = p.client;
        let resp = match self.register(p, status) {
            Ok(pid) => Response {
                pid: Some(pid),
                helper_us: Some(helper_us),
                ..Response::ok()
            },
            Err(f) => Response::fail(f.code, f.message),
        };
        if self.pending.is_empty() {
            self.unknown_exits.clear();
        }
        let Some(i) = self.client_index(client) else {
            // The client gave up (its timeout): the container stays, as a create that
            // finished just after the answer was read would.
            return;
        };
        respond(&mut self.clients[i], &resp);
        // Requests that came behind the create.
        self.process_input(i);
    }

    fn register(&mut self, p: PendingCreate, status: libc::c_int) -> Result<libc::pid_t, Failure> {
        let id = p.id.clone();
        let (code, signal) = sys::decode_status(status);
        if code != 0 || signal.is_some() {
            let mut early = vec![0u8; 4096];
            let _ = sys::set_nonblocking(&p.err_r);
            let n = sys::read(p.err_r.as_raw_fd(), &mut early).unwrap_or(0);
            let detail = helper_error(&self.err_file(&id), &early[..n]);
            let how = match signal {
                Some(sig) => format!("signal: {sig}"),
                None => format!("exit status: {code}"),
            };
            self.cleanup_failed(&id);
            return Err(format!("container {id}: runc create failed ({how}): {detail}").into());
        }
        let pid = match read_pid(&p.pid_file) {
            Ok(pid) => pid,
            Err(e) => {
                self.cleanup_failed(&id);
                return Err(format!("container {id}: {e}").into());
            }
        };
        let fds = match p.console {
            // The pipes only carried the helper's own messages: the container's stdio is
            // the terminal.
            Some(console) => wait_for_master(&console.listener, None, CONSOLE_AFTER_CREATE)
                .map_err(|e| match e {
                    WaitMaster::Failed(e) => format!("no terminal from the helper: {e}"),
                    WaitMaster::Exited(_) => "the helper exited without a terminal".into(),
                })
                .and_then(|m| terminal_stdio(m, p.stdio.stdin).map_err(|e| e.to_string())),
            None => pipe_stdio(p.out_r, p.err_r, p.stdin_w).map_err(|e| e.to_string()),
        };
        let (outputs, pty, stdin) = match fds {
            Ok(fds) => fds,
            Err(e) => {
                self.cleanup_failed(&id);
                return Err(format!("container {id}: stdio: {e}").into());
            }
        };
        let token = self.token();
        self.containers.push(Container {
            token,
            id: id.clone(),
            pid,
            state: ContainerState::Created,
            exit_code: None,
            signal: None,
            created_at: sys::now_ns(),
            started_at: None,
            finished_at: None,
            log_path: p.log_path,
            log: Some(p.log),
            outputs: outputs.map(|fd| {
                fd.map(|fd| Output {
                    fd,
                    split: LineSplitter::default(),
                })
            }),
            tty: p.stdio.tty,
            pty,
            stdin,
            stdin_buf: Vec::new(),
            stdin_eof: false,
            stdin_once: p.stdio.stdin_once,
        });
        self.diag(&format!("container {id} created, pid {pid}"));
        // Its init died before the helper was done: that exit is the container's.
        if let Some(k) = self.unknown_exits.iter().position(|(q, _, _)| *q == pid) {
            let (_, status, at) = self.unknown_exits.swap_remove(k);
            self.container_exited(pid, status, at);
        }
        Ok(pid)
    }

    fn cleanup_failed(&mut self, id: &str) {
        let mut cmd = self.runc();
        cmd.args(["delete", "--force", id]);
        if let Err(e) = self.run_helper(id, "delete after failed create", cmd) {
            self.diag(&e);
        }
    }

    fn start(&mut self, id: &str) -> Result<Response, Failure> {
        let i = self.find(id)?;
        match self.containers[i].state {
            ContainerState::Created => {}
            ContainerState::Running => {
                return Err(Failure::new(
                    ErrorCode::FailedPrecondition,
                    format!("container {id} is already running"),
                ))
            }
            ContainerState::Exited => {
                return Err(Failure::new(
                    ErrorCode::FailedPrecondition,
                    format!("container {id} has exited; it cannot be started"),
                ))
            }
        }
        let mut cmd = self.runc();
        cmd.arg("--error-file")
            .arg(self.err_file(id))
            .args(["start", id]);
        let helper_t0 = std::time::Instant::now();
        self.run_helper(id, "runc start", cmd)?;
        let helper_us = helper_t0.elapsed().as_micros() as u64;
        // Reaping happens only in the loop, so the state cannot have moved on.
        let c = &mut self.containers[i];
        c.state = ContainerState::Running;
        c.started_at = Some(sys::now_ns());
        Ok(Response {
            helper_us: Some(helper_us),
            ..Response::ok()
        })
    }

    fn signal(&mut self, id: &str, sig: i32) -> Result<Response, Failure> {
        let i = self.find(id)?;
        let c = &self.containers[i];
        if c.state != ContainerState::Running {
            return Err(Failure::new(
                ErrorCode::FailedPrecondition,
                format!("container {id} is not running"),
            ));
        }
        sys::kill(c.pid, sig)
            .map_err(|e| format!("container {id}: kill({}, {sig}): {e}", c.pid))?;
        Ok(Response::ok())
    }

    fn status(&self) -> Response {
        let containers = self
            .containers
            .iter()
            .map(|c| ContainerStatus {
                id: c.id.clone(),
                pid: c.pid,
                state: c.state,
                exit_code: c.exit_code,
                signal: c.signal,
                created_at: c.created_at,
                started_at: c.started_at,
                finished_at: c.finished_at,
                log_path: c.log_path.clone(),
            })
            .collect();
        Response {
            shim_pid: Some(std::process::id() as i32),
            pause_pid: Some(self.pause_pid),
            pause_running: Some(self.pause_exit.is_none()),
            containers: Some(containers),
            ..Response::ok()
        }
    }

    fn remove(&mut self, id: &str) -> Result<Response, Failure> {
        let i = self.find(id)?;
        if self.containers[i].state == ContainerState::Running {
            return Err(Failure::new(
                ErrorCode::FailedPrecondition,
                format!("container {id} is running; stop it before removing"),
            ));
        }
        let mut cmd = self.runc();
        cmd.args(["delete", "--force", id]);
        self.run_helper(id, "runc delete", cmd)?;
        let mut c = self.containers.remove(i);
        flush_outputs(&mut c);
        let _ = fs::remove_file(self.err_file(id));
        self.diag(&format!("container {id} removed"));
        Ok(Response::ok())
    }

    /// Later output goes to a new file at the log path; the renamed one keeps what was
    /// written before (no record is split: the shim writes whole records).
    fn reopen_log(&mut self, id: &str) -> Result<Response, Failure> {
        let i = self.find(id)?;
        let c = &mut self.containers[i];
        let log = match (&c.state, c.log.as_mut()) {
            (ContainerState::Running, Some(log)) => log,
            _ => {
                return Err(Failure::new(
                    ErrorCode::FailedPrecondition,
                    format!("container {id} is not running: its log cannot be reopened"),
                ))
            }
        };
        log.reopen().map_err(|e| format!("container {id}: {e}"))?;
        self.diag(&format!("container {id}: log reopened"));
        Ok(Response::ok())
    }

    /// An exec needs a running container and a command.
    fn check_exec(&mut self, id: &str, argv: &[String]) -> Result<(), Failure> {
        let i = self.find(id)?;
        if self.containers[i].state != ContainerState::Running {
            return Err(Failure::new(
                ErrorCode::FailedPrecondition,
                format!("container {id} is not running"),
            ));
        }
        if argv.is_empty() {
            return Err(Failure::new(
                ErrorCode::InvalidArgument,
                format!("exec in container {id}: empty command"),
            ));
        }
        Ok(())
    }

    fn spawn_exec_helper(&self, id: &str, cmd: &mut Command) -> Result<Child, String> {
        cmd.spawn().map_err(|e| {
            format!(
                "exec in container {id}: run {}: {e}",
                self.cfg.runc.display()
            )
        })
    }

    fn exec(&mut self, client: usize, id: &str, argv: &[String]) -> Result<Response, Failure> {
        self.check_exec(id, argv)?;
        let mut cmd = self.runc();
        cmd.args(["exec", id, "--"])
            .args(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.spawn_exec_helper(id, &mut cmd)?;
        let fds: Option<(OwnedFd, OwnedFd, OwnedFd)> = (|| {
            Some((
                child.stdin.take()?.into(),
                child.stdout.take()?.into(),
                child.stderr.take()?.into(),
            ))
        })();
        let Some((stdin, stdout, stderr)) = fds else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("exec in container {id}: helper stdio missing").into());
        };
        for fd in [&stdin, &stdout, &stderr] {
            if let Err(e) = sys::set_nonblocking(fd) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("exec in container {id}: non-blocking pipes: {e}").into());
            }
        }
        // From here the helper is reaped by the loop's waitpid(-1).
        let pid = child.id() as libc::pid_t;
        self.diag(&format!(
            "exec in container {id}: helper pid {pid}: {argv:?}"
        ));
        self.clients[client].exec = Some(Exec {
            pid,
            pty: None,
            stdin: Some(stdin),
            stdin_buf: Vec::new(),
            stdin_eof: false,
            out: [Some(stdout), Some(stderr)],
            exit: None,
            err_file: None,
        });
        Ok(Response::ok())
    }

    /// Like [`Shim::exec`], on a pseudo-terminal. The OCI way, as `runc exec -t
    /// --console-socket`: the helper runs the process with `process.terminal` and a console
    /// socket we listen on; libcontainer opens the pty in the container's own devpts,
    /// makes it the controlling terminal of the process (a session leader) and sends us
    /// the master over SCM_RIGHTS. We then relay master <-> frames.
    fn exec_tty(
        &mut self,
        client: usize,
        id: &str,
        argv: &[String],
        size: Option<TerminalSize>,
    ) -> Result<Response, Failure> {
        self.check_exec(id, argv)?;
        let token = self.token();
        // Short names: a unix socket path must fit in 108 bytes, and shim.sock does.
        let sock_path = self.cfg.dir.join(format!("tty{token}"));
        let err_file = self.cfg.dir.join(format!("tty{token}.err"));
        let console = ConsoleSocket::bind(sock_path)
            .map_err(|e| format!("exec in container {id}: console socket: {e}"))?;
        let result = self.spawn_tty_helper(id, argv, &console, &err_file);
        drop(console);
        let (pid, master, helper_err) = result.inspect_err(|_| {
            let _ = fs::remove_file(&err_file);
        })?;
        let fds = (|| -> io::Result<_> {
            sys::set_nonblocking(&master)?;
            sys::set_nonblocking(&helper_err)?;
            if let Some(sz) = size {
                // libcontainer 0.7 ignores process.consoleSize, so the size is set here,
                // before any input is relayed: an interactive shell always starts with it.
                // The process itself goes on once the master is sent, so a command that
                // asks for the size at its very first instruction could, in theory, run
                // before this (never seen, even with the cores saturated).
                sys::set_winsize(master.as_raw_fd(), sz.width, sz.height)?;
            }
            Ok((sys::dup(&master)?, sys::dup(&master)?))
        })();
        let (stdin, out) = match fds {
            Ok(f) => f,
            Err(e) => {
                // Reaped by the loop; killed, it writes no error file any more.
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = fs::remove_file(&err_file);
                return Err(format!("exec in container {id}: set up the pty master: {e}").into());
            }
        };
        self.diag(&format!(
            "exec in container {id} on a tty: helper pid {pid}: {argv:?}"
        ));
        self.clients[client].exec = Some(Exec {
            pid,
            pty: Some(master),
            stdin: Some(stdin),
            stdin_buf: Vec::new(),
            stdin_eof: false,
            // What the helper itself says (e.g. the command is not in the image) goes
            // out as stderr frames: it is not the process's output, and the pty has none.
            out: [Some(out), Some(helper_err)],
            exit: None,
            err_file: Some(err_file),
        });
        Ok(Response::ok())
    }

    /// Runs the exec helper with a console socket and waits (bounded) for the pty master.
    /// The wait blocks the loop like the create/start helpers do, and for about as long.
    /// On error the helper is gone.
    fn spawn_tty_helper(
        &mut self,
        id: &str,
        argv: &[String],
        console: &ConsoleSocket,
        err_file: &Path,
    ) -> Result<(libc::pid_t, OwnedFd, OwnedFd), String> {
        let mut cmd = self.runc();
        cmd.arg("--error-file")
            .arg(err_file)
            .args(["exec", "--console-socket"])
            .arg(&console.path)
            .args([id, "--"])
            .args(argv)
            // The process gets the pty as stdio; the pipe carries the helper's messages.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = self.spawn_exec_helper(id, &mut cmd)?;
        let pid = child.id() as libc::pid_t;
        let Some(helper_err) = child.stderr.take().map(OwnedFd::from) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("exec in container {id}: helper stderr missing"));
        };
        match wait_for_master(&console.listener, Some(pid), CONSOLE_TIMEOUT) {
            Ok(master) => Ok((pid, master, helper_err)),
            Err(WaitMaster::Exited(status)) => {
                let (code, _) = sys::decode_status(status);
                let detail = helper_error(err_file, &[]);
                Err(format!(
                    "exec in container {id}: the helper exited ({code}) without a terminal: {detail}"
                ))
            }
            Err(WaitMaster::Failed(e)) => {
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = sys::wait_pid(pid);
                let detail = helper_error(err_file, &[]);
                Err(format!(
                    "exec in container {id}: receive the pty master: {e} (helper: {detail})"
                ))
            }
        }
    }

    /// Attaches the connection to a running container's stdio: from now on it gets the
    /// output of the streams in `out` (stdout, stderr) as frames, and its input frames go
    /// to the container (see [`Request::Attach`]).
    fn attach(
        &mut self,
        client: usize,
        id: &str,
        stdin: bool,
        out: [bool; 2],
    ) -> Result<Response, Failure> {
        let i = self.find(id)?;
        let c = &self.containers[i];
        if c.state != ContainerState::Running {
            return Err(Failure::new(
                ErrorCode::FailedPrecondition,
                format!("container {id} is not running"),
            ));
        }
        if !stdin && !out.contains(&true) {
            return Err(Failure::new(
                ErrorCode::InvalidArgument,
                format!("attach to container {id}: no stream asked for"),
            ));
        }
        // Input for a container without stdin (or whose stdin_once closed it) is dropped,
        // as containerd does.
        let attach = Attach {
            container: c.token,
            stdin,
            out,
        };
        let msg = format!("attach to container {id}: stdin {stdin}, stdout/stderr {out:?}");
        self.clients[client].attach = Some(attach);
        self.diag(&msg);
        Ok(Response::ok())
    }

    /// Decodes an attached client's frames: input, end of input, window sizes.
    fn attach_frames(&mut self, i: usize) {
        let Shim {
            clients,
            containers,
            ..
        } = self;
        let Client {
            inbuf,
            attach: Some(a),
            closing,
            dead,
            ..
        } = &mut clients[i]
        else {
            return;
        };
        let mut ctr = containers.iter_mut().find(|c| c.token == a.container);
        let mut consumed = 0;
        loop {
            let (kind, payload, n) = match frame::decode(&inbuf[consumed..]) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => {
                    // A corrupt stream cannot be resynchronised.
                    *dead = true;
                    break;
                }
            };
            consumed += n;
            match (kind, ctr.as_deref_mut()) {
                (frame::STDIN, Some(c)) if a.stdin && c.stdin.is_some() && !c.stdin_eof => {
                    c.stdin_buf.extend_from_slice(payload)
                }
                (frame::STDIN_CLOSE, c) if a.stdin => {
                    a.stdin = false;
                    match c {
                        Some(c) if c.stdin_once && !c.tty && c.stdin.is_some() => {
                            attach_stdin_ended(c)
                        }
                        // containerd's rule: the client's end of input ends its session.
                        _ => *closing = true,
                    }
                }
                (frame::RESIZE, Some(c)) => {
                    if let (Some(pty), Some(sz)) = (&c.pty, frame::parse_resize(payload)) {
                        let _ = sys::set_winsize(pty.as_raw_fd(), sz.width, sz.height);
                    }
                }
                // Unknown kinds are ignored so clients can add more later.
                _ => {}
            }
            if *closing {
                break;
            }
        }
        inbuf.drain(..consumed);
        if let Some(c) = ctr {
            feed_container_stdin(c);
        }
    }

    /// Stops everything synchronously and marks the loop to end. With `removing` the
    /// containers are killed but not deleted (the caller removes their state).
    fn shutdown(&mut self, removing: bool) {
        self.stop = true;
        // A create under way finishes first (killing its helper midway could leave a
        // half-made container behind); the container is then stopped with the others.
        for p in std::mem::take(&mut self.pending) {
            let id = p.id.clone();
            match sys::wait_pid(p.helper) {
                Ok(status) => {
                    if let Err(f) = self.register(p, status) {
                        self.diag(&f.message);
                    }
                }
                Err(e) => {
                    self.diag(&format!("container {id}: wait for its create helper: {e}"));
                    self.cleanup_failed(&id);
                }
            }
        }
        for i in 0..self.containers.len() {
            let (id, pid, state) = {
                let c = &self.containers[i];
                (c.id.clone(), c.pid, c.state)
            };
            if state != ContainerState::Exited {
                let _ = sys::kill(pid, libc::SIGKILL);
                if let Ok(status) = sys::wait_pid(pid) {
                    let (code, signal) = sys::decode_status(status);
                    let c = &mut self.containers[i];
                    c.state = ContainerState::Exited;
                    c.exit_code = Some(code);
                    c.signal = signal;
                    c.finished_at = Some(sys::now_ns());
                }
            }
            if removing {
                continue;
            }
            let mut cmd = self.runc();
            cmd.args(["delete", "--force", &id]);
            if let Err(e) = self.run_helper(&id, "runc delete", cmd) {
                self.diag(&e);
            }
        }
        for c in &mut self.clients {
            if let Some(e) = &c.exec {
                if e.exit.is_none() {
                    let _ = sys::kill(e.pid, libc::SIGKILL);
                    let _ = sys::wait_pid(e.pid);
                }
            }
        }
        if self.pause_exit.is_none() {
            let pid = self.pause_pid;
            let _ = sys::kill(pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut done = false;
            while Instant::now() < deadline {
                match sys::try_wait(pid) {
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    _ => {
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                self.diag(&format!("pause {pid} ignored SIGTERM for 2s; killing"));
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = sys::wait_pid(pid);
            }
            self.pause_exit = Some((0, None));
        }
        let tokens: Vec<u64> = self.containers.iter().map(|c| c.token).collect();
        for tok in tokens {
            // Pick up whatever the dying processes wrote.
            for s in 0..2 {
                self.container_output(tok, s, true);
            }
        }
        for c in &mut self.containers {
            flush_outputs(c);
        }
        while let Ok(Some(_)) = sys::try_wait(-1) {}
        for f in ["shim.sock", "shim.pid", "pause.pid"] {
            let _ = fs::remove_file(self.cfg.dir.join(f));
        }
        self.diag("shim shut down");
    }
}

/// SIGKILL an exec session: the command the helper runs in the container (its child;
/// the helper cannot forward a SIGKILL), then the helper. Killing only the helper would
/// leave the command running in the container, reparented to its init.
fn kill_session(helper: libc::pid_t) {
    let children =
        fs::read_to_string(format!("/proc/{helper}/task/{helper}/children")).unwrap_or_default();
    for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
        // The helper is alive and has not reaped it: the pid is still its child's.
        let _ = sys::kill(pid, libc::SIGKILL);
    }
    let _ = sys::kill(helper, libc::SIGKILL);
}

/// Writes pending partial lines and closes the container's pipes and log.
fn flush_outputs(c: &mut Container) {
    let mut records = Vec::new();
    let now = sys::now_ns();
    for (s, o) in c.outputs.iter_mut().enumerate() {
        if let Some(o) = o.as_mut() {
            o.split
                .finish(&mut |t, f| crilog::format_record(&mut records, now, STREAMS[s], f, t));
        }
    }
    if let Some(log) = c.log.as_mut() {
        let _ = log.append(&records, now);
    }
    c.outputs = [None, None];
    c.log = None;
}

/// A container's stdio as the loop polls it: outputs, pty master, stdin.
type ContainerFds = ([Option<OwnedFd>; 2], Option<OwnedFd>, Option<OwnedFd>);

/// Pipes: stdout, stderr and (CRI `stdin`) the write end of stdin; all non-blocking.
fn pipe_stdio(out: OwnedFd, err: OwnedFd, stdin: Option<OwnedFd>) -> io::Result<ContainerFds> {
    for fd in [Some(&out), Some(&err), stdin.as_ref()]
        .into_iter()
        .flatten()
    {
        sys::set_nonblocking(fd)?;
    }
    Ok(([Some(out), Some(err)], None, stdin))
}

/// A terminal: its master is the output, the input (with CRI `stdin`) and where window
/// sizes go. Duplicates share the non-blocking flag.
fn terminal_stdio(master: OwnedFd, stdin: bool) -> io::Result<ContainerFds> {
    sys::set_nonblocking(&master)?;
    let input = match stdin {
        true => Some(sys::dup(&master)?),
        false => None,
    };
    Ok(([Some(sys::dup(&master)?), None], Some(master), input))
}

/// A console socket (`--console-socket`): the helper sends a pty master there. The file
/// goes with it.
struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Listens at `path` (root only), non-blocking.
    fn bind(path: PathBuf) -> io::Result<ConsoleSocket> {
        let _ = fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(|e| ctx(e, format!("bind {}", path.display())))?;
        let console = ConsoleSocket { listener, path };
        fs::set_permissions(&console.path, fs::Permissions::from_mode(0o600))?;
        console.listener.set_nonblocking(true)?;
        Ok(console)
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Sends `data` as `kind` frames to the clients attached to container `tok`'s stream `s`.
/// A client that falls [`OUT_MAX`] behind is dropped: the container never waits for one
/// (its output still goes to the log).
fn fan_out(clients: &mut [Client], tok: u64, s: usize, data: &[u8]) {
    let kind = if s == 0 { frame::STDOUT } else { frame::STDERR };
    let attached = clients.iter_mut().filter(|cl| {
        !cl.dead
            && !cl.closing
            && cl
                .attach
                .as_ref()
                .is_some_and(|a| a.container == tok && a.out[s])
    });
    for cl in attached {
        frame::encode(&mut cl.outbuf, kind, data);
        flush_client(cl);
        if cl.outbuf.len() > OUT_MAX {
            cl.dead = true;
        }
    }
}

/// Writes queued input to a container's stdin; closes it once asked and written.
fn feed_container_stdin(c: &mut Container) {
    if let Some(fd) = &c.stdin {
        while !c.stdin_buf.is_empty() {
            match sys::write(fd.as_raw_fd(), &c.stdin_buf) {
                Ok(n) => {
                    c.stdin_buf.drain(..n);
                }
                Err(e) if would_block(&e) => return,
                Err(_) => {
                    // The container closed its stdin (EPIPE): nobody reads the rest.
                    c.stdin_buf = Vec::new();
                    c.stdin = None;
                    return;
                }
            }
        }
    }
    if c.stdin_eof && c.stdin_buf.is_empty() {
        c.stdin = None;
    }
}

/// An attach session with stdin ended (STDIN_CLOSE or gone): CRI `stdin_once` closes the
/// container's stdin, as containerd does, except on a TTY (closing a terminal's input
/// would hang it up).
fn attach_stdin_ended(c: &mut Container) {
    if c.stdin_once && !c.tty && c.stdin.is_some() {
        c.stdin_eof = true;
        feed_container_stdin(c);
    }
}

fn read_pid(path: &Path) -> Result<libc::pid_t, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("read pid file {}: {e}", path.display()))?;
    match text.trim().parse::<libc::pid_t>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "pid file {} holds {:?}, not a pid",
            path.display(),
            text.trim()
        )),
    }
}

/// The helper's own error message: the error file, else its stderr.
fn helper_error(err_file: &Path, stderr: &[u8]) -> String {
    let from_file = fs::read_to_string(err_file).unwrap_or_default();
    // Read once: a container that fails to be created again and again would otherwise
    // leave one file per try behind.
    let _ = fs::remove_file(err_file);
    let msg = if from_file.trim().is_empty() {
        String::from_utf8_lossy(stderr).into_owned()
    } else {
        from_file
    };
    let msg = msg.trim();
    if msg.is_empty() {
        "no error message".into()
    } else {
        msg.to_string()
    }
}

/// Writes as much of the client's output as the socket takes.
/// Queue one answer line for `c` and send what it can take now.
fn respond(c: &mut Client, resp: &Response) {
    match serde_json::to_vec(resp) {
        Ok(mut v) => {
            v.push(b'\n');
            c.outbuf.extend_from_slice(&v);
        }
        Err(_) => c
            .outbuf
            .extend_from_slice(b"{\"ok\":false,\"error\":\"cannot encode response\"}\n"),
    }
    flush_client(c);
}

fn flush_client(c: &mut Client) {
    while !c.outbuf.is_empty() && !c.dead {
        match c.sock.write(&c.outbuf) {
            Ok(0) => c.dead = true,
            Ok(n) => {
                c.outbuf.drain(..n);
            }
            Err(e) if would_block(&e) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => c.dead = true,
        }
    }
    if c.outbuf.capacity() > OUT_HIGH_WATER && c.outbuf.is_empty() {
        c.outbuf = Vec::new();
    }
    if c.closing && c.outbuf.is_empty() {
        c.dead = true;
    }
}

/// Decodes the client's exec frames (stdin data, stdin close).
fn process_frames(c: &mut Client) {
    let Some(e) = c.exec.as_mut() else {
        return;
    };
    let mut consumed = 0;
    loop {
        match frame::decode(&c.inbuf[consumed..]) {
            Ok(Some((kind, payload, n))) => {
                match kind {
                    frame::STDIN if e.stdin.is_some() && !e.stdin_eof => {
                        e.stdin_buf.extend_from_slice(payload)
                    }
                    // A terminal has no end of input to pass on (closing the master would
                    // hang the session up): the session ends when the process exits.
                    frame::STDIN_CLOSE if e.pty.is_some() => {}
                    frame::STDIN_CLOSE => e.stdin_eof = true,
                    frame::RESIZE => {
                        if let (Some(pty), Some(sz)) = (&e.pty, frame::parse_resize(payload)) {
                            // A process that already exited makes this fail: nothing to do.
                            let _ = sys::set_winsize(pty.as_raw_fd(), sz.width, sz.height);
                        }
                    }
                    // Unknown kinds are ignored so clients can add more later.
                    _ => {}
                }
                consumed += n;
            }
            Ok(None) => break,
            Err(_) => {
                // A corrupt stream cannot be resynchronised.
                c.dead = true;
                kill_session(e.pid);
                break;
            }
        }
    }
    c.inbuf.drain(..consumed);
    feed_stdin(e);
}

/// Writes queued stdin to the exec process; closes it after `STDIN_CLOSE`.
fn feed_stdin(e: &mut Exec) {
    if let Some(fd) = &e.stdin {
        while !e.stdin_buf.is_empty() {
            match sys::write(fd.as_raw_fd(), &e.stdin_buf) {
                Ok(n) => {
                    e.stdin_buf.drain(..n);
                }
                Err(err) if would_block(&err) => return,
                Err(_) => {
                    // The process closed its stdin (EPIPE): discard the rest.
                    e.stdin_buf.clear();
                    e.stdin = None;
                    return;
                }
            }
        }
    }
    if e.stdin_eof && e.stdin_buf.is_empty() {
        e.stdin = None;
    }
}

/// Relays exec output to the client as frames: one read, or with `drain`
/// everything buffered (bounded by [`EXEC_DRAIN_MAX`]).
fn exec_output(c: &mut Client, s: usize, buf: &mut [u8], drain: bool) {
    let Some(e) = c.exec.as_mut() else {
        return;
    };
    let mut total = 0;
    while let Some(fd) = &e.out[s] {
        match sys::read(fd.as_raw_fd(), buf) {
            Ok(0) => e.out[s] = None,
            Ok(n) => {
                frame::encode(
                    &mut c.outbuf,
                    if s == 0 { frame::STDOUT } else { frame::STDERR },
                    &buf[..n],
                );
                total += n;
                // One read per wake-up keeps the loop fair between sessions.
                if !drain || total >= EXEC_DRAIN_MAX {
                    break;
                }
            }
            Err(err) if would_block(&err) => break,
            Err(_) => e.out[s] = None,
        }
    }
}

/// Sends the exit frame once the helper is reaped and its output drained.
fn finish_exec_if_done(c: &mut Client) {
    let Some(e) = c.exec.as_mut() else {
        return;
    };
    if c.closing {
        return;
    }
    if let Some(code) = e.exit {
        if e.out.iter().all(Option::is_none) {
            e.stdin = None;
            e.pty = None;
            frame::encode(&mut c.outbuf, frame::EXIT, &code.to_be_bytes());
            c.closing = true;
        }
    }
}

/// Why no pty master arrived.
enum WaitMaster {
    /// The helper ended first (reaped here; its wait status).
    Exited(libc::c_int),
    /// Socket error or timeout; the helper still runs.
    Failed(String),
}

/// Accepts the helper's console connection and receives the pty master, while watching
/// the helper (if it still runs) so that a failed exec is reported instead of waited for.
fn wait_for_master(
    listener: &UnixListener,
    pid: Option<libc::pid_t>,
    timeout: Duration,
) -> Result<OwnedFd, WaitMaster> {
    let deadline = Instant::now() + timeout;
    let mut conn: Option<UnixStream> = None;
    loop {
        let fd = conn
            .as_ref()
            .map_or(listener.as_raw_fd(), |c| c.as_raw_fd());
        let ready = sys::poll_one(fd, libc::POLLIN, 50)
            .map_err(|e| WaitMaster::Failed(format!("poll: {e}")))?;
        if ready != 0 {
            match &conn {
                None => match listener.accept() {
                    Ok((c, _)) => conn = Some(c),
                    Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(WaitMaster::Failed(format!("accept: {e}"))),
                },
                Some(c) => {
                    return sys::recv_fd(c.as_raw_fd()).map_err(|e| {
                        WaitMaster::Failed(format!("no descriptor from the helper: {e}"))
                    })
                }
            }
            continue;
        }
        if let Some(Ok(Some((_, status)))) = pid.map(sys::try_wait) {
            return Err(WaitMaster::Exited(status));
        }
        if Instant::now() >= deadline {
            return Err(WaitMaster::Failed(format!(
                "nothing within {}s",
                timeout.as_secs()
            )));
        }
    }
}
