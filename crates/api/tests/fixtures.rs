//! Runs every manifest under `tests/bad` and `tests/good` through
//! parse → default → validate.
//!
//! Each `bad/NAME.yaml` has a sibling `bad/NAME.err`; every non-empty line of it
//! must appear in the error text, so a fixture documents the message users see.

use std::fs;
use std::path::{Path, PathBuf};

use podhost_api::{default_pod, parse_manifests, validate_pod, Manifest};

/// All `*.yaml` files of a fixture directory, sorted for stable output.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The full pipeline; `Ok` holds the number of pods and the warnings, `Err` every
/// problem as one text.
fn run(path: &Path) -> Result<(usize, Vec<String>), String> {
    let text = fs::read_to_string(path).expect("fixture is readable");
    let file = path.file_name().expect("file name").to_string_lossy();
    let manifests = parse_manifests(&text, &file).map_err(|e| e.to_string())?;
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for manifest in &manifests {
        let Manifest::Pod(pod) = manifest else {
            continue;
        };
        let mut pod = pod.clone();
        default_pod(&mut pod);
        let name = pod.metadata.name.clone().unwrap_or_default();
        match validate_pod(&pod).into_result(&name) {
            Ok(w) => warnings.extend(w),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok((manifests.len(), warnings))
    } else {
        Err(errors.join("\n"))
    }
}

#[test]
fn bad_manifests_fail_with_their_message() {
    let files = yaml_files("bad");
    assert!(files.len() >= 18, "only {} bad fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let expected = fs::read_to_string(path.with_extension("err"))
            .unwrap_or_else(|e| panic!("{}: missing .err file: {e}", path.display()));
        match run(path) {
            Ok(_) => failures.push(format!("{}: accepted, expected an error", path.display())),
            Err(message) => {
                for want in expected.lines().filter(|l| !l.trim().is_empty()) {
                    if !message.contains(want) {
                        failures.push(format!(
                            "{}:\n  want: {want}\n  got:  {message}",
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_manifests_pass() {
    let files = yaml_files("good");
    assert!(files.len() >= 3);
    for path in &files {
        match run(path) {
            Ok((count, warnings)) => {
                assert!(count >= 1, "{}: no pods", path.display());
                // Only "not implemented yet" notes; no real problems.
                let other: Vec<_> = warnings
                    .iter()
                    .filter(|w| !w.contains("not implemented yet"))
                    .collect();
                assert!(other.is_empty(), "{}: {other:?}", path.display());
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

#[test]
fn multi_document_file_yields_each_pod() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good/multi-doc.yaml");
    let text = fs::read_to_string(path).expect("fixture");
    let pods = parse_manifests(&text, "multi-doc.yaml").expect("parses");
    let names: Vec<String> = pods
        .iter()
        .filter_map(|m| match m {
            Manifest::Pod(p) => Some(podhost_api::pod_key(p)),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["default/one", "default/two"]);
}
