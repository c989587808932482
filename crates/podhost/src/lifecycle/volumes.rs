//! Volume materialisation on the host: hostPath type checks, and the files of
//! configMap, secret, downwardAPI and projected volumes.
//!
//! API-data volumes are written the way kubelet's AtomicWriter does, so a process
//! watching them always sees one consistent version:
//!
//! ```text
//! <dir>/..2024_05_01_12_00_00.123456789/   the files of one version (with their modes)
//! <dir>/..data -> ..2024_05_01_12_00_00.123456789
//! <dir>/<key>  -> ..data/<key>             one symlink per top-level path
//! ```
//!
//! An update writes a new timestamped directory, renames a fresh `..data_tmp` symlink
//! over `..data` (one atomic step), fixes the top-level symlinks and removes the old
//! version.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, Volume};

use super::env::{self, PodFacts};
use super::podspec::ConfigError;
use crate::objects::Objects;

/// Kubernetes' default file mode of API-data volumes (0644).
pub const DEFAULT_MODE: i32 = 0o644;

/// One file of a volume: its bytes and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    /// Content.
    pub data: Vec<u8>,
    /// Permission bits (0..=0o777).
    pub mode: u32,
}

/// Relative path (`key` or `dir/file`) → content.
pub type Payload = BTreeMap<String, FileContent>;

/// Which kind of directory a volume is materialised in under the pod's volume root.
fn kind_dir(v: &Volume) -> Option<&'static str> {
    if v.config_map.is_some() {
        Some("configmap")
    } else if v.secret.is_some() {
        Some("secret")
    } else if v.downward_api.is_some() {
        Some("downward-api")
    } else if v.projected.is_some() {
        Some("projected")
    } else {
        None
    }
}

/// Whether a volume is written from API data (configMap, secret, downwardAPI, projected).
pub fn is_api_data(v: &Volume) -> bool {
    kind_dir(v).is_some()
}

/// Whether the volume's directory is a tmpfs: kubelet wraps secret and projected volumes
/// (which may hold secrets and service account tokens) in a memory-backed emptyDir, so
/// their files never reach the disk.
pub fn on_tmpfs(v: &Volume) -> bool {
    v.secret.is_some() || v.projected.is_some()
}

/// Whether the pod has any API-data volume (else there is nothing to refresh).
pub fn has_api_data(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| vs.iter().any(is_api_data))
}

/// Host directory of an API-data volume.
pub fn api_data_path(volumes_root: &Path, v: &Volume) -> Option<PathBuf> {
    kind_dir(v).map(|k| volumes_root.join(k).join(&v.name))
}

/// Files of the keys of `entries` selected by `items` (all keys when `items` is empty),
/// as kubelet's `MakePayload`: a missing key is an error unless the source is optional.
pub fn project_keys(
    entries: &BTreeMap<String, Vec<u8>>,
    items: &[KeyToPath],
    default_mode: i32,
    optional: bool,
    kind: &'static str,
) -> Result<Payload, ConfigError> {
    let mut out = Payload::new();
    if items.is_empty() {
        for (k, v) in entries {
            out.insert(
                k.clone(),
                FileContent {
                    data: v.clone(),
                    mode: mode_bits(default_mode),
                },
            );
        }
        return Ok(out);
    }
    for item in items {
        match entries.get(&item.key) {
            Some(v) => {
                out.insert(
                    item.path.clone(),
                    FileContent {
                        data: v.clone(),
                        mode: mode_bits(item.mode.unwrap_or(default_mode)),
                    },
                );
            }
            None if optional => {}
            None => {
                return Err(ConfigError::MissingVolumeKey {
                    kind,
                    key: item.key.clone(),
                })
            }
        }
    }
    Ok(out)
}

/// Files of a downwardAPI source.
pub fn project_downward(
    pod: &Pod,
    facts: &PodFacts,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
) -> Result<Payload, ConfigError> {
    let mut out = Payload::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            env::field_value(pod, facts, f)?
        } else if let Some(r) = &item.resource_field_ref {
            env::resource_value(pod, facts, None, r)?
        } else {
            continue;
        };
        out.insert(
            item.path.clone(),
            FileContent {
                data: value.into_bytes(),
                mode: mode_bits(item.mode.unwrap_or(default_mode)),
            },
        );
    }
    Ok(out)
}

