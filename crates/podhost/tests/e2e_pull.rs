//! End-to-end: pulling from a private registry (Debian's docker-registry on
//! 127.0.0.1, images pushed with skopeo) by tag, by digest, through a
//! two-platform index, with basic auth, through a mirror; pods whose image is
//! pulled at start, and a missing image going ErrImagePull → ImagePullBackOff.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::registry::{big_layer_layout, two_platform_layout, Registry, SlowProxy};
use common::{busybox_tar, container_status, Env};

fn archive() -> String {
    format!("oci-archive:{}", busybox_tar().display())
}

/// The image id from `podhost pull`'s last line (`Pulled NAME (sha256:…) in …`).
fn pulled_id(out: &str) -> String {
    out.lines()
        .rev()
        .find_map(|l| l.split_once("(sha256:"))
        .map(|(_, rest)| format!("sha256:{}", rest.split(')').next().unwrap_or("")))
        .unwrap_or_else(|| panic!("no image id in:\n{out}"))
}

#[test]
fn pull_by_tag_by_digest_and_through_a_two_platform_index() {
    let env = Env::new();
    let reg = Registry::start(None);
    reg.push(&archive(), "test/busybox:1", false);
    // The loaded busybox shares the layer: remove it so the pull downloads.
    env.ok(&["rmi", "busybox"]);
    let tag_ref = format!("{}/test/busybox:1", reg.addr);
    let out = env.ok(&["pull", &tag_ref]);
    assert!(out.contains("downloading") && out.contains("done"), "{out}");
    let id = pulled_id(&out);
    let images = env.ok(&["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with(&format!("{}/test/busybox ", reg.addr)) && l.contains(" 1 ")),
        "{images}"
    );
    // Pulling again downloads nothing.
    let again = env.ok(&["pull", &tag_ref]);
    assert!(
        again.contains("already exists") && again.contains(": 0 bytes downloaded"),
        "{again}"
    );

    // By digest: recorded as a repo digest, shown with tag <none>.
    let digest = reg.digest("test/busybox:1");
    env.ok(&["rmi", &tag_ref]);
    let out = env.ok(&["pull", &format!("{}/test/busybox@{digest}", reg.addr)]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert_eq!(pulled_id(&out), id);
    let images = env.ok(&["images"]);
    assert!(images.contains("<none>"), "{images}");

    // A digest that does not match what the registry serves is refused.
    let wrong = format!("{}/test/busybox@sha256:{}", reg.addr, "0".repeat(64));
    let err = env.fails(&["pull", &wrong]);
    assert!(err.contains(&reg.addr), "{err}");

    // An index listing another architecture first: the host's image is chosen.
    let (other, index) = two_platform_layout(busybox_tar(), &env.root);
    reg.push(&archive(), "test/multi:host", false);
    reg.push(
        &format!("oci:{}", other.display()),
        "test/multi:other",
        false,
    );
    let index_digest = reg.put_manifest(
        "test/multi",
        "1",
        &index,
        "application/vnd.oci.image.index.v1+json",
    );
    assert_eq!(reg.digest("test/multi:1"), index_digest);
    let out = env.ok(&["pull", &format!("{}/test/multi:1", reg.addr)]);
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    assert_eq!(pulled_id(&out), id, "the host platform's config");
    drop(reg);
    env.teardown();
}

#[test]
fn pull_with_basic_auth_credentials_from_a_docker_config() {
    let env = Env::new();
    let reg = Registry::start(Some(("tester", "s3cret")));
    reg.push(&archive(), "private/busybox:1", false);
    let r = format!("{}/private/busybox:1", reg.addr);
    let err = env.fails(&["pull", &r]);
    assert!(
        err.contains(&reg.addr) && err.to_lowercase().contains("authorized"),
        "{err}"
    );
    let auth = env.root.join("auth.json");
    std::fs::write(
        &auth,
        serde_json::json!({"auths": {&reg.addr: {"username": "tester", "password": "s3cret"}}})
            .to_string(),
    )
    .expect("auth.json");
    std::fs::write(
        env.root.join("registries.json"),
        serde_json::json!({ "authFile": auth }).to_string(),
    )
    .expect("registries.json");
    let out = env.ok(&["pull", &r]);
    assert!(out.contains("Pulled"), "{out}");
    drop(reg);
    env.teardown();
}

#[test]
fn pull_through_mirror_rules_without_contacting_the_original() {
    let env = Env::new();
    let reg = Registry::start(None);
    reg.push(&archive(), "hub/library/app:1", false);
    reg.push(&archive(), "library/tool:latest", false);
    std::fs::write(
        env.root.join("registries.json"),
        serde_json::json!({"registries": {
            "registry.invalid": {"mirrors": [format!("{}/hub", reg.addr)], "mirrorsOnly": true},
            "docker.io": {"mirrors": [&reg.addr], "mirrorsOnly": true}
        }})
        .to_string(),
    )
    .expect("registries.json");
    let out = env.ok(&["pull", "registry.invalid/library/app:1"]);
    assert!(
        out.contains(&format!("Resolving {}/hub/library/app", reg.addr)),
        "{out}"
    );
    // A short name is docker.io/library/NAME:latest, here only via the mirror.
    let out = env.ok(&["pull", "tool"]);
    assert!(
        out.contains("Pulled docker.io/library/tool:latest"),
        "{out}"
    );
    let images = env.ok(&["images"]);
    assert!(images.contains("registry.invalid/library/app"), "{images}");
    // mirrorsOnly: no fallback; the error names the mirror only.
    let err = env.fails(&["pull", "registry.invalid/library/missing:1"]);
    assert!(
        err.contains(&reg.addr) && err.contains("manifest unknown"),
        "{err}"
    );
    assert!(!err.contains("from registry.invalid"), "{err}");
    drop(reg);
    env.teardown();
}

#[test]
fn pod_pulls_from_a_private_registry_with_image_pull_secrets() {
    let env = Env::new();
    let reg = Registry::start(Some(("puller", "t0ken")));
    reg.push(&archive(), "private/app:1", false);
    let image = format!("{}/private/app:1", reg.addr);
    let dockerconfig =
        serde_json::json!({"auths": {&reg.addr: {"username": "puller", "password": "t0ken"}}})
            .to_string();
    // A pod that names no secret cannot pull; one with the secret can.
    env.apply(
        "nosecret.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: nosecret}}\nspec:\n  containers:\n  - {{name: app, image: \"{image}\", command: [sleep, '3600']}}\n"),
    );
    env.wait_for("nosecret", "ErrImagePull", Duration::from_secs(30), |p| {
        container_status(p, "app")["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    env.apply(
        "secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: regcred}}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{dockerconfig}'\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: withsecret}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - {{name: app, image: \"{image}\", command: [sleep, '3600']}}\n"
        ),
    );
    env.wait_ready("withsecret");
    let described = env.ok(&["describe", "pod", "withsecret"]);
    assert!(
        described.contains("Successfully pulled image"),
        "{described}"
    );
    drop(reg);
    env.teardown();
}

#[test]
fn pod_image_is_pulled_at_start_and_a_missing_one_backs_off() {
    let env = Env::new();
    let reg = Registry::start(None);
    reg.push(&archive(), "test/app:1", false);
    let image = format!("{}/test/app:1", reg.addr);
    env.apply(
        "pulled.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: pulled}}\nspec:\n  containers:\n  - {{name: app, image: \"{image}\", imagePullPolicy: IfNotPresent, command: [sleep, '3600']}}\n"),
    );
    env.wait_ready("pulled");
    let described = env.ok(&["describe", "pod", "pulled"]);
    assert!(described.contains("Pulling"), "{described}");
    assert!(
        described.contains(&format!("Successfully pulled image \"{image}\"")),
        "{described}"
    );
    // In use: not removable by id (removing one of its names only untags).
    let pod = env.pod("pulled");
    let id = container_status(&pod, "app")["imageID"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(id.starts_with("sha256:"), "{pod}");
    let err = env.fails(&["rmi", &id]);
    assert!(err.contains("in use"), "{err}");

    let missing = format!("{}/test/nope:1", reg.addr);
    env.apply(
        "missing.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: missing}}\nspec:\n  containers:\n  - {{name: app, image: \"{missing}\"}}\n"),
    );
    let reason = |p: &serde_json::Value| {
        container_status(p, "app")["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let pod = env.wait_for("missing", "ErrImagePull", Duration::from_secs(30), |p| {
        reason(p) == "ErrImagePull"
    });
    let msg = container_status(&pod, "app")["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        msg.contains("manifest unknown") && msg.contains(&reg.addr),
        "{msg}"
    );
    env.wait_for(
        "missing",
        "ImagePullBackOff",
        Duration::from_secs(15),
        |p| reason(p) == "ImagePullBackOff",
    );
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("ImagePullBackOff"), "{table}");
    drop(reg);
    env.teardown();
}

