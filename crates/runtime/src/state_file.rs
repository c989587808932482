//! Durable state files: JSON written atomically (temp file, fsync, rename, fsync of the
//! directory), read back tolerating absence.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::RuntimeError;

/// Write `value` as JSON to `path` via temp file + fsync + rename, so a crash leaves either
/// the old or the new content, never a torn file.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), RuntimeError> {
    use std::io::Write;
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| RuntimeError::State {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(RuntimeError::io("creating", dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(RuntimeError::io("creating", &tmp))?;
    f.write_all(&bytes)
        .map_err(RuntimeError::io("writing", &tmp))?;
    f.sync_all().map_err(RuntimeError::io("syncing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(RuntimeError::io("renaming into", path))?;
    // The rename is atomic but only durable once the directory entry is on disk: without
    // this a power loss right after could bring the old file back (or none, when new).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
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
