//! kubelet's image manager: `imagePullPolicy`, the Pulling/Pulled events, and
//! `ErrImagePull` → `ImagePullBackOff` with a per-(pod, image) back-off.
//!
//! The back-off lives here, in a process-wide table keyed by pod UID and image
//! (as kubelet keys it), rather than in the worker's record: a pull failure is
//! not a container restart, and the worker only needs one call before it
//! creates a container.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use tokio::time::Instant;

use super::restart::BackoffPolicy;
use super::PodRecord;
use crate::objects::Objects;
use podhost_runtime::{AuthConfig, ImageInfo, Runtime, RuntimeError};

/// Back-off of one (pod, image): when the next pull may start, and the delay
/// that led there.
#[derive(Debug, Clone)]
struct Backoff {
    until: Instant,
    delay: Duration,
    error: String,
}

fn table() -> &'static Mutex<HashMap<(String, String), Backoff>> {
    static TABLE: OnceLock<Mutex<HashMap<(String, String), Backoff>>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Drops the back-off entries of a pod (it was deleted).
pub fn forget_pod(uid: &str) {
    table()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(pod, _), _| pod != uid);
}

/// `Always`, `IfNotPresent` or `Never`, defaulted like the API server when
/// the pod record predates defaulting.
fn policy_of(c: &Container) -> String {
    c.image_pull_policy.clone().unwrap_or_else(|| {
        podhost_api::pull_policy_for(c.image.as_deref().unwrap_or_default()).to_string()
    })
}

/// Makes sure the container's image is present according to its pull policy.
/// `Ok` when the container can be created; otherwise the container's waiting
/// reason is set and the error says when to try again.
pub async fn ensure_image(
    rt: &dyn Runtime,
    objects: &Objects,
    rec: &mut PodRecord,
    c: &Container,
    backoff: BackoffPolicy,
    now: i64,
) -> Result<(), Option<Instant>> {
    match prepare(rt, objects, rec, c, backoff, now).await? {
        None => Ok(()),
        Some(job) => {
            let pulled = rt
                .pull_image(&job.image, job.auth.clone(), None)
                .await
                .map_err(|e| pull_error_text(&e));
            finish(rec, c, job, pulled, backoff, now)
        }
    }
}

/// A pull the pod's worker has to wait for: what [`finish`] needs once it is done.
#[derive(Debug)]
pub struct PullJob {
    /// The image reference as the container names it.
    pub image: String,
    /// Credentials from the pod's imagePullSecrets.
    pub auth: Option<AuthConfig>,
    key: (String, String),
    current: Option<Backoff>,
    started: Instant,
}

/// The decision part of [`ensure_image`]: `Ok(None)` when the image may be used as it
/// is, `Ok(Some(job))` when it must be pulled first (the Pulling event is recorded), so
/// that the worker can wait for the pull while it takes orders.
pub async fn prepare(
    rt: &dyn Runtime,
    objects: &Objects,
    rec: &mut PodRecord,
    c: &Container,
    backoff: BackoffPolicy,
    now: i64,
) -> Result<Option<PullJob>, Option<Instant>> {
    let image = c.image.clone().unwrap_or_default();
    let policy = policy_of(c);
    let present = match rt.image_info(&image).await {
        Ok(p) => p,
        Err(e) => {
            rec.event(now, "Warning", "InspectFailed", e.to_string());
            return waiting(rec, c, "InvalidImageName", e.to_string(), backoff.initial);
        }
    };
    let pull = match (policy.as_str(), &present) {
        ("Never", Some(_)) | ("IfNotPresent", Some(_)) => false,
        ("Never", None) => {
            let msg =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            rec.event(now, "Warning", "ErrImageNeverPull", msg.clone());
            return waiting(rec, c, "ErrImageNeverPull", msg, backoff.initial);
        }
        // A tag loaded from an archive (and never pulled since) has no registry
        // version to compare with, and the user chose that image for the name:
        // `Always` uses it as it is, offline too. kubelet would ask the registry
        // each time; a tag that came from a registry is asked again here too.
        (_, Some(info)) => !loaded_locally(info, &image),
        (_, None) => true,
    };
    if !pull {
        rec.event(
            now,
            "Normal",
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        );
        return Ok(None);
    }
    let key = (rec.uid(), image.clone());
    let current = table()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    if let Some(b) = &current {
        if Instant::now() < b.until {
            rec.event(
                now,
                "Normal",
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            );
            let msg = format!(
                "Back-off pulling image \"{image}\": ErrImagePull: {}",
                b.error
            );
            return waiting_until(rec, c, "ImagePullBackOff", msg, b.until);
        }
    }
    rec.event(
        now,
        "Normal",
        "Pulling",
        format!("Pulling image \"{image}\""),
    );
    let auth = pull_auth(rec, objects, &image, now);
    Ok(Some(PullJob {
        image,
        auth,
        key,
        current,
        started: Instant::now(),
    }))
}

