//! `podhost pull`: streams the daemon's pull events and shows them as one
//! progress bar per layer on a terminal, or as plain lines otherwise (logs, CI).

use std::collections::HashMap;
use std::io::IsTerminal;

use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use podhost_image::pull::PullEvent;

use super::client::Client;
use crate::server::PullLine;

/// Short form of a digest for display (`sha256:0123456789ab`).
fn short(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    hex.chars().take(12).collect()
}

/// Output of a pull: bars or lines.
enum View {
    Bars {
        multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
    },
    Lines {
        /// Last tenth reported per layer, so plain output stays short.
        reported: HashMap<String, u64>,
    },
}

impl View {
    fn new() -> View {
        if std::io::stderr().is_terminal() {
            View::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: HashMap::new(),
            }
        } else {
            View::Lines {
                reported: HashMap::new(),
            }
        }
    }

    fn event(&mut self, ev: PullEvent) {
        match self {
            View::Bars { multi, bars } => {
                let style = ProgressStyle::with_template(
                    "{prefix:.bold} {bar:30} {bytes:>10}/{total_bytes:<10} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                match ev {
                    PullEvent::Resolving { source, .. } => {
                        let _ = multi.println(format!("Resolving {source}"));
                    }
                    PullEvent::SourceFailed { source, error } => {
                        let _ = multi.println(format!("{source}: {error}"));
                    }
                    PullEvent::Resolved { layers, .. } => {
                        for (digest, size) in layers {
                            let bar = multi.add(ProgressBar::new(size));
                            bar.set_style(style.clone());
                            bar.set_prefix(short(&digest));
                            bar.set_message("waiting");
                            bars.insert(digest, bar);
                        }
                    }
                    PullEvent::LayerExists { digest } => {
                        if let Some(b) = bars.get(&digest) {
                            b.set_position(b.length().unwrap_or(0));
                            b.finish_with_message("already exists");
                        }
                    }
                    PullEvent::LayerProgress { digest, done, .. } => {
                        if let Some(b) = bars.get(&digest) {
                            b.set_message("downloading");
                            b.set_position(done);
                        }
                    }
                    PullEvent::LayerDownloaded { digest } => {
                        if let Some(b) = bars.get(&digest) {
                            b.set_position(b.length().unwrap_or(0));
                            b.set_message("unpacking");
                        }
                    }
                    PullEvent::LayerDone { digest } => {
                        if let Some(b) = bars.get(&digest) {
                            b.finish_with_message("done");
                        }
                    }
                }
            }
            View::Lines { reported } => match ev {
                PullEvent::Resolving { source, .. } => outln!("Resolving {source}"),
                PullEvent::SourceFailed { source, error } => outln!("{source}: {error}"),
                PullEvent::Resolved {
                    manifest_digest,
                    layers,
                } => outln!(
                    "Manifest {manifest_digest}: {} layer(s), {} bytes",
                    layers.len(),
                    layers.iter().map(|l| l.1).sum::<u64>()
                ),
                PullEvent::LayerExists { digest } => {
                    outln!("{}: already exists", short(&digest))
                }
                PullEvent::LayerProgress {
                    digest,
                    done,
                    total,
                } => {
                    let tenth = (done * 10).checked_div(total).unwrap_or(10);
                    let last = reported.entry(digest.clone()).or_insert(0);
                    if tenth > *last {
                        *last = tenth;
                        outln!("{}: downloading {done}/{total} bytes", short(&digest));
                    }
                }
                PullEvent::LayerDownloaded { digest } => {
                    outln!("{}: downloaded, unpacking", short(&digest))
                }
                PullEvent::LayerDone { digest } => outln!("{}: done", short(&digest)),
            },
        }
    }
}

/// Pulls `reference` through the daemon; exit code 0 on success.
pub async fn pull(client: &Client, reference: &str) -> Result<i32> {
    let mut view = View::new();
    let mut pending = Vec::new();
    let mut outcome: Option<PullLine> = None;
    client
        .stream_post(
            "/v1/images/pull",
            serde_json::json!({ "reference": reference }),
            |chunk| {
                pending.extend_from_slice(chunk);
                while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=pos).collect();
                    match serde_json::from_slice::<PullLine>(&line) {
                        Ok(PullLine::Event(ev)) => view.event(ev),
                        Ok(last) => outcome = Some(last),
                        Err(e) => bail!("daemon sent an unreadable pull event: {e}"),
                    }
                }
                Ok(())
            },
        )
        .await?;
    if let View::Bars { multi, .. } = &view {
        let _ = multi.clear();
    }
    match outcome {
        Some(PullLine::Done { done }) => {
            // The name asked for, normalised (the image may carry others too).
            let name = podhost_image::normalize_reference(reference)
                .unwrap_or_else(|_| reference.to_string());
            let d = &done.repo_digest;
            outln!("Digest: {}", d.rsplit('@').next().unwrap_or(d));
            outln!(
                "Pulled {name} ({}) in {:.2}s: {} bytes downloaded",
                done.image.id,
                done.seconds,
                done.downloaded
            );
            Ok(0)
        }
        Some(PullLine::Error { error }) => bail!("{error}"),
        _ => bail!("the daemon ended the pull without a result (see its log)"),
    }
}
