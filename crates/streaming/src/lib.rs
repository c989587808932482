//! Kubelet's streaming protocols and its streaming server, for podhost's CRI Exec, Attach
//! and PortForward, and for clients and tests that act as kubectl or crictl.
//!
//! # Layout
//! - [`spdy`]: SPDY/3.1 frames, header compression and multiplexed connections
//!   (the wire format of Go's moby/spdystream).
//! - [`upgrade`]: the HTTP/1.1 upgrade to SPDY with `X-Stream-Protocol-Version`
//!   negotiation, server (hyper) and client side.
//! - [`remotecommand`]: exec/attach streams (`streamtype` error, stdin, stdout, stderr,
//!   resize), the v4 exit-status JSON and terminal resize events.
//! - [`portforward`]: port-forward stream pairs (`streamtype` data/error, `port`,
//!   `requestid`).
//! - [`server`]: kubelet's streaming server for CRI Exec, Attach and PortForward: one-time
//!   URLs, sessions bridged to the runtime.

pub mod portforward;
pub mod remotecommand;
pub mod server;
pub mod spdy;
pub mod upgrade;
