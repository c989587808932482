//! podhost: Kubernetes Pods on one Linux machine, with kubelet semantics.
//!
//! # Layout
//! Data flows top to bottom (see `shared/DESIGN.md`):
//! - [`cli`]: the `podhost` command: kubectl-like verbs, talks HTTP/JSON to the daemon.
//! - [`server`]: the daemon's HTTP API on a root-only unix socket; owns the pod workers.
//! - [`lifecycle`]: one worker per pod applying kubelet rules (start order, restarts,
//!   backoff, status and phase, termination) through the [`runtime::Runtime`] trait only.
//! - [`runtime`]: the CRI-shaped [`runtime::Runtime`] trait and its implementation on
//!   this machine: sandboxes (netns pin, per-pod shim, pause), the pod network
//!   ([`runtime::network`]: CNI plugins on the pinned netns), containers (overlay rootfs,
//!   OCI bundle), images (the `podhost-image` store).
//! - [`objects`]: ConfigMaps and Secrets, stored per namespace and watched by workers.
//! - [`store`]: the daemon's durable state (one JSON file per pod, written atomically).
//! - [`config`]: where everything lives on disk and the daemon's knobs.
//! - [`startup_trace`]: `serve --trace-startup`, the time of each step of a pod's start.
//!
//! Sibling crates: `podhost-api` (Pod YAML, validation, kubectl columns), `podhost-image`
//! (content store), `podhost-oci` (config.json), `podhost-shim` (per-pod supervisor and
//! its protocol), `podhost-runc` (libcontainer helper), `pause`.

pub mod cli;
pub mod config;
pub mod lifecycle;
pub mod objects;
pub mod selector;
pub mod server;
pub mod startup_trace;
pub mod store;
pub mod timefmt;
