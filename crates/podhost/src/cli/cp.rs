//! `podhost cp`: files between this machine and a container, as `kubectl cp` copies
//! them: a tar stream through an exec of the container's own `tar` (the image needs
//! one; busybox has it).
//!
//! What comes out of a container is hostile input: its archive is unpacked into a
//! fresh directory by the tar crate, which refuses `..` and absolute names and entries
//! written through symlinks out of that directory, sets no owners and no set-id bits,
//! and only the copied name is then moved into place.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::client::{enc, Client};
use super::exec;

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Side {
    Local(PathBuf),
    /// `[NAMESPACE/]POD:PATH`.
    Remote {
        namespace: Option<String>,
        pod: String,
        path: String,
    },
}

/// kubectl's rule: `POD:PATH` or `NS/POD:PATH` is in a container; a path starting
/// with `/` or `.`, or without `:`, is here.
fn side(s: &str) -> Side {
    if s.starts_with('/') || s.starts_with('.') {
        return Side::Local(PathBuf::from(s));
    }
    match s.split_once(':') {
        Some((pod, path)) if !pod.is_empty() => {
            let (namespace, pod) = match pod.split_once('/') {
                Some((ns, p)) => (Some(ns.to_string()), p.to_string()),
                None => (None, pod.to_string()),
            };
            Side::Remote {
                namespace,
                pod,
                path: path.to_string(),
            }
        }
        _ => Side::Local(PathBuf::from(s)),
    }
}

/// `dir` and `name` of a path in a container (`/a/b` → `/a`, `b`).
fn split_remote(path: &str) -> Result<(String, String)> {
    let trimmed = path.trim_end_matches('/');
    let (dir, name) = match trimmed.rsplit_once('/') {
        Some(("", n)) => ("/".to_string(), n.to_string()),
        Some((d, n)) => (d.to_string(), n.to_string()),
        None => (".".to_string(), trimmed.to_string()),
    };
    if name.is_empty() || name == "." || name == ".." {
        bail!("{path:?}: name a file or directory to copy");
    }
    Ok((dir, name))
}

/// Runs `cmd` in the container with `input` on its stdin; its stdout.
async fn run_in(
    client: &Client,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    cmd: &[&str],
    input: Vec<u8>,
) -> Result<Vec<u8>> {
    let mut path = format!(
        "/v1/pods/{ns}/{pod}/exec?cmd={}",
        enc(&serde_json::to_string(cmd)?)
    );
    if let Some(c) = container {
        path.push_str(&format!("&container={}", enc(c)));
    }
    let io = client.upgrade(&path).await?;
    let (code, out) = exec::collect(io, input).await?;
    if code != 0 {
        bail!(
            "{} in the container exited with {code} (does the image have tar?)",
            cmd.join(" ")
        );
    }
    Ok(out)
}

/// `podhost cp SRC DST [-c CONTAINER]`.
pub async fn run(
    client: &Client,
    src: &str,
    dst: &str,
    container: Option<&str>,
    default_ns: &str,
) -> Result<i32> {
    match (side(src), side(dst)) {
        (
            Side::Remote {
                namespace,
                pod,
                path,
            },
            Side::Local(to),
        ) => {
            let ns = namespace.as_deref().unwrap_or(default_ns);
            let (dir, name) = split_remote(&path)?;
            let tar = run_in(
                client,
                ns,
                &pod,
                container,
                &["tar", "cf", "-", "-C", &dir, &name],
                Vec::new(),
            )
            .await?;
            let dest = if to.is_dir() { to.join(&name) } else { to };
            unpack(&tar, &name, &dest)?;
            Ok(0)
        }
        (
            Side::Local(from),
            Side::Remote {
                namespace,
                pod,
                path,
            },
        ) => {
            let ns = namespace.as_deref().unwrap_or(default_ns);
            let (dir, name) = split_remote(&path)?;
            let tar = pack(&from, &name)?;
            run_in(
                client,
                ns,
                &pod,
                container,
                &["tar", "xmf", "-", "-C", &dir],
                tar,
            )
            .await?;
            Ok(0)
        }
        (Side::Local(_), Side::Local(_)) => {
            bail!("one of src or dest must be a container path: POD:PATH or NAMESPACE/POD:PATH")
        }
        (Side::Remote { .. }, Side::Remote { .. }) => {
            bail!("copying between two containers is not supported: copy to this machine first")
        }
    }
}

/// A tar of `from` whose one top entry is `name`.
fn pack(from: &Path, name: &str) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let meta = std::fs::symlink_metadata(from).with_context(|| format!("{}", from.display()))?;
    if meta.is_dir() {
        b.append_dir_all(name, from)
    } else {
        b.append_path_with_name(from, name)
    }
    .with_context(|| format!("archiving {}", from.display()))?;
    b.into_inner().context("finishing the archive")
}

/// Unpacks a container's archive of `name` to `dest` (see the module's note).
fn unpack(tar_bytes: &[u8], name: &str, dest: &Path) -> Result<()> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = parent.join(format!(".podhost-cp-{}", std::process::id()));
    std::fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let result = (|| {
        let mut a = tar::Archive::new(tar_bytes);
        a.set_preserve_permissions(false);
        a.set_preserve_ownerships(false);
        a.set_unpack_xattrs(false);
        a.set_overwrite(true);
        a.unpack(&staging)
            .context("unpacking the container's archive")?;
        let got = staging.join(name);
        if std::fs::symlink_metadata(&got).is_err() {
            bail!("the container's archive holds no {name:?}");
        }
        std::fs::rename(&got, dest).with_context(|| format!("moving into {}", dest.display()))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_and_paths() {
        assert_eq!(
            side("web:/etc/hosts"),
            Side::Remote {
                namespace: None,
                pod: "web".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(
            side("ns/web:x"),
            Side::Remote {
                namespace: Some("ns".into()),
                pod: "web".into(),
                path: "x".into()
            }
        );
        assert_eq!(side("./a:b"), Side::Local("./a:b".into()));
        assert_eq!(side("/tmp/x"), Side::Local("/tmp/x".into()));
        assert_eq!(
            split_remote("/a/b/").expect("split"),
            ("/a".into(), "b".into())
        );
        assert_eq!(split_remote("/b").expect("split"), ("/".into(), "b".into()));
        assert!(split_remote("/").is_err());
    }

    #[test]
    fn hostile_archive_stays_in_its_directory() {
        let dir = tempfile::tempdir().expect("tmp");
        // An entry climbing out with `..`, written raw (the builder refuses such names).
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let name = b"../escaped";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        let mut raw = Vec::new();
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(b"evil");
        raw.resize(512 * 2, 0);
        raw.extend_from_slice(&[0u8; 1024]);
        let dest = dir.path().join("out");
        assert!(unpack(&raw, "x", &dest).is_err());
        assert!(!dir.path().join("escaped").exists());
        // A well-formed one lands under the name asked for.
        let src = dir.path().join("src");
        std::fs::write(&src, "data").expect("write");
        let tar = pack(&src, "x").expect("pack");
        unpack(&tar, "x", &dest).expect("unpack");
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "data");
    }
}
