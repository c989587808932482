//! A private registry for tests: Debian's `docker-registry` on 127.0.0.1 with a
//! free port and a temporary storage directory, optionally behind htpasswd
//! basic auth; images are pushed with `skopeo`. Stopped (by pid) on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Registry binary from Debian's `docker-registry` package.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Credentials when started with basic auth.
    pub creds: Option<(String, String)>,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Registry {
    /// Start a registry; with `creds`, it requires HTTP basic auth.
    pub fn start(creds: Option<(&str, &str)>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} missing: apt-get install docker-registry (./podhost.sh test does)"
        );
        let dir = std::env::temp_dir().join(format!(
            "podhost-registry-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(dir.join("storage")).expect("registry dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut auth = String::new();
        if let Some((user, pass)) = creds {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd (apt-get install apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.join("htpasswd"), &out.stdout).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: podhost-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
            dir.join("storage").display()
        );
        std::fs::write(dir.join("config.yml"), config).expect("registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            addr: addr.clone(),
            creds: creds.map(|(u, p)| (u.to_string(), p.to_string())),
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not listen on {addr}: {}",
                std::fs::read_to_string(reg.dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// Copy an image into this registry with skopeo: `src` is a skopeo
    /// source (`oci-archive:/x.tar`, `oci:/dir`), `repo_tag` like `test/busybox:1`.
    pub fn push(&self, src: &str, repo_tag: &str, all: bool) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if all {
            cmd.arg("--all");
        }
        if let Some((u, p)) = &self.creds {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        let out = cmd
            .arg(src)
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .output()
            .expect("run skopeo (apt-get install skopeo)");
        assert!(
            out.status.success(),
            "skopeo copy {src} → {repo_tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The manifest digest the registry serves for `repo_tag` (skopeo inspect).
    pub fn digest(&self, repo_tag: &str) -> String {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some((u, p)) = &self.creds {
            cmd.arg(format!("--creds={u}:{p}"));
        }
        let out = cmd
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .output()
            .expect("run skopeo inspect");
        assert!(
            out.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sha256(&out.stdout)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `sha256:<hex>` of bytes, with coreutils' sha256sum.
pub fn sha256(bytes: &[u8]) -> String {
    let text = super::filter(&["sha256sum"], bytes);
    format!("sha256:{}", text.split_whitespace().next().unwrap_or(""))
}

/// From the busybox OCI archive, makes an OCI layout directory holding a
/// copy of the image whose config claims another architecture (same layer),
/// and the bytes of an index listing that copy first and the host's image
/// second. Returns (layout directory, index bytes).
pub fn two_platform_layout(busybox_tar: &Path, dir: &Path) -> (PathBuf, Vec<u8>) {
    let layout = dir.join("other-arch");
    std::fs::create_dir_all(&layout).expect("layout dir");
    let st = Command::new("tar")
        .arg("-xf")
        .arg(busybox_tar)
        .arg("-C")
        .arg(&layout)
        .status()
        .expect("tar");
    assert!(st.success());
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
            .expect("index json");
    let host = index["manifests"][0].clone();
    let manifest_digest = host["digest"].as_str().expect("digest").to_string();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&manifest_digest)).expect("manifest"))
            .expect("manifest json");
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config")
        .to_string();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&config_digest)).expect("config"))
            .expect("config json");
    let other_arch = if cfg!(target_arch = "x86_64") {
        "arm64"
    } else {
        "amd64"
    };
    config["architecture"] = other_arch.into();
    let config_bytes = serde_json::to_vec(&config).expect("json");
    let other_config = sha256(&config_bytes);
    std::fs::write(blob(&other_config), &config_bytes).expect("write config");
    manifest["config"]["digest"] = other_config.into();
    manifest["config"]["size"] = config_bytes.len().into();
    let manifest_bytes = serde_json::to_vec(&manifest).expect("json");
    let other_manifest = sha256(&manifest_bytes);
    std::fs::write(blob(&other_manifest), &manifest_bytes).expect("write manifest");
    let mut other = host.clone();
    other["digest"] = other_manifest.into();
    other["size"] = manifest_bytes.len().into();
    other["platform"]["architecture"] = other_arch.into();
    other.as_object_mut().map(|o| o.remove("annotations"));
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [other.clone()]}))
            .expect("json"),
    )
    .expect("write index.json");
    let mut host_entry = host.clone();
    host_entry.as_object_mut().map(|o| o.remove("annotations"));
    // The other platform first: the pull must choose, not take the first.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [other, host_entry],
    });
    (layout, serde_json::to_vec(&index).expect("json"))
}