fn mode_bits(mode: i32) -> u32 {
    (mode as u32) & 0o777
}

/// The files an API-data volume should hold now. `Ok(None)` for other volume types.
pub fn payload(
    pod: &Pod,
    v: &Volume,
    objects: &Objects,
    facts: &PodFacts,
) -> Result<Option<Payload>, ConfigError> {
    let ns = env::pod_namespace(pod);
    if let Some(src) = &v.config_map {
        let optional = src.optional == Some(true);
        let entries = match env::config_map(objects, &ns, &src.name) {
            Ok(cm) => env::config_map_entries(&cm),
            Err(_) if optional => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let items = src.items.as_deref().unwrap_or_default();
        let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        return project_keys(&entries, items, mode, optional, "configmap").map(Some);
    }
    if let Some(src) = &v.secret {
        let optional = src.optional == Some(true);
        let name = src.secret_name.clone().unwrap_or_default();
        let entries = match env::secret(objects, &ns, &name) {
            Ok(s) => env::secret_entries(&s),
            Err(_) if optional => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let items = src.items.as_deref().unwrap_or_default();
        let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        return project_keys(&entries, items, mode, optional, "secret").map(Some);
    }
    if let Some(src) = &v.downward_api {
        let items = src.items.as_deref().unwrap_or_default();
        let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        return project_downward(pod, facts, items, mode).map(Some);
    }
    if let Some(src) = &v.projected {
        let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        let mut out = Payload::new();
        for s in src.sources.iter().flatten() {
            let part = if let Some(cm) = &s.config_map {
                let optional = cm.optional == Some(true);
                let entries = match env::config_map(objects, &ns, &cm.name) {
                    Ok(c) => env::config_map_entries(&c),
                    Err(_) if optional => continue,
                    Err(e) => return Err(e),
                };
                let items = cm.items.as_deref().unwrap_or_default();
                project_keys(&entries, items, mode, optional, "configmap")?
            } else if let Some(sec) = &s.secret {
                let optional = sec.optional == Some(true);
                let entries = match env::secret(objects, &ns, &sec.name) {
                    Ok(x) => env::secret_entries(&x),
                    Err(_) if optional => continue,
                    Err(e) => return Err(e),
                };
                let items = sec.items.as_deref().unwrap_or_default();
                project_keys(&entries, items, mode, optional, "secret")?
            } else if let Some(d) = &s.downward_api {
                project_downward(pod, facts, d.items.as_deref().unwrap_or_default(), mode)?
            } else {
                continue;
            };
            out.extend(part);
        }
        return Ok(Some(out));
    }
    Ok(None)
}

/// Makes the API-data volume `v` hold its current payload; returns its host directory.
/// Fails (CreateContainerConfigError) when a referenced object or key is missing.
pub fn setup(
    pod: &Pod,
    v: &Volume,
    volumes_root: &Path,
    objects: &Objects,
    facts: &PodFacts,
) -> Result<Option<PathBuf>, ConfigError> {
    let Some(dir) = api_data_path(volumes_root, v) else {
        return Ok(None);
    };
    let wrap = |source: ConfigError| ConfigError::VolumeSetup {
        volume: v.name.clone(),
        source: Box::new(source),
    };
    let Some(files) = payload(pod, v, objects, facts).map_err(wrap)? else {
        return Ok(None);
    };
    // The files may hold secrets: only root crosses `<root>/<kind>/` on the host (the
    // container sees them through its bind mount, which does not need the parents).
    if let Some(kind) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(crate::store::PRIVATE_DIR_MODE)
            .create(kind)
            .and_then(|_| std::fs::set_permissions(kind, std::fs::Permissions::from_mode(0o700)))
            .map_err(|source| {
                wrap(ConfigError::Io {
                    volume: v.name.clone(),
                    path: kind.to_path_buf(),
                    source,
                })
            })?;
    }
    let io = |source| {
        wrap(ConfigError::Io {
            volume: v.name.clone(),
            path: dir.clone(),
            source,
        })
    };
    let mounted_now = match on_tmpfs(v) {
        true => ensure_tmpfs(pod, v, &dir).map_err(io)?,
        false => false,
    };
    let gid = fs_group(pod).map(|g| g.gid);
    if let Err(e) = write_atomic(&dir, &with_group_read(files, gid), gid) {
        // Undo the mount this call made; the next attempt starts from scratch.
        if mounted_now {
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
        }
        return Err(io(e));
    }
    Ok(Some(dir))
}

/// A pod's `fsGroup` and its `fsGroupChangePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsGroup {
    /// The group that owns the pod's volumes.
    pub gid: u32,
    /// `OnRootMismatch`: skip the walk when the volume's root already has the group
    /// and the mode bits.
    pub on_root_mismatch: bool,
}

