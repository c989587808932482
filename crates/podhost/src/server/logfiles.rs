//! Reading one container instance's log across the files its shim rotates: the rotated
//! `<n>.log.<stamp>` files oldest first, then the current `<n>.log`.
//!
//! The shim renames the current file and opens a new one while readers read. A reader
//! keeps the file it reads open and knows it by inode, which a rename keeps: at the end
//! of its file, if the current path now names another file, it reads what was appended
//! before the rename and goes on with the file that follows its own in a fresh listing
//! (checked again after opening, so that a rotation in between cannot make it skip a
//! file). A file removed while open is still read to its end. A reader more than
//! `max-files` rotations behind has lost the files in between: it goes on with the
//! oldest one left.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file's identity: it survives the shim's rename of the current file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// Where a reader that does not follow stops: the current file as it was when asked.
#[derive(Debug, Clone, Copy)]
struct End {
    id: FileId,
    size: u64,
}

/// What [`LogReader::advance`] found at the end of the file being read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Advance {
    /// There is more to read (the rest of a file just rotated, or the next file).
    Continue,
    /// The file read is the current one (or the next is not created yet): wait or stop.
    AtCurrent,
    /// A reader that does not follow has read everything there was when it started.
    Finished,
}

/// A reader of one container instance's log set. The reading itself is blocking; the
/// server runs it on the blocking thread pool.
pub(super) struct LogReader {
    /// The current file's path (`<n>.log`).
    current: PathBuf,
    file: BufReader<File>,
    id: FileId,
    /// Bytes of complete records consumed from `file`.
    pos: u64,
    /// An incomplete record at the end of `file`, completed by a later read.
    partial: Vec<u8>,
    /// A record to hand out before reading on: the incomplete end of a rotated file.
    ready: Option<Vec<u8>>,
    /// The file is known not to be the current one any more: at its end, move on.
    rotated: bool,
    end: Option<End>,
}

/// The rotated files of `current` with their identities, oldest first; files removed
/// while listing are left out.
fn rotated_set(current: &Path) -> io::Result<Vec<(PathBuf, FileId)>> {
    let files = match podhost_shim::logrotate::rotated_files(current) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(files
        .into_iter()
        .filter_map(|p| {
            let id = FileId::of(&std::fs::metadata(&p).ok()?);
            Some((p, id))
        })
        .collect())
}

fn id_at(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|m| FileId::of(&m))
}

/// The timestamp of a file's first record (`None` when empty or unreadable).
fn first_stamp(path: &Path) -> Option<String> {
    let mut head = [0u8; 64];
    let n = File::open(path).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    let stamp = &head[..head.iter().position(|b| *b == b' ')?];
    String::from_utf8(stamp.to_vec()).ok()
}

fn open_with_id(path: &Path) -> io::Result<(File, FileId)> {
    let f = File::open(path)?;
    let id = FileId::of(&f.metadata()?);
    Ok((f, id))
}

/// How many times a reader looks again when files change under it between two steps.
const RETRIES: usize = 100;

impl LogReader {
    /// Opens the log set of `current` at its oldest file, or with `after` (a record
    /// timestamp) at the newest file whose first record is older, where the records
    /// after that timestamp begin. With `bounded`, the reader stops at the end the current
    /// file has now. `None` when no file exists.
    pub(super) fn open(
        current: &Path,
        after: Option<&str>,
        bounded: bool,
    ) -> io::Result<Option<LogReader>> {
        let end = if bounded {
            std::fs::metadata(current).ok().map(|m| End {
                id: FileId::of(&m),
                size: m.len(),
            })
        } else {
            None
        };
        for _ in 0..RETRIES {
            let mut files: Vec<PathBuf> =
                rotated_set(current)?.into_iter().map(|(p, _)| p).collect();
            files.push(current.to_path_buf());
            let start = match after {
                Some(t) => files
                    .iter()
                    .rposition(|f| first_stamp(f).is_some_and(|s| s.as_str() < t))
                    .unwrap_or(0),
                None => 0,
            };
            match open_with_id(&files[start]) {
                Ok((file, id)) => {
                    return Ok(Some(LogReader {
                        current: current.to_path_buf(),
                        file: BufReader::new(file),
                        id,
                        pos: 0,
                        partial: Vec::new(),
                        ready: None,
                        rotated: false,
                        end,
                    }))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if start + 1 == files.len() {
                        return Ok(None);
                    }
                    // Removed by a rotation since the listing: look again.
                }
                Err(e) => return Err(e),
            }
        }
        Err(changing(current))
    }

    /// The next complete record (with its newline), or `None` at the end of what the
    /// file holds now.
    pub(super) fn next_record(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(r) = self.ready.take() {
            return Ok(Some(r));
        }
        if self
            .end
            .is_some_and(|e| e.id == self.id && self.pos >= e.size)
        {
            return Ok(None);
        }
        self.file.read_until(b'\n', &mut self.partial)?;
        if self.partial.last() != Some(&b'\n') {
            return Ok(None);
        }
        self.pos += self.partial.len() as u64;
        Ok(Some(std::mem::take(&mut self.partial)))
    }

