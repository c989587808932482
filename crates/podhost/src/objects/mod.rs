//! ConfigMaps and Secrets: kept per namespace in memory and on disk, watched by pod workers.
//!
//! Each object is one JSON file, written atomically: `<state>/configmaps/<ns>/<name>.json`
//! and `<state>/secrets/<ns>/<name>.json`. The secrets tree is readable by root only
//! (directories 0700, files 0600), since a Secret's data is only base64-encoded.
//! Every change bumps a generation counter that workers watch, so a pod waiting for a
//! missing object starts as soon as it is created and mounted volumes follow updates.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use podhost_runtime::state_file::{read_json, write_json_atomic};
use podhost_runtime::RuntimeError;

/// Why an object could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// An immutable object's data was to change.
    #[error("{kind} {name:?} is invalid: {field}: Forbidden: field is immutable when `immutable` is set")]
    Immutable {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The field that would change (`data`, `immutable` …).
        field: &'static str,
    },
    /// The object has no name (validation should have caught it).
    #[error("{kind} has no metadata.name")]
    NoName {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
    },
    /// Writing or removing its file failed.
    #[error(transparent)]
    Store(#[from] RuntimeError),
}

/// What an apply did to an object, as kubectl prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist.
    Created,
    /// It existed and changed.
    Configured,
    /// It existed with the same content.
    Unchanged,
}

impl Applied {
    /// kubectl's word (`created`, `configured`, `unchanged`).
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// A kind of stored object: where its files live and how two versions compare.
trait Kind: Clone + Serialize + DeserializeOwned + Send + 'static {
    /// `ConfigMap` or `Secret`.
    const KIND: &'static str;
    /// Directory name under the state dir.
    const DIR: &'static str;
    /// Files readable by root only.
    const PRIVATE: bool;
    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    fn immutable(&self) -> bool;
    /// Whether the content (everything but server-set metadata) is the same.
    fn same_content(&self, other: &Self) -> bool;
    /// Whether the data an immutable object protects is the same.
    fn same_data(&self, other: &Self) -> bool;
}

impl Kind for ConfigMap {
    const KIND: &'static str = "ConfigMap";
    const DIR: &'static str = "configmaps";
    const PRIVATE: bool = false;
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn immutable(&self) -> bool {
        self.immutable == Some(true)
    }
    fn same_content(&self, o: &Self) -> bool {
        self.same_data(o)
            && self.immutable == o.immutable
            && self.metadata.labels == o.metadata.labels
            && self.metadata.annotations == o.metadata.annotations
    }
    fn same_data(&self, o: &Self) -> bool {
        self.data == o.data && self.binary_data == o.binary_data
    }
}

impl Kind for Secret {
    const KIND: &'static str = "Secret";
    const DIR: &'static str = "secrets";
    const PRIVATE: bool = true;
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn immutable(&self) -> bool {
        self.immutable == Some(true)
    }
    fn same_content(&self, o: &Self) -> bool {
        self.same_data(o)
            && self.immutable == o.immutable
            && self.type_ == o.type_
            && self.metadata.labels == o.metadata.labels
            && self.metadata.annotations == o.metadata.annotations
    }
    fn same_data(&self, o: &Self) -> bool {
        self.data == o.data
    }
}

/// `(namespace, name)`.
type Key = (String, String);

#[derive(Default)]
struct State {
    config_maps: BTreeMap<Key, ConfigMap>,
    secrets: BTreeMap<Key, Secret>,
    /// Last resourceVersion handed out (shared by both kinds, like etcd's revision).
    revision: u64,
}

