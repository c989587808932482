//! Store semantics: sharing, removal and GC, naming, platforms, formats.

mod common;

use std::fs;
use std::sync::Arc;

use common::{gzip, hex_of, ls, sha, tar_dir, write_oci_layout, Layer, LayerTar, TestImage};
use podhost_image::{ImageError, ImageStore};
use serde_json::json;

fn base_layer() -> Layer {
    Layer::gzip(
        LayerTar::new()
            .dir("bin", 0o755)
            .file("bin/base", b"base")
            .finish(),
    )
}

#[test]
fn shared_layer_is_unpacked_once_and_gc_keeps_it_while_used() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let base = base_layer();
    let top = Layer::plain(LayerTar::new().file("app", b"app").finish());
    let one = TestImage::new(vec![base.clone()], "one");
    let two = TestImage::new(vec![base.clone(), top.clone()], "two");

    one.write_oci_dir(
        &tmp.path().join("one"),
        json!({"io.containerd.image.name": "one"}),
    );
    two.write_oci_dir(
        &tmp.path().join("two"),
        json!({"io.containerd.image.name": "two"}),
    );
    let img1 = store.load(&tmp.path().join("one"), None).unwrap().remove(0);
    let base_dir = store.layer_dirs(&img1).unwrap().remove(0);
    fs::write(base_dir.join(".marker"), b"").unwrap();
    let img2 = store.load(&tmp.path().join("two"), None).unwrap().remove(0);
    let dirs2 = store.layer_dirs(&img2).unwrap();
    assert_eq!(dirs2[0], base_dir);
    assert!(
        base_dir.join(".marker").exists(),
        "shared layer unpacked only once"
    );
    assert_eq!(ls(&root.join("layers/sha256")).len(), 2);

    // Removing image one keeps the shared layer and its blob.
    store.remove("one").unwrap();
    assert!(store.get("one").unwrap().is_none());
    assert!(base_dir.is_dir());
    assert!(root
        .join("blobs/sha256")
        .join(hex_of(&sha(&base.blob)))
        .exists());
    assert!(!root.join("blobs/sha256").join(hex_of(&one.id())).exists());
    assert_eq!(store.list().unwrap().len(), 1);

    // Removing the last user deletes everything.
    store.remove(&img2.id[..15]).unwrap(); // "sha256:" + 8 hex is an id prefix
    assert!(store.list().unwrap().is_empty());
    assert!(ls(&root.join("layers/sha256")).is_empty());
    assert!(ls(&root.join("blobs/sha256")).is_empty());
    let err = store.remove("two").unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("two"));
}

#[test]
fn tags_move_untag_keeps_other_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let a = TestImage::new(vec![base_layer()], "a");
    let b = TestImage::new(vec![base_layer()], "b");
    a.write_oci_dir(&tmp.path().join("a"), json!({}));
    b.write_oci_dir(&tmp.path().join("b"), json!({}));
    let ia = store
        .load(&tmp.path().join("a"), Some("app:1"))
        .unwrap()
        .remove(0);
    store
        .load(&tmp.path().join("a"), Some("app:stable"))
        .unwrap();
    assert_eq!(
        store.get("app:1").unwrap().unwrap().repo_tags,
        vec!["docker.io/library/app:1", "docker.io/library/app:stable"]
    );
    // app:stable moves to b; a keeps app:1.
    let ib = store
        .load(&tmp.path().join("b"), Some("app:stable"))
        .unwrap()
        .remove(0);
    assert_eq!(store.get("app:stable").unwrap().unwrap().id, ib.id);
    assert_eq!(
        store.get("app:1").unwrap().unwrap().repo_tags,
        vec!["docker.io/library/app:1"]
    );
    // Untagging the last tag deletes the image; b is untouched.
    store.remove("docker.io/library/app:1").unwrap();
    assert!(store.get(&ia.id).unwrap().is_none());
    assert!(store.get(&ib.id).unwrap().is_some());
    // An archive without names gives an untagged image, reachable by id.
    let c = TestImage::new(vec![base_layer()], "c");
    c.write_oci_dir(&tmp.path().join("c"), json!({}));
    let ic = store.load(&tmp.path().join("c"), None).unwrap().remove(0);
    assert!(ic.repo_tags.is_empty());
    assert_eq!(store.get(&ic.id[7..20]).unwrap().unwrap().id, ic.id);
    store.remove(&ic.id).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn oci_ref_name_annotations() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let img = TestImage::new(vec![base_layer()], "x");
    let dir = tmp.path().join("oci");
    img.write_oci_dir(&dir, json!({"org.opencontainers.image.ref.name": "1.36"}));
    // Bare tag, no `tag`: untagged.
    assert!(store.load(&dir, None).unwrap()[0].repo_tags.is_empty());
    // Bare tag + repository-only `tag`: repository:tag.
    let i = store
        .load(&dir, Some("example.com/tools/bb"))
        .unwrap()
        .remove(0);
    assert_eq!(i.repo_tags, vec!["example.com/tools/bb:1.36"]);
    // Full reference in ref.name.
    let dir2 = tmp.path().join("oci2");
    img.write_oci_dir(
        &dir2,
        json!({"org.opencontainers.image.ref.name": "quay.io/x/y:2"}),
    );
    let i = store.load(&dir2, None).unwrap().remove(0);
    assert!(i.repo_tags.contains(&"quay.io/x/y:2".to_string()));
    // An invalid name in the archive is an error naming it.
    let dir3 = tmp.path().join("oci3");
    img.write_oci_dir(&dir3, json!({"io.containerd.image.name": "Bad/Name"}));
    let err = store.load(&dir3, None).unwrap_err();
    assert!(err.to_string().contains("Bad/Name"), "{err}");
}

