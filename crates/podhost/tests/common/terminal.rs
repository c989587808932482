//! A real pseudo-terminal for the `podhost` CLI, as a user at a terminal has one: the CLI
//! runs as the session leader of a pty the test owns; the test types on the master side
//! and reads what the terminal shows.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};

use super::Env;

/// Generous: only a hang protection, the machine is shared.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// The `podhost` CLI running on a pty of ours: what it shows, and its exit.
pub struct Terminal {
    /// The pty's master side: what the test types and reads.
    pub master: File,
    screen: Arc<Mutex<Vec<u8>>>,
    child: Child,
    /// The CLI's own stderr (a pipe, not the terminal): the remote's stderr must not end
    /// up here but on the terminal.
    stderr: Option<std::process::ChildStderr>,
}

impl Terminal {
    /// Runs `podhost ARGS` with a new pty of `size` as its controlling terminal and stdin
    /// and stdout; its stderr is a pipe.
    pub fn spawn(env: &Env, args: &[&str], size: Winsize) -> Terminal {
        let mut cmd = Command::new(super::bin());
        cmd.args(args).env("PODHOST_ROOT", &env.root);
        Terminal::spawn_command(cmd, size)
    }

    /// Runs `cmd` (another client: crictl) on a new pty of `size`, as [`Terminal::spawn`].
    pub fn spawn_command(mut cmd: Command, size: Winsize) -> Terminal {
        let pty = openpty(Some(&size), None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        cmd.stdin(Stdio::from(slave.try_clone().expect("dup slave")))
            .stdout(Stdio::from(slave.try_clone().expect("dup slave")))
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // A new session whose controlling terminal is the pty, as a login shell has:
                // SIGWINCH after a resize reaches the CLI, and raw mode matters.
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn a client on the terminal");
        // Only the child holds the slave now, so the master reads EIO once it is gone.
        drop(slave);
        let master = File::from(pty.master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup master");
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let stderr = child.stderr.take();
        Terminal {
            master,
            screen,
            child,
            stderr,
        }
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until the screen, from byte `from` on, contains `want`; returns the end of it.
    pub fn wait_for(&self, from: usize, want: &str) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if let Some(i) = screen.get(from..).and_then(|s| s.find(want)) {
                return from + i + want.len();
            }
            assert!(
                Instant::now() < deadline,
                "{want:?} did not appear on the terminal; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The CLI's process id (to signal it).
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn len(&self) -> usize {
        self.screen.lock().unwrap().len()
    }

    /// Types `keys` at the terminal.
    pub fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).expect("type");
    }

    /// Runs `line` in the remote shell and waits for `want` in its output.
    pub fn run(&mut self, line: &str, want: &str) -> usize {
        let from = self.len();
        self.type_keys(&format!("{line}\r"));
        self.wait_for(from, want)
    }

    /// Waits for the CLI to exit; its exit code and what it wrote to its stderr.
    pub fn finish(mut self) -> (i32, String) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("podhost exec -it did not end; terminal:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.code().unwrap_or(-1), err)
    }

    /// The local terminal's settings as the CLI left them.
    pub fn local_mode(&self) -> nix::sys::termios::Termios {
        // The master reports the pair's settings: what the CLI set on its side.
        nix::sys::termios::tcgetattr(&self.master).expect("tcgetattr")
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // A failed assertion must not leave the CLI behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn canonical(t: &nix::sys::termios::Termios) -> bool {
    use nix::sys::termios::LocalFlags;
    t.local_flags
        .contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
}
