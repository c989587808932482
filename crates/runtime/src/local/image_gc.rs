//! Image garbage collection of the local runtime, like kubelet's image manager: on
//! disk pressure, unused images go least recently used first; images containers use
//! are never removed and their last use is renewed.

use std::collections::HashSet;

use crate::PruneResult;

/// Percent of the filesystem holding `path` in use, as `df` shows it
/// (used / (used + available): root-reserved blocks count as neither).
pub(super) fn disk_usage_percent(path: &std::path::Path) -> Option<f64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let used = st.blocks().saturating_sub(st.blocks_free()) as f64;
    let avail = st.blocks_available() as f64;
    if used + avail == 0.0 {
        return None;
    }
    Some(100.0 * used / (used + avail))
}

/// How stale the recorded use of an image that containers still use may get before
/// it is renewed: kubelet renews it at each image detection (every 5 minutes), so a
/// long-running container's image is recently used, not used when it started.
const IN_USE_REFRESH_MS: u64 = 5 * 60 * 1000;

pub(super) fn touch_in_use(store: &podhost_image::ImageStore, in_use: &HashSet<String>, now: u64) {
    let Ok(images) = store.list() else { return };
    for image in images.iter().filter(|i| in_use.contains(&i.id)) {
        if now.saturating_sub(image.last_used_ms.unwrap_or(0)) >= IN_USE_REFRESH_MS {
            if let Err(e) = store.mark_used(&image.id, now) {
                tracing::warn!("image GC: recording the use of {}: {e}", image.id);
            }
        }
    }
}

pub(super) fn collect(
    store: &podhost_image::ImageStore,
    in_use: &HashSet<String>,
    high: u8,
    low: u8,
) -> Result<PruneResult, podhost_image::ImageError> {
    let root = store.root().to_path_buf();
    let Some(usage) = disk_usage_percent(&root) else {
        return Ok(PruneResult::default());
    };
    if usage < f64::from(high) {
        return Ok(PruneResult::default());
    }
    tracing::info!("image GC: disk usage {usage:.1}% >= {high}%: freeing down to {low}%");
    let candidates = podhost_image::gc_candidates(
        &store.list()?,
        in_use,
        podhost_image::now_ms(),
        podhost_image::GC_MIN_AGE,
    );
    free_down_to(
        candidates,
        || disk_usage_percent(&root),
        low,
        |image| store.remove(&image.id),
    )
}

/// Removes `candidates` in their order until `usage` is below `low` percent.
fn free_down_to<E>(
    candidates: Vec<podhost_image::Image>,
    mut usage: impl FnMut() -> Option<f64>,
    low: u8,
    mut remove: impl FnMut(&podhost_image::Image) -> Result<(), E>,
) -> Result<PruneResult, E> {
    let mut result = PruneResult::default();
    for image in candidates {
        if usage().is_some_and(|u| u < f64::from(low)) {
            break;
        }
        remove(&image)?;
        result.reclaimed += image.size;
        result.removed.push(image.id);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use podhost_image::{gc_candidates, Image};

    const MIN: u64 = 60 * 1000;

    fn image(id: &str, first_seen: Option<u64>, last_used: Option<u64>) -> Image {
        Image {
            id: id.into(),
            repo_tags: vec![format!("{id}:latest")],
            manifest_digest: String::new(),
            diff_ids: Vec::new(),
            size: 10,
            repo_digests: Vec::new(),
            loaded_tags: Vec::new(),
            first_seen_ms: first_seen,
            last_used_ms: last_used,
        }
    }

    #[test]
    fn least_recently_used_first_and_never_one_in_use() {
        let now = 1000 * MIN;
        let images = vec![
            image("old-import-used-lately", Some(MIN), Some(now - 10 * MIN)),
            image("used-long-ago", Some(5 * MIN), Some(now - 500 * MIN)),
            image("never-used-new", Some(now - 30 * MIN), None),
            image("in-use", Some(0), Some(MIN)),
            image("never-used-old", Some(2 * MIN), None),
            image("from-an-old-index", None, None),
            image("just-pulled", Some(now - 30_000), None),
            image("just-used", Some(0), Some(now - 1000)),
        ];
        let in_use: HashSet<String> = ["in-use".to_string()].into();
        let order: Vec<String> = gc_candidates(&images, &in_use, now, podhost_image::GC_MIN_AGE)
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(
            order,
            [
                "from-an-old-index",
                "never-used-old",
                "never-used-new",
                "used-long-ago",
                "old-import-used-lately",
            ]
        );
    }

    #[test]
    fn frees_until_below_the_low_threshold() {
        let now = 1000 * MIN;
        let images = vec![
            image("b", Some(0), Some(3 * MIN)),
            image("a", Some(0), Some(2 * MIN)),
            image("busy", Some(0), Some(MIN)),
            image("c", Some(0), Some(4 * MIN)),
        ];
        let in_use: HashSet<String> = ["busy".to_string()].into();
        let candidates = gc_candidates(&images, &in_use, now, Duration::ZERO);
        // 90% full; each removal frees 6 points; low threshold 80%.
        let usage = std::cell::Cell::new(90.0);
        let mut removed = Vec::new();
        let r = free_down_to(
            candidates.clone(),
            || Some(usage.get()),
            80,
            |i: &Image| {
                removed.push(i.id.clone());
                usage.set(usage.get() - 6.0);
                Ok::<(), ()>(())
            },
        )
        .expect("gc");
        assert_eq!(removed, ["a", "b"]);
        assert_eq!(r.removed, ["a", "b"]);
        assert_eq!(r.reclaimed, 20);
        // Even if nothing gets below the threshold, the image in use stays.
        let mut removed = Vec::new();
        free_down_to(
            candidates,
            || Some(99.0),
            80,
            |i: &Image| {
                removed.push(i.id.clone());
                Ok::<(), ()>(())
            },
        )
        .expect("gc");
        assert_eq!(removed, ["a", "b", "c"]);
    }
}