/// Whether `c`'s image is there to be used as it is: [`prepare`] would not pull it.
pub async fn ready(rt: &dyn Runtime, c: &Container) -> bool {
    let image = c.image.clone().unwrap_or_default();
    match rt.image_info(&image).await {
        Ok(Some(info)) => match policy_of(c).as_str() {
            "Never" | "IfNotPresent" => true,
            _ => loaded_locally(&info, &image),
        },
        _ => false,
    }
}

/// Records the outcome of a pull [`prepare`] asked for (the error as one line of text).
pub fn finish(
    rec: &mut PodRecord,
    c: &Container,
    job: PullJob,
    pulled: Result<podhost_runtime::PulledImage, String>,
    backoff: BackoffPolicy,
    now: i64,
) -> Result<(), Option<Instant>> {
    let PullJob {
        image,
        key,
        current,
        started,
        ..
    } = job;
    match pulled {
        Ok(pulled) => {
            table()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            let secs = started.elapsed().as_secs_f64();
            rec.event(
                now,
                "Normal",
                "Pulled",
                format!(
                    "Successfully pulled image \"{image}\" in {:.3}s ({secs:.3}s including waiting). Image size: {} bytes.",
                    pulled.seconds, pulled.image.size
                ),
            );
            Ok(())
        }
        Err(error) => {
            let delay = match &current {
                Some(b) => (b.delay * 2).min(backoff.max),
                None => backoff.initial,
            };
            let until = Instant::now() + delay;
            table().lock().unwrap_or_else(|e| e.into_inner()).insert(
                key,
                Backoff {
                    until,
                    delay,
                    error: error.clone(),
                },
            );
            rec.event(
                now,
                "Warning",
                "Failed",
                format!("Failed to pull image \"{image}\": {error}"),
            );
            rec.event(now, "Warning", "Failed", "Error: ErrImagePull".into());
            // Come back soon (not at the end of the back-off) so the status
            // moves on to ImagePullBackOff as kubelet's does.
            let soon = Instant::now() + Duration::from_secs(1).min(delay);
            waiting_until(rec, c, "ErrImagePull", error, soon)
        }
    }
}

/// Whether `image` names a tag loaded by `podhost image load` and never pulled since:
/// by tag, not by image ID, which a pull of another tag may have given a registry
/// digest.
fn loaded_locally(info: &ImageInfo, image: &str) -> bool {
    let norm = |r: &str| podhost_image::normalize_reference(r).ok();
    let Some(wanted) = norm(image) else {
        return false;
    };
    info.loaded_tags
        .iter()
        .any(|t| norm(t).as_deref() == Some(wanted.as_str()))
}

/// The registry's error in one line with its causes (kubelet shows the runtime's
/// whole message: a bare "error sending request" says nothing about why).
pub fn pull_error_text(e: &RuntimeError) -> String {
    error_chain(e).replace('\n', " ")
}

/// An error and its sources joined with ": ", each cause once (many errors already
/// print their source in their own message).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn waiting<T>(
    rec: &mut PodRecord,
    c: &Container,
    reason: &str,
    message: String,
    retry: Duration,
) -> Result<T, Option<Instant>> {
    waiting_until(rec, c, reason, message, Instant::now() + retry)
}

fn waiting_until<T>(
    rec: &mut PodRecord,
    c: &Container,
    reason: &str,
    message: String,
    until: Instant,
) -> Result<T, Option<Instant>> {
    rec.containers.entry(c.name.clone()).or_default().waiting = Some((reason.to_string(), message));
    Err(Some(until))
}