impl Registry {
    /// PUTs a manifest (or index) under `repo:tag` with plain HTTP; returns its digest.
    pub fn put_manifest(&self, repo: &str, tag: &str, body: &[u8], media_type: &str) -> String {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(&self.addr).expect("connect registry");
        let head = format!(
            "PUT /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).expect("write");
        s.write_all(body).expect("write");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        assert!(resp.starts_with("HTTP/1.1 201"), "PUT manifest: {resp}");
        sha256(body)
    }
}

/// An OCI layout directory `dir/big` holding one image whose single layer is a tar of
/// `mib` MiB of random bytes (incompressible): a pull of it takes a while through a
/// [`SlowProxy`].
pub fn big_layer_layout(dir: &Path, mib: usize) -> PathBuf {
    use std::io::Read;
    let layout = dir.join("big");
    let blobs = layout.join("blobs/sha256");
    let rootfs = dir.join("big-rootfs");
    std::fs::create_dir_all(&blobs).expect("layout dir");
    std::fs::create_dir_all(&rootfs).expect("rootfs dir");
    let mut data = vec![0u8; mib << 20];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut data))
        .expect("random bytes");
    std::fs::write(rootfs.join("noise"), &data).expect("write noise");
    let tar = dir.join("big-layer.tar");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&rootfs)
        .arg("noise")
        .status()
        .expect("tar");
    assert!(st.success());
    let layer = std::fs::read(&tar).expect("read layer");
    let layer_digest = sha256(&layer);
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).expect("blob");
        d
    };
    put(&layer);
    let arch = if cfg!(target_arch = "x86_64") {
        "amd64"
    } else {
        "arm64"
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .expect("json");
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))
    .expect("json");
    let manifest_digest = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index.json");
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let _ = std::fs::remove_dir_all(&rootfs);
    let _ = std::fs::remove_file(&tar);
    layout
}

/// A TCP relay on 127.0.0.1 in front of a registry that, while `slow` is set, passes
/// the registry's answers at about 1.6 MB/s: time to kill a daemon in the middle of a
/// download. Its threads end with their connections; the listener thread with the test.
pub struct SlowProxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Throttle on or off.
    pub slow: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SlowProxy {
    /// Relay to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> SlowProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let slow = Arc::new(AtomicBool::new(true));
        let (up, flag) = (upstream.to_string(), slow.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&up) else {
                    continue;
                };
                let (mut c_in, mut s_out) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let flag = flag.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        match s_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if c_out.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                        if flag.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        SlowProxy { addr, slow }
    }
}

/// An OCI layout directory `dir/<image name>` holding the busybox image of `busybox_tar`
/// with one more (uncompressed) layer: a tar of `layer_root`, made by the system `tar`
/// so that setuid bits and device nodes go in as they are. The index names the image
/// `name` (`io.containerd.image.name`), for `podhost image load -i DIR`.
pub fn layout_with_layer(busybox_tar: &Path, dir: &Path, name: &str, layer_root: &Path) -> PathBuf {
    let layout = dir.join(name.replace(['/', ':'], "_"));
    std::fs::create_dir_all(&layout).expect("layout dir");
    let run = |cmd: &mut Command| assert!(cmd.status().expect("tar").success(), "{cmd:?}");
    run(Command::new("tar")
        .arg("-xf")
        .arg(busybox_tar)
        .arg("-C")
        .arg(&layout));
    let tar = dir.join("extra-layer.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(layer_root)
        .arg("."));
    let blobs = layout.join("blobs/sha256");
    let read = |digest: &str| -> serde_json::Value {
        let path = blobs.join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).expect("blob")).expect("blob json")
    };
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).expect("blob");
        d
    };
    let index = read_json(&layout.join("index.json"));
    let mut manifest = read(index["manifests"][0]["digest"].as_str().expect("digest"));
    let mut config = read(manifest["config"]["digest"].as_str().expect("config"));
    let layer = std::fs::read(&tar).expect("read layer");
    let _ = std::fs::remove_file(&tar);
    let layer_digest = put(&layer);
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .expect("diff_ids")
        .push(layer_digest.clone().into());
    let config = serde_json::to_vec(&config).expect("json");
    manifest["config"]["digest"] = put(&config).into();
    manifest["config"]["size"] = config.len().into();
    manifest["layers"]
        .as_array_mut()
        .expect("layers")
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }));
    let manifest = serde_json::to_vec(&manifest).expect("json");
    let mut entry = index["manifests"][0].clone();
    entry["digest"] = put(&manifest).into();
    entry["size"] = manifest.len().into();
    entry["annotations"] = serde_json::json!({ "io.containerd.image.name": name });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [entry] });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("write index.json");
    layout
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}
