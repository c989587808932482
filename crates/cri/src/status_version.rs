//! Version, Status (RuntimeReady, NetworkReady), UpdateRuntimeConfig (the pod CIDR) and
//! RuntimeConfig (the cgroup driver).

use podhost_cri_api::*;
use tonic::Status;

use crate::Cri;

/// The runtime's name in `crictl version` and `kubectl get nodes -o wide`.
pub const RUNTIME_NAME: &str = "podhost";

impl Cri {
    pub(crate) async fn version(&self, _req: VersionRequest) -> Result<VersionResponse, Status> {
        Ok(VersionResponse {
            // The kubelet's API version field: "0.1.0" for every runtime.
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: CRI_API_VERSION.into(),
        })
    }

    pub(crate) async fn status(&self, req: StatusRequest) -> Result<StatusResponse, Status> {
        // The runtime answers when it can list its sandboxes.
        let runtime = self.runtime.sandbox_refs().await;
        let network = self.network_ready();
        let condition = |kind: &str, r: Result<(), String>, reason: &str| RuntimeCondition {
            r#type: kind.into(),
            status: r.is_ok(),
            reason: if r.is_ok() {
                String::new()
            } else {
                reason.into()
            },
            message: r.err().unwrap_or_default(),
        };
        let mut info = std::collections::HashMap::new();
        if req.verbose {
            let cidr = self
                .pod_cidr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let config = serde_json::json!({
                "podCIDR": cidr,
                "cniConfDir": self.options.cni_conf_dir,
            });
            info.insert("config".to_string(), config.to_string());
        }
        Ok(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![
                    condition(
                        "RuntimeReady",
                        runtime.map(drop).map_err(|e| e.to_string()),
                        "RuntimeNotReady",
                    ),
                    condition("NetworkReady", network, "NetworkPluginNotReady"),
                ],
            }),
            info,
            ..Default::default()
        })
    }

    /// Ready when the CNI config directory has a network config (podhost writes its
    /// default one at the daemon's first start).
    fn network_ready(&self) -> Result<(), String> {
        let Some(dir) = &self.options.cni_conf_dir else {
            return Ok(());
        };
        let has_config = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.path()
                    .extension()
                    .is_some_and(|x| x == "conflist" || x == "conf" || x == "json")
            });
        match has_config {
            true => Ok(()),
            false => Err(format!("no CNI network config in {}", dir.display())),
        }
    }

    pub(crate) async fn update_runtime_config(
        &self,
        req: UpdateRuntimeConfigRequest,
    ) -> Result<UpdateRuntimeConfigResponse, Status> {
        let cidr = req
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .filter(|c| !c.is_empty());
        if let Some(cidr) = &cidr {
            // podhost's network comes from its CNI config (`--cluster-cidr` writes the
            // default one); it is not rewritten behind the administrator's back.
            tracing::info!(
                "CRI: the kubelet's pod CIDR is {cidr}; podhost's pods take their IPs from its CNI config (--cluster-cidr)"
            );
            *self.pod_cidr.lock().unwrap_or_else(|p| p.into_inner()) = Some(cidr.clone());
        }
        Ok(UpdateRuntimeConfigResponse {})
    }

    pub(crate) async fn runtime_config(
        &self,
        _req: RuntimeConfigRequest,
    ) -> Result<RuntimeConfigResponse, Status> {
        // podhost writes cgroup files itself: the cgroupfs driver (v1 and v2).
        Ok(RuntimeConfigResponse {
            linux: Some(LinuxRuntimeConfiguration {
                cgroup_driver: CgroupDriver::Cgroupfs as i32,
            }),
        })
    }
}
