//! Every RPC mapping of the CRI server on the fake runtime: requests become runtime calls,
//! runtime answers become CRI messages, errors get their gRPC codes, and the podhost
//! CLI's sandboxes stay invisible and untouched.

use std::sync::Arc;
use std::time::Duration;

use podhost_cri::{Cri, Options, StreamingProvider, Unsupported};
use podhost_cri_api::image_service_server::ImageService;
use podhost_cri_api::runtime_service_server::RuntimeService;
use podhost_cri_api::*;
use podhost_runtime::clock::Clock;
use podhost_runtime::fake::FakeRuntime;
use podhost_runtime::owned::Owned;
use podhost_runtime::{ExecResult, Owner, Runtime};
use tonic::{Code, Request, Status};

struct Env {
    fake: Arc<FakeRuntime>,
    cri: Arc<Cri>,
}

fn env() -> Env {
    env_with(Arc::new(Unsupported))
}

fn env_with(streaming: Arc<dyn StreamingProvider>) -> Env {
    let fake = Arc::new(FakeRuntime::new(Clock::default(), &["busybox"]));
    let cri = Cri::new(fake.clone(), streaming, Options::default());
    Env { fake, cri }
}

fn sandbox_config(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        labels: [("app".to_string(), name.to_string())].into(),
        annotations: [("note".to_string(), "kept".to_string())].into(),
        log_directory: format!("/var/log/pods/default_{name}"),
        linux: Some(LinuxPodSandboxConfig {
            sysctls: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "1000".into()],
        labels: [("io.kubernetes.container.name".to_string(), name.to_string())].into(),
        log_path: format!("{name}/0.log"),
        stdin: true,
        ..Default::default()
    }
}

impl Env {
    async fn run(&self, name: &str) -> String {
        self.cri
            .run_pod_sandbox(Request::new(RunPodSandboxRequest {
                config: Some(sandbox_config(name)),
                runtime_handler: String::new(),
            }))
            .await
            .expect("run")
            .into_inner()
            .pod_sandbox_id
    }

    async fn create(&self, sandbox: &str, name: &str) -> Result<String, Status> {
        self.cri
            .create_container(Request::new(CreateContainerRequest {
                pod_sandbox_id: sandbox.into(),
                config: Some(container_config(name)),
                sandbox_config: None,
            }))
            .await
            .map(|r| r.into_inner().container_id)
    }

    async fn start(&self, id: &str) -> Result<(), Status> {
        self.cri
            .start_container(Request::new(StartContainerRequest {
                container_id: id.into(),
            }))
            .await
            .map(drop)
    }

    async fn sandboxes(&self, filter: PodSandboxFilter) -> Vec<PodSandbox> {
        self.cri
            .list_pod_sandbox(Request::new(ListPodSandboxRequest {
                filter: Some(filter),
            }))
            .await
            .expect("list")
            .into_inner()
            .items
    }

    async fn containers(&self, filter: ContainerFilter) -> Vec<Container> {
        self.cri
            .list_containers(Request::new(ListContainersRequest {
                filter: Some(filter),
            }))
            .await
            .expect("list")
            .into_inner()
            .containers
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatusResponse, Status> {
        self.cri
            .container_status(Request::new(ContainerStatusRequest {
                container_id: id.into(),
                verbose: true,
            }))
            .await
            .map(|r| r.into_inner())
    }

    async fn sandbox_status(&self, id: &str) -> Result<PodSandboxStatusResponse, Status> {
        self.cri
            .pod_sandbox_status(Request::new(PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: true,
            }))
            .await
            .map(|r| r.into_inner())
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<ExecSyncResponse, Status> {
        self.cri
            .exec_sync(Request::new(ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout,
            }))
            .await
            .map(|r| r.into_inner())
    }
}

