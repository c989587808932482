//! Builders for test images: layer tars made with the `tar` crate, wrapped
//! into OCI layouts, OCI archives or docker-archives.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

pub fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

/// Builds one layer tar in memory.
pub struct LayerTar {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for LayerTar {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerTar {
    pub fn new() -> Self {
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Complete);
        LayerTar { builder }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.builder.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn file(self, path: &str, content: &[u8]) -> Self {
        self.file_full(path, content, 0o644, 0, 0, 1_000_000)
    }

    pub fn file_full(
        mut self,
        path: &str,
        content: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, content.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.builder.append_data(&mut h, path, content).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn pax(mut self, exts: &[(&str, &[u8])]) -> Self {
        self.builder
            .append_pax_extensions(exts.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    /// A regular file whose raw name bypasses the tar crate's path checks,
    /// the way a malicious layer would be written.
    pub fn raw_file(mut self, raw_name: &str, content: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, content.len() as u64);
        let name = &mut h.as_gnu_mut().unwrap().name;
        name[..raw_name.len()].copy_from_slice(raw_name.as_bytes());
        h.set_cksum();
        self.builder.append(&h, content).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// One layer: the blob as stored and the diff_id of its uncompressed tar.
#[derive(Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    pub diff_id: String,
}

impl Layer {
    pub fn plain(tar: Vec<u8>) -> Layer {
        Layer {
            diff_id: sha(&tar),
            blob: tar,
            media_type: "application/vnd.oci.image.layer.v1.tar",
        }
    }
    pub fn gzip(tar: Vec<u8>) -> Layer {
        Layer {
            diff_id: sha(&tar),
            blob: gzip(&tar),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }
    pub fn zstd(tar: Vec<u8>) -> Layer {
        Layer {
            diff_id: sha(&tar),
            blob: zstd(&tar),
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// An image ready to be written as an OCI layout.
pub struct TestImage {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    pub fn new(layers: Vec<Layer>, cmd: &str) -> TestImage {
        Self::with_arch(layers, cmd, "amd64")
    }

    pub fn with_arch(layers: Vec<Layer>, cmd: &str, arch: &str) -> TestImage {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": { "Cmd": [cmd], "Env": ["PATH=/bin"] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .unwrap();
        let layer_descs: Vec<_> = layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "mediaType": l.media_type, "digest": sha(&l.blob), "size": l.blob.len()
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(&config), "size": config.len()
            },
            "layers": layer_descs,
        }))
        .unwrap();
        TestImage {
            layers,
            config,
            manifest,
        }
    }

    pub fn id(&self) -> String {
        sha(&self.config)
    }

    pub fn manifest_digest(&self) -> String {
        sha(&self.manifest)
    }

    /// Writes the blobs of this image into `dir/blobs/sha256`.
    pub fn write_blobs(&self, dir: &Path) {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        for blob in self
            .layers
            .iter()
            .map(|l| &l.blob)
            .chain([&self.config, &self.manifest])
        {
            fs::write(blobs.join(hex_of(&sha(blob))), blob).unwrap();
        }
    }

    /// Index descriptor for this image's manifest.
    pub fn descriptor(&self, annotations: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": self.manifest_digest(),
            "size": self.manifest.len(),
            "annotations": annotations,
        })
    }

    /// Writes an OCI layout directory holding just this image.
    pub fn write_oci_dir(&self, dir: &Path, annotations: serde_json::Value) {
        write_oci_layout(dir, &[self], vec![self.descriptor(annotations)]);
    }
}

/// Writes an OCI layout with the given images' blobs and index entries.
pub fn write_oci_layout(dir: &Path, images: &[&TestImage], manifests: Vec<serde_json::Value>) {
    fs::create_dir_all(dir).unwrap();
    for image in images {
        image.write_blobs(dir);
    }
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Tars a directory's content (like `tar -C dir -cf out .`).
pub fn tar_dir(dir: &Path, out: &Path) {
    let file = fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(file);
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap().sync_all().unwrap();
}

/// Runs scripts/make-busybox-image.sh.
pub fn make_busybox(out: &Path, args: &[&str]) {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-image.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(out)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "make-busybox-image.sh failed");
}

/// Lists the entries of a directory (names only, sorted).
pub fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