#[test]
fn only_the_host_platform_is_imported_from_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let amd = TestImage::with_arch(vec![base_layer()], "amd", "amd64");
    let arm = TestImage::with_arch(
        vec![Layer::gzip(LayerTar::new().file("arm", b"arm").finish())],
        "arm",
        "arm64",
    );
    let dir = tmp.path().join("multi");
    // A nested index (what `docker buildx` and registries produce).
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json",
              "digest": arm.manifest_digest(), "size": arm.manifest.len(),
              "platform": {"architecture": "arm64", "os": "linux"} },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json",
              "digest": amd.manifest_digest(), "size": amd.manifest.len(),
              "platform": {"architecture": "amd64", "os": "linux"} },
        ],
    }))
    .unwrap();
    write_oci_layout(
        &dir,
        &[&amd, &arm],
        vec![json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": sha(&nested), "size": nested.len(),
            "annotations": {"io.containerd.image.name": "multi:latest"},
        })],
    );
    fs::write(
        dir.join("blobs/sha256").join(hex_of(&sha(&nested))),
        &nested,
    )
    .unwrap();
    let images = store.load(&dir, None).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, amd.id());
    assert_eq!(images[0].repo_tags, vec!["docker.io/library/multi:latest"]);
    assert_eq!(ls(&tmp.path().join("store/layers/sha256")).len(), 1);

    // Only arm64 available: an error naming the index entry.
    let only_arm = tmp.path().join("arm");
    write_oci_layout(
        &only_arm,
        &[&arm],
        vec![json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": arm.manifest_digest(), "size": arm.manifest.len(),
            "platform": {"architecture": "arm64", "os": "linux"},
        })],
    );
    let err = store.load(&only_arm, None).unwrap_err();
    assert!(
        matches!(err, ImageError::NoMatchingPlatform { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&arm.manifest_digest()), "{err}");
}