/// The pod's fsGroup (ids outside u32 were refused by validation).
pub fn fs_group(pod: &Pod) -> Option<FsGroup> {
    let psc = pod.spec.as_ref()?.security_context.as_ref()?;
    Some(FsGroup {
        gid: u32::try_from(psc.fs_group?).ok()?,
        on_root_mismatch: psc.fs_group_change_policy.as_deref() == Some("OnRootMismatch"),
    })
}

/// With an fsGroup every file of an API-data volume is group-readable after the
/// ownership walk, so the payload says so too: else each refresh would see other modes
/// than it wants and write a new version every time.
fn with_group_read(files: Payload, gid: Option<u32>) -> Payload {
    match gid {
        None => files,
        Some(_) => files
            .into_iter()
            .map(|(k, f)| {
                let mode = f.mode | READ_ONLY_MASK;
                (k, FileContent { mode, ..f })
            })
            .collect(),
    }
}

/// Group bits kubelet adds: read-only volumes get `r`, the others `rw`.
const READ_ONLY_MASK: u32 = 0o440;
const READ_WRITE_MASK: u32 = 0o660;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// kubelet's `SetVolumeOwnership`: every file under `dir` (itself included) gets group
/// `gid` and the group bits (`r` for read-only volumes, else `rw`; directories also `x`
/// and setgid, so what is created in them later belongs to the group too). Symlinks
/// are re-owned, never chmodded (that would reach their target). With
/// `on_root_mismatch` nothing is walked if the root already has the group and bits.
pub fn set_volume_ownership(
    dir: &Path,
    gid: u32,
    readonly: bool,
    on_root_mismatch: bool,
) -> io::Result<()> {
    if on_root_mismatch && !requires_permission_change(dir, gid, readonly)? {
        return Ok(());
    }
    let mask = if readonly {
        READ_ONLY_MASK
    } else {
        READ_WRITE_MASK
    };
    fn walk(path: &Path, gid: u32, mask: u32) -> io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        std::os::unix::fs::lchown(path, None, Some(gid))?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = meta.permissions().mode() & 0o7777;
        let wanted = match meta.is_dir() {
            true => mode | mask | EXEC_MASK | SETGID,
            false => mode | mask,
        };
        if wanted != mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted))?;
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(path)? {
                walk(&e?.path(), gid, mask)?;
            }
        }
        Ok(())
    }
    walk(dir, gid, mask)
}

/// kubelet's `requiresPermissionChange`: the root's group or its group bits (and
/// setgid, for a directory) are not what the walk would make them.
fn requires_permission_change(dir: &Path, gid: u32, readonly: bool) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    if meta.gid() != gid {
        return Ok(true);
    }
    let mut wanted = if readonly {
        READ_ONLY_MASK
    } else {
        READ_WRITE_MASK
    };
    if meta.is_dir() {
        wanted |= SETGID;
    }
    Ok(meta.mode() & wanted != wanted)
}

