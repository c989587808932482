//! `podhost serve --trace-startup`: where a pod's start-up milliseconds go.
//!
//! The runtime opens one span per step of creating a sandbox or a container (see
//! `podhost_runtime::trace`). This layer times them and, when the outermost span of a
//! call closes (`sandbox`, `container`, `start`), writes one line per call to its writer:
//!
//! ```text
//! podhost-startup pod=default/web call=sandbox ms=41.20 since_sandbox_ms=41.20 steps=dirs:0.21,shm:0.09,network:30.10,netns:0.30,cni.bridge:18.00,...
//! ```
//!
//! `since_sandbox_ms` is measured from the start of the pod's latest sandbox creation,
//! so the `start` line of the last container gives the whole pod. Steps are listed in
//! the order they began; a nested step is also counted in its parent (`network` holds
//! `netns` and the `cni.*` plugins). Times the shim measured itself appear as
//! `shim.pause`, `create.helper` and `start.helper`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Pods whose sandbox start is remembered; past this the oldest half is forgotten, so a
/// daemon that runs for months does not grow (a forgotten pod only loses its total).
const MAX_PODS: usize = 4096;

/// Times start-up spans and prints one breakdown line per runtime call.
pub struct StartupTrace<W> {
    out: Arc<Mutex<W>>,
    /// Pod → when its latest sandbox creation began.
    sandbox_start: Mutex<HashMap<String, Instant>>,
}

impl<W: Write> StartupTrace<W> {
    /// A layer writing its lines to `out` (the daemon's stderr).
    pub fn new(out: W) -> Self {
        StartupTrace {
            out: Arc::new(Mutex::new(out)),
            sandbox_start: Mutex::new(HashMap::new()),
        }
    }
}

/// What the layer keeps in a span's extensions.
struct Timing {
    start: Instant,
    step: String,
    pod: Option<String>,
    /// `*_us` fields: times measured elsewhere (the shim), as (name, µs).
    measured: Vec<(String, u64)>,
    /// Closed descendants (outermost span only): start, label, ms.
    steps: Vec<(Instant, String, f64)>,
}

#[derive(Default)]
struct Fields {
    step: Option<String>,
    pod: Option<String>,
    plugin: Option<String>,
    measured: Vec<(String, u64)>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if let Some(name) = field.name().strip_suffix("_us") {
            self.measured.push((name.to_string(), value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "step" => self.step = Some(value.trim_matches('"').to_string()),
            "pod" => self.pod = Some(value),
            "plugin" => self.plugin = Some(value),
            _ => {}
        }
    }
}

impl<S, W> Layer<S> for StartupTrace<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: Write + Send + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut f = Fields::default();
        attrs.record(&mut f);
        let mut step = f.step.unwrap_or_else(|| span.name().to_string());
        if let Some(p) = f.plugin {
            step = format!("{step}.{p}");
        }
        let start = Instant::now();
        if step == "sandbox" {
            if let Some(pod) = &f.pod {
                let mut m = self.sandbox_start.lock().unwrap_or_else(|p| p.into_inner());
                if m.len() >= MAX_PODS {
                    let mut by_age: Vec<(String, Instant)> = m.drain().collect();
                    by_age.sort_by_key(|(_, t)| *t);
                    m.extend(by_age.into_iter().skip(MAX_PODS / 2));
                }
                m.insert(pod.clone(), start);
            }
        }
        span.extensions_mut().insert(Timing {
            start,
            step,
            pod: f.pod,
            measured: f.measured,
            steps: Vec::new(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut f = Fields::default();
        values.record(&mut f);
        let mut ext = span.extensions_mut();
        if let Some(t) = ext.get_mut::<Timing>() {
            t.measured.extend(f.measured);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(t) = span.extensions_mut().remove::<Timing>() else {
            return;
        };
        let ms = t.start.elapsed().as_secs_f64() * 1000.0;
        let mut mine = vec![(t.start, t.step.clone(), ms)];
        for (name, us) in &t.measured {
            mine.push((t.start, format!("{}.{name}", t.step), *us as f64 / 1000.0));
        }
        // The outermost start-up span above this one collects it.
        if let Some(root) = span.scope().skip(1).last() {
            let mut ext = root.extensions_mut();
            if let Some(rt) = ext.get_mut::<Timing>() {
                rt.steps.extend(mine);
                rt.steps.extend(t.steps);
            }
            return;
        }
        let Some(pod) = t.pod else { return };
        let since = self
            .sandbox_start
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pod)
            .map(|s| s.elapsed().as_secs_f64() * 1000.0);
        let mut steps = t.steps;
        steps.extend(mine.into_iter().skip(1));
        steps.sort_by_key(|(start, _, _)| *start);
        let mut line = format!("podhost-startup pod={pod} call={} ms={ms:.2}", t.step);
        if let Some(s) = since {
            let _ = write!(line, " since_sandbox_ms={s:.2}");
        }
        line.push_str(" steps=");
        for (i, (_, label, ms)) in steps.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(line, "{sep}{label}:{ms:.2}");
        }
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Instrument;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn one_line_per_call_with_nested_steps_and_shim_times() {
        let buf = Buf::default();
        let layer = StartupTrace::new(buf.clone()).with_filter(
            Targets::new().with_target(podhost_runtime::trace::TARGET, tracing::Level::DEBUG),
        );
        let sub = tracing_subscriber::registry().with(layer);
        let _g = tracing::subscriber::set_default(sub);
        async {
            podhost_runtime::step!("netns").in_scope(|| {});
            async {}
                .instrument(podhost_runtime::step!("cni", plugin = %"bridge"))
                .await;
            let shim = podhost_runtime::step!("shim", pause_us = tracing::field::Empty);
            shim.record("pause_us", 1500u64);
            drop(shim);
        }
        .instrument(podhost_runtime::step!("sandbox", pod = %"default/web"))
        .await;
        // Not a start-up span: ignored.
        tracing::info_span!("other").in_scope(|| {});
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let l = lines[0];
        assert!(
            l.starts_with("podhost-startup pod=default/web call=sandbox ms="),
            "{l}"
        );
        assert!(l.contains(" since_sandbox_ms="), "{l}");
        let steps: Vec<&str> = l
            .split(" steps=")
            .nth(1)
            .unwrap()
            .split(',')
            .map(|s| s.split(':').next().unwrap())
            .collect();
        assert_eq!(steps, ["netns", "cni.bridge", "shim", "shim.pause"], "{l}");
        assert!(l.contains("shim.pause:1.50"), "{l}");
    }
}
