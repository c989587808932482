//! Interop with the real Go client: crictl v1.29 (client-go's SPDY executor and
//! port-forwarder over moby/spdystream, as kubectl) against our streaming server.
//! A minimal CRI server answers Version, Exec and PortForward with URLs of that
//! server; exec runs the command on the host (no container: this tests the wire).
//! crictl comes from the shared CRI test kit (`shared/cri-testkit/bin/crictl` in an
//! ancestor directory, or `$CRICTL`); without it the test is skipped, except in CI.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::{echo_server, serve, within, Route};
use podhost_cri_api::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use podhost_cri_api::{
    ExecRequest, ExecResponse, PortForwardRequest, PortForwardResponse, VersionRequest,
    VersionResponse,
};
use podhost_streaming::remotecommand::Options;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener};
use tonic::{Request, Response, Status};

fn crictl() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CRICTL") {
        return Some(PathBuf::from(path));
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let found = here
        .ancestors()
        .map(|dir| dir.join("shared/cri-testkit/bin/crictl"))
        .find(|path| path.is_file());
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("crictl from shared/cri-testkit is missing in CI");
    }
    found
}

/// Streaming routes by URL token, filled by the CRI calls.
type Routes = Arc<Mutex<HashMap<String, Route>>>;

struct Cri {
    routes: Routes,
    base: String,
}

#[tonic::async_trait]
impl RuntimeService for Cri {
    async fn version(
        &self,
        _: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "podhost-test".into(),
            runtime_version: "0.1.0".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        let request = request.into_inner();
        let token = format!("exec-{}", self.routes.lock().unwrap().len());
        let route = Route::Exec {
            argv: request.cmd,
            options: Options {
                stdin: request.stdin,
                stdout: request.stdout,
                stderr: request.stderr,
                tty: request.tty,
            },
        };
        self.routes.lock().unwrap().insert(token.clone(), route);
        Ok(Response::new(ExecResponse {
            url: format!("{}/exec/{token}", self.base),
        }))
    }

    async fn port_forward(
        &self,
        _: Request<PortForwardRequest>,
    ) -> Result<Response<PortForwardResponse>, Status> {
        let token = format!("pf-{}", self.routes.lock().unwrap().len());
        self.routes
            .lock()
            .unwrap()
            .insert(token.clone(), Route::PortForward);
        Ok(Response::new(PortForwardResponse {
            url: format!("{}/portforward/{token}", self.base),
        }))
    }
}

struct Servers {
    dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Servers {
    fn endpoint(&self) -> String {
        format!("unix://{}", self.dir.path().join("cri.sock").display())
    }
}

async fn start() -> Servers {
    let routes: Routes = Arc::default();
    let lookup = routes.clone();
    let (addr, http) = serve(move |path| {
        let token = path.rsplit('/').next()?;
        lookup.lock().unwrap().get(token).cloned()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(dir.path().join("cri.sock")).unwrap();
    let cri = Cri {
        routes,
        base: format!("http://{addr}"),
    };
    let grpc = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::new(cri))
            // crictl 1.29 sends the socket path as the HTTP/2 :authority, which tonic's h2
            // refuses: podhost's CRI socket layer repairs it on the way in.
            .serve_with_incoming(podhost_cri::authority::incoming(listener))
            .await;
    });
    Servers {
        dir,
        tasks: vec![http, grpc],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crictl_exec_streams_stdin_stdout_stderr_and_the_exit_code() {
    let Some(crictl) = crictl() else {
        eprintln!("skipped: no crictl (shared/cri-testkit) found");
        return;
    };
    let servers = start().await;
    let input: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let output = within(async {
        let mut child = tokio::process::Command::new(&crictl)
            .args([
                "--runtime-endpoint",
                &servers.endpoint(),
                "exec",
                "-i",
                "c1",
            ])
            .args(["sh", "-c", "cat; echo oops >&2; exit 3"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.clone();
        tokio::spawn(async move {
            stdin.write_all(data.as_bytes()).await.unwrap();
        });
        child.wait_with_output().await.unwrap()
    })
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout == input,
        "stdout differs ({} bytes): {stderr}",
        stdout.len()
    );
    assert!(stderr.contains("oops"), "{stderr}");
    // client-go decoded our v4 status into its exit-code error.
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );
    assert!(!output.status.success());

    let ok = within(
        tokio::process::Command::new(&crictl)
            .args(["--runtime-endpoint", &servers.endpoint(), "exec", "c1"])
            .args(["echo", "hello"])
            .output(),
    )
    .await
    .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(ok.stdout, b"hello\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crictl_port_forward_reaches_the_port() {
    let Some(crictl) = crictl() else {
        eprintln!("skipped: no crictl (shared/cri-testkit) found");
        return;
    };
    let servers = start().await;
    let (port, echo) = echo_server().await;
    let mut child = tokio::process::Command::new(&crictl)
        .args([
            "--runtime-endpoint",
            &servers.endpoint(),
            "port-forward",
            "sb1",
        ])
        .arg(format!("0:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let local = within(async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("crictl printed no port");
            // "Forwarding from 127.0.0.1:41235 -> 38711"
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                break rest.split(' ').next().unwrap().parse::<u16>().unwrap();
            }
        }
    })
    .await;
    for round in 0..2 {
        within(async {
            let mut tcp = TcpStream::connect(("127.0.0.1", local)).await.unwrap();
            let message = format!("round {round} through crictl");
            tcp.write_all(message.as_bytes()).await.unwrap();
            tcp.shutdown().await.unwrap();
            let mut back = String::new();
            tcp.read_to_string(&mut back).await.unwrap();
            assert_eq!(back, message);
        })
        .await;
    }
    child.kill().await.unwrap();
    echo.abort();
}