/// Credentials for the registry of `image` from the pod's `imagePullSecrets`, as kubelet
/// builds CRI's `AuthConfig`: the first `kubernetes.io/dockerconfigjson` (or legacy
/// `dockercfg`) secret with an entry for that registry wins. A secret that is missing or
/// unreadable is skipped with a warning event, as kubelet does.
fn pull_auth(rec: &mut PodRecord, objects: &Objects, image: &str, now: i64) -> Option<AuthConfig> {
    let names: Vec<String> = rec
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect();
    if names.is_empty() {
        return None;
    }
    let full = podhost_image::normalize_reference(image).ok()?;
    let host = full.split('/').next()?.to_string();
    let ns = rec
        .pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    for name in names {
        let Some(secret) = objects.secret(&ns, &name) else {
            rec.event(
                now,
                "Warning",
                "FailedToRetrieveImagePullSecret",
                format!("Unable to retrieve some image pull secrets ({name}); attempting to pull the image may not succeed."),
            );
            continue;
        };
        let data = secret.data.unwrap_or_default();
        // `.dockercfg` is the `auths` map without the wrapper.
        let config = match (data.get(".dockerconfigjson"), data.get(".dockercfg")) {
            (Some(json), _) => json.0.clone(),
            (None, Some(cfg)) => {
                let mut wrapped = b"{\"auths\":".to_vec();
                wrapped.extend_from_slice(&cfg.0);
                wrapped.push(b'}');
                wrapped
            }
            (None, None) => continue,
        };
        let path = std::path::PathBuf::from(format!("secret {ns}/{name}"));
        match podhost_image::registry::credentials_from_docker_config(&config, &path, &host) {
            Ok(Some((username, password))) => return Some(AuthConfig { username, password }),
            Ok(None) => {}
            Err(e) => rec.event(
                now,
                "Warning",
                "FailedToRetrieveImagePullSecret",
                e.to_string(),
            ),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::worker::Clock;
    use k8s_openapi::api::core::v1::Pod;
    use podhost_runtime::fake::FakeRuntime;

    fn record(uid: &str, image: &str, policy: &str) -> (PodRecord, Container) {
        let c = Container {
            name: "app".into(),
            image: Some(image.into()),
            image_pull_policy: Some(policy.into()),
            ..Default::default()
        };
        let mut pod = Pod::default();
        pod.metadata.uid = Some(uid.into());
        (PodRecord::new(pod), c)
    }

    fn reason(rec: &PodRecord) -> String {
        rec.containers["app"]
            .waiting
            .as_ref()
            .map(|w| w.0.clone())
            .unwrap_or_default()
    }

    const BACKOFF: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(300),
    };

    #[tokio::test(start_paused = true)]
    async fn failed_pull_backs_off_then_retries_with_doubled_delay() {
        let rt = FakeRuntime::new(Clock::default(), &[]);
        let (mut rec, c) = record("uid-backoff", "reg.test/app:1", "IfNotPresent");
        let r = ensure_image(&rt, &Objects::in_memory(), &mut rec, &c, BACKOFF, 0).await;
        assert_eq!(reason(&rec), "ErrImagePull");
        let first = r.expect_err("waits").expect("wake time");
        assert_eq!(first - Instant::now(), Duration::from_secs(1));
        // Within the back-off: no pull, ImagePullBackOff.
        tokio::time::advance(Duration::from_secs(5)).await;
        let _ = ensure_image(&rt, &Objects::in_memory(), &mut rec, &c, BACKOFF, 0).await;
        assert_eq!(reason(&rec), "ImagePullBackOff");
        assert_eq!(
            rt.calls().iter().filter(|c| c.starts_with("pull:")).count(),
            1
        );
        // After it: pull again, fail again, 20s.
        tokio::time::advance(Duration::from_secs(6)).await;
        let r = ensure_image(&rt, &Objects::in_memory(), &mut rec, &c, BACKOFF, 0).await;
        assert_eq!(reason(&rec), "ErrImagePull");
        assert!(r.is_err());
        // Doubled: still backing off 19s later, not 21s later.
        tokio::time::advance(Duration::from_secs(19)).await;
        let _ = ensure_image(&rt, &Objects::in_memory(), &mut rec, &c, BACKOFF, 0).await;
        assert_eq!(reason(&rec), "ImagePullBackOff");
        assert_eq!(
            rt.calls().iter().filter(|c| c.starts_with("pull:")).count(),
            2
        );
        // The registry gets the image: the next try succeeds.
        rt.add_pullable("reg.test/app:1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            ensure_image(&rt, &Objects::in_memory(), &mut rec, &c, BACKOFF, 0)
                .await
                .is_ok()
        );
        assert!(rec.events.iter().any(|e| e.reason == "Pulled"
            && e.message
                .starts_with("Successfully pulled image \"reg.test/app:1\"")));
        forget_pod("uid-backoff");
    }

    #[tokio::test(start_paused = true)]
    async fn never_without_image_is_err_image_never_pull() {
        let rt = FakeRuntime::new(Clock::default(), &[]);
        let (mut rec, c) = record("uid-never", "reg.test/app:1", "Never");
        assert!(
            ensure_image(&rt, &Objects::in_memory(), &mut rec, &c, BACKOFF, 0)
                .await
                .is_err()
        );
        assert_eq!(reason(&rec), "ErrImageNeverPull");
        assert!(rt.calls().iter().all(|c| !c.starts_with("pull:")));
    }

    #[tokio::test(start_paused = true)]
    async fn present_images_are_not_pulled_unless_always_and_from_a_registry() {
        let rt = FakeRuntime::new(Clock::default(), &["busybox"]);
        let (mut rec, c) = record("uid-present", "busybox", "Always");
        assert!(
            ensure_image(&rt, &Objects::in_memory(), &mut rec, &c, BACKOFF, 0)
                .await
                .is_ok()
        );
        assert!(rt.calls().iter().all(|c| !c.starts_with("pull:")));
    }
}
