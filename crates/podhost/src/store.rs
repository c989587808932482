//! Durable daemon state: one JSON file per pod, written atomically, root's only.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use podhost_runtime::state_file::{private_dir, PRIVATE_DIR_MODE};
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
        private_dir(dir)?;
        podhost_runtime::state_file::remove_stale_temps(dir);
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

    /// Forget one pod, and the deletes asked for it.
    pub fn remove(&self, uid: &str) -> Result<(), RuntimeError> {
        remove_if_present(&self.path(uid))?;
        remove_if_present(&self.deletes_path(uid))
    }

    /// Where the deletes asked for a pod are kept until the pod is gone. Not `.json`:
    /// [`PodStore::load_all`] reads those as records.
    fn deletes_path(&self, uid: &str) -> PathBuf {
        self.dir.join(format!("{uid}.deletes"))
    }

    /// Record a delete order (its grace period; `None`: the pod's own) durably, before
    /// the API acknowledges it: a daemon killed right after still deletes the pod when
    /// it comes back, as an API server's acknowledged deletion sticks.
    pub fn request_delete(&self, uid: &str, grace: Option<i64>) -> Result<(), RuntimeError> {
        let mut asked = self.delete_requests(uid);
        asked.push(grace);
        write_json_atomic(&self.deletes_path(uid), &asked)
    }

    /// The deletes asked for a pod not yet gone, oldest first (each replayed: a shorter
    /// grace wins, as it did when it was asked).
    pub fn delete_requests(&self, uid: &str) -> Vec<Option<i64>> {
        match read_json::<Vec<Option<i64>>>(&self.deletes_path(uid)) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                // Torn by a crash mid-write cannot happen (atomic writes); hand edits can.
                tracing::error!("ignoring unreadable delete requests: {e}");
                Vec::new()
            }
        }
    }

    /// Delete requests of pods whose record is gone (a daemon killed between removing
    /// the record and the requests).
    pub fn collect_orphan_requests(&self) {
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let p = e.path();
            let Some(uid) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".deletes"))
            else {
                continue;
            };
            if !self.has_file(uid) {
                let _ = std::fs::remove_file(&p);
            }
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

fn remove_if_present(path: &Path) -> Result<(), RuntimeError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::Io {
            action: "removing",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Rec {
        uid: String,
    }
    impl Record for Rec {
        fn uid(&self) -> String {
            self.uid.clone()
        }
    }

    #[test]
    fn delete_requests_persist_until_the_pod_is_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        let store: PodStore<Rec> = PodStore::open(dir.path()).expect("open");
        store.save(&Rec { uid: "a".into() }).expect("save");
        store.request_delete("a", None).expect("ask");
        store.request_delete("a", Some(0)).expect("ask again");
        // A new store (a restarted daemon) sees both, and loads only the record.
        let again: PodStore<Rec> = PodStore::open(dir.path()).expect("open");
        assert_eq!(again.delete_requests("a"), [None, Some(0)]);
        assert_eq!(again.load_all().len(), 1);
        again.remove("a").expect("remove");
        assert!(again.delete_requests("a").is_empty());
        // Requests whose record vanished are collected.
        again.request_delete("gone", Some(1)).expect("ask");
        again.collect_orphan_requests();
        assert!(again.delete_requests("gone").is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