struct Inner {
    /// None: in memory only (tests).
    dir: Option<PathBuf>,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

/// The ConfigMaps and Secrets of this machine; cheap to clone (shared).
#[derive(Clone)]
pub struct Objects {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret data through Debug.
        f.debug_struct("Objects")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Default for Objects {
    fn default() -> Self {
        Objects::in_memory()
    }
}

/// `<dir>/<ns>/<name>.json` of an object.
fn object_path(dir: &Path, ns: &str, name: &str) -> PathBuf {
    dir.join(ns).join(format!("{name}.json"))
}

fn key_of(meta: &ObjectMeta) -> Key {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| podhost_api::DEFAULT_NAMESPACE.into()),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Objects {
    /// A store kept in memory only (tests).
    pub fn in_memory() -> Self {
        let (changed, _) = watch::channel(0);
        Objects {
            inner: Arc::new(Inner {
                dir: None,
                state: Mutex::new(State::default()),
                changed,
            }),
        }
    }

    /// Open the store under `state_dir`, loading what a previous daemon saved.
    pub fn open(state_dir: &Path) -> Result<Self, RuntimeError> {
        let mut state = State::default();
        load::<ConfigMap>(state_dir, &mut state.config_maps, &mut state.revision)?;
        load::<Secret>(state_dir, &mut state.secrets, &mut state.revision)?;
        let (changed, _) = watch::channel(0);
        Ok(Objects {
            inner: Arc::new(Inner {
                dir: Some(state_dir.to_path_buf()),
                state: Mutex::new(state),
                changed,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that sees a new value after every change of any object.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// One ConfigMap.
    pub fn config_map(&self, ns: &str, name: &str) -> Option<ConfigMap> {
        self.lock()
            .config_maps
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// One Secret.
    pub fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        self.lock()
            .secrets
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// ConfigMaps of a namespace (all namespaces when `None`), sorted by namespace and name.
    pub fn config_maps(&self, ns: Option<&str>) -> Vec<ConfigMap> {
        filter_ns(&self.lock().config_maps, ns)
    }

    /// Secrets of a namespace (all namespaces when `None`), sorted by namespace and name.
    pub fn secrets(&self, ns: Option<&str>) -> Vec<Secret> {
        filter_ns(&self.lock().secrets, ns)
    }

    /// Create or update a (defaulted, validated) ConfigMap.
    pub fn apply_config_map(&self, cm: ConfigMap, now: i64) -> Result<Applied, ObjectError> {
        self.apply(cm, now, |s| &mut s.config_maps)
    }

    /// Create or update a (defaulted, validated) Secret.
    pub fn apply_secret(&self, secret: Secret, now: i64) -> Result<Applied, ObjectError> {
        self.apply(secret, now, |s| &mut s.secrets)
    }

    /// What applying would do, or why it would be refused (the object is immutable):
    /// `apply --dry-run=server`.
    pub fn check_config_map(&self, cm: &ConfigMap) -> Result<Applied, ObjectError> {
        would_apply(self.config_map_of(cm).as_ref(), cm)
    }

    /// Like [`Objects::check_config_map`] for a Secret.
    pub fn check_secret(&self, secret: &Secret) -> Result<Applied, ObjectError> {
        let (ns, name) = key_of(&secret.metadata);
        would_apply(self.secret(&ns, &name).as_ref(), secret)
    }

    fn config_map_of(&self, cm: &ConfigMap) -> Option<ConfigMap> {
        let (ns, name) = key_of(&cm.metadata);
        self.config_map(&ns, &name)
    }

    /// Delete a ConfigMap; false when there was none.
    pub fn delete_config_map(&self, ns: &str, name: &str) -> Result<bool, ObjectError> {
        self.delete::<ConfigMap>(ns, name, |s| &mut s.config_maps)
    }

    /// Delete a Secret; false when there was none.
    pub fn delete_secret(&self, ns: &str, name: &str) -> Result<bool, ObjectError> {
        self.delete::<Secret>(ns, name, |s| &mut s.secrets)
    }

    fn apply<T: Kind>(
        &self,
        mut obj: T,
        now: i64,
        map: impl Fn(&mut State) -> &mut BTreeMap<Key, T>,
    ) -> Result<Applied, ObjectError> {
        let key = key_of(obj.meta());
        if key.1.is_empty() {
            return Err(ObjectError::NoName { kind: T::KIND });
        }
        let mut state = self.lock();
        let existing = map(&mut state).get(&key).cloned();
        check_update(existing.as_ref(), &obj)?;
        let outcome = match &existing {
            Some(old) if old.same_content(&obj) => return Ok(Applied::Unchanged),
            Some(old) => {
                // The identity of the object stays; only its content changes.
                let m = obj.meta_mut();
                m.uid = old.meta().uid.clone();
                m.creation_timestamp = old.meta().creation_timestamp.clone();
                Applied::Configured
            }
            None => {
                let m = obj.meta_mut();
                m.uid = Some(new_uid());
                m.creation_timestamp = Some(crate::timefmt::k8s_time(now));
                Applied::Created
            }
        };
        state.revision += 1;
        let m = obj.meta_mut();
        m.namespace = Some(key.0.clone());
        m.resource_version = Some(state.revision.to_string());
        if let Some(dir) = &self.inner.dir {
            save(dir, &key, &obj)?;
        }
        map(&mut state).insert(key, obj);
        let revision = state.revision;
        drop(state);
        self.inner.changed.send_replace(revision);
        Ok(outcome)
    }

    fn delete<T: Kind>(
        &self,
        ns: &str,
        name: &str,
        map: impl Fn(&mut State) -> &mut BTreeMap<Key, T>,
    ) -> Result<bool, ObjectError> {
        let key = (ns.to_string(), name.to_string());
        let mut state = self.lock();
        if !map(&mut state).contains_key(&key) {
            return Ok(false);
        }
        if let Some(dir) = &self.inner.dir {
            let path = object_path(&dir.join(T::DIR), ns, name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RuntimeError::io("removing", &path)(e).into()),
            }
        }
        map(&mut state).remove(&key);
        state.revision += 1;
        let revision = state.revision;
        drop(state);
        self.inner.changed.send_replace(revision);
        Ok(true)
    }
}

/// Refuses changes to an immutable object's data, and making it mutable again.
fn would_apply<T: Kind>(existing: Option<&T>, new: &T) -> Result<Applied, ObjectError> {
    check_update(existing, new)?;
    Ok(match existing {
        None => Applied::Created,
        Some(old) if old.same_content(new) => Applied::Unchanged,
        Some(_) => Applied::Configured,
    })
}

fn check_update<T: Kind>(existing: Option<&T>, new: &T) -> Result<(), ObjectError> {
    let Some(old) = existing.filter(|o| o.immutable()) else {
        return Ok(());
    };
    let name = new.meta().name.clone().unwrap_or_default();
    if !new.immutable() {
        return Err(ObjectError::Immutable {
            kind: T::KIND,
            name,
            field: "immutable",
        });
    }
    if !old.same_data(new) {
        return Err(ObjectError::Immutable {
            kind: T::KIND,
            name,
            field: "data",
        });
    }
    Ok(())
}

fn filter_ns<T: Clone>(map: &BTreeMap<Key, T>, ns: Option<&str>) -> Vec<T> {
    map.iter()
        .filter(|((n, _), _)| ns.is_none_or(|want| want == n))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Writes one object; secrets get 0700 directories and 0600 files.
fn save<T: Kind>(state_dir: &Path, key: &Key, obj: &T) -> Result<(), RuntimeError> {
    let root = state_dir.join(T::DIR);
    let ns_dir = root.join(&key.0);
    std::fs::create_dir_all(&ns_dir).map_err(RuntimeError::io("creating", &ns_dir))?;
    if T::PRIVATE {
        for d in [&root, &ns_dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(RuntimeError::io("chmod", d))?;
        }
    }
    let path = object_path(&root, &key.0, &key.1);
    write_json_atomic(&path, obj)?;
    if T::PRIVATE {
        // The directory is 0700 already; the file mode matters if it is ever copied out.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(RuntimeError::io("chmod", &path))?;
    }
    Ok(())
}

/// Loads every `<state>/<kind>/<ns>/<name>.json`; unreadable files are reported and skipped.
fn load<T: Kind>(
    state_dir: &Path,
    into: &mut BTreeMap<Key, T>,
    revision: &mut u64,
) -> Result<(), RuntimeError> {
    let root = state_dir.join(T::DIR);
    for ns in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            let p = f.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match read_json::<T>(&p) {
                Ok(Some(obj)) => {
                    let rv = obj
                        .meta()
                        .resource_version
                        .as_deref()
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0);
                    *revision = (*revision).max(rv);
                    into.insert(key_of(obj.meta()), obj);
                }
                Ok(None) => {}
                Err(e) => tracing::error!("skipping {}: {e}", p.display()),
            }
        }
    }
    Ok(())
}

/// A new random object UID (RFC 4122 v4 layout, like Kubernetes').
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    // RFC 4122 v4 layout, like Kubernetes UIDs.
    format!(
        "{}-{}-4{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        ["8", "9", "a", "b"][(b[8] & 3) as usize],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn cm(name: &str, value: &str, immutable: bool) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            data: Some([("k".to_string(), value.to_string())].into()),
            immutable: immutable.then_some(true),
            ..Default::default()
        }
    }

    #[test]
    fn apply_create_update_unchanged_and_immutable() {
        let o = Objects::in_memory();
        let mut rx = o.subscribe();
        assert_eq!(
            o.apply_config_map(cm("a", "1", false), 0).ok(),
            Some(Applied::Created)
        );
        assert!(rx.has_changed().unwrap_or(false));
        rx.mark_unchanged();
        let uid = o.config_map("default", "a").and_then(|c| c.metadata.uid);
        assert_eq!(
            o.apply_config_map(cm("a", "1", false), 0).ok(),
            Some(Applied::Unchanged)
        );
        assert!(!rx.has_changed().unwrap_or(true));
        assert_eq!(
            o.apply_config_map(cm("a", "2", false), 0).ok(),
            Some(Applied::Configured)
        );
        let now = o.config_map("default", "a").expect("stored");
        assert_eq!(now.metadata.uid, uid, "uid kept across updates");
        assert_eq!(now.metadata.resource_version.as_deref(), Some("2"));

        o.apply_config_map(cm("frozen", "1", true), 0)
            .expect("create");
        let err = o
            .apply_config_map(cm("frozen", "2", true), 0)
            .expect_err("immutable");
        assert!(err.to_string().contains("field is immutable"), "{err}");
        assert!(o.apply_config_map(cm("frozen", "1", false), 0).is_err());
        assert!(o.delete_config_map("default", "frozen").expect("delete"));
        assert!(!o.delete_config_map("default", "frozen").expect("delete"));
    }

    #[test]
    fn secrets_are_private_on_disk_and_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Objects::open(dir.path()).expect("open");
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                namespace: Some("prod".into()),
                ..Default::default()
            },
            data: Some([("p".to_string(), ByteString(b"pw".to_vec()))].into()),
            ..Default::default()
        };
        o.apply_secret(secret, 0).expect("apply");
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode(&dir.path().join("secrets")), 0o700);
        assert_eq!(mode(&dir.path().join("secrets/prod")), 0o700);
        assert_eq!(mode(&dir.path().join("secrets/prod/s.json")), 0o600);
        let again = Objects::open(dir.path()).expect("reopen");
        let s = again.secret("prod", "s").expect("reloaded");
        assert_eq!(s.data.expect("data")["p"].0, b"pw");
        assert!(again.secrets(Some("default")).is_empty());
    }
}
