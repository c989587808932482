//! Where restarts are decided: kubelet's `shouldRestart` and CrashLoopBackOff.

use std::time::Duration;

use podhost_runtime::{ContainerState, ContainerStatus};

/// Pod `restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Always restart.
    Always,
    /// Restart on non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// From the spec string (Kubernetes default Always).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }
}

/// kubelet's `ShouldContainerBeRestarted` for a container that has a status.
pub fn should_restart(policy: RestartPolicy, status: &ContainerStatus) -> bool {
    match status.state {
        ContainerState::Running => false,
        ContainerState::Created | ContainerState::Unknown => true,
        ContainerState::Exited => match policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => status.exit_code.unwrap_or(0) != 0,
            RestartPolicy::Always => true,
        },
    }
}

/// CrashLoopBackOff settings.
#[derive(Debug, Clone, Copy)]
pub struct BackoffPolicy {
    /// First delay (10s).
    pub initial: Duration,
    /// Cap (300s).
    pub max: Duration,
}

/// A container that ran this long gets its backoff reset (kubelet: 10 minutes).
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

/// Outcome of asking whether an exited container may restart now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffDecision {
    /// Restart now; the stored delay becomes the given one (ms).
    RestartNow {
        /// Delay to apply to the next restart.
        next_delay_ms: u64,
    },
    /// Wait this long more (CrashLoopBackOff).
    Wait {
        /// Remaining wait.
        remaining: Duration,
        /// The current delay (for the message "back-off 20s …").
        delay: Duration,
    },
}

impl BackoffPolicy {
    /// Decide for a container that finished at `finished_at` after starting at
    /// `started_at` (unix ns), given the stored delay (None = never backed off).
    pub fn decide(
        &self,
        stored_ms: Option<u64>,
        started_at: i64,
        finished_at: i64,
        now: i64,
    ) -> BackoffDecision {
        let ran = Duration::from_nanos(finished_at.saturating_sub(started_at).max(0) as u64);
        let stored = if ran >= BACKOFF_RESET_AFTER {
            None
        } else {
            stored_ms
        };
        match stored {
            None => BackoffDecision::RestartNow {
                next_delay_ms: self.initial.as_millis() as u64,
            },
            Some(ms) => {
                let delay = Duration::from_millis(ms);
                let since = Duration::from_nanos(now.saturating_sub(finished_at).max(0) as u64);
                if since < delay {
                    BackoffDecision::Wait {
                        remaining: delay - since,
                        delay,
                    }
                } else {
                    let next = (delay * 2).min(self.max);
                    BackoffDecision::RestartNow {
                        next_delay_ms: next.as_millis() as u64,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
    const S: i64 = 1_000_000_000;

    #[test]
    fn first_restart_is_immediate_then_doubles_to_cap() {
        let p = policy();
        assert_eq!(
            p.decide(None, 0, S, S),
            BackoffDecision::RestartNow {
                next_delay_ms: 10_000
            }
        );
        assert!(matches!(
            p.decide(Some(10_000), 0, S, 5 * S),
            BackoffDecision::Wait { .. }
        ));
        assert_eq!(
            p.decide(Some(10_000), 0, S, 11 * S),
            BackoffDecision::RestartNow {
                next_delay_ms: 20_000
            }
        );
        assert_eq!(
            p.decide(Some(160_000), 0, S, 200 * S),
            BackoffDecision::RestartNow {
                next_delay_ms: 300_000
            }
        );
        assert_eq!(
            p.decide(Some(300_000), 0, S, 400 * S),
            BackoffDecision::RestartNow {
                next_delay_ms: 300_000
            }
        );
    }

    fn st(state: ContainerState, code: Option<i32>) -> ContainerStatus {
        serde_json::from_value(serde_json::json!({
            "id": "c", "sandbox_id": "s",
            "config": {"name": "c", "attempt": 0, "image": "busybox", "command": [], "args": [],
                       "working_dir": null, "envs": [], "mounts": [], "log_path": "c/0.log",
                       "labels": {}},
            "state": state, "created_at": 0, "started_at": null, "finished_at": null,
            "exit_code": code, "reason": null, "image_id": "", "pid": null, "log_path": ""
        }))
        .expect("status")
    }

    #[test]
    fn should_restart_table() {
        use ContainerState::*;
        use RestartPolicy::*;
        let cases = [
            (Always, Running, None, false),
            (Never, Running, None, false),
            (Never, Created, None, true),
            (Never, Unknown, None, true),
            (Never, Exited, Some(1), false),
            (Never, Exited, Some(0), false),
            (OnFailure, Exited, Some(0), false),
            (OnFailure, Exited, Some(2), true),
            (Always, Exited, Some(0), true),
            (Always, Exited, Some(137), true),
        ];
        for (policy, state, code, want) in cases {
            assert_eq!(
                should_restart(policy, &st(state, code)),
                want,
                "{policy:?} {state:?} {code:?}"
            );
        }
    }

    #[test]
    fn long_run_resets_backoff() {
        let p = policy();
        assert_eq!(
            p.decide(Some(300_000), 0, 601 * S, 601 * S),
            BackoffDecision::RestartNow {
                next_delay_ms: 10_000
            }
        );
    }
}
