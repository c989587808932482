//! Durable daemon state: one JSON file per pod, written atomically.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use podhost_runtime::state_file::{read_json, write_json_atomic};
use podhost_runtime::RuntimeError;

/// A record the store can keep: serialisable and named by its pod's UID.
pub trait Record: Serialize + DeserializeOwned {
    /// UID of the pod the record is about: names its file.
    fn uid(&self) -> String;
}

/// Pod records under `<state>/pods/<uid>.json`. Generic over the record so that the
/// store sits below the lifecycle that defines it.
#[derive(Debug)]
pub struct PodStore<R> {
    dir: PathBuf,
    _record: std::marker::PhantomData<fn() -> R>,
}

impl<R> Clone for PodStore<R> {
    fn clone(&self) -> Self {
        PodStore {
            dir: self.dir.clone(),
            _record: std::marker::PhantomData,
        }
    }
}

impl<R: Record> PodStore<R> {
    /// Open (and create) the directory.
    pub fn open(dir: &Path) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(dir).map_err(RuntimeError::io("creating", dir))?;
        Ok(PodStore {
            dir: dir.to_path_buf(),
            _record: std::marker::PhantomData,
        })
    }

    fn path(&self, uid: &str) -> PathBuf {
        self.dir.join(format!("{uid}.json"))
    }

    /// Whether a record file of pod `uid` exists (readable or not).
    pub fn has_file(&self, uid: &str) -> bool {
        self.path(uid).exists()
    }

    /// Save one pod.
    pub fn save(&self, rec: &R) -> Result<(), RuntimeError> {
        write_json_atomic(&self.path(&rec.uid()), rec)
    }

    /// Forget one pod.
    pub fn remove(&self, uid: &str) -> Result<(), RuntimeError> {
        match std::fs::remove_file(self.path(uid)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::Io {
                action: "removing",
                path: self.path(uid),
                source: e,
            }),
        }
    }

    /// Every stored pod; unreadable files are reported and skipped so others still load.
    pub fn load_all(&self) -> Vec<R> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                match read_json::<R>(&p) {
                    Ok(Some(r)) => out.push(r),
                    Ok(None) => {}
                    // One torn or hand-edited file must not keep the other pods from
                    // recovering; the file stays for the user to fix or remove.
                    Err(err) => tracing::error!(
                        "pod record not loaded, its pod is not managed until the file is fixed or removed: {err}"
                    ),
                }
            }
        }
        out
    }
}
