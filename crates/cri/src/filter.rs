//! The filters of CRI's list calls: ids match by prefix (as crictl's short ids do), a
//! label selector matches when every pair is among the labels.

use std::collections::{BTreeMap, HashMap};

use podhost_cri_api as cri;
use podhost_runtime::{ContainerStats, ContainerStatus, SandboxStatus};

use crate::convert::{container_state, pod_sandbox};

/// Empty matches everything; otherwise a prefix of the id.
fn id_matches(filter: &str, id: &str) -> bool {
    id.starts_with(filter)
}

fn labels_match(selector: &HashMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `ListPodSandbox`'s filter.
pub fn sandbox(f: &cri::PodSandboxFilter, s: &SandboxStatus) -> bool {
    id_matches(&f.id, &s.id)
        && f.state
            .as_ref()
            .is_none_or(|st| st.state == pod_sandbox(s).state)
        && labels_match(&f.label_selector, &s.config.labels)
}

/// `ListContainers`' filter.
pub fn container(f: &cri::ContainerFilter, c: &ContainerStatus) -> bool {
    id_matches(&f.id, &c.id)
        && id_matches(&f.pod_sandbox_id, &c.sandbox_id)
        && f.state
            .as_ref()
            .is_none_or(|st| st.state == container_state(c.state) as i32)
        && labels_match(&f.label_selector, &c.config.labels)
}

/// `ListContainerStats`' filter, given the container's status.
pub fn container_stats(
    f: &cri::ContainerStatsFilter,
    sandbox_id: &str,
    s: &ContainerStats,
    labels: &BTreeMap<String, String>,
) -> bool {
    id_matches(&f.id, &s.id)
        && id_matches(&f.pod_sandbox_id, sandbox_id)
        && labels_match(&f.label_selector, labels)
}

/// `ListPodSandboxStats`' filter.
pub fn sandbox_stats(
    f: &cri::PodSandboxStatsFilter,
    id: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    id_matches(&f.id, id) && labels_match(&f.label_selector, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use podhost_runtime::{ContainerState, SandboxState};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ids_match_by_prefix_and_selectors_by_every_pair() {
        assert!(id_matches("", "abc"));
        assert!(id_matches("ab", "abc"));
        assert!(!id_matches("abd", "abc"));
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(labels_match(&selector(&[]), &l));
        assert!(labels_match(&selector(&[("app", "web")]), &l));
        assert!(!labels_match(
            &selector(&[("app", "web"), ("tier", "back")]),
            &l
        ));
        assert!(!labels_match(&selector(&[("missing", "")]), &l));
    }

    #[test]
    fn sandbox_and_container_filters() {
        let cfg = crate::convert::sandbox_config(&cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "p".into(),
                uid: "u".into(),
                namespace: "n".into(),
                attempt: 0,
            }),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        })
        .unwrap();
        let s = SandboxStatus {
            id: "abcdef".into(),
            config: cfg,
            state: SandboxState::NotReady,
            created_at: 0,
            pause_pid: None,
            ip: None,
            additional_ips: Vec::new(),
            netns_path: Default::default(),
            not_ready_reason: None,
        };
        let ready = cri::PodSandboxStateValue {
            state: cri::PodSandboxState::SandboxReady as i32,
        };
        let mut f = cri::PodSandboxFilter {
            id: "abc".into(),
            ..Default::default()
        };
        assert!(sandbox(&f, &s));
        f.state = Some(ready);
        assert!(!sandbox(&f, &s), "not ready");
        f.state = None;
        f.label_selector = selector(&[("app", "db")]);
        assert!(!sandbox(&f, &s));

        let c = ContainerStatus {
            id: "c123".into(),
            sandbox_id: "abcdef".into(),
            config: podhost_runtime::ContainerConfig {
                name: "c".into(),
                labels: labels(&[("k", "v")]),
                ..Default::default()
            },
            state: ContainerState::Running,
            created_at: 0,
            started_at: None,
            finished_at: None,
            exit_code: None,
            reason: None,
            image_id: String::new(),
            pid: None,
            log_path: Default::default(),
        };
        let mut f = cri::ContainerFilter {
            pod_sandbox_id: "abc".into(),
            state: Some(cri::ContainerStateValue {
                state: cri::ContainerState::ContainerRunning as i32,
            }),
            label_selector: selector(&[("k", "v")]),
            ..Default::default()
        };
        assert!(container(&f, &c));
        f.id = "c2".into();
        assert!(!container(&f, &c));
        f.id.clear();
        f.state = Some(cri::ContainerStateValue {
            state: cri::ContainerState::ContainerExited as i32,
        });
        assert!(!container(&f, &c));
    }
}