/// Bytes in the files of `dir`, and whether any is an unfinished `.tmp-` one.
fn dir_bytes(dir: &Path) -> (u64, Vec<String>) {
    let mut total = 0;
    let mut tmp = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        total += e.metadata().map(|m| m.len()).unwrap_or(0);
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            tmp.push(name);
        }
    }
    (total, tmp)
}

/// The daemon is SIGKILLed in the middle of a layer download: the next start finds no
/// temporary blob or half-unpacked layer, the partial download is kept, and pulling
/// again resumes it (downloads only the rest) to a complete, usable image.
#[test]
fn pull_cut_by_a_daemon_kill_resumes_and_leaves_nothing_half_made() {
    const MIB: u64 = 16;
    let mut env = Env::new();
    let reg = Registry::start(None);
    let layout = big_layer_layout(&env.root, MIB as usize);
    reg.push(&format!("oci:{}", layout.display()), "test/big:1", false);
    let proxy = SlowProxy::start(&reg.addr);
    let reference = format!("{}/test/big:1", proxy.addr);
    let images = env.root.join("lib/images");
    let downloads = images.join("downloads");
    let mut pull = Command::new(common::bin())
        .args(["pull", &reference])
        .env("PODHOST_ROOT", &env.root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("podhost pull");
    let deadline = Instant::now() + Duration::from_secs(60);
    while dir_bytes(&downloads).0 < 1 << 20 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    env.kill_daemon();
    let _ = pull.wait();
    env.start_daemon();
    for d in ["blobs/sha256", "layers/sha256"] {
        let (_, tmp) = dir_bytes(&images.join(d));
        assert!(tmp.is_empty(), "left in {d}: {tmp:?}");
    }
    let (kept, _) = dir_bytes(&downloads);
    assert!(
        (1 << 20..MIB << 20).contains(&kept),
        "the partial download is kept for the next try: {kept} bytes"
    );
    assert!(
        !env.ok(&["images"]).contains("test/big"),
        "no image from a cut pull"
    );
    proxy
        .slow
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let out = env.ok(&["pull", &reference]);
    let downloaded: u64 = out
        .rsplit(": ")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {out}"));
    assert!(
        downloaded > 0 && downloaded <= (MIB << 20) + 65536 - kept,
        "resumed after {kept} bytes, then downloaded {downloaded}: {out}"
    );
    assert!(env.ok(&["images"]).contains("test/big"));
    assert_eq!(
        dir_bytes(&downloads).0,
        0,
        "the finished download left its dir"
    );
    env.ok(&["rmi", &reference]);
    env.teardown();
}
