//! Durable state files: JSON written atomically (temp file, fsync, rename, fsync of the
//! directory), read back tolerating absence.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::RuntimeError;

/// Mode of every directory podhost makes under its state and run dirs: a host user
/// reaching into them could run a container's setuid binaries, open its device nodes,
/// read or plant files in its volumes (containerd CVE-2021-41103, moby CVE-2021-41091).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Create `path` and its missing parents as [`PRIVATE_DIR_MODE`] directories, and give
/// `path` that mode when it exists already (made by an older podhost, or by hand).
pub fn private_dir(path: &Path) -> Result<(), RuntimeError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(path)
        .map_err(RuntimeError::io("creating", path))?;
    let mode = std::fs::metadata(path)
        .map_err(RuntimeError::io("reading the mode of", path))?
        .permissions()
        .mode();
    if mode & 0o7777 != PRIVATE_DIR_MODE {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))
            .map_err(RuntimeError::io("chmod", path))?;
    }
    Ok(())
}

/// Write `value` as JSON to `path` via temp file + fsync + rename, so a crash leaves either
/// the old or the new content, never a torn file. The file is 0600; missing parents are
/// made 0700.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), RuntimeError> {
    write_json(path, value, true)
}

/// [`write_json_atomic`] without the two fsyncs: a crash of the daemon still leaves the
/// old or the new file (rename is atomic in the page cache), but a power loss may lose
/// it. For records whose loss a reboot turns into garbage anyway: a sandbox's or a
/// container's record at creation (after a reboot its processes are gone, and a
/// directory without a readable record is removed at start as half made).
pub fn write_json_replace<T: Serialize>(path: &Path, value: &T) -> Result<(), RuntimeError> {
    write_json(path, value, false)
}

fn write_json<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<(), RuntimeError> {
    use std::io::Write;
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| RuntimeError::State {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(RuntimeError::io("creating", dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    // A temp file a crash left keeps its mode when opened: start from a new one.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(RuntimeError::io("creating", &tmp))?;
    f.write_all(&bytes)
        .map_err(RuntimeError::io("writing", &tmp))?;
    if durable {
        f.sync_all().map_err(RuntimeError::io("syncing", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(RuntimeError::io("renaming into", path))?;
    if !durable {
        return Ok(());
    }
    // The rename is atomic but only durable once the directory entry is on disk: without
    // this a power loss right after could bring the old file back (or none, when new).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Remove the temp files of [`write_json_atomic`] a crash left in `dir` (`.<name>.tmp`):
/// the file they were for is whole, old or new, and a record that is never written again
/// (a gone sandbox's) would keep its temp for ever.
pub fn remove_stale_temps(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            if let Err(err) = std::fs::remove_file(e.path()) {
                tracing::warn!("removing stale {}: {err}", e.path().display());
            }
        }
    }
}

/// Read a JSON file; `None` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RuntimeError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| RuntimeError::State {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}
