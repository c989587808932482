//! End-to-end: malformed and invalid pods are refused with a precise message, and
//! nothing of them is created.

mod common;

use common::Env;

#[test]
fn bad_pod_files_are_refused_and_leave_nothing_behind() {
    let env = Env::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/tests/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 15,
        "need at least 15 bad fixtures, found {}",
        files.len()
    );
    for f in &files {
        let expected = std::fs::read_to_string(f.with_extension("err")).expect("sibling .err");
        let name = f.file_name().and_then(|n| n.to_str()).expect("utf8 name");
        let out = env.run_in(&dir, &["apply", "-f", name]);
        assert!(!out.status.success(), "{name} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        for line in expected.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                err.contains(line.trim()),
                "{}: expected {:?} in:\n{err}",
                f.display(),
                line.trim()
            );
        }
    }
    // A valid pod whose image is not loaded and may not be pulled (Never):
    // refused before anything is created.
    let p = env.manifest(
        "noimage.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\nspec:\n  containers:\n  - {name: web, image: nginx:1.27, imagePullPolicy: Never}\n",
    );
    let err = env.fails(&["apply", "-f", &p]);
    assert!(
        err.contains("\"nginx:1.27\"") && err.contains("podhost image load"),
        "{err}"
    );
    // One bad document in a file: none of the file's pods is created.
    let p = env.manifest(
        "mixed.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: good}\nspec:\n  containers:\n  - {name: a, image: busybox}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n  - {name: a, imagee: busybox}\n",
    );
    let err = env.fails(&["apply", "-f", &p]);
    assert!(err.contains("spec.containers[0].imagee"), "{err}");
    let out = env.run(&["get", "pods"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No resources found"),
        "no pod may exist"
    );
    // A file that does not exist.
    let err = env.fails(&["apply", "-f", "/nonexistent/pod.yaml"]);
    assert!(err.contains("/nonexistent/pod.yaml"), "{err}");
    env.teardown();
}

#[test]
fn cli_without_daemon_says_how_to_start_it() {
    let root = std::env::temp_dir().join(format!("podhost-nodaemon-{}", std::process::id()));
    let out = std::process::Command::new(common::bin())
        .args(["get", "pods"])
        .env("PODHOST_ROOT", &root)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the podhost daemon") && err.contains("podhost serve"),
        "{err}"
    );
}
