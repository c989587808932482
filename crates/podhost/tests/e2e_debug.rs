//! End-to-end: `podhost debug` with ephemeral containers, and `podhost run -i --rm`
//! (issue 15): kubectl's ways of getting a shell in or beside a pod.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::terminal::{winsize, Terminal};
use common::{bin, Env};

/// A server on the pod's loopback only, and a sleeper in a second container: a debugger
/// targeting `web` sees the server's processes (not the sleeper's) and reaches the server.
const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: busybox\n    command: [sh, -c, 'mkdir /www && echo pod-local > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']\n  - name: side\n    image: busybox\n    command: [sleep, '3601']\n";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `podhost ARGS` fed `input`, its stdin kept open until its output shows `want` (an
/// attach session ends with its input, as containerd's: what the container says after
/// that goes only to its log), then closed; its exit status, stdout and stderr.
fn converse(env: &Env, args: &[&str], input: &str, want: &str) -> std::process::Output {
    let mut child = Command::new(bin())
        .args(args)
        .env("PODHOST_ROOT", &env.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn podhost");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    let mut out = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(want) {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    drop(stdin);
    out.read_to_end(&mut seen).expect("read stdout");
    let mut done = child.wait_with_output().expect("podhost output");
    done.stdout = seen;
    done
}

/// A raw request to the daemon's API (what no CLI verb sends: an edit of the list).
fn api_post(env: &Env, path: &str, body: &str) -> (u16, String) {
    let mut s = std::os::unix::net::UnixStream::connect(env.root.join("run/podhost.sock"))
        .expect("connect to the API socket");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: podhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, answer)
}

/// Waits until the pod is gone.
fn gone(env: &Env, pod: &str) {
    env.ok(&[
        "wait",
        "--for=delete",
        &format!("pod/{pod}"),
        "--timeout=60s",
    ]);
}

/// Waits until container `name` of pod `pod` runs; returns its status.
fn wait_running(env: &Env, pod: &str, name: &str) -> serde_json::Value {
    let p = env.wait_for(
        pod,
        &format!("{name} running"),
        Duration::from_secs(90),
        |p| {
            p["status"]["ephemeralContainerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["name"] == name && s["state"]["running"].is_object())
        },
    );
    ephemeral_status(&p, name)
}

fn ephemeral_status(p: &serde_json::Value, name: &str) -> serde_json::Value {
    p["status"]["ephemeralContainerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no status of ephemeral container {name} in {p:#}"))
}