/// Mounts a tmpfs at `dir` unless one is there already (a container restart, a daemon
/// restart); true when this call mounted it.
fn ensure_tmpfs(pod: &Pod, v: &Volume, dir: &Path) -> io::Result<bool> {
    if is_mount_point(dir) {
        return Ok(false);
    }
    // Whatever is in the directory was written before the tmpfs (by a podhost that kept
    // secrets on disk) or is the empty mount point a reboot left: the tmpfs must not
    // hide secret files on the disk.
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)?;
    // Sized like kubelet's memory-backed emptyDir without sizeLimit: the pod's memory
    // limit, else the node's memory. Pages are only used as files are written.
    let size = super::resources::memory_volume_size(pod, v);
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(format!("mode=0755,size={size}").as_str()),
    )
    .map_err(io::Error::from)?;
    Ok(true)
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
pub fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::symlink_metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(m), Some(Ok(p))) => m.is_dir() && m.dev() != p.dev(),
        _ => false,
    }
}

/// Mount points at or under `root` (from /proc/self/mountinfo), deepest first, so they
/// can be unmounted in that order. A path mounted over twice is listed twice: each
/// unmount takes off one layer.
pub fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let root = match std::fs::canonicalize(root) {
        Ok(r) => r,
        // Nothing is mounted at or under a path that does not exist (a pod without
        // subPaths has no private mount points): the mount table, which lists every
        // mount of the machine, is not read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(_) => root.to_path_buf(),
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(&root))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
            .and_then(|n| u8::try_from(n).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts every mount at or under `root` (a pod's volume directory): memory-backed
/// emptyDirs, secret and projected tmpfs, whatever a crashed daemon left. Read from the
/// mount table rather than the pod spec, so nothing is missed. Failures are logged and
/// returned: the caller must not remove a tree that still has a mount in it.
pub fn unmount_all_under(root: &Path) -> Vec<PathBuf> {
    let mut failed = Vec::new();
    for m in mounts_under(root) {
        match nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(e) => {
                tracing::warn!("unmounting volume {}: {e}", m.display());
                failed.push(m);
            }
        }
    }
    failed
}

/// Brings every API-data volume already set up up to date with its objects. Volumes whose
/// objects went away keep their last content, as on a kubelet. Returns how many changed.
pub fn refresh(pod: &Pod, volumes_root: &Path, objects: &Objects, facts: &PodFacts) -> usize {
    let mut changed = 0;
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let Some(dir) = api_data_path(volumes_root, v) else {
            continue;
        };
        if !dir.join("..data").exists() {
            continue;
        }
        let Ok(Some(files)) = payload(pod, v, objects, facts) else {
            continue;
        };
        let gid = fs_group(pod).map(|g| g.gid);
        match write_atomic(&dir, &with_group_read(files, gid), gid) {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!("volume {:?} at {}: update: {e}", v.name, dir.display()),
        }
    }
    changed
}

/// The files of the version `..data` points to, with their modes.
fn read_version(dir: &Path) -> io::Result<Payload> {
    fn walk(base: &Path, rel: &Path, out: &mut Payload) -> io::Result<()> {
        for e in std::fs::read_dir(base.join(rel))? {
            let e = e?;
            let rel = rel.join(e.file_name());
            let meta = e.metadata()?;
            if meta.is_dir() {
                walk(base, &rel, out)?;
            } else {
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    FileContent {
                        data: std::fs::read(base.join(&rel))?,
                        mode: meta.permissions().mode() & 0o777,
                    },
                );
            }
        }
        Ok(())
    }
    let mut out = Payload::new();
    walk(&dir.join("..data"), Path::new(""), &mut out)?;
    Ok(out)
}

/// The first component of each payload path (what gets a symlink in the volume root).
fn top_level(files: &Payload) -> BTreeSet<String> {
    files
        .keys()
        .filter_map(|p| p.split('/').find(|c| !c.is_empty()).map(str::to_string))
        .collect()
}