#[tokio::test]
async fn version_status_and_runtime_config() {
    let e = env();
    let v = e
        .cri
        .version(Request::new(VersionRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (v.runtime_name.as_str(), v.runtime_api_version.as_str()),
        ("podhost", "v1")
    );
    let s = e
        .cri
        .status(Request::new(StatusRequest { verbose: true }))
        .await
        .unwrap()
        .into_inner();
    let conditions = s.status.unwrap().conditions;
    for kind in ["RuntimeReady", "NetworkReady"] {
        assert!(
            conditions.iter().any(|c| c.r#type == kind && c.status),
            "{kind}: {conditions:?}"
        );
    }
    e.cri
        .update_runtime_config(Request::new(UpdateRuntimeConfigRequest {
            runtime_config: Some(RuntimeConfig {
                network_config: Some(NetworkConfig {
                    pod_cidr: "10.244.0.0/24".into(),
                }),
            }),
        }))
        .await
        .unwrap();
    let s = e
        .cri
        .status(Request::new(StatusRequest { verbose: true }))
        .await
        .unwrap()
        .into_inner();
    assert!(s.info["config"].contains("10.244.0.0/24"), "{:?}", s.info);
    let rc = e
        .cri
        .runtime_config(Request::new(RuntimeConfigRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rc.linux.unwrap().cgroup_driver(), CgroupDriver::Cgroupfs);
}

#[tokio::test]
async fn network_not_ready_without_a_cni_config() {
    let fake = Arc::new(FakeRuntime::new(Clock::default(), &[]));
    let dir = tempfile::tempdir().unwrap();
    let cri = Cri::new(
        fake,
        Arc::new(Unsupported),
        Options {
            cni_conf_dir: Some(dir.path().to_path_buf()),
        },
    );
    let conditions = |cri: Arc<Cri>| async move {
        cri.status(Request::new(StatusRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap()
            .conditions
    };
    let c = conditions(cri.clone()).await;
    let net = c.iter().find(|c| c.r#type == "NetworkReady").unwrap();
    assert!(
        !net.status && net.reason == "NetworkPluginNotReady",
        "{net:?}"
    );
    std::fs::write(dir.path().join("10-podhost.conflist"), "{}").unwrap();
    let c = conditions(cri).await;
    assert!(c.iter().all(|c| c.status), "{c:?}");
}

#[tokio::test]
async fn sandbox_lifecycle_and_filters() {
    let e = env();
    let web = e.run("web").await;
    let db = e.run("db").await;
    assert_eq!(
        e.fake
            .calls()
            .iter()
            .filter(|c| *c == "run_pod_sandbox")
            .count(),
        2
    );

    let all = e.sandboxes(PodSandboxFilter::default()).await;
    assert_eq!(all.len(), 2);
    let by_prefix = e
        .sandboxes(PodSandboxFilter {
            id: web[..2].to_string(),
            ..Default::default()
        })
        .await;
    assert!(by_prefix.iter().all(|s| s.id.starts_with(&web[..2])));
    let by_label = e
        .sandboxes(PodSandboxFilter {
            label_selector: [("app".to_string(), "db".to_string())].into(),
            ..Default::default()
        })
        .await;
    assert_eq!(by_label.len(), 1);
    assert_eq!(by_label[0].id, db);
    assert_eq!(by_label[0].annotations["note"], "kept");
    assert_eq!(by_label[0].metadata.as_ref().unwrap().name, "db");

    let st = e.sandbox_status(&web).await.unwrap();
    let status = st.status.unwrap();
    assert_eq!(status.state(), PodSandboxState::SandboxReady);
    assert!(st.info["info"].contains("\"pid\""), "{:?}", st.info);

    e.cri
        .stop_pod_sandbox(Request::new(StopPodSandboxRequest {
            pod_sandbox_id: web.clone(),
        }))
        .await
        .unwrap();
    let st = e.sandbox_status(&web).await.unwrap().status.unwrap();
    assert_eq!(st.state(), PodSandboxState::SandboxNotready);
    let ready = e
        .sandboxes(PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxReady as i32,
            }),
            ..Default::default()
        })
        .await;
    assert_eq!(
        ready.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![db.clone()]
    );

    // Idempotent stop and remove; unknown ids succeed.
    for id in [web.clone(), "nope".to_string()] {
        e.cri
            .stop_pod_sandbox(Request::new(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            }))
            .await
            .unwrap();
        e.cri
            .remove_pod_sandbox(Request::new(RemovePodSandboxRequest { pod_sandbox_id: id }))
            .await
            .unwrap();
    }
    assert_eq!(
        e.sandbox_status(&web).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(e.sandboxes(PodSandboxFilter::default()).await.len(), 1);

    // What CRI cannot do is refused before the runtime is asked.
    let err = e
        .cri
        .run_pod_sandbox(Request::new(RunPodSandboxRequest {
            config: Some(sandbox_config("x")),
            runtime_handler: "kata".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = e
        .cri
        .run_pod_sandbox(Request::new(RunPodSandboxRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn container_lifecycle() {
    let e = env();
    let sb = e.run("web").await;
    let c = e
        .create(&sb[..2], "app")
        .await
        .expect("create (sandbox by prefix)");
    let st = e.container_status(&c).await.unwrap();
    let status = st.status.unwrap();
    assert_eq!(status.state(), ContainerState::ContainerCreated);
    assert_eq!(status.image.unwrap().image, "busybox");
    assert!(st.info["info"].contains(&sb), "{:?}", st.info);
    // The sandbox's sysctls reach the container; tty/stdin are kept.
    let stored = Owned::new(e.fake.clone(), Owner::Cri)
        .container_status(&c)
        .await
        .unwrap()
        .config;
    assert_eq!(stored.linux.security.sysctls["net.ipv4.ip_forward"], "1");
    assert!(stored.stdin && !stored.tty);

    // Reopening the log of a container that does not run is refused.
    let err = e
        .cri
        .reopen_container_log(Request::new(ReopenContainerLogRequest {
            container_id: c.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    e.start(&c[..1]).await.expect("start by prefix");
    let running = e
        .containers(ContainerFilter {
            state: Some(ContainerStateValue {
                state: ContainerState::ContainerRunning as i32,
            }),
            pod_sandbox_id: sb.clone(),
            label_selector: [(
                "io.kubernetes.container.name".to_string(),
                "app".to_string(),
            )]
            .into(),
            ..Default::default()
        })
        .await;
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id, c);
    assert_eq!(running[0].image_ref, "sha256:fake");

    e.cri
        .reopen_container_log(Request::new(ReopenContainerLogRequest {
            container_id: c.clone(),
        }))
        .await
        .unwrap();
    assert!(e.fake.calls().contains(&"reopen_log:app".to_string()));

    e.cri
        .update_container_resources(Request::new(UpdateContainerResourcesRequest {
            container_id: c.clone(),
            linux: Some(LinuxContainerResources {
                cpu_quota: 20_000,
                cpu_period: 100_000,
                memory_limit_in_bytes: 1 << 27,
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .unwrap();
    let res = e
        .container_status(&c)
        .await
        .unwrap()
        .status
        .unwrap()
        .resources
        .unwrap()
        .linux
        .unwrap();
    assert_eq!(
        (res.cpu_quota, res.memory_limit_in_bytes),
        (20_000, 1 << 27)
    );

    // ExecSync: output and exit code, and a timeout that is an error.
    e.fake.on_exec(|_, cmd| match cmd[0].as_str() {
        "hang" => None,
        _ => Some(ExecResult {
            exit_code: 3,
            stdout: b"out".to_vec(),
            stderr: b"err".to_vec(),
        }),
    });
    let r = e.exec_sync(&c, &["sh", "-c", "exit 3"], 10).await.unwrap();
    assert_eq!(
        (r.exit_code, r.stdout.as_slice(), r.stderr.as_slice()),
        (3, &b"out"[..], &b"err"[..])
    );
    tokio::time::pause();
    let err = e.exec_sync(&c, &["hang"], 1).await.unwrap_err();
    tokio::time::resume();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(
        e.exec_sync(&c, &[], 1).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    // Stop: SIGTERM within the timeout; a stopped container stops again without error.
    e.cri
        .stop_container(Request::new(StopContainerRequest {
            container_id: c.clone(),
            timeout: 30,
        }))
        .await
        .unwrap();
    assert_eq!(
        e.fake.stops(),
        vec![("app".to_string(), Duration::from_secs(30), libc::SIGTERM)]
    );
    e.cri
        .stop_container(Request::new(StopContainerRequest {
            container_id: c.clone(),
            timeout: 30,
        }))
        .await
        .unwrap();
    let status = e.container_status(&c).await.unwrap().status.unwrap();
    assert_eq!(status.state(), ContainerState::ContainerExited);
    assert_eq!(status.exit_code, 128 + libc::SIGTERM);
    assert_eq!(
        e.cri
            .update_container_resources(Request::new(UpdateContainerResourcesRequest {
                container_id: c.clone(),
                linux: Some(LinuxContainerResources::default()),
                ..Default::default()
            }))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );

    // Removing a running container kills it first; unknown ids are removed already.
    let c2 = e.create(&sb, "side").await.unwrap();
    e.start(&c2).await.unwrap();
    for id in [c2.clone(), "nope".to_string()] {
        e.cri
            .remove_container(Request::new(RemoveContainerRequest { container_id: id }))
            .await
            .unwrap();
    }
    assert!(e
        .fake
        .stops()
        .contains(&("side".to_string(), Duration::ZERO, libc::SIGKILL)));
    assert_eq!(
        e.container_status(&c2).await.unwrap_err().code(),
        Code::NotFound
    );

    // Errors with their codes.
    assert_eq!(
        e.create("nope", "x").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(e.start("nope").await.unwrap_err().code(), Code::NotFound);
    let mut bad = container_config("bad");
    bad.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            run_as_group: Some(Int64Value { value: 5 }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let err = e
        .cri
        .create_container(Request::new(CreateContainerRequest {
            pod_sandbox_id: sb.clone(),
            config: Some(bad),
            sandbox_config: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("run_as_group"), "{}", err.message());
}

#[tokio::test]
async fn stopping_a_sandbox_stops_its_containers() {
    let e = env();
    let sb = e.run("web").await;
    let c = e.create(&sb, "app").await.unwrap();
    e.start(&c).await.unwrap();
    e.cri
        .remove_pod_sandbox(Request::new(RemovePodSandboxRequest {
            pod_sandbox_id: sb.clone(),
        }))
        .await
        .unwrap();
    let calls = e.fake.calls();
    let stop = calls.iter().position(|c| c == "stop_pod_sandbox").unwrap();
    let remove = calls
        .iter()
        .position(|c| c == "remove_pod_sandbox")
        .unwrap();
    assert!(stop < remove, "{calls:?}");
    assert_eq!(e.fake.running(), 0);
    assert!(e.containers(ContainerFilter::default()).await.is_empty());
}

#[tokio::test]
async fn podhost_cli_pods_are_invisible_and_untouched() {
    let e = env();
    let cli = Owned::new(e.fake.clone(), Owner::Podhost);
    let mut cfg = podhost_cri::convert::sandbox_config(&sandbox_config("cli")).unwrap();
    cfg.owner = Owner::Podhost;
    let theirs = cli.run_pod_sandbox(&cfg).await.unwrap();
    let spec = podhost_cri::convert::container_config(&container_config("cli-app"), &cfg).unwrap();
    let their_c = cli.create_container(&theirs, &spec, &cfg).await.unwrap();
    cli.start_container(&their_c).await.unwrap();
    let mine = e.run("kube").await;
    let my_c = e.create(&mine, "app").await.unwrap();
    e.start(&my_c).await.unwrap();

    let sandboxes = e.sandboxes(PodSandboxFilter::default()).await;
    assert_eq!(
        sandboxes.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![mine.clone()]
    );
    let containers = e.containers(ContainerFilter::default()).await;
    assert_eq!(
        containers.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        vec![my_c.clone()]
    );
    assert_eq!(
        e.sandbox_status(&theirs).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        e.container_status(&their_c).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        e.exec_sync(&their_c, &["true"], 1)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(e.start(&their_c).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        e.create(&theirs, "x").await.unwrap_err().code(),
        Code::NotFound
    );
    let stats = e
        .cri
        .list_container_stats(Request::new(ListContainerStatsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert!(stats
        .iter()
        .all(|s| s.attributes.as_ref().unwrap().id == my_c));
    let pod_stats = e
        .cri
        .list_pod_sandbox_stats(Request::new(ListPodSandboxStatsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(pod_stats.len(), 1);
    // A kubelet removes every sandbox it does not know: nothing happens to the CLI's.
    e.cri
        .stop_pod_sandbox(Request::new(StopPodSandboxRequest {
            pod_sandbox_id: theirs.clone(),
        }))
        .await
        .unwrap();
    e.cri
        .remove_pod_sandbox(Request::new(RemovePodSandboxRequest {
            pod_sandbox_id: theirs.clone(),
        }))
        .await
        .unwrap();
    e.cri
        .remove_container(Request::new(RemoveContainerRequest {
            container_id: their_c.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(
        cli.pod_sandbox_status(&theirs).await.unwrap().state,
        podhost_runtime::SandboxState::Ready
    );
    assert_eq!(
        cli.container_status(&their_c).await.unwrap().state,
        podhost_runtime::ContainerState::Running
    );
    assert!(!e
        .fake
        .calls()
        .iter()
        .any(|c| c.contains("cli-app") && c.starts_with("stop")));
}

#[tokio::test]
async fn stats_of_sandboxes_and_every_container() {
    let e = env();
    let sb = e.run("web").await;
    let created = e.create(&sb, "created").await.unwrap();
    let running = e.create(&sb, "running").await.unwrap();
    e.start(&running).await.unwrap();
    let all = e
        .cri
        .list_container_stats(Request::new(ListContainerStatsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .stats;
    let ids: Vec<String> = all
        .iter()
        .map(|s| s.attributes.as_ref().unwrap().id.clone())
        .collect();
    assert!(ids.contains(&created) && ids.contains(&running), "{ids:?}");
    let one = e
        .cri
        .container_stats(Request::new(ContainerStatsRequest {
            container_id: running.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(
        one.attributes
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .name,
        "running"
    );
    assert!(one.cpu.unwrap().timestamp != 0 && one.memory.unwrap().timestamp != 0);
    let filtered = e
        .cri
        .list_container_stats(Request::new(ListContainerStatsRequest {
            filter: Some(ContainerStatsFilter {
                id: created.clone(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(filtered.len(), 1);
    let pod = e
        .cri
        .pod_sandbox_stats(Request::new(PodSandboxStatsRequest {
            pod_sandbox_id: sb.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(pod.linux.unwrap().containers.len(), 2);
    let by_label = e
        .cri
        .list_pod_sandbox_stats(Request::new(ListPodSandboxStatsRequest {
            filter: Some(PodSandboxStatsFilter {
                label_selector: [("app".to_string(), "other".to_string())].into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert!(by_label.is_empty());
    // A stopped sandbox has no stats.
    e.cri
        .stop_pod_sandbox(Request::new(StopPodSandboxRequest {
            pod_sandbox_id: sb.clone(),
        }))
        .await
        .unwrap();
    let err = e
        .cri
        .pod_sandbox_stats(Request::new(PodSandboxStatsRequest { pod_sandbox_id: sb }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn images_pull_status_list_remove_and_fs_info() {
    let e = env();
    let spec = |i: &str| {
        Some(ImageSpec {
            image: i.into(),
            ..Default::default()
        })
    };
    let absent = e
        .cri
        .image_status(Request::new(ImageStatusRequest {
            image: spec("nginx"),
            verbose: false,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(absent.image.is_none(), "an absent image is no error");
    let err = e
        .cri
        .pull_image(Request::new(PullImageRequest {
            image: spec("nginx"),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    e.fake.add_pullable("nginx");
    let pulled = e
        .cri
        .pull_image(Request::new(PullImageRequest {
            image: spec("nginx"),
            auth: Some(AuthConfig {
                username: "u".into(),
                password: "p".into(),
                ..Default::default()
            }),
            sandbox_config: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pulled.image_ref, "sha256:fake");
    let listed = e
        .cri
        .list_images(Request::new(ListImagesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(listed.len(), 2);
    let filtered = e
        .cri
        .list_images(Request::new(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec("nginx"),
            }),
        }))
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].repo_tags, vec!["nginx"]);
    for _ in 0..2 {
        e.cri
            .remove_image(Request::new(RemoveImageRequest {
                image: spec("nginx"),
            }))
            .await
            .unwrap();
    }
    let fs = e
        .cri
        .image_fs_info(Request::new(ImageFsInfoRequest {}))
        .await
        .unwrap()
        .into_inner();
    let usage = &fs.image_filesystems[0];
    assert_eq!(usage.fs_id.as_ref().unwrap().mountpoint, "/fake/images");
    assert_eq!(usage.inodes_used.as_ref().unwrap().value, 1);
    let err = e
        .cri
        .image_status(Request::new(ImageStatusRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

/// A provider that hands out URLs, as the streaming server will.
struct Urls;

impl StreamingProvider for Urls {
    fn get_exec(&self, req: &ExecRequest) -> Result<ExecResponse, Status> {
        Ok(ExecResponse {
            url: format!("http://127.0.0.1:1/exec/{}", req.container_id),
        })
    }
    fn get_attach(&self, req: &AttachRequest) -> Result<AttachResponse, Status> {
        Ok(AttachResponse {
            url: format!("http://127.0.0.1:1/attach/{}", req.container_id),
        })
    }
    fn get_port_forward(&self, req: &PortForwardRequest) -> Result<PortForwardResponse, Status> {
        Ok(PortForwardResponse {
            url: format!("http://127.0.0.1:1/portforward/{}", req.pod_sandbox_id),
        })
    }
}

#[tokio::test]
async fn streaming_requests_are_checked_then_delegated() {
    let exec = |id: &str, stdout: bool, tty: bool, stderr: bool| ExecRequest {
        container_id: id.into(),
        cmd: vec!["sh".into()],
        tty,
        stdin: false,
        stdout,
        stderr,
    };
    let e = env();
    let sb = e.run("web").await;
    let c = e.create(&sb, "app").await.unwrap();
    let err = e
        .cri
        .exec(Request::new(exec(&c, true, false, false)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "not running yet");
    e.start(&c).await.unwrap();
    let err = e
        .cri
        .exec(Request::new(exec(&c, true, false, false)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "no streaming server yet");
    let err = e
        .cri
        .exec(Request::new(exec(&c, false, false, false)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = e
        .cri
        .exec(Request::new(exec(&c, true, true, true)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let e = env_with(Arc::new(Urls));
    let sb = e.run("web").await;
    let c = e.create(&sb, "app").await.unwrap();
    e.start(&c).await.unwrap();
    let url = e
        .cri
        .exec(Request::new(exec(&c[..1], true, true, false)))
        .await
        .unwrap()
        .into_inner()
        .url;
    assert_eq!(
        url,
        format!("http://127.0.0.1:1/exec/{c}"),
        "the full id goes on"
    );
    let url = e
        .cri
        .attach(Request::new(AttachRequest {
            container_id: c.clone(),
            stdout: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .url;
    assert!(url.ends_with(&c));
    let pf = |id: &str, port: i32| PortForwardRequest {
        pod_sandbox_id: id.into(),
        port: vec![port],
    };
    assert!(e.cri.port_forward(Request::new(pf(&sb, 80))).await.is_ok());
    assert_eq!(
        e.cri
            .port_forward(Request::new(pf(&sb, 70_000)))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    e.cri
        .stop_pod_sandbox(Request::new(StopPodSandboxRequest {
            pod_sandbox_id: sb.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(
        e.cri
            .port_forward(Request::new(pf(&sb, 80)))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
}

#[tokio::test]
async fn served_on_a_unix_socket() {
    use hyper_util::rt::TokioIo;
    use podhost_cri_api::image_service_client::ImageServiceClient;
    use podhost_cri_api::runtime_service_client::RuntimeServiceClient;

    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cri.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(podhost_cri::serve(listener, e.cri.clone(), async {
        let _ = stopped.await;
    }));
    let socket = path.clone();
    let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap();
    let mut runtime = RuntimeServiceClient::new(channel.clone());
    let mut images = ImageServiceClient::new(channel);
    let id = runtime
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sandbox_config("web")),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let listed = runtime
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(listed[0].id, id);
    let imgs = images
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(imgs.len(), 1);
    let unimplemented = runtime
        .checkpoint_container(CheckpointContainerRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unimplemented.code(), Code::Unimplemented);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