#[test]
fn docker_archive_with_linked_layers_and_oci_archive_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    // `docker save` of two images sharing a layer writes the layer once and
    // links the other `layer.tar` to it.
    let shared = LayerTar::new().file("shared", b"s").finish();
    let extra = LayerTar::new().file("extra", b"e").finish();
    let dir = tmp.path().join("docker");
    fs::create_dir_all(dir.join("l1")).unwrap();
    fs::create_dir_all(dir.join("l2")).unwrap();
    fs::create_dir_all(dir.join("l3")).unwrap();
    fs::write(dir.join("l1/layer.tar"), &shared).unwrap();
    std::os::unix::fs::symlink("../l1/layer.tar", dir.join("l3/layer.tar")).unwrap();
    fs::write(dir.join("l2/layer.tar"), gzip(&extra)).unwrap();
    let c1 = serde_json::to_vec(&json!({"architecture":"amd64","os":"linux",
        "rootfs":{"type":"layers","diff_ids":[sha(&shared)]}}))
    .unwrap();
    let c2 = serde_json::to_vec(
        &json!({"architecture":"amd64","os":"linux","config":{"Cmd":["x"]},
        "rootfs":{"type":"layers","diff_ids":[sha(&shared), sha(&extra)]}}),
    )
    .unwrap();
    fs::write(dir.join("c1.json"), &c1).unwrap();
    fs::write(dir.join("c2.json"), &c2).unwrap();
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&json!([
            {"Config": "c1.json", "RepoTags": ["one:1"], "Layers": ["l1/layer.tar"]},
            {"Config": "c2.json", "RepoTags": ["two:2", "two:latest"], "Layers": ["l3/layer.tar", "l2/layer.tar"]},
        ]))
        .unwrap(),
    )
    .unwrap();
    let archive = tmp.path().join("docker.tar");
    tar_dir(&dir, &archive);
    let images = store.load(&archive, None).unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].id, sha(&c1));
    assert_eq!(
        images[1].repo_tags,
        vec!["docker.io/library/two:2", "docker.io/library/two:latest"]
    );
    let dirs = store.layer_dirs(&images[1]).unwrap();
    assert!(dirs[0].join("shared").is_file());
    assert!(dirs[1].join("extra").is_file());
    assert_eq!(ls(&tmp.path().join("store/layers/sha256")).len(), 2);

    // OCI archive as a tar (with ./ prefixes, as `tar -C dir .` writes).
    let img = TestImage::new(
        vec![Layer::zstd(LayerTar::new().file("z", b"z").finish())],
        "z",
    );
    let layout = tmp.path().join("layout");
    img.write_oci_dir(&layout, json!({"io.containerd.image.name": "zz"}));
    let oci_tar = tmp.path().join("oci.tar");
    tar_dir(&layout, &oci_tar);
    let images = store.load(&oci_tar, None).unwrap();
    assert_eq!(images[0].repo_tags, vec!["docker.io/library/zz:latest"]);

    // A gzipped archive is refused with advice.
    let gz = tmp.path().join("oci.tar.gz");
    fs::write(&gz, gzip(&fs::read(&oci_tar).unwrap())).unwrap();
    let err = store.load(&gz, None).unwrap_err();
    assert!(
        matches!(err, ImageError::CompressedArchive { .. }),
        "{err:?}"
    );
    // Not an image at all.
    let junk = tmp.path().join("junk");
    fs::create_dir(&junk).unwrap();
    let err = store.load(&junk, None).unwrap_err();
    assert!(matches!(err, ImageError::UnknownFormat { .. }), "{err:?}");
    let err = store
        .load(&tmp.path().join("missing.tar"), None)
        .unwrap_err();
    assert!(err.to_string().contains("missing.tar"), "{err}");
}

#[test]
fn concurrent_loads_of_the_same_image() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(ImageStore::open(&tmp.path().join("store")).unwrap());
    let img = TestImage::new(
        vec![
            base_layer(),
            Layer::plain(LayerTar::new().file("f", b"f").finish()),
        ],
        "c",
    );
    let dir = tmp.path().join("oci");
    img.write_oci_dir(&dir, json!({"io.containerd.image.name": "conc"}));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            let dir = dir.clone();
            std::thread::spawn(move || store.load(&dir, None).map(|v| v[0].id.clone()))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), img.id());
    }
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(ls(&tmp.path().join("store/layers/sha256")).len(), 2);
    // No temporaries left behind.
    assert!(ls(&tmp.path().join("store/blobs/sha256"))
        .iter()
        .all(|n| !n.starts_with('.')));
}

#[test]
fn invalid_references_in_get() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let err = store.get("Not/Valid").unwrap_err();
    assert!(
        matches!(err, ImageError::InvalidReference { .. }),
        "{err:?}"
    );
    assert!(store.get("abcdef").unwrap().is_none());
}