    /// At the end of the file being read: finds out whether there is more, and moves
    /// to the next file when this one was rotated and is read to its end.
    pub(super) fn advance(&mut self) -> io::Result<Advance> {
        if self
            .end
            .is_some_and(|e| e.id == self.id && self.pos >= e.size)
        {
            return Ok(Advance::Finished);
        }
        if !self.rotated {
            if id_at(&self.current) == Some(self.id) {
                return Ok(Advance::AtCurrent);
            }
            // Rotated since: what the shim appended before the rename comes first.
            self.rotated = true;
            return Ok(Advance::Continue);
        }
        for _ in 0..RETRIES {
            let set = rotated_set(&self.current)?;
            if let Some(e) = self.end {
                let gone = e.id != self.id
                    && set.iter().all(|(_, id)| *id != e.id)
                    && id_at(&self.current) != Some(e.id);
                if gone {
                    // Rotated away before we got to it: everything left is newer.
                    return Ok(Advance::Finished);
                }
            }
            let next = self.successor(&set);
            let (file, id) = match open_with_id(next.unwrap_or(&self.current)) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if next.is_none() {
                        // The shim is between the rename and the new file.
                        return Ok(Advance::AtCurrent);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A rotation between the listing and the open could have made `next` a
            // later file than ours' successor: accept it only if a new listing agrees.
            let again = rotated_set(&self.current)?;
            let expected = match self.successor(&again) {
                Some(p) => again.iter().find(|(q, _)| q == p).map(|(_, id)| *id),
                None => id_at(&self.current),
            };
            if expected != Some(id) {
                continue;
            }
            if !self.partial.is_empty() {
                // A record cut short (a failed write): it is all there will be of it.
                let mut cut = std::mem::take(&mut self.partial);
                cut.push(b'\n');
                self.ready = Some(cut);
            }
            self.file = BufReader::new(file);
            self.id = id;
            self.pos = 0;
            self.rotated = false;
            return Ok(Advance::Continue);
        }
        Err(changing(&self.current))
    }

    /// Complete records, up to about `max_bytes`, and how the reading stopped: `None`
    /// when the batch is full, else [`Advance::AtCurrent`] or [`Advance::Finished`].
    pub(super) fn read_batch(
        &mut self,
        max_bytes: usize,
    ) -> io::Result<(Vec<Vec<u8>>, Option<Advance>)> {
        let mut records = Vec::new();
        let mut bytes = 0;
        loop {
            while let Some(r) = self.next_record()? {
                bytes += r.len();
                records.push(r);
                if bytes >= max_bytes {
                    return Ok((records, None));
                }
            }
            match self.advance()? {
                Advance::Continue => {}
                end => return Ok((records, Some(end))),
            }
        }
    }

    /// The file after ours in `set` (the current one when `None`). When ours is not in
    /// it any more, it was the oldest and removed: the oldest left follows.
    fn successor<'a>(&self, set: &'a [(PathBuf, FileId)]) -> Option<&'a PathBuf> {
        match set.iter().position(|(_, id)| *id == self.id) {
            Some(i) => set.get(i + 1).map(|(p, _)| p),
            None => set.first().map(|(p, _)| p),
        }
    }
}

