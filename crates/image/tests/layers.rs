//! Layer unpacking: whiteouts, compression, metadata and hostile layers.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::{hex_of, ls, sha, Layer, LayerTar, TestImage};
use podhost_image::{ImageError, ImageStore};
use serde_json::json;

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}

fn load_one(store: &ImageStore, dir: &Path, image: &TestImage, name: &str) -> podhost_image::Image {
    image.write_oci_dir(dir, json!({ "io.containerd.image.name": name }));
    let images = store.load(dir, None).unwrap();
    assert_eq!(images.len(), 1);
    images[0].clone()
}

#[test]
fn whiteouts_become_overlay_whiteouts_and_work_when_mounted() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let l1 = LayerTar::new()
        .dir("etc", 0o755)
        .file("etc/x", b"deleted in layer 2")
        .file("etc/keep", b"kept")
        .dir("data", 0o755)
        .file("data/old", b"hidden by opaque dir")
        .finish();
    let l2 = LayerTar::new()
        .file("etc/.wh.x", b"")
        .dir("data", 0o755)
        .file("data/.wh..wh..opq", b"")
        .file("data/new", b"from layer 2")
        .finish();
    let image = TestImage::new(vec![Layer::gzip(l1), Layer::plain(l2)], "sh");
    let img = load_one(&store, &tmp.path().join("oci"), &image, "wh:1");
    let dirs = store.layer_dirs(&img).unwrap();
    assert_eq!(dirs.len(), 2);

    // The whiteout is a 0:0 character device named like the deleted file.
    let wh = fs::symlink_metadata(dirs[1].join("etc/x")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!dirs[1].join("etc/.wh.x").exists());
    // The opaque marker became an xattr on its directory.
    assert_eq!(
        getxattr(&dirs[1].join("data"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!dirs[1].join("data/.wh..wh..opq").exists());
    assert!(getxattr(&dirs[0].join("data"), "trusted.overlay.opaque").is_none());

    // Mount as the runtime will: lowerdir=top:bottom.
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let opts = format!("lowerdir={}:{}", dirs[1].display(), dirs[0].display());
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "mount overlay failed");
    let seen = (
        mnt.join("etc/x").exists(),
        fs::read_to_string(mnt.join("etc/keep")).ok(),
        ls(&mnt.join("data")),
    );
    let umount = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(umount.success());
    assert!(!seen.0, "etc/x should be deleted by the whiteout");
    assert_eq!(seen.1.as_deref(), Some("kept"));
    assert_eq!(seen.2, vec!["new"], "opaque dir must hide lower content");
}

#[test]
fn gzip_and_zstd_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let gz = LayerTar::new().file("from-gzip", b"g").finish();
    let zs = LayerTar::new().file("from-zstd", b"z").finish();
    let image = TestImage::new(vec![Layer::gzip(gz), Layer::zstd(zs)], "true");
    let img = load_one(&store, &tmp.path().join("oci"), &image, "compressed");
    let dirs = store.layer_dirs(&img).unwrap();
    assert_eq!(fs::read(dirs[0].join("from-gzip")).unwrap(), b"g");
    assert_eq!(fs::read(dirs[1].join("from-zstd")).unwrap(), b"z");
    // Blobs are kept as given (compressed).
    for layer in &image.layers {
        let stored = fs::read(
            tmp.path()
                .join("store/blobs/sha256")
                .join(hex_of(&sha(&layer.blob))),
        )
        .unwrap();
        assert_eq!(stored, layer.blob);
    }
}

#[test]
fn metadata_is_preserved() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let layer = LayerTar::new()
        .dir("usr", 0o750)
        .file_full("usr/suid", b"#!", 0o4755, 1000, 2000, 123_456)
        .hardlink("usr/suid-link", "usr/suid")
        .symlink("usr/abs", "/etc/passwd")
        .symlink("usr/dangling", "../../../../nowhere")
        .pax(&[
            ("SCHILY.xattr.user.note", b"hello"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/x"),
        ])
        .file("usr/with-xattr", b"x")
        .pax(&[("mtime", b"1700000000.25")])
        .file("usr/precise", b"p")
        .finish();
    let image = TestImage::new(vec![Layer::plain(layer)], "sh");
    let img = load_one(&store, &tmp.path().join("oci"), &image, "meta");
    let root = &store.layer_dirs(&img).unwrap()[0];

    let suid = fs::metadata(root.join("usr/suid")).unwrap();
    assert_eq!(suid.permissions().mode() & 0o7777, 0o4755);
    assert_eq!((suid.uid(), suid.gid()), (1000, 2000));
    assert_eq!(suid.mtime(), 123_456);
    let link = fs::metadata(root.join("usr/suid-link")).unwrap();
    assert_eq!(link.ino(), suid.ino(), "hard link shares the inode");
    assert_eq!(
        fs::read_link(root.join("usr/abs")).unwrap().to_str(),
        Some("/etc/passwd")
    );
    assert_eq!(
        fs::read_link(root.join("usr/dangling")).unwrap().to_str(),
        Some("../../../../nowhere")
    );
    assert_eq!(
        getxattr(&root.join("usr/with-xattr"), "user.note").as_deref(),
        Some(&b"hello"[..])
    );
    assert!(
        getxattr(&root.join("usr/with-xattr"), "trusted.overlay.redirect").is_none(),
        "overlay xattrs from a layer are dropped"
    );
    let precise = fs::metadata(root.join("usr/precise")).unwrap();
    assert_eq!(
        (precise.mtime(), precise.mtime_nsec()),
        (1_700_000_000, 250_000_000)
    );
    let usr = fs::metadata(root.join("usr")).unwrap();
    assert_eq!(usr.permissions().mode() & 0o7777, 0o750);
    assert_eq!(usr.mtime(), 1_000_000);
}