/// The debugger joins the target's PID namespace and the pod's network: `ps` shows the
/// server and not the other container, the server answers on the pod's 127.0.0.1. Then
/// its status, logs, exec, attach, refused edits, a daemon restart, and the pod's delete.
#[test]
fn debug_with_an_ephemeral_container() {
    let mut env = Env::new();
    env.apply("web", POD);
    env.wait_ready("web");
    // A pod's manifest may not bring ephemeral containers.
    let bad = POD.replace(
        "name: web\nspec:",
        "name: bad\nspec:\n  ephemeralContainers:\n  - {name: d, image: busybox}",
    );
    let err = env.fails(&["apply", "-f", &env.manifest("bad", &bad)]);
    assert!(
        err.contains("spec.ephemeralContainers: Forbidden: cannot be set on create"),
        "{err}"
    );

    // Without -i: created and left running its command; its output is in its log.
    let out = env.run(&[
        "debug",
        "web",
        "--image=busybox",
        "--target=web",
        "-c",
        "probe",
        "--",
        "sh",
        "-c",
        "ps -o pid,args; wget -qO- http://127.0.0.1:8080/index.html; exec sleep 3602",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Targeting container \"web\""),
        "{}",
        stderr(&out)
    );
    let st = wait_running(&env, "web", "probe");
    assert_eq!(st["ready"], false);
    assert_eq!(st["restartCount"], 0);
    let logs = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let l = env.ok(&["logs", "web", "-c", "probe"]);
            if l.contains("pod-local") || Instant::now() > deadline {
                break l;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(logs.contains("httpd -f -p 127.0.0.1:8080"), "{logs}");
    assert!(logs.contains("pod-local"), "{logs}");
    // Not the other container's processes: only the target's PID namespace is joined.
    assert!(!logs.contains("sleep 3601"), "{logs}");
    // The target's PID 1 is the server (its own namespace), the debugger's shell is in it.
    assert!(
        logs.lines()
            .any(|l| l.trim().starts_with("1 ") && l.contains("httpd")),
        "{logs}"
    );
    // exec -c reaches it; get -o json shows it in spec and status.
    assert_eq!(
        env.ok(&["exec", "web", "-c", "probe", "--", "echo", "in-probe"]),
        "in-probe\n"
    );
    // Joining the target's PID namespace gives no capability beyond a container's defaults.
    let caps = |c: &str| {
        env.ok(&[
            "exec",
            "web",
            "-c",
            c,
            "--",
            "grep",
            "^Cap",
            "/proc/self/status",
        ])
    };
    assert!(caps("probe").contains("CapEff"));
    assert_eq!(caps("probe"), caps("side"));
    // After execs into the target (the next pids of its namespace are then likely ones
    // no host process has) a second debugger still joins it: libcontainer's v1 cgroup
    // mount took such a pid for the host's and failed the create (failed to prepare
    // rootfs); podhost mounts that cgroupfs itself now.
    assert_eq!(caps("web"), caps("side"));
    let out = env.run(&[
        "debug",
        "web",
        "--image=busybox",
        "--target=web",
        "-c",
        "probe2",
        "--",
        "sleep",
        "3603",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_running(&env, "web", "probe2");
    let p = env.pod("web");
    assert_eq!(p["spec"]["ephemeralContainers"][0]["name"], "probe");
    assert_eq!(
        p["spec"]["ephemeralContainers"][0]["targetContainerName"],
        "web"
    );
    let id = ephemeral_status(&p, "probe")["containerID"].clone();
    assert!(
        id.as_str().is_some_and(|i| i.starts_with("podhost://")),
        "{p:#}"
    );
    // The pod stays Running and Ready: ephemeral containers do not count.
    assert_eq!(p["status"]["phase"], "Running");
    assert!(common::condition(&p, "Ready"));
    let yaml = env.ok(&["get", "pod", "web", "-o", "yaml"]);
    assert!(yaml.contains("ephemeralContainerStatuses:"), "{yaml}");
    let described = env.ok(&["describe", "pod", "web"]);
    assert!(
        described.contains("Ephemeral Containers:\n  probe:"),
        "{described}"
    );

    // -i: attached to its stdin; a generated name.
    let out = converse(
        &env,
        &[
            "debug",
            "web",
            "-i",
            "--image=busybox",
            "--target=web",
            "--",
            "sh",
        ],
        "ps -o args; wget -qO- http://127.0.0.1:8080/index.html; exit\n",
        "pod-local",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("httpd -f") && said.contains("pod-local"),
        "{said}\n{}",
        stderr(&out)
    );
    let err = stderr(&out);
    let generated = err
        .split("Defaulting debug container name to ")
        .nth(1)
        .and_then(|r| r.split('.').next())
        .unwrap_or_else(|| panic!("no generated name in {err}"))
        .to_string();
    assert!(
        generated.starts_with("debugger-") && generated.len() == 14,
        "{generated}"
    );
    // It ended with its shell and is never restarted.
    let p = env.wait_for("web", "debugger ended", Duration::from_secs(30), |p| {
        ephemeral_status(p, &generated)["state"]["terminated"].is_object()
    });
    assert_eq!(ephemeral_status(&p, &generated)["restartCount"], 0);

    // Refused: a name taken, an unknown target, edits and removals of existing entries.
    let err = env.fails(&["debug", "web", "--image=busybox", "-c", "side"]);
    assert!(err.contains("Duplicate value: \"side\""), "{err}");
    let err = env.fails(&["debug", "web", "--image=busybox", "--target=nope"]);
    assert!(
        err.contains("targetContainerName: Not found: \"nope\""),
        "{err}"
    );
    let (code, answer) = api_post(
        &env,
        "/v1/pods/default/web/ephemeralcontainers",
        r#"{"ephemeralContainers":[{"name":"probe","image":"busybox","command":["true"]}]}"#,
    );
    assert_eq!(code, 422, "{answer}");
    assert!(
        answer.contains("existing ephemeral containers \\\"probe\\\" may not be changed"),
        "{answer}"
    );
    assert!(answer.contains("may not be removed"), "{answer}");
    let (code, answer) = api_post(
        &env,
        "/v1/pods/default/web/ephemeralcontainers",
        r#"{"ephemeralContainers":[]}"#,
    );
    assert_eq!(code, 422, "{answer}");
    // A manifest re-applied as it was is unchanged: the debuggers are not the file's.
    assert_eq!(env.apply("web", POD), "pod/web unchanged\n");
    assert_eq!(
        env.pod("web")["spec"]["ephemeralContainers"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );

    // A daemon restart keeps it, running, with the same container.
    let before = wait_running(&env, "web", "probe")["containerID"].clone();
    env.kill_daemon();
    env.start_daemon();
    let after = wait_running(&env, "web", "probe");
    assert_eq!(after["containerID"], before);
    assert_eq!(
        env.ok(&["exec", "web", "-c", "probe", "--", "echo", "still"]),
        "still\n"
    );

    // Deleting the pod removes it with the rest (the teardown's leak check).
    env.ok(&["delete", "pod", "web"]);
    gone(&env, "web");
    env.teardown();
}

/// A pod that does not run takes no ephemeral container.
#[test]
fn debug_refuses_a_pod_that_is_not_running() {
    let env = Env::new();
    assert_eq!(
        env.ok(&[
            "run",
            "done",
            "--image=busybox",
            "--restart=Never",
            "--",
            "true"
        ]),
        "pod/done created\n"
    );
    env.wait_for("done", "Succeeded", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let err = env.fails(&["debug", "done", "--image=busybox", "-it"]);
    assert!(err.contains("not running"), "{err}");
    assert!(env.pod("done")["spec"].get("ephemeralContainers").is_none());
    let err = env.fails(&["debug", "missing", "--image=busybox"]);
    assert!(err.contains("not found"), "{err}");
    env.teardown();
}

/// `run -i --rm`: the session's input is the container's, its output ours, the exit code
/// the container's; the pod is deleted at the end. With -it on a terminal, a shell.
#[test]
fn run_attached_and_removed() {
    let env = Env::new();
    let out = converse(
        &env,
        &[
            "run",
            "once",
            "--image=busybox",
            "--rm",
            "-i",
            "--restart=Never",
            "--",
            "sh",
        ],
        "echo hello-from-run; exit 3\n",
        "deleted",
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let said = stdout(&out);
    assert!(said.contains("hello-from-run\n"), "{said}");
    assert!(said.ends_with("pod \"once\" deleted\n"), "{said}");
    gone(&env, "once");

    // A terminal: a shell, then exit; the pod goes too.
    let mut t = Terminal::spawn(
        &env,
        &[
            "run",
            "tty",
            "--image=busybox",
            "--rm",
            "-it",
            "--restart=Never",
            "--",
            "sh",
        ],
        winsize(24, 80),
    );
    // The hint goes to stderr, as kubectl's; the prompt shows once a key is pressed.
    let from = t.len();
    t.type_keys("\r");
    t.wait_for(from, "# ");
    t.run("echo $((6*7))", "42");
    t.type_keys("exit\r");
    let (code, err) = t.finish();
    assert_eq!(code, 0, "{err}");
    gone(&env, "tty");

    // Ctrl-C of a session without a terminal ends it, and the pod goes.
    let mut child = Command::new(bin())
        .args(["run", "int", "--image=busybox", "--rm", "-i", "--", "sh"])
        .env("PODHOST_ROOT", &env.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(b"echo attached\n").expect("write");
    let mut output = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("attached") {
        let n = output.read(&mut buf).expect("read");
        assert!(n > 0, "ended early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    let mut rest = String::new();
    output.read_to_string(&mut rest).expect("read");
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("pod \"int\" deleted"), "{rest}");
    drop(input);
    gone(&env, "int");

    // --rm without -i is refused, as kubectl refuses it.
    let err = env.fails(&["run", "x", "--image=busybox", "--rm"]);
    assert!(
        err.contains("--rm should only be used for attached containers"),
        "{err}"
    );
    env.teardown();
}