/// Writes `files` into `dir` with kubelet's `..data` swap; false when nothing changed.
/// With an fsGroup `gid`, the new version is owned by it before it becomes visible and
/// the rest of the volume after (kubelet's `SetVolumeOwnership`, read-only, no policy).
pub fn write_atomic(dir: &Path, files: &Payload, gid: Option<u32>) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    // Only the permission bits: an fsGroup's setgid bit on the directory stays.
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o777 != 0o755 {
        std::fs::set_permissions(
            dir,
            std::fs::Permissions::from_mode((mode & !0o777) | 0o755),
        )?;
    }
    let data_link = dir.join("..data");
    let old_version = std::fs::read_link(&data_link).ok();
    let old_files = match &old_version {
        Some(_) => read_version(dir).ok(),
        None => None,
    };
    if old_files.as_ref() == Some(files) {
        return Ok(false);
    }
    // A new version directory, named by the time like kubelet's (plus a counter if two
    // updates land in the same nanosecond).
    let stamp = chrono_like_stamp();
    let mut version = format!("..{stamp}");
    let mut n = 0;
    while dir.join(&version).exists() {
        n += 1;
        version = format!("..{stamp}.{n}");
    }
    let vdir = dir.join(&version);
    std::fs::create_dir(&vdir)?;
    std::fs::set_permissions(&vdir, std::fs::Permissions::from_mode(0o755))?;
    for (rel, content) in files {
        let path = vdir.join(safe_relative(rel)?);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &content.data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(content.mode))?;
    }
    if let Some(g) = gid {
        set_volume_ownership(&vdir, g, true, false)?;
    }
    // The swap: one rename makes the whole new version visible at once.
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&version, &tmp)?;
    std::fs::rename(&tmp, &data_link)?;
    let new_top = top_level(files);
    for name in &new_top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)?;
        }
    }
    if let Some(old) = &old_files {
        for name in top_level(old).difference(&new_top) {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    if let Some(old) = old_version {
        let old_dir = dir.join(old);
        if old_dir != vdir {
            std::fs::remove_dir_all(old_dir)?;
        }
    }
    if let Some(g) = gid {
        set_volume_ownership(dir, g, true, false)?;
    }
    Ok(true)
}

/// Rejects absolute paths and `..` (validation already did; this guards the host).
fn safe_relative(rel: &str) -> io::Result<&Path> {
    let p = Path::new(rel);
    if p.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(p)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {rel:?} must be relative without '..'"),
        ))
    }
}

/// `2024_05_01_12_00_00.123456789` (UTC), the shape of kubelet's version directories.
fn chrono_like_stamp() -> String {
    let nanos = crate::timefmt::now_nanos();
    let ts = k8s_openapi::jiff::Timestamp::from_nanosecond(nanos as i128)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let dt = ts.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC);
    format!(
        "{:04}_{:02}_{:02}_{:02}_{:02}_{:02}.{:09}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        nanos.rem_euclid(1_000_000_000)
    )
}

