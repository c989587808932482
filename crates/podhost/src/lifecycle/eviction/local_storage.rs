//! kubelet's local-storage eviction (`localStorageEviction`): a pod whose emptyDir is
//! over its `sizeLimit`, whose ephemeral storage is over the sum of its containers'
//! `limits.ephemeral-storage`, or one of whose containers is over its own limit, is
//! evicted, checked in that order, with kubelet's messages.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

/// Disk space one pod uses, measured by the eviction manager.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodUsage {
    /// Per regular container: its writable layer and its logs, bytes.
    pub containers: BTreeMap<String, u64>,
    /// Per disk-backed emptyDir volume, bytes.
    pub volumes: BTreeMap<String, u64>,
}

impl PodUsage {
    /// The pod's ephemeral storage: containers and volumes together.
    pub fn total(&self) -> u64 {
        self.containers
            .values()
            .chain(self.volumes.values())
            .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// `limits.ephemeral-storage` of a container, as written and in bytes (none or zero: no
/// limit).
fn storage_limit(c: &Container) -> Option<(String, u64)> {
    let q = c
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("ephemeral-storage")?;
    let bytes = podhost_api::quantity::parse_bytes(&q.0).ok()?;
    let bytes = u64::try_from(bytes).ok().filter(|b| *b > 0)?;
    Some((q.0.clone(), bytes))
}

/// The pod's ephemeral-storage limit as kubelet's `PodLimits` computes it: the sum of
/// its regular containers' limits, or the largest init container's when larger. `None`
/// when no container sets one.
pub fn pod_limit(pod: &Pod) -> Option<u64> {
    let spec = pod.spec.as_ref()?;
    let limits: Vec<u64> = spec
        .containers
        .iter()
        .filter_map(storage_limit)
        .map(|(_, b)| b)
        .collect();
    let inits = spec
        .init_containers
        .iter()
        .flatten()
        .filter_map(storage_limit)
        .map(|(_, b)| b)
        .max();
    if limits.is_empty() && inits.is_none() {
        return None;
    }
    let sum = limits.iter().fold(0u64, |a, b| a.saturating_add(*b));
    Some(sum.max(inits.unwrap_or(0)))
}

/// Whether `pod` has anything [`verdict`] checks: an emptyDir `sizeLimit` or an
/// ephemeral-storage limit. A pod without one can only be evicted for the node's disk.
pub fn has_limits(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.volumes
        .iter()
        .flatten()
        .any(|v| v.empty_dir.as_ref().is_some_and(|e| e.size_limit.is_some()))
        || pod_limit(pod).is_some()
        || spec.containers.iter().any(|c| storage_limit(c).is_some())
}

/// Why `pod` must be evicted given what it uses, worded like kubelet; `None` when it
/// stays.
pub fn verdict(pod: &Pod, usage: &PodUsage) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    for v in spec.volumes.iter().flatten() {
        let Some(ed) = &v.empty_dir else { continue };
        let Some(size) = &ed.size_limit else { continue };
        let Ok(limit) = podhost_api::quantity::parse_bytes(&size.0) else {
            continue;
        };
        let Some(used) = usage.volumes.get(&v.name) else {
            continue;
        };
        if limit > 0 && u64::try_from(limit).is_ok_and(|l| *used > l) {
            return Some(format!(
                "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                v.name, size.0
            ));
        }
    }
    if let Some(limit) = pod_limit(pod) {
        if usage.total() > limit {
            return Some(format!(
                "Pod ephemeral local storage usage exceeds the total limit of containers {}. ",
                quantity(limit)
            ));
        }
    }
    for c in &spec.containers {
        let Some((written, limit)) = storage_limit(c) else {
            continue;
        };
        if usage.containers.get(&c.name).is_some_and(|u| *u > limit) {
            return Some(format!(
                "Container {} exceeded its local ephemeral storage limit {:?}. ",
                c.name, written
            ));
        }
    }
    None
}

/// Bytes as a Kubernetes quantity prints them: the largest binary suffix that divides
/// them exactly, else the largest decimal one, else the plain number.
pub fn quantity(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    for (suffix, unit) in [
        ("Ei", 1u64 << 60),
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    for (suffix, unit) in [
        ("E", 1_000_000_000_000_000_000u64),
        ("P", 1_000_000_000_000_000),
        ("T", 1_000_000_000_000),
        ("G", 1_000_000_000),
        ("M", 1_000_000),
        ("k", 1_000),
    ] {
        if bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1 << 20;

    use crate::lifecycle::eviction::test_pod as pod;

    fn usage(containers: &[(&str, u64)], volumes: &[(&str, u64)]) -> PodUsage {
        PodUsage {
            containers: containers
                .iter()
                .map(|(n, b)| (n.to_string(), *b))
                .collect(),
            volumes: volumes.iter().map(|(n, b)| (n.to_string(), *b)).collect(),
        }
    }

    const TWO: &str = "metadata: {name: p}\nspec:\n  containers:\n  - {name: app, image: i, resources: {limits: {ephemeral-storage: 20Mi}}}\n  - {name: side, image: i, resources: {limits: {ephemeral-storage: 20Mi}}}\n  volumes:\n  - {name: scratch, emptyDir: {sizeLimit: 10Mi}}\n  - {name: mem, emptyDir: {medium: Memory}}\n";

    #[test]
    fn empty_dir_over_its_size_limit() {
        let p = pod(TWO);
        assert_eq!(verdict(&p, &usage(&[], &[("scratch", 10 * MI)])), None);
        assert_eq!(
            verdict(&p, &usage(&[], &[("scratch", 10 * MI + 1)])).as_deref(),
            Some("Usage of EmptyDir volume \"scratch\" exceeds the limit \"10Mi\". ")
        );
    }

    #[test]
    fn container_over_its_own_limit() {
        let p = pod(TWO);
        assert_eq!(verdict(&p, &usage(&[("app", 20 * MI)], &[])), None);
        assert_eq!(
            verdict(&p, &usage(&[("app", 25 * MI), ("side", MI)], &[])).as_deref(),
            Some("Container app exceeded its local ephemeral storage limit \"20Mi\". ")
        );
    }

    #[test]
    fn pod_over_the_sum_of_its_limits_comes_before_a_container() {
        let p = pod(TWO);
        assert_eq!(pod_limit(&p), Some(40 * MI));
        let u = usage(
            &[("app", 25 * MI), ("side", 10 * MI)],
            &[("scratch", 6 * MI)],
        );
        assert_eq!(
            verdict(&p, &u).as_deref(),
            Some("Pod ephemeral local storage usage exceeds the total limit of containers 40Mi. ")
        );
    }

    #[test]
    fn only_a_size_limit_or_an_ephemeral_storage_limit_is_a_limit() {
        assert!(has_limits(&pod(TWO)));
        let none = "metadata: {name: p}\nspec:\n  containers:\n  - {name: app, image: i, resources: {limits: {memory: 1Gi}, requests: {ephemeral-storage: 1Gi}}}\n  volumes:\n  - {name: v, emptyDir: {}}\n  - {name: m, emptyDir: {medium: Memory}}\n";
        assert!(!has_limits(&pod(none)));
        let size = "metadata: {name: p}\nspec:\n  containers:\n  - {name: app, image: i}\n  volumes:\n  - {name: v, emptyDir: {sizeLimit: 1Mi}}\n";
        assert!(has_limits(&pod(size)));
        let init = "metadata: {name: p}\nspec:\n  initContainers:\n  - {name: i, image: i, resources: {limits: {ephemeral-storage: 1Mi}}}\n  containers:\n  - {name: app, image: i}\n";
        assert!(
            has_limits(&pod(init)),
            "the pod's total counts init containers"
        );
    }

    #[test]
    fn no_limits_no_eviction() {
        let p = pod("metadata: {name: p}\nspec:\n  containers:\n  - {name: app, image: i}\n  volumes:\n  - {name: v, emptyDir: {}}\n");
        assert_eq!(pod_limit(&p), None);
        assert_eq!(
            verdict(&p, &usage(&[("app", u64::MAX)], &[("v", u64::MAX)])),
            None
        );
    }

    #[test]
    fn init_containers_limit_the_pod_by_their_largest() {
        let p = pod("metadata: {name: p}\nspec:\n  initContainers:\n  - {name: i, image: i, resources: {limits: {ephemeral-storage: 1Gi}}}\n  containers:\n  - {name: app, image: i, resources: {limits: {ephemeral-storage: 100M}}}\n");
        assert_eq!(pod_limit(&p), Some(1 << 30));
    }

    #[test]
    fn quantities_print_like_kubernetes() {
        assert_eq!(quantity(40 * MI), "40Mi");
        assert_eq!(quantity(3 << 30), "3Gi");
        assert_eq!(quantity(200_000_000), "200M");
        assert_eq!(quantity(1500), "1500");
        assert_eq!(quantity(1234567), "1234567");
        assert_eq!(quantity(0), "0");
    }
}
