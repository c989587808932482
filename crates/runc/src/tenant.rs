//! An exec'd process (an exec session, an exec probe) runs under the container's whole
//! security context: user, groups, umask, rlimits, capabilities, no_new_privs, and the
//! container's seccomp filter.
//!
//! The process itself is the container's `process` section with other arguments, so
//! libcontainer applies all of it but the filter: its tenant builder rebuilds `linux`
//! without `seccomp`. [`SecuredExec`] loads the filter right before the execve, where
//! libcontainer has already dropped to the container's capabilities. Loading a filter
//! needs no_new_privs or CAP_SYS_ADMIN; without no_new_privs (Kubernetes' default
//! `allowPrivilegeEscalation: true`), [`lend_for_filter`] lets the process keep
//! CAP_SYS_ADMIN (and CAP_SETPCAP, to drop it from the bounding set) until the filter is
//! loaded, and the executor then sets all five capability sets to the container's.
//! Until its execve the process is not dumpable (libcontainer), so nothing in the
//! container can ptrace it or open its /proc files while it holds them.

use anyhow::{bail, Result};
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::{Capability, LinuxCapabilities, LinuxSeccomp, Process, Spec};

/// The executor of exec'd processes: loads the container's seccomp filter, restores the
/// container's capability sets if some were lent for that, then execs like libcontainer.
#[derive(Clone)]
pub struct SecuredExec {
    seccomp: Option<LinuxSeccomp>,
    /// The container's capabilities, set again once the filter is loaded.
    restore: Option<LinuxCapabilities>,
}

impl SecuredExec {
    /// For a process of a container whose config has `seccomp`; `process` is the
    /// container's process section, adjusted by [`lend_for_filter`] when needed.
    pub fn new(seccomp: Option<LinuxSeccomp>, process: &mut Process) -> Result<SecuredExec> {
        if let Some(s) = &seccomp {
            if libcontainer::seccomp::is_notify(s) {
                // The notify descriptor of an exec'd process would need its own listener.
                bail!("seccomp profiles with SCMP_ACT_NOTIFY are not supported for exec");
            }
        }
        let restore = match &seccomp {
            Some(_) => lend_for_filter(process),
            None => None,
        };
        Ok(SecuredExec { seccomp, restore })
    }
}

/// Lends CAP_SYS_ADMIN (and CAP_SETPCAP) to `process` when it needs them to load a
/// seccomp filter: no no_new_privs and no CAP_SYS_ADMIN of its own. Returns the
/// container's capabilities to restore afterwards, or `None` when nothing was lent.
pub fn lend_for_filter(process: &mut Process) -> Option<LinuxCapabilities> {
    if process.no_new_privileges() == Some(true) {
        return None;
    }
    // Without a capabilities section libcontainer keeps the runtime's (all) capabilities.
    let caps = process.capabilities().clone()?;
    let effective = caps.effective().clone().unwrap_or_default();
    if effective.contains(&Capability::SysAdmin) {
        return None;
    }
    let mut lent_caps = vec![Capability::SysAdmin];
    if !effective.contains(&Capability::Setpcap) {
        lent_caps.push(Capability::Setpcap);
    }
    let mut lent = caps.clone();
    let add = |set: &Option<_>| {
        let mut set: std::collections::HashSet<Capability> = set.clone().unwrap_or_default();
        set.extend(lent_caps.iter().copied());
        Some(set)
    };
    lent.set_bounding(add(caps.bounding()))
        .set_permitted(add(caps.permitted()))
        .set_effective(add(caps.effective()));
    process.set_capabilities(Some(lent));
    Some(caps)
}

fn failed(what: &str, err: impl std::fmt::Display) -> ExecutorError {
    ExecutorError::Other(format!("{what}: {err}"))
}

impl Executor for SecuredExec {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(seccomp) = &self.seccomp {
            match libcontainer::seccomp::initialize_seccomp(seccomp) {
                Ok(None) => {}
                Ok(Some(_)) => {
                    return Err(failed("load the seccomp filter", "unexpected notify fd"))
                }
                Err(e) => return Err(failed("load the container's seccomp filter", e)),
            }
        }
        if let Some(caps) = &self.restore {
            let syscall = libcontainer::syscall::syscall::create_syscall();
            libcontainer::capabilities::drop_privileges(caps, syscall.as_ref())
                .map_err(|e| failed("drop to the container's capabilities", e))?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxCapabilitiesBuilder, ProcessBuilder};
    use std::collections::HashSet;

    fn process(caps: &[Capability], nnp: Option<bool>) -> Process {
        let set: HashSet<Capability> = caps.iter().copied().collect();
        let mut c = LinuxCapabilitiesBuilder::default()
            .bounding(set.clone())
            .effective(set.clone())
            .permitted(set)
            .build()
            .unwrap();
        c.set_inheritable(None).set_ambient(None);
        let mut p = ProcessBuilder::default().capabilities(c).build().unwrap();
        p.set_no_new_privileges(nnp);
        p
    }

    #[test]
    fn lends_sys_admin_and_setpcap_only_when_needed() {
        let default = [Capability::Chown, Capability::Setpcap, Capability::Kill];
        let mut p = process(&default, None);
        let original = p.capabilities().clone();
        let restore = lend_for_filter(&mut p).expect("lent");
        assert_eq!(Some(restore), original);
        let lent = p.capabilities().clone().unwrap();
        for set in [lent.bounding(), lent.effective(), lent.permitted()] {
            let set = set.clone().unwrap();
            assert!(set.contains(&Capability::SysAdmin));
            assert_eq!(set.len(), 4, "{set:?}");
        }
        assert_eq!(lent.inheritable(), &None);
        assert_eq!(lent.ambient(), &None);

        // Dropped ALL: SETPCAP is lent too, to drop both from the bounding set again.
        let mut p = process(&[], None);
        lend_for_filter(&mut p).expect("lent");
        let eff = p
            .capabilities()
            .clone()
            .unwrap()
            .effective()
            .clone()
            .unwrap();
        assert_eq!(
            eff,
            HashSet::from([Capability::SysAdmin, Capability::Setpcap])
        );

        // no_new_privs loads the filter without privilege; SYS_ADMIN holders need nothing.
        let mut p = process(&default, Some(true));
        assert!(lend_for_filter(&mut p).is_none());
        let mut p = process(&[Capability::SysAdmin], None);
        assert!(lend_for_filter(&mut p).is_none());
        assert_eq!(
            p.capabilities()
                .clone()
                .unwrap()
                .effective()
                .clone()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn notify_profiles_are_refused() {
        let s: LinuxSeccomp = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap();
        let mut p = process(&[], None);
        assert!(SecuredExec::new(Some(s), &mut p).is_err());
    }
}
