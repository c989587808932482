//! Generates the CRI v1 messages and gRPC services from the vendored `proto/api.proto`.
//!
//! protox parses the proto in Rust: the build needs no system `protoc` (Debian's also
//! rejects options newer CRI releases use) and no network, only crates from crates.io.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let proto = "proto/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // No tonic transport: the client is generic over any gRPC service (a unix-socket
        // channel in practice), so this crate stays free of tonic's transport features.
        .build_transport(false)
        // RPCs a server does not implement answer UNIMPLEMENTED, as the Go servers'
        // embedded `Unimplemented...Server` does; kubelets probe optional RPCs that way.
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