#[test]
fn open_drops_partial_downloads_nobody_resumed_for_a_day() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let downloads = root.join(podhost_image::DOWNLOADS_DIR);
    fs::create_dir_all(&downloads).unwrap();
    fs::write(downloads.join("fresh"), b"resume me").unwrap();
    let old = downloads.join("old");
    fs::write(&old, b"forgotten").unwrap();
    let two_days = std::time::Duration::from_secs(2 * 24 * 3600);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - two_days)
        .unwrap();
    drop(ImageStore::open(&root).unwrap());
    assert_eq!(ls(&downloads), vec!["fresh"]);
}

#[test]
fn open_removes_leftovers_of_interrupted_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    drop(ImageStore::open(&root).unwrap());
    fs::create_dir_all(root.join("layers/sha256/.tmp-abc-1-0/bin")).unwrap();
    fs::write(root.join("blobs/sha256/.tmp-blob-1-0"), b"partial").unwrap();
    fs::write(root.join(".tmp-write-1-0"), b"partial index").unwrap();
    let store = ImageStore::open(&root).unwrap();
    assert!(ls(&root.join("layers/sha256")).is_empty());
    assert!(ls(&root.join("blobs/sha256")).is_empty());
    assert_eq!(ls(&root), vec!["blobs", "layers"]);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn last_use_is_recorded_persisted_and_orders_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        let img = TestImage::new(
            vec![Layer::plain(LayerTar::new().file(name, b"x").finish())],
            name,
        );
        img.write_oci_dir(
            &tmp.path().join(name),
            json!({"io.containerd.image.name": name}),
        );
        let loaded = store.load(&tmp.path().join(name), None).unwrap().remove(0);
        assert!(loaded.first_seen_ms.is_some(), "import time recorded");
        assert_eq!(loaded.last_used_ms, None);
        ids.push(loaded.id);
    }
    // Imported first, used last: kept longest. "second" is never used: removed first.
    store.mark_used(&ids[2], 1_000).unwrap();
    store.mark_used(&ids[0], 2_000).unwrap();
    // An older use never moves the time back, a use within the granularity is not
    // written; an unknown id is no error.
    store.mark_used(&ids[0], 1_500).unwrap();
    store
        .mark_used(&ids[0], 2_000 + podhost_image::USE_GRANULARITY_MS - 1)
        .unwrap();
    store.mark_used("sha256:gone", 3_000).unwrap();
    let reopened = ImageStore::open(&root).unwrap();
    let list = reopened.list().unwrap();
    assert_eq!(list[0].last_used_ms, Some(2_000), "persisted");
    let far_future = podhost_image::now_ms() + 3_600_000;
    let order: Vec<String> = podhost_image::gc_candidates(
        &list,
        &Default::default(),
        far_future,
        podhost_image::GC_MIN_AGE,
    )
    .into_iter()
    .map(|i| i.id)
    .collect();
    assert_eq!(order, [ids[1].clone(), ids[2].clone(), ids[0].clone()]);
    // Never an image in use, whatever its age.
    let in_use = [ids[1].clone()].into();
    let order: Vec<String> =
        podhost_image::gc_candidates(&list, &in_use, far_future, podhost_image::GC_MIN_AGE)
            .into_iter()
            .map(|i| i.id)
            .collect();
    assert_eq!(order, [ids[2].clone(), ids[0].clone()]);
    // Just imported: too young to collect (kubelet's minimum image age).
    assert!(podhost_image::gc_candidates(
        &list,
        &Default::default(),
        podhost_image::now_ms(),
        podhost_image::GC_MIN_AGE
    )
    .is_empty());
}

#[test]
fn an_index_without_use_times_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    fs::create_dir_all(&root).unwrap();
    // images.json as podhost wrote it before it recorded import and use times.
    let old = json!({"version": 1, "images": [{
        "id": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "repo_tags": ["docker.io/library/old:1"],
        "manifest_digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
        "diff_ids": [],
        "size": 5
    }]});
    fs::write(root.join("images.json"), old.to_string()).unwrap();
    let store = ImageStore::open(&root).unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].first_seen_ms, list[0].last_used_ms), (None, None));
    store.mark_used(&list[0].id, 42).unwrap();
    let again = ImageStore::open(&root).unwrap().list().unwrap();
    assert_eq!(again[0].last_used_ms, Some(42));
}
