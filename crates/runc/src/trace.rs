//! libcontainer's tracing output, kept for the error report.
//!
//! libcontainer reports a failure in its intermediate or container init process to this
//! process as one top-level message ("failed to prepare rootfs"); the cause chain (which
//! mount, which path, which errno) only goes to its `tracing` events, logged in those
//! processes. They are forked from this one, so a subscriber installed here is theirs too:
//! it writes to a memfd whose file description they share, and on failure the helper
//! appends what it holds to its error message.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::FromRawFd;
use std::sync::Arc;

use tracing::level_filters::LevelFilter;

/// Upper bound of the log kept in the error message: the cause is in the first events.
const MAX_LOG: u64 = 16 * 1024;

/// The memfd holding libcontainer's warnings and errors of this run.
pub struct Trace(Arc<File>);

impl Trace {
    /// Installs the subscriber; `None` (and no log) if no memfd can be made.
    pub fn install() -> Option<Trace> {
        // SAFETY: memfd_create with a static name; the descriptor is owned by the File
        // below. CLOEXEC: it never reaches a container's process (libcontainer execs
        // those), only the forks that log before their exec.
        let fd = unsafe { libc::memfd_create(c"podhost-runc-trace".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: fd is a fresh descriptor nothing else owns.
        let file = Arc::new(unsafe { File::from_raw_fd(fd) });
        let subscriber = tracing_subscriber::fmt()
            .with_writer(file.clone())
            .with_max_level(LevelFilter::WARN)
            .with_ansi(false)
            .with_target(false)
            .without_time()
            .finish();
        tracing::subscriber::set_global_default(subscriber).ok()?;
        Some(Trace(file))
    }

    /// What was logged so far, by this process and its forks.
    pub fn read(&self) -> String {
        let mut file = &*self.0;
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(0)).is_ok() {
            let _ = file.take(MAX_LOG).read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}
