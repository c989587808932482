//! Imports the images made by scripts/make-busybox-image.sh.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{ls, make_busybox};
use podhost_image::ImageStore;

#[test]
fn oci_archive_then_docker_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("busybox-oci.tar");
    let docker = tmp.path().join("busybox-docker.tar");
    make_busybox(&oci, &[]);
    make_busybox(&docker, &["--format", "docker"]);
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();

    let images = store.load(&oci, None).unwrap();
    assert_eq!(images.len(), 1);
    let image = images[0].clone();
    assert_eq!(image.repo_tags, vec!["docker.io/library/busybox:latest"]);
    assert!(image.id.starts_with("sha256:"));
    assert_eq!(image.diff_ids.len(), 1);
    assert!(image.size > 500_000, "size {}", image.size);
    assert_eq!(store.list().unwrap(), vec![image.clone()]);

    // Lookups: short name, full name, id, id prefixes with and without sha256:.
    let hex = image.id.strip_prefix("sha256:").unwrap();
    for reference in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        image.id.as_str(),
        hex,
        &hex[..6],
        &format!("sha256:{}", &hex[..12]),
    ] {
        assert_eq!(
            store.get(reference).unwrap().as_ref(),
            Some(&image),
            "{reference}"
        );
    }
    assert_eq!(store.get("busybox:1.0").unwrap(), None);
    assert_eq!(store.get("alpine").unwrap(), None);
    let digest_ref = format!("busybox@{}", image.manifest_digest);
    assert_eq!(store.get(&digest_ref).unwrap().as_ref(), Some(&image));

    // Layer content.
    let dirs = store.layer_dirs(&image).unwrap();
    assert_eq!(dirs.len(), 1);
    let busybox = fs::metadata(dirs[0].join("bin/busybox")).unwrap();
    assert!(busybox.is_file());
    assert_eq!(busybox.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        fs::read_link(dirs[0].join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    let tmpdir = fs::metadata(dirs[0].join("tmp")).unwrap();
    assert_eq!(tmpdir.permissions().mode() & 0o7777, 0o1777);
    assert_eq!(tmpdir.mtime(), 0, "directory mtimes are restored last");
    assert!(fs::read_to_string(dirs[0].join("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0:"));

    // Config.
    let config = store.config(&image).unwrap();
    let cfg = config.config().as_ref().unwrap();
    assert_eq!(cfg.cmd().as_deref(), Some(&["sh".to_string()][..]));
    assert!(cfg
        .env()
        .as_ref()
        .unwrap()
        .iter()
        .any(|e| e.starts_with("PATH=/usr/local/sbin:")));

    // Idempotent reload: nothing is unpacked again (a marker in the layer
    // directory survives) and the index is unchanged.
    fs::write(dirs[0].join(".marker"), b"x").unwrap();
    let again = store.load(&oci, None).unwrap();
    assert_eq!(again, vec![image.clone()]);
    assert!(dirs[0].join(".marker").exists());
    assert_eq!(store.list().unwrap().len(), 1);

    // The docker-archive of the same rootfs and config is the same image.
    let from_docker = store.load(&docker, None).unwrap();
    assert_eq!(from_docker.len(), 1);
    assert_eq!(from_docker[0].id, image.id);
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(dirs[0].join(".marker").exists());
    assert_eq!(ls(&tmp.path().join("store/layers/sha256")).len(), 1);

    // A fresh store importing only the docker-archive.
    let store2 = ImageStore::open(&tmp.path().join("store2")).unwrap();
    let images = store2.load(&docker, None).unwrap();
    assert_eq!(images[0].id, image.id);
    assert_eq!(images[0].diff_ids, image.diff_ids);
    assert_eq!(
        images[0].repo_tags,
        vec!["docker.io/library/busybox:latest"]
    );
    let dirs = store2.layer_dirs(&images[0]).unwrap();
    assert!(dirs[0].join("bin/busybox").is_file());
    // Its synthesised manifest is stored as a blob.
    let manifest_hex = images[0].manifest_digest.strip_prefix("sha256:").unwrap();
    assert!(tmp
        .path()
        .join("store2/blobs/sha256")
        .join(manifest_hex)
        .is_file());

    // A reopened store sees the same index.
    drop(store2);
    let reopened = ImageStore::open(&tmp.path().join("store2")).unwrap();
    assert_eq!(reopened.list().unwrap(), images);
}

#[test]
fn script_name_option_and_oci_layout_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("bb.tar");
    make_busybox(&archive, &["--name", "localhost:5000/tools/bb:v1"]);
    // Unpack the OCI archive into a layout directory and load that.
    let layout = tmp.path().join("layout");
    fs::create_dir(&layout).unwrap();
    let status = std::process::Command::new("tar")
        .args(["-xf"])
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(status.success());
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let images = store.load(&layout, None).unwrap();
    assert_eq!(images[0].repo_tags, vec!["localhost:5000/tools/bb:v1"]);
    assert!(store.get("localhost:5000/tools/bb:v1").unwrap().is_some());
    assert!(store.get("busybox").unwrap().is_none());

    // `tag` replaces the archive's name.
    let images = store.load(&archive, Some("mybox:dev")).unwrap();
    assert_eq!(
        images[0].repo_tags,
        vec!["localhost:5000/tools/bb:v1", "docker.io/library/mybox:dev"]
    );
}

#[test]
fn script_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.tar");
    let b = tmp.path().join("b.tar");
    make_busybox(&a, &[]);
    make_busybox(&b, &[]);
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
}
