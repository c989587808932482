//! podhost-shim: per-pod supervisor (protocol in proto.rs).
