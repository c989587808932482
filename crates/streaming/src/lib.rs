//! Kubelet's streaming protocols, for podhost's CRI streaming server (exec, attach,
//! port-forward) and for tests that act as kubectl or crictl.
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

pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod upgrade;
