//! Rotation of a container's CRI log, with kubelet's file naming and limits.
//!
//! Kubelet's container log manager checks every 10 s whether `<n>.log` is over
//! `containerLogMaxSize`, renames it to `<n>.log.<YYYYMMDD-HHMMSS>` and asks the
//! runtime to reopen it; a container writing fast outgrows the limit many times over
//! between two checks. Here the shim, which writes every record, rotates *between two
//! records* as soon as the next one would take the file past the limit: files never
//! exceed it (unless one record alone is larger), and no record is lost or split.
//!
//! Files of one container instance, oldest first: `<n>.log.<stamp>` …, then `<n>.log`,
//! the current file, which keeps its name (the CRI log path). `<stamp>` is kubelet's
//! `YYYYMMDD-HHMMSS`, in UTC; a second rotation within the same second gets
//! `.<nanoseconds>` (9 digits) appended, so that the names still sort oldest first
//! (each new name is chosen to sort after the newest rotated file).
//! At most `max_files` files exist, the current one included; the oldest are removed
//! first. Rotated files are not compressed (kubelet gzips all but the newest): the disk
//! a container's output can take is `max_files × max_size`, and readers following the
//! log never lose the file they read to a compressor.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::crilog;

/// Kubelet's default `containerLogMaxFiles`.
pub const DEFAULT_MAX_FILES: usize = 5;

/// Length of kubelet's rotated-name stamp `YYYYMMDD-HHMMSS`.
const STAMP_LEN: usize = 15;

/// When a container's log is rotated and how much of it is kept (kubelet's `LogRotatePolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A file is rotated before a record would take it past this many bytes.
    pub max_size: u64,
    /// Files kept per container instance, the current one included (at least 2).
    pub max_files: usize,
}

/// The shim's rotation flags as they are parsed: `--log-max-size BYTES`, `--log-max-files N`.
#[derive(Debug, Default)]
pub struct Flags {
    max_size: Option<u64>,
    max_files: Option<usize>,
}