/// Checks (and for the `OrCreate` types, creates) a hostPath as kubelet does.
pub fn check_host_path(path: &Path, type_: &str) -> Result<(), ConfigError> {
    let fail = |what: &str| ConfigError::HostPathType {
        path: path.to_path_buf(),
        message: format!(
            "hostPath type check failed: {} is not {what}",
            path.display()
        ),
    };
    let meta = std::fs::metadata(path);
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(fail("a directory")),
            Err(_) => {
                std::fs::create_dir_all(path).map_err(|source| ConfigError::HostPathCreate {
                    path: path.to_path_buf(),
                    source,
                })?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(
                    |source| ConfigError::HostPathCreate {
                        path: path.to_path_buf(),
                        source,
                    },
                )
            }
        },
        "FileOrCreate" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(fail("a file")),
            Err(_) => {
                // Like kubelet, the parent directory must exist already.
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .and_then(|_| {
                        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                    })
                    .map_err(|source| ConfigError::HostPathCreate {
                        path: path.to_path_buf(),
                        source,
                    })
            }
        },
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(fail("a directory")),
        },
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => Err(fail("a file")),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => Err(fail("a socket file")),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => Err(fail("a character device")),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => Err(fail("a block device")),
        },
        other => Err(ConfigError::HostPathType {
            path: path.to_path_buf(),
            message: format!("unknown hostPath type {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> BTreeMap<String, Vec<u8>> {
        [("a", "1"), ("b", "2")]
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .into()
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
            ..Default::default()
        }
    }

    #[test]
    fn keys_items_and_modes() {
        let all = project_keys(&entries(), &[], 0o400, false, "configmap").expect("all");
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(all["a"].mode, 0o400);
        let some = project_keys(
            &entries(),
            &[item("b", "dir/b.txt", Some(0o600)), item("a", "x", None)],
            0o644,
            false,
            "configmap",
        )
        .expect("items");
        assert_eq!(some.keys().collect::<Vec<_>>(), ["dir/b.txt", "x"]);
        assert_eq!(some["dir/b.txt"].mode, 0o600);
        assert_eq!(some["x"].mode, 0o644);
        let err = project_keys(
            &entries(),
            &[item("z", "z", None)],
            0o644,
            false,
            "configmap",
        )
        .expect_err("missing key");
        assert_eq!(
            err.to_string(),
            "configmap references non-existent config key: z"
        );
        let opt = project_keys(&entries(), &[item("z", "z", None)], 0o644, true, "secret")
            .expect("optional");
        assert!(opt.is_empty());
    }

    fn file(s: &str, mode: u32) -> FileContent {
        FileContent {
            data: s.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn atomic_writer_swaps_data_link() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("vol");
        let v1: Payload = [
            ("a".to_string(), file("1", 0o644)),
            ("d/b".to_string(), file("2", 0o600)),
        ]
        .into();
        assert!(write_atomic(&dir, &v1, None).expect("write"));
        let first = std::fs::read_link(dir.join("..data")).expect("..data");
        assert!(first.to_string_lossy().starts_with(".."));
        assert_eq!(
            std::fs::read_link(dir.join("a")).expect("link"),
            Path::new("..data/a")
        );
        assert_eq!(std::fs::read_to_string(dir.join("d/b")).expect("read"), "2");
        let mode = std::fs::metadata(dir.join("d/b"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            !write_atomic(&dir, &v1, None).expect("same"),
            "unchanged payload: no new version"
        );

        let v2: Payload = [("a".to_string(), file("new", 0o644))].into();
        assert!(write_atomic(&dir, &v2, None).expect("update"));
        let second = std::fs::read_link(dir.join("..data")).expect("..data");
        assert_ne!(first, second);
        assert!(!dir.join(&first).exists(), "old version removed");
        assert_eq!(std::fs::read_to_string(dir.join("a")).expect("read"), "new");
        assert!(
            std::fs::symlink_metadata(dir.join("d")).is_err(),
            "stale link removed"
        );
        let names: Vec<String> = std::fs::read_dir(&dir)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}: a, ..data and one version");
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape_mount_path("/plain\\9"), "/plain\\9");
        assert_eq!(unescape_mount_path("/x\\777"), "/x\\777");
        let tmp = tempfile::tempdir().expect("tmp");
        assert!(mounts_under(tmp.path()).is_empty());
        assert!(!is_mount_point(tmp.path()));
        assert!(is_mount_point(Path::new("/proc")));
    }

    // Runs as root (like the daemon): mounting needs it.
    #[test]
    fn unmounts_nested_and_stacked_mounts() {
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("pod uid");
        let secret = root.join("secret/creds");
        std::fs::create_dir_all(&secret).expect("dir");
        let tmpfs = |p: &Path| {
            nix::mount::mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("size=1m"),
            )
            .expect("mount");
        };
        tmpfs(&secret);
        tmpfs(&secret);
        let nested = secret.join("inner");
        std::fs::create_dir(&nested).expect("dir");
        tmpfs(&nested);
        assert!(is_mount_point(&secret));
        let found = mounts_under(&root);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0], nested, "deepest first");
        assert!(unmount_all_under(&root).is_empty());
        assert!(mounts_under(&root).is_empty());
        assert!(!is_mount_point(&secret));
    }

    fn meta(p: &Path) -> (u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(p).expect("meta");
        (m.gid(), m.mode() & 0o7777)
    }

    // Runs as root (like the daemon): chown to another group needs it.
    #[test]
    fn ownership_walk_like_kubelet() {
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("vol");
        std::fs::create_dir_all(dir.join("sub")).expect("dirs");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        std::fs::write(dir.join("sub/f"), "x").expect("file");
        std::fs::set_permissions(dir.join("sub/f"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).expect("symlink");
        let passwd_mode = meta(Path::new("/etc/passwd"));

        set_volume_ownership(&dir, 2000, false, false).expect("walk");
        assert_eq!(meta(&dir), (2000, 0o2777));
        assert_eq!(meta(&dir.join("sub")).0, 2000);
        assert_eq!(meta(&dir.join("sub")).1 & 0o2070, 0o2070);
        assert_eq!(meta(&dir.join("sub/f")), (2000, 0o660));
        assert_eq!(meta(&dir.join("link")).0, 2000, "the link itself");
        assert_eq!(
            meta(Path::new("/etc/passwd")),
            passwd_mode,
            "never its target"
        );

        // OnRootMismatch: the root is right, so a file of another group stays as it is.
        std::fs::write(dir.join("late"), "y").expect("file");
        std::os::unix::fs::lchown(dir.join("late"), None, Some(0)).expect("chown");
        set_volume_ownership(&dir, 2000, false, true).expect("skip");
        assert_eq!(meta(&dir.join("late")).0, 0);
        // Always walks.
        set_volume_ownership(&dir, 2000, false, false).expect("walk");
        assert_eq!(meta(&dir.join("late")).0, 2000);
        // A root of another group is walked even under OnRootMismatch.
        std::os::unix::fs::lchown(&dir, None, Some(0)).expect("chown");
        std::os::unix::fs::lchown(dir.join("late"), None, Some(0)).expect("chown");
        set_volume_ownership(&dir, 2000, false, true).expect("mismatch");
        assert_eq!(meta(&dir.join("late")).0, 2000);
    }

    #[test]
    fn api_data_with_fs_group_is_group_readable_and_stable() {
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("vol");
        let v1: Payload = [("key".to_string(), file("s", 0o400))].into();
        let v1 = with_group_read(v1, Some(2000));
        assert!(write_atomic(&dir, &v1, Some(2000)).expect("write"));
        // defaultMode 0400 + fsGroup: 0440, group-owned, like kubelet's read-only walk.
        assert_eq!(meta(&dir.join("..data/key")), (2000, 0o440));
        assert_eq!(meta(&dir), (2000, 0o2755));
        let version = std::fs::read_link(dir.join("..data")).expect("..data");
        assert_eq!(meta(&dir.join(&version)), (2000, 0o2755));
        assert_eq!(meta(&dir.join("..data")).0, 2000);
        // The same payload again is no change (no new version every refresh), and the
        // root keeps its setgid bit.
        assert!(!write_atomic(&dir, &v1, Some(2000)).expect("same"));
        assert_eq!(meta(&dir), (2000, 0o2755));
    }

    #[test]
    fn host_path_types() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path().join("made");
        check_host_path(&d, "DirectoryOrCreate").expect("created");
        assert!(d.is_dir());
        check_host_path(&d, "Directory").expect("is dir");
        let err = check_host_path(&d, "File").expect_err("not a file");
        assert_eq!(
            err.to_string(),
            format!("hostPath type check failed: {} is not a file", d.display())
        );
        let f = d.join("f");
        check_host_path(&f, "FileOrCreate").expect("file created");
        assert!(f.is_file());
        assert!(check_host_path(&f, "DirectoryOrCreate").is_err());
        assert!(check_host_path(&tmp.path().join("none"), "Directory").is_err());
        assert!(check_host_path(&f, "Socket").is_err());
        check_host_path(Path::new("/dev/null"), "CharDevice").expect("char device");
        assert!(check_host_path(Path::new("/dev/null"), "BlockDevice").is_err());
    }
}
