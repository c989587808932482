//! Kubernetes CRI v1: the messages and the two gRPC services a kubelet or `crictl` calls,
//! generated at build time from `proto/api.proto` (k8s.io/cri-api, vendored; its header
//! says which release and from where).
//!
//! - [`runtime_service_server::RuntimeService`] and [`image_service_server::ImageService`]:
//!   the traits a CRI server implements; wrap an implementation in
//!   [`runtime_service_server::RuntimeServiceServer`] / [`image_service_server::ImageServiceServer`]
//!   and serve them with tonic.
//! - [`runtime_service_client::RuntimeServiceClient`] and
//!   [`image_service_client::ImageServiceClient`]: generic clients, for tests and tools.
//! - Every request, response and nested message as a prost struct (`VersionRequest`,
//!   `RunPodSandboxRequest`, `PodSandboxConfig`, ...), enums as `i32` fields with
//!   typed accessors (`PodSandboxState`, `ContainerState`, ...).
//!
//! The proto package is `runtime.v1`, so the gRPC paths are `/runtime.v1.RuntimeService/...`
//! as kubelets expect.

// Generated code: its doc comments are the proto's, formatted for Go.
#![allow(
    clippy::doc_lazy_continuation,
    clippy::doc_overindented_list_items,
    clippy::large_enum_variant
)]

tonic::include_proto!("runtime.v1");

/// The CRI API version a runtime reports in `VersionResponse.runtime_api_version`.
pub const CRI_API_VERSION: &str = "v1";

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(message: &M) -> M {
        let bytes = message.encode_to_vec();
        M::decode(bytes.as_slice()).expect("a message we encoded decodes")
    }

    #[test]
    fn sandbox_config_round_trips_with_nested_fields_and_maps() {
        let request = RunPodSandboxRequest {
            config: Some(PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "web".into(),
                    uid: "3b1c".into(),
                    namespace: "default".into(),
                    attempt: 2,
                }),
                hostname: "web-0".into(),
                log_directory: "/var/log/pods/default_web_3b1c".into(),
                port_mappings: vec![PortMapping {
                    protocol: Protocol::Udp as i32,
                    container_port: 53,
                    host_port: 5353,
                    host_ip: "127.0.0.1".into(),
                }],
                labels: [("app".to_string(), "web".to_string())].into(),
                linux: Some(LinuxPodSandboxConfig {
                    cgroup_parent: "/kubepods/besteffort/pod3b1c".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            runtime_handler: String::new(),
        };
        let decoded = round_trip(&request);
        assert_eq!(decoded, request);
        let config = decoded.config.unwrap();
        assert_eq!(config.port_mappings[0].protocol(), Protocol::Udp);
        assert_eq!(config.labels["app"], "web");
    }

    #[test]
    fn container_status_round_trips_with_enums_and_timestamps() {
        let response = ContainerStatusResponse {
            status: Some(ContainerStatus {
                id: "c1".into(),
                state: ContainerState::ContainerExited as i32,
                exit_code: 137,
                reason: "OOMKilled".into(),
                finished_at: 1_700_000_000_123_456_789,
                mounts: vec![Mount {
                    container_path: "/data".into(),
                    host_path: "/srv/data".into(),
                    readonly: true,
                    propagation: MountPropagation::PropagationHostToContainer as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            info: [("pid".to_string(), "42".to_string())].into(),
        };
        let decoded = round_trip(&response);
        assert_eq!(decoded, response);
        let status = decoded.status.unwrap();
        assert_eq!(status.state(), ContainerState::ContainerExited);
        assert_eq!(
            status.mounts[0].propagation(),
            MountPropagation::PropagationHostToContainer
        );
    }

    #[test]
    fn exec_sync_round_trips_bytes_and_known_wire_form() {
        let request = ExecSyncRequest {
            container_id: "c1".into(),
            cmd: vec!["sh".into(), "-c".into(), "exit 3".into()],
            timeout: 5,
        };
        assert_eq!(round_trip(&request), request);
        // Field numbers are the interface: check the wire bytes of a small message
        // (field 1 string "v1", tag 0x0a, length 2) so a renumbered proto fails here.
        let version = VersionRequest {
            version: "v1".into(),
        };
        assert_eq!(version.encode_to_vec(), b"\x0a\x02v1");
        let response = ExecSyncResponse {
            stdout: b"out\n".to_vec(),
            stderr: vec![0xff, 0x00],
            exit_code: 3,
        };
        assert_eq!(round_trip(&response), response);
    }

    #[test]
    fn unknown_fields_from_newer_releases_are_skipped() {
        // A newer kubelet may send fields this release does not know (here field 99).
        let mut bytes = VersionRequest {
            version: "v1".into(),
        }
        .encode_to_vec();
        bytes.extend_from_slice(&[0x98, 0x06, 0x01]); // field 99, varint 1
        let decoded = VersionRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.version, "v1");
    }
}
