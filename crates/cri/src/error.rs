//! Runtime errors as gRPC statuses: the code a kubelet acts on, the runtime's message.

use podhost_image::pull::PullError;
use podhost_runtime::RuntimeError;
use podhost_shim::proto::ErrorCode;
use tonic::{Code, Status};

/// The gRPC status of a runtime error: NotFound for unknown sandboxes, containers and
/// images, FailedPrecondition for wrong states (not running, stopped sandbox, image in
/// use, port taken), InvalidArgument for configs the runtime refuses, DeadlineExceeded
/// for timeouts; Internal for the machine's own failures.
pub fn status(e: RuntimeError) -> Status {
    Status::new(code(&e), e.to_string())
}

fn code(e: &RuntimeError) -> Code {
    match e {
        RuntimeError::SandboxNotFound(_)
        | RuntimeError::ContainerNotFound(_)
        | RuntimeError::ImageNotFound { .. } => Code::NotFound,
        RuntimeError::ImageInUse { .. } | RuntimeError::HostPortInUse { .. } => {
            Code::FailedPrecondition
        }
        RuntimeError::Shim { code, .. } => match code {
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::Internal => Code::Internal,
        },
        // The shim is gone because its sandbox was stopped (or died): nothing runs there.
        RuntimeError::ShimGone { .. } => Code::FailedPrecondition,
        RuntimeError::ShimUnresponsive { .. } | RuntimeError::ExecTimeout { .. } => {
            Code::DeadlineExceeded
        }
        RuntimeError::ContainerConfig(_) => Code::InvalidArgument,
        RuntimeError::Image {
            source: podhost_image::ImageError::NotFound { .. },
            ..
        } => Code::NotFound,
        RuntimeError::Pull(PullError::InvalidReference(_)) => Code::InvalidArgument,
        // A registry's refusal or absence: containerd answers Unknown too.
        RuntimeError::Pull(_) => Code::Unknown,
        RuntimeError::WithCleanup { error, .. } => code(error),
        _ => Code::Internal,
    }
}

/// A request the CRI server refuses before asking the runtime.
pub fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_what_a_kubelet_expects() {
        assert_eq!(
            status(RuntimeError::ContainerNotFound("c".into())).code(),
            Code::NotFound
        );
        let shim = |code| RuntimeError::Shim {
            sandbox_id: "s".into(),
            op: "start_container",
            code,
            message: "container c is already running".into(),
        };
        let st = status(shim(ErrorCode::FailedPrecondition));
        assert_eq!(st.code(), Code::FailedPrecondition);
        assert!(st.message().contains("already running"), "{}", st.message());
        assert_eq!(status(shim(ErrorCode::NotFound)).code(), Code::NotFound);
        let wrapped = RuntimeError::WithCleanup {
            error: Box::new(RuntimeError::ImageNotFound {
                reference: "x".into(),
            }),
            cleanup: Box::new(RuntimeError::SandboxNotFound("s".into())),
        };
        assert_eq!(status(wrapped).code(), Code::NotFound);
        assert_eq!(
            status(RuntimeError::ExecTimeout {
                container_id: "c".into(),
                cmd: vec![],
                timeout: std::time::Duration::from_secs(1)
            })
            .code(),
            Code::DeadlineExceeded
        );
        assert_eq!(
            status(RuntimeError::ContainerConfig("bad".into())).code(),
            Code::InvalidArgument
        );
    }
}