impl Flags {
    /// The flags this parser takes (each with a value).
    pub const NAMES: [&'static str; 2] = ["--log-max-size", "--log-max-files"];

    /// Takes one flag's value.
    pub fn set(&mut self, flag: &str, value: &str) -> Result<(), String> {
        let bad = || format!("{flag} needs a positive integer, not {value:?}");
        match flag {
            "--log-max-size" => {
                self.max_size = Some(value.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?)
            }
            "--log-max-files" => {
                self.max_files = Some(value.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?)
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
        Ok(())
    }

    /// The policy asked for: none without `--log-max-size` (the log grows, as before).
    pub fn policy(self) -> Result<Option<Policy>, String> {
        let max_files = self.max_files.unwrap_or(DEFAULT_MAX_FILES);
        if max_files < 2 {
            // The current file plus the one just rotated, as kubelet requires.
            return Err(format!(
                "--log-max-files must be at least 2, not {max_files}"
            ));
        }
        Ok(self.max_size.map(|max_size| Policy {
            max_size,
            max_files,
        }))
    }
}

/// Kubelet's suffix of a file rotated at `unix_ns`: `YYYYMMDD-HHMMSS`, UTC.
fn stamp(unix_ns: i64) -> String {
    let t = crilog::utc(unix_ns);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Whether `suffix` (after `<log>.`) names a rotated file: a stamp, maybe `.<9 digits>`.
fn is_rotated_suffix(suffix: &str) -> bool {
    let b = suffix.as_bytes();
    let stamp_ok = b.len() >= STAMP_LEN
        && b[..STAMP_LEN].iter().enumerate().all(|(i, c)| {
            if i == 8 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    let rest = &b[b.len().min(STAMP_LEN)..];
    stamp_ok
        && (rest.is_empty()
            || (rest.len() == 10 && rest[0] == b'.' && rest[1..].iter().all(u8::is_ascii_digit)))
}

/// `<log>.` — what every rotated file's name of `log` starts with.
fn rotated_prefix(log: &Path) -> Option<String> {
    log.file_name()
        .and_then(|n| n.to_str())
        .map(|n| format!("{n}."))
}

/// The rotated files of `log`, oldest first (by name, which sorts by rotation time).
pub fn rotated_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(prefix)) = (log.parent(), rotated_prefix(log)) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.strip_prefix(&prefix).is_some_and(is_rotated_suffix) {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Removes `log` and its rotated files, as kubelet does when it removes a container.
pub fn remove_all(log: &Path) -> io::Result<()> {
    let mut files = match rotated_files(log) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    files.push(log.to_path_buf());
    for f in files {
        match fs::remove_file(&f) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The name `log` gets when rotated at `unix_ns`, given the newest rotated file: kubelet's
/// name, unless that would not sort after the newest (a second rotation within one
/// second, or a clock set back); then the newest's stamp with a larger `.<nanoseconds>`.
fn next_rotated_name(log: &Path, newest: Option<&Path>, unix_ns: i64) -> PathBuf {
    let want = stamp(unix_ns);
    let newest_suffix = newest
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .zip(rotated_prefix(log))
        .and_then(|(n, prefix)| n.strip_prefix(&prefix).map(str::to_string));
    let suffix = match newest_suffix {
        Some(last) if want.as_str() <= last.as_str() => {
            let (base, taken) = last.split_at(STAMP_LEN);
            let nanos = crilog::utc(unix_ns).nanos;
            let after = taken
                .strip_prefix('.')
                .and_then(|n| n.parse::<i64>().ok())
                .map_or(0, |n| n + 1);
            // Within the same second the nanoseconds say when; otherwise only the order.
            let n = if base == want {
                after.max(nanos)
            } else {
                after
            };
            format!("{base}.{:09}", n.min(999_999_999))
        }
        _ => want,
    };
    PathBuf::from(format!("{}.{suffix}", log.display()))
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// A container's log file that rotates itself between records (see the module doc).
#[derive(Debug)]
pub struct LogWriter {
    /// The current file's path, `<n>.log`; it keeps this name through rotations.
    path: PathBuf,
    file: File,
    /// Bytes in the current file.
    size: u64,
    policy: Option<Policy>,
    /// After a failed rotation, the size at which to try again, so that a broken log
    /// directory costs one attempt per `max_size` bytes, not one per write.
    retry_at: u64,
}

impl LogWriter {
    /// Opens (creating it and its directory) the log for appending.
    pub fn open(path: &Path, policy: Option<Policy>) -> Result<LogWriter, String> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("create log directory {}: {e}", parent.display()))?;
        }
        let file =
            open_append(path).map_err(|e| format!("open log file {}: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            policy,
            retry_at: 0,
        })
    }

    /// Opens a new file at the path (a kubelet renamed the current one away: CRI's
    /// ReopenContainerLog); later records go there.
    pub fn reopen(&mut self) -> Result<(), String> {
        let file = open_append(&self.path)
            .map_err(|e| format!("reopen log file {}: {e}", self.path.display()))?;
        self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = file;
        self.retry_at = 0;
        Ok(())
    }

    /// Appends whole records (each ending with a newline), rotating first whenever the
    /// next record would take the current file past the limit. A record longer than the
    /// limit gets a file of its own. An error leaves the writer usable: a failed rotation
    /// keeps appending to the current file (and is tried again later), a failed write
    /// drops the rest of `records`.
    pub fn append(&mut self, mut records: &[u8], now_ns: i64) -> Result<(), String> {
        let mut error = None;
        while !records.is_empty() {
            let fit = self.fitting(records);
            if fit > 0 {
                if let Err(e) = self.file.write_all(&records[..fit]) {
                    return Err(format!("write log {}: {e}", self.path.display()));
                }
                self.size += fit as u64;
                records = &records[fit..];
            }
            if records.is_empty() {
                break;
            }
            if let Err(e) = self.rotate(now_ns) {
                error.get_or_insert(format!("rotate log {}: {e}", self.path.display()));
                self.retry_at = self.size + self.policy.map_or(0, |p| p.max_size);
            }
        }
        error.map_or(Ok(()), Err)
    }

    /// How many bytes of whole records at the start of `records` go into the current file.
    fn fitting(&self, records: &[u8]) -> usize {
        let Some(p) = self.policy else {
            return records.len();
        };
        if self.size < self.retry_at {
            return records.len();
        }
        let room = p.max_size.saturating_sub(self.size);
        if records.len() as u64 <= room {
            return records.len();
        }
        let room = room as usize; // < records.len()
        match records[..room].iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            // The first record alone is larger than the limit: it gets a fresh file.
            None if self.size == 0 => records
                .iter()
                .position(|b| *b == b'\n')
                .map_or(records.len(), |i| i + 1),
            None => 0,
        }
    }

    /// Removes the oldest rotated files beyond the limit, renames the current file to
    /// its rotated name and opens a new current file (kubelet's order: at no moment more
    /// than `max_files` files).
    fn rotate(&mut self, now_ns: i64) -> io::Result<()> {
        let Some(p) = self.policy else {
            return Ok(());
        };
        let rotated = rotated_files(&self.path)?;
        // The current file is about to become one more rotated file.
        let keep = p.max_files.saturating_sub(2);
        for old in &rotated[..rotated.len().saturating_sub(keep)] {
            match fs::remove_file(old) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let target = next_rotated_name(&self.path, rotated.last().map(PathBuf::as_path), now_ns);
        match fs::rename(&self.path, &target) {
            Ok(()) => {}
            // Someone removed the current file: writing on into the unlinked one would
            // take disk nobody can see or free. Start a new one instead.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match open_append(&self.path) {
            Ok(f) => {
                self.file = f;
                self.size = 0;
                Ok(())
            }
            Err(e) => {
                // Give the live file its name back: readers find the current log there.
                let _ = fs::rename(&target, &self.path);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "podhost-shim-logrotate-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).expect("temp dir");
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// 2026-03-04T05:06:07.000000123Z
    const T0: i64 = 1_772_600_767_000_000_123;

    fn record(i: usize, len: usize) -> Vec<u8> {
        let mut r = format!("{i:05} ").into_bytes();
        r.resize(len - 1, b'x');
        r.push(b'\n');
        r
    }

    fn policy(max_size: u64, max_files: usize) -> Option<Policy> {
        Some(Policy {
            max_size,
            max_files,
        })
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Every file of the set, oldest first, concatenated.
    fn all_content(log: &Path) -> Vec<u8> {
        let mut files = rotated_files(log).expect("list");
        files.push(log.to_path_buf());
        files
            .iter()
            .flat_map(|f| fs::read(f).expect("read"))
            .collect()
    }

    #[test]
    fn kubelet_stamp_in_utc() {
        assert_eq!(stamp(T0), "20260304-050607");
        assert_eq!(stamp(0), "19700101-000000");
    }

    #[test]
    fn each_rotated_name_sorts_after_the_newest() {
        let log = Path::new("/l/0.log");
        let next = |newest: Option<&str>, t: i64| {
            let newest = newest.map(|n| PathBuf::from(format!("/l/0.log.{n}")));
            let p = next_rotated_name(log, newest.as_deref(), t);
            p.to_str()
                .unwrap()
                .strip_prefix("/l/0.log.")
                .unwrap()
                .to_string()
        };
        assert_eq!(next(None, T0), "20260304-050607");
        assert_eq!(next(Some("20260304-050606"), T0), "20260304-050607");
        assert_eq!(
            next(Some("20260304-050607"), T0),
            "20260304-050607.000000123"
        );
        assert_eq!(
            next(Some("20260304-050607.000000123"), T0),
            "20260304-050607.000000124"
        );
        assert_eq!(
            next(Some("20260304-050607.000000100"), T0 + 500),
            "20260304-050607.000000623"
        );
        // The clock went back an hour: the order of the files wins over the time.
        assert_eq!(
            next(Some("20260304-060607.000000005"), T0),
            "20260304-060607.000000006"
        );
        assert_eq!(
            next(Some("20260304-060607"), T0),
            "20260304-060607.000000000"
        );
    }

    #[test]
    fn recognises_rotated_names_only() {
        assert!(is_rotated_suffix("20260304-050607"));
        assert!(is_rotated_suffix("20260304-050607.000000123"));
        for bad in [
            "20260304-050607.gz",
            "20260304-050607.tmp",
            "20260304_050607",
            "2026030-050607",
            "20260304-050607.12345678",
            "x",
            "",
        ] {
            assert!(!is_rotated_suffix(bad), "{bad}");
        }
    }

    #[test]
    fn lists_own_rotated_files_oldest_first() {
        let d = TempDir::new();
        for n in [
            "0.log",
            "0.log.20260304-050608",
            "0.log.20260304-050607.000000500",
            "0.log.20260304-050607",
            "0.log.20260304-050607.000000123",
            "0.log.20260304-050606.gz",
            "10.log.20260304-050601",
            "1.log",
        ] {
            fs::write(d.0.join(n), b"").expect("write");
        }
        let got: Vec<String> = rotated_files(&d.0.join("0.log"))
            .expect("list")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                "0.log.20260304-050607",
                "0.log.20260304-050607.000000123",
                "0.log.20260304-050607.000000500",
                "0.log.20260304-050608",
            ]
        );
    }

    #[test]
    fn flags_make_a_policy() {
        let mut f = Flags::default();
        f.set("--log-max-size", "65536").expect("size");
        f.set("--log-max-files", "3").expect("files");
        assert_eq!(f.policy(), Ok(policy(65536, 3)));
        // Without a size nothing rotates (a shim started by an older daemon).
        assert_eq!(Flags::default().policy(), Ok(None));
        let mut f = Flags::default();
        f.set("--log-max-size", "10").expect("size");
        assert_eq!(f.policy(), Ok(policy(10, DEFAULT_MAX_FILES)));
        let mut f = Flags::default();
        f.set("--log-max-files", "1").expect("files");
        assert!(f.policy().is_err());
        let mut f = Flags::default();
        assert!(f.set("--log-max-size", "0").is_err());
        assert!(f.set("--log-max-size", "10Mi").is_err());
        assert!(f.set("--log-max-files", "-1").is_err());
    }

    #[test]
    fn without_policy_the_file_grows() {
        let d = TempDir::new();
        let log = d.0.join("c").join("0.log");
        let mut w = LogWriter::open(&log, None).expect("open");
        for i in 0..100 {
            w.append(&record(i, 100), T0).expect("append");
        }
        assert_eq!(names(&d.0.join("c")), ["0.log"]);
        assert_eq!(fs::metadata(&log).expect("stat").len(), 10_000);
    }

    #[test]
    fn rotates_between_records_before_the_limit() {
        let d = TempDir::new();
        let log = d.0.join("0.log");
        let mut w = LogWriter::open(&log, policy(250, 5)).expect("open");
        // Two 100-byte records fit in 250 bytes; the third goes to a new file.
        w.append(&[record(0, 100), record(1, 100)].concat(), T0)
            .expect("append");
        assert_eq!(names(&d.0), ["0.log"]);
        w.append(&record(2, 100), T0).expect("append");
        assert_eq!(names(&d.0), ["0.log", "0.log.20260304-050607"]);
        assert_eq!(
            fs::read(d.0.join("0.log.20260304-050607")).expect("read"),
            [record(0, 100), record(1, 100)].concat()
        );
        assert_eq!(fs::read(&log).expect("read"), record(2, 100));
    }

    #[test]
    fn one_batch_spanning_several_files_is_split_at_record_boundaries() {
        let d = TempDir::new();
        let log = d.0.join("0.log");
        let mut w = LogWriter::open(&log, policy(250, 10)).expect("open");
        let batch: Vec<u8> = (0..9).flat_map(|i| record(i, 100)).collect();
        w.append(&batch, T0).expect("append");
        // Same second: kubelet's name first, then names with the nanoseconds.
        assert_eq!(
            names(&d.0),
            [
                "0.log",
                "0.log.20260304-050607",
                "0.log.20260304-050607.000000123",
                "0.log.20260304-050607.000000124",
                "0.log.20260304-050607.000000125",
            ]
        );
        for f in rotated_files(&log).expect("list") {
            assert_eq!(fs::metadata(&f).expect("stat").len(), 200, "{f:?}");
        }
        assert_eq!(all_content(&log), batch, "nothing lost, nothing split");
    }

    #[test]
    fn keeps_at_most_max_files_oldest_removed_first() {
        let d = TempDir::new();
        let log = d.0.join("0.log");
        fs::write(d.0.join("1.log"), b"another instance").expect("write");
        let mut w = LogWriter::open(&log, policy(100, 3)).expect("open");
        for i in 0..10 {
            // One second apart: plain kubelet names, stamped when the file is rotated.
            w.append(&record(i, 100), T0 + i as i64 * 1_000_000_000)
                .expect("append");
        }
        assert_eq!(
            names(&d.0),
            [
                "0.log",
                "0.log.20260304-050615",
                "0.log.20260304-050616",
                "1.log"
            ]
        );
        let kept: Vec<u8> = (7..10).flat_map(|i| record(i, 100)).collect();
        assert_eq!(all_content(&log), kept, "the newest records, in order");
    }

    #[test]
    fn a_record_larger_than_the_limit_gets_a_file_of_its_own() {
        let d = TempDir::new();
        let log = d.0.join("0.log");
        let mut w = LogWriter::open(&log, policy(50, 10)).expect("open");
        let batch = [record(0, 30), record(1, 120), record(2, 30)].concat();
        w.append(&batch, T0).expect("append");
        let sizes: Vec<u64> = rotated_files(&log)
            .expect("list")
            .iter()
            .chain([&log])
            .map(|f| fs::metadata(f).expect("stat").len())
            .collect();
        assert_eq!(sizes, [30, 120, 30]);
        assert_eq!(all_content(&log), batch);
    }

    #[test]
    fn an_existing_file_counts_toward_the_limit() {
        let d = TempDir::new();
        let log = d.0.join("0.log");
        fs::write(&log, record(0, 100)).expect("write");
        let mut w = LogWriter::open(&log, policy(150, 5)).expect("open");
        w.append(&record(1, 100), T0).expect("append");
        assert_eq!(rotated_files(&log).expect("list").len(), 1);
        assert_eq!(fs::read(&log).expect("read"), record(1, 100));
    }

    #[test]
    fn a_removed_current_file_is_started_again() {
        let d = TempDir::new();
        let log = d.0.join("0.log");
        let mut w = LogWriter::open(&log, policy(150, 5)).expect("open");
        w.append(&record(0, 100), T0).expect("append");
        fs::remove_file(&log).expect("rm");
        w.append(&record(1, 100), T0).expect("append");
        assert_eq!(names(&d.0), ["0.log"]);
        assert_eq!(fs::read(&log).expect("read"), record(1, 100));
    }

    #[test]
    fn a_failed_rotation_keeps_writing_and_retries_later() {
        let d = TempDir::new();
        let dir = d.0.join("c");
        let log = dir.join("0.log");
        let mut w = LogWriter::open(&log, policy(100, 5)).expect("open");
        w.append(&record(0, 100), T0).expect("append");
        // The directory is gone: rotation cannot list it; the record is still written.
        fs::remove_dir_all(&dir).expect("rm");
        let err = w.append(&record(1, 100), T0).expect_err("rotation fails");
        assert!(err.contains("rotate log"), "{err}");
        assert_eq!(w.size, 200);
        // The next attempt comes after another max_size bytes, not at every write; it
        // starts a new current file since the old one is gone.
        fs::create_dir(&dir).expect("mkdir");
        w.append(&record(2, 100), T0).expect("append");
        assert_eq!(names(&dir), ["0.log"]);
        assert_eq!(fs::read(&log).expect("read"), record(2, 100));
    }
}
