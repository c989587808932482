//! The start-up trace: one span per step of creating a sandbox or a container (cgroup,
//! netns, each CNI plugin, shim and pause, overlay, bundle, `podhost-runc`), so that
//! where a pod's milliseconds go can be seen (`podhost serve --trace-startup`).
//!
//! Every span is named `step` (its `step` field says which) at DEBUG level under target
//! [`TARGET`]: a daemon that does not trace start-up filters them out at their call
//! site, so they cost one cached check each. The outermost span of a call carries the
//! `pod` (`namespace/name`); steps the shim times itself are recorded as `*_us` fields.

/// Target of every start-up span.
pub const TARGET: &str = "podhost_startup";

/// A start-up span: `step!("cni", plugin = %kind)`.
#[macro_export]
macro_rules! step {
    ($name:expr $(, $($field:tt)*)?) => {
        tracing::debug_span!(target: $crate::trace::TARGET, "step", step = $name $(, $($field)*)?)
    };
}