#[test]
fn digest_mismatch_names_the_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let layer = Layer::gzip(LayerTar::new().file("a", b"a").finish());
    let image = TestImage::new(vec![layer.clone()], "sh");
    let dir = tmp.path().join("oci");
    image.write_oci_dir(&dir, json!({ "io.containerd.image.name": "bad" }));
    // Same size, different content.
    let blob_digest = sha(&layer.blob);
    let path = dir.join("blobs/sha256").join(hex_of(&blob_digest));
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    let err = store.load(&dir, None).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&blob_digest), "{err}");
    assert!(store.list().unwrap().is_empty());
    assert!(ls(&tmp.path().join("store/layers/sha256")).is_empty());
    assert!(!tmp
        .path()
        .join("store/blobs/sha256")
        .join(hex_of(&blob_digest))
        .exists());
}

#[test]
fn wrong_diff_id_is_refused_and_leaves_no_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let mut layer = Layer::gzip(LayerTar::new().file("a", b"a").finish());
    let lie = sha(b"something else");
    layer.diff_id = lie.clone();
    let image = TestImage::new(vec![layer], "sh");
    image.write_oci_dir(&tmp.path().join("oci"), json!({}));
    let err = store.load(&tmp.path().join("oci"), None).unwrap_err();
    assert!(err.to_string().contains(&lie), "{err}");
    assert!(ls(&tmp.path().join("store/layers/sha256")).is_empty());
}

#[test]
fn parent_dir_escape_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let layer = LayerTar::new()
        .file("ok", b"fine")
        .raw_file("../evil", b"pwned")
        .finish();
    let image = TestImage::new(vec![Layer::plain(layer)], "sh");
    image.write_oci_dir(&tmp.path().join("oci"), json!({}));
    let err = store.load(&tmp.path().join("oci"), None).unwrap_err();
    assert!(
        matches!(err, ImageError::UnsafeLayerEntry { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("../evil"), "{err}");
    // Nothing outside the layer: not in layers/, sha256/, the store or above.
    for dir in [
        root.join("layers/sha256"),
        root.join("layers"),
        root.clone(),
        tmp.path().to_path_buf(),
    ] {
        assert!(!dir.join("evil").exists(), "{}", dir.display());
    }
    assert!(
        ls(&root.join("layers/sha256")).is_empty(),
        "no partial layer left"
    );
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let layer = LayerTar::new()
        .symlink("link", outside.to_str().unwrap())
        .file("link/pwned", b"x")
        .finish();
    let image = TestImage::new(vec![Layer::plain(layer)], "sh");
    image.write_oci_dir(&tmp.path().join("oci"), json!({}));
    let err = store.load(&tmp.path().join("oci"), None).unwrap_err();
    assert!(
        matches!(err, ImageError::UnsafeLayerEntry { .. }),
        "{err:?}"
    );
    assert!(ls(&outside).is_empty());

    // Absolute paths are made relative to the layer.
    let layer = LayerTar::new().raw_file("/abs", b"inside").finish();
    let image = TestImage::new(vec![Layer::plain(layer)], "sh");
    let img = load_one(&store, &tmp.path().join("oci2"), &image, "abs");
    let dir = &store.layer_dirs(&img).unwrap()[0];
    assert_eq!(fs::read(dir.join("abs")).unwrap(), b"inside");

    // A hard link to a file outside the layer is refused.
    let layer = LayerTar::new()
        .hardlink("h", "../../../../etc/passwd")
        .finish();
    let image = TestImage::new(vec![Layer::plain(layer)], "sh");
    image.write_oci_dir(&tmp.path().join("oci3"), json!({}));
    let err = store.load(&tmp.path().join("oci3"), None).unwrap_err();
    assert!(
        matches!(err, ImageError::UnsafeLayerEntry { .. }),
        "{err:?}"
    );
}

#[test]
fn a_file_of_zeros_is_unpacked_as_holes() {
    // A decompression bomb: 256 MiB of zeros is a few hundred KiB gzipped.
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let mut zeros = vec![0u8; 256 << 20];
    zeros[100 << 20] = b'x';
    let layer = LayerTar::new().file("bomb", &zeros).finish();
    let image = TestImage::new(vec![Layer::gzip(layer)], "sh");
    let img = load_one(&store, &tmp.path().join("oci"), &image, "bomb:1");
    let path = store.layer_dirs(&img).unwrap()[0].join("bomb");
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 256 << 20, "the file reads the same");
    assert_eq!(fs::read(&path).unwrap()[100 << 20], b'x');
    assert!(
        meta.blocks() * 512 < 4 << 20,
        "zero runs must be holes, {} bytes allocated",
        meta.blocks() * 512
    );
}

#[test]
fn an_entry_claiming_a_huge_size_is_refused_before_reading() {
    // A header that claims 100 GiB (as a crafted sparse entry could expand to).
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("huge").unwrap();
    h.set_size(100 << 30);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut raw = h.as_bytes().to_vec();
    raw.extend_from_slice(&[0u8; 4096]);
    let image = TestImage::new(vec![Layer::plain(raw)], "sh");
    image.write_oci_dir(&tmp.path().join("oci"), json!({}));
    let err = store.load(&tmp.path().join("oci"), None).unwrap_err();
    assert!(
        matches!(err, ImageError::UnsafeLayerEntry { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("64 GiB"), "{err}");
    assert!(
        ls(&root.join("layers/sha256")).is_empty(),
        "no partial layer left"
    );
}