fn changing(current: &Path) -> io::Error {
    io::Error::other(format!(
        "the files of log {} keep changing while being listed",
        current.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rec(i: usize) -> String {
        format!(
            "2026-03-04T05:06:{:02}.000000000Z stdout F line {i}\n",
            i % 60
        )
    }

    /// Appends records `range` to `path`.
    fn write(path: &Path, range: std::ops::Range<usize>) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        for i in range {
            f.write_all(rec(i).as_bytes()).expect("write");
        }
    }

    /// Renames the current file as the shim does.
    fn rotate(current: &Path, suffix: &str) {
        let to = format!("{}.20260304-0506{suffix}", current.display());
        std::fs::rename(current, to).expect("rename");
    }

    /// Reads everything available now; returns the line numbers and the last Advance.
    fn drain(r: &mut LogReader) -> (Vec<usize>, Advance) {
        let mut got = Vec::new();
        loop {
            // Small batches: a batch boundary anywhere must not matter.
            let (records, end) = r.read_batch(150).expect("read");
            for line in records {
                let text = String::from_utf8(line).expect("utf8");
                let n = text.trim_end().rsplit(' ').next().expect("number");
                got.push(n.parse().expect("number"));
            }
            if let Some(end) = end {
                return (got, end);
            }
        }
    }

    #[test]
    fn reads_rotated_files_in_order_then_the_current() {
        let d = tempfile::tempdir().expect("tmp");
        let cur = d.path().join("0.log");
        write(&cur, 0..3);
        rotate(&cur, "01");
        write(&cur, 3..5);
        rotate(&cur, "02");
        write(&cur, 5..6);
        let mut r = LogReader::open(&cur, None, true)
            .expect("open")
            .expect("some");
        assert_eq!(drain(&mut r), ((0..6).collect(), Advance::Finished));
    }

    #[test]
    fn a_bounded_reader_stops_where_the_log_was() {
        let d = tempfile::tempdir().expect("tmp");
        let cur = d.path().join("0.log");
        write(&cur, 0..3);
        let mut r = LogReader::open(&cur, None, true)
            .expect("open")
            .expect("some");
        write(&cur, 3..5);
        rotate(&cur, "01");
        write(&cur, 5..6);
        assert_eq!(drain(&mut r), ((0..3).collect(), Advance::Finished));
    }

    #[test]
    fn a_follower_goes_on_across_rotations_without_loss_or_repeat() {
        let d = tempfile::tempdir().expect("tmp");
        let cur = d.path().join("0.log");
        write(&cur, 0..2);
        let mut r = LogReader::open(&cur, None, false)
            .expect("open")
            .expect("some");
        let mut all = Vec::new();
        let (got, adv) = drain(&mut r);
        assert_eq!(adv, Advance::AtCurrent);
        all.extend(got);
        // Appended, then rotated twice, before the follower looks again.
        write(&cur, 2..4);
        rotate(&cur, "01");
        write(&cur, 4..6);
        rotate(&cur, "02");
        write(&cur, 6..7);
        let (got, adv) = drain(&mut r);
        assert_eq!(adv, Advance::AtCurrent);
        all.extend(got);
        // Between the rename and the new file.
        write(&cur, 7..8);
        rotate(&cur, "03");
        let (got, adv) = drain(&mut r);
        assert_eq!(adv, Advance::AtCurrent);
        all.extend(got);
        write(&cur, 8..9);
        let (got, _) = drain(&mut r);
        all.extend(got);
        assert_eq!(all, (0..9).collect::<Vec<_>>());
    }

    #[test]
    fn the_file_being_read_is_read_to_its_end_even_when_removed() {
        let d = tempfile::tempdir().expect("tmp");
        let cur = d.path().join("0.log");
        write(&cur, 0..3);
        let mut r = LogReader::open(&cur, None, false)
            .expect("open")
            .expect("some");
        assert!(r.next_record().expect("read").is_some());
        rotate(&cur, "01");
        write(&cur, 3..4);
        rotate(&cur, "02");
        write(&cur, 4..5);
        // The shim removes the oldest beyond its limit: ours.
        std::fs::remove_file(d.path().join("0.log.20260304-050601")).expect("rm");
        let (got, adv) = drain(&mut r);
        assert_eq!((got, adv), (vec![1, 2, 3, 4], Advance::AtCurrent));
    }

    #[test]
    fn a_reader_left_behind_goes_on_with_the_oldest_file_left() {
        let d = tempfile::tempdir().expect("tmp");
        let cur = d.path().join("0.log");
        write(&cur, 0..1);
        let mut r = LogReader::open(&cur, None, false)
            .expect("open")
            .expect("some");
        rotate(&cur, "01");
        write(&cur, 1..2);
        rotate(&cur, "02");
        write(&cur, 2..3);
        rotate(&cur, "03");
        write(&cur, 3..4);
        for s in ["01", "02"] {
            std::fs::remove_file(d.path().join(format!("0.log.20260304-0506{s}"))).expect("rm");
        }
        // Line 1 was in a file removed before the reader got to it.
        let (got, _) = drain(&mut r);
        assert_eq!(got, vec![0, 2, 3]);
    }

    #[test]
    fn opens_where_a_timestamp_falls() {
        let d = tempfile::tempdir().expect("tmp");
        let cur = d.path().join("0.log");
        write(&cur, 0..10);
        rotate(&cur, "01");
        write(&cur, 10..20);
        rotate(&cur, "02");
        write(&cur, 20..30);
        let first = |after: &str| {
            let mut r = LogReader::open(&cur, Some(after), true)
                .expect("open")
                .expect("some");
            drain(&mut r).0[0]
        };
        assert_eq!(first("2026-03-04T05:06:15.000000000Z"), 10);
        // A timestamp equal to a file's first record may continue a run begun before.
        assert_eq!(first("2026-03-04T05:06:20.000000000Z"), 10);
        assert_eq!(first("2026-03-04T05:06:21.000000000Z"), 20);
        assert_eq!(first("2026-03-04T05:06:00.000000000Z"), 0);
    }

    #[test]
    fn a_record_cut_short_in_a_rotated_file_is_handed_out_whole() {
        let d = tempfile::tempdir().expect("tmp");
        let cur = d.path().join("0.log");
        write(&cur, 0..1);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&cur)
            .and_then(|mut f| f.write_all(b"2026-03-04T05:06:01.000000000Z stdout F line 1"))
            .expect("append");
        let mut r = LogReader::open(&cur, None, false)
            .expect("open")
            .expect("some");
        assert_eq!(drain(&mut r), (vec![0], Advance::AtCurrent));
        rotate(&cur, "01");
        write(&cur, 2..3);
        assert_eq!(drain(&mut r), (vec![1, 2], Advance::AtCurrent));
    }

    #[test]
    fn no_file_no_reader() {
        let d = tempfile::tempdir().expect("tmp");
        assert!(LogReader::open(&d.path().join("0.log"), None, false)
            .expect("open")
            .is_none());
    }
}
