//! Which pod goes first under node pressure, as kubelet's `rankMemoryPressure` and
//! `rankDiskPressureFunc` order them: pods using more than they requested first
//! (BestEffort requests nothing), then lower priority, then the larger use above the
//! request.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::Pod;

/// One pod as the ranking sees it, for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `namespace/name`.
    pub key: String,
    /// What it uses (memory working set, or disk bytes).
    pub usage: u64,
    /// What its containers request of it, together.
    pub request: u64,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
}

impl Candidate {
    fn exceeds(&self) -> bool {
        self.usage > self.request
    }
    fn above(&self) -> i128 {
        i128::from(self.usage) - i128::from(self.request)
    }
}

/// kubelet's order: the first one is evicted first.
pub fn rank(pods: &mut [Candidate]) {
    pods.sort_by(|a, b| {
        // Usage above request before usage within it.
        b.exceeds()
            .cmp(&a.exceeds())
            .then(a.priority.cmp(&b.priority))
            .then(b.above().cmp(&a.above()))
            .then_with(|| a.key.cmp(&b.key))
    });
}

/// What `pod`'s containers request of `resource` (bytes), as kubelet's `PodRequests`:
/// the regular containers' sum, or the largest init container's when larger.
pub fn pod_request(pod: &Pod, resource: &str) -> u64 {
    let Some(spec) = &pod.spec else { return 0 };
    let of = |c: &k8s_openapi::api::core::v1::Container| -> u64 {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))
            .and_then(|q| podhost_api::quantity::parse_bytes(&q.0).ok())
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0)
    };
    let sum = spec
        .containers
        .iter()
        .map(of)
        .fold(0u64, |a, b| a.saturating_add(b));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(of)
        .max()
        .unwrap_or(0);
    sum.max(init)
}

/// The message kubelet gives a pod evicted under node pressure: the resource, the
/// threshold and what is left, and each container using more than it requested.
pub fn pressure_message(
    resource: &str,
    threshold: &str,
    available: u64,
    containers: &[(String, u64, u64)],
) -> String {
    let mut m = format!(
        "The node was low on resource: {resource}. Threshold quantity: {threshold}, available: {}. ",
        super::local_storage::quantity(available)
    );
    for (name, usage, request) in containers {
        if usage.cmp(request) == Ordering::Greater {
            m.push_str(&format!(
                "Container {name} was using {}, request is {}, has larger consumption of {resource}. ",
                super::local_storage::quantity(*usage),
                super::local_storage::quantity(*request)
            ));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: &str, usage: u64, request: u64, priority: i32) -> Candidate {
        Candidate {
            key: key.into(),
            usage,
            request,
            priority,
        }
    }

    fn keys(v: &[Candidate]) -> Vec<&str> {
        v.iter().map(|c| c.key.as_str()).collect()
    }

    #[test]
    fn best_effort_before_burstable_within_its_request() {
        // The Burstable pod uses more in absolute terms, but within what it asked.
        let mut v = vec![c("burstable", 300, 500, 0), c("besteffort", 100, 0, 0)];
        rank(&mut v);
        assert_eq!(keys(&v), ["besteffort", "burstable"]);
    }

    #[test]
    fn priority_before_amount_among_those_over_request() {
        let mut v = vec![
            c("big-important", 900, 0, 1000),
            c("small-ordinary", 10, 0, 0),
            c("within", 10, 100, -5),
        ];
        rank(&mut v);
        assert_eq!(keys(&v), ["small-ordinary", "big-important", "within"]);
    }

    #[test]
    fn the_larger_use_above_request_goes_first() {
        let mut v = vec![c("a", 300, 200, 0), c("b", 500, 100, 0), c("c", 150, 0, 0)];
        rank(&mut v);
        assert_eq!(keys(&v), ["b", "c", "a"]);
        // Within their requests, the one closest to it (least below) first.
        let mut w = vec![c("far", 10, 500, 0), c("near", 490, 500, 0)];
        rank(&mut w);
        assert_eq!(keys(&w), ["near", "far"]);
    }

    #[test]
    fn requests_sum_containers_or_the_largest_init() {
        let p = crate::lifecycle::eviction::test_pod("metadata: {name: p}\nspec:\n  initContainers:\n  - {name: i, image: x, resources: {requests: {memory: 300Mi}}}\n  containers:\n  - {name: a, image: x, resources: {requests: {memory: 100Mi}}}\n  - {name: b, image: x, resources: {requests: {memory: 100Mi}}}\n  - {name: c, image: x}\n");
        assert_eq!(pod_request(&p, "memory"), 300 << 20);
        assert_eq!(pod_request(&p, "ephemeral-storage"), 0);
    }

    #[test]
    fn messages_are_kubelets() {
        let m = pressure_message(
            "memory",
            "100Mi",
            80 << 20,
            &[
                ("hog".into(), 200 << 20, 0),
                ("ok".into(), 1 << 20, 10 << 20),
            ],
        );
        assert_eq!(
            m,
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi. Container hog was using 200Mi, request is 0, has larger consumption of memory. "
        );
    }
}
