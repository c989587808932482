//! Errors of the runtime layer, each naming what it was working on.

use std::path::PathBuf;

/// Failure of a runtime operation.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No sandbox with this id.
    #[error("sandbox {0} not found")]
    SandboxNotFound(String),
    /// No container with this id.
    #[error("container {0} not found")]
    ContainerNotFound(String),
    /// The image is not in the store.
    #[error("image {reference:?} not found: load it with `podhost image load -i FILE` (pulling from registries is not supported yet)")]
    ImageNotFound {
        /// As written in the pod.
        reference: String,
    },
    /// Pulling from a registry failed (the message carries the registry's error).
    #[error(transparent)]
    Pull(#[from] podhost_image::pull::PullError),
    /// An image cannot be removed while containers use it.
    #[error("image {reference:?} is in use by container(s) {containers}; delete their pods first")]
    ImageInUse {
        /// As given.
        reference: String,
        /// Container ids (short), comma separated.
        containers: String,
    },
    /// The image store failed.
    #[error("image {reference:?}: {source}")]
    Image {
        /// As written in the pod.
        reference: String,
        /// Underlying error.
        #[source]
        source: podhost_image::ImageError,
    },
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{action} {path}: {source}")]
    Sys {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Underlying errno.
        #[source]
        source: nix::Error,
    },
    /// The shim could not be started.
    #[error("starting shim for sandbox {sandbox_id}: {message}")]
    ShimStart {
        /// The sandbox.
        sandbox_id: String,
        /// What the shim said.
        message: String,
    },
    /// The shim process is gone: its socket refuses connections or it hung up mid-answer.
    #[error("sandbox {sandbox_id}: {op}: the pod's shim is gone ({socket}: {cause})")]
    ShimGone {
        /// The sandbox.
        sandbox_id: String,
        /// The request.
        op: &'static str,
        /// The shim's socket.
        socket: PathBuf,
        /// What the connection said.
        cause: String,
    },
    /// The shim accepted the connection (or its backlog did) but gave no answer in time:
    /// stopped, hung or overloaded. Its containers may well still run.
    #[error("sandbox {sandbox_id}: {op}: the pod's shim ({socket}) gave no answer in {timeout:?}")]
    ShimUnresponsive {
        /// The sandbox.
        sandbox_id: String,
        /// The request.
        op: &'static str,
        /// The shim's socket.
        socket: PathBuf,
        /// How long we waited.
        timeout: std::time::Duration,
    },
    /// The shim answered with an error.
    #[error("sandbox {sandbox_id}: {op}: {message}")]
    Shim {
        /// The sandbox.
        sandbox_id: String,
        /// The request.
        op: &'static str,
        /// Class of the error (not found, wrong state …), to act on.
        code: podhost_shim::proto::ErrorCode,
        /// What went wrong.
        message: String,
    },
    /// Building the OCI spec failed.
    #[error("container {container}: {source}")]
    Oci {
        /// Container name.
        container: String,
        /// Underlying error.
        #[source]
        source: podhost_oci::OciError,
    },
    /// Creating or limiting the pod cgroup failed.
    #[error("pod cgroup: {0}")]
    Cgroup(#[from] super::cgroups::CgroupError),
    /// The container's config contradicts its image (kubelet's CreateContainerConfigError).
    #[error("{0}")]
    ContainerConfig(String),
    /// A state file could not be encoded or decoded.
    #[error("state file {path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// An `exec_sync` command did not finish in time (it was killed).
    #[error("command {cmd:?} in container {container_id} timed out after {timeout:?}")]
    ExecTimeout {
        /// The container.
        container_id: String,
        /// The command.
        cmd: Vec<String>,
        /// The limit that passed.
        timeout: std::time::Duration,
    },
    /// The default network's shared masquerade rule could not be put in place.
    #[error("network {network:?}: shared masquerade rule: {source}")]
    Masquerade {
        /// Network name.
        network: String,
        /// Underlying error.
        #[source]
        source: super::network::masquerade::MasqueradeError,
    },
    /// A CNI plugin or network config failed (the plugin is named in the source).
    #[error("network {network:?}: {source}")]
    Cni {
        /// Network name (or the config directory when no config could be read).
        network: String,
        /// Underlying error.
        #[source]
        source: super::network::cni::CniError,
    },
    /// Another pod already publishes this host port.
    #[error("hostPort {host_port}/{protocol} is already allocated to pod {pod}")]
    HostPortInUse {
        /// The port.
        host_port: u16,
        /// TCP, UDP, SCTP.
        protocol: String,
        /// `namespace/name` of the pod holding it.
        pod: String,
    },
    /// A port inside a pod could not be reached (port-forward).
    #[error("sandbox {sandbox_id}: port {port}: {source}")]
    PortForward {
        /// The sandbox.
        sandbox_id: String,
        /// The port in the pod.
        port: u16,
        /// Why the connection failed.
        #[source]
        source: super::dial::DialError,
    },
    /// The container's command is not in its filesystem (libcontainer finds out when
    /// it creates the container): said as runc says it, which Kubernetes users know.
    #[error("exec: {executable:?}: {}", if executable.contains('/') { format!("stat {executable}: no such file or directory") } else { "executable file not found in $PATH".to_string() })]
    ExecutableNotFound {
        /// The container.
        container: String,
        /// The command's first word, as the pod gives it.
        executable: String,
    },
    /// A create failed, and undoing its earlier steps failed too: both are kept.
    #[error("{error} (cleanup also failed: {cleanup})")]
    WithCleanup {
        /// The original failure.
        error: Box<RuntimeError>,
        /// The cleanup failure.
        cleanup: Box<RuntimeError>,
    },
}

impl RuntimeError {
    /// Whether the container could not start because its executable is missing
    /// (kubelet's `RunContainerError`, not a create error), also under a failed cleanup.
    pub fn is_executable_not_found(&self) -> bool {
        match self {
            RuntimeError::ExecutableNotFound { .. } => true,
            RuntimeError::WithCleanup { error, .. } => error.is_executable_not_found(),
            _ => false,
        }
    }

    /// libcontainer's report of a missing executable (`executable 'x' not found in
    /// $PATH`, carried as text from its init process through podhost-runc and the
    /// shim) as [`RuntimeError::ExecutableNotFound`]; other errors unchanged.
    pub fn executable_not_found(self, container: &str) -> Self {
        const MARK: &str = "executable '";
        const TAIL: &str = "' not found in $PATH";
        let RuntimeError::Shim { message, .. } = &self else {
            return self;
        };
        let found = message.rfind(TAIL).and_then(|end| {
            let start = message[..end].rfind(MARK)? + MARK.len();
            Some(message[start..end].to_string())
        });
        match found {
            Some(executable) => RuntimeError::ExecutableNotFound {
                container: container.to_string(),
                executable,
            },
            None => self,
        }
    }

    /// Shorthand for an [`RuntimeError::Io`] with context.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io {
            action,
            path,
            source,
        }
    }
    /// Shorthand for an [`RuntimeError::Sys`] with context.
    pub fn sys(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(nix::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Sys {
            action,
            path,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_executable_reads_as_runc_says_it() {
        let shim = |message: &str| RuntimeError::Shim {
            sandbox_id: "s".into(),
            op: "create_container",
            code: podhost_shim::proto::ErrorCode::Internal,
            message: message.into(),
        };
        let e = shim("container c: runc create failed (exit status: 1): podhost-runc: libcontainer failed to create the container: exec process failed with error error in executing process : executable 'no-such' not found in $PATH")
            .executable_not_found("c");
        assert!(e.is_executable_not_found());
        assert_eq!(
            e.to_string(),
            "exec: \"no-such\": executable file not found in $PATH"
        );
        let e = shim("… executable '/bin/nope' not found in $PATH").executable_not_found("c");
        assert_eq!(
            e.to_string(),
            "exec: \"/bin/nope\": stat /bin/nope: no such file or directory"
        );
        let other = shim("mount failed").executable_not_found("c");
        assert!(!other.is_executable_not_found());
    }
}
