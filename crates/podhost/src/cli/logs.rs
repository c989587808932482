//! `podhost logs`: a container's log; `-f` follows it across daemon restarts.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::client::{enc, Client, DaemonGone};
use crate::server::CONTAINER_ID_HEADER;

/// What `podhost logs` was asked.
#[derive(Debug)]
pub struct LogsArgs {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container (default: the first).
    pub container: Option<String>,
    /// Keep reading as the container writes.
    pub follow: bool,
    /// The previous instance's log.
    pub previous: bool,
    /// Prefix lines with their timestamps.
    pub timestamps: bool,
    /// Only the last N lines (`--tail`); negative: all.
    pub tail: i64,
    /// Only lines written at or after this RFC 3339 time (`--since`, `--since-time`).
    pub since_time: Option<String>,
    /// Prefix lines with their source, `[pod/NAME/CONTAINER] ` (`--prefix`).
    pub prefix: bool,
}

/// How long a follower waits for a restarted daemon before giving up.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Prints CRI records as text and remembers the last one's timestamp, which is where a
/// resumed stream starts again.
struct Printer {
    timestamps: bool,
    /// `[pod/NAME/CONTAINER] ` before each line, or nothing.
    prefix: String,
    /// Bytes of a record not yet complete.
    pending: Vec<u8>,
    /// Timestamp of the last record printed, and how many records in a row had it.
    last: Option<(String, usize)>,
    /// Our stdout was closed (`logs -f | head`): a normal end.
    closed: bool,
}

impl Printer {
    fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(chunk);
        let mut out = std::io::stdout().lock();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let record: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&record);
            if let Some((ts, text)) = podhost_shim::crilog::parse_line(&line) {
                let written = if self.timestamps {
                    write!(out, "{}{ts} {text}", self.prefix)
                } else {
                    write!(out, "{}{text}", self.prefix)
                };
                if let Err(e) = written.and_then(|()| out.flush()) {
                    self.closed = e.kind() == std::io::ErrorKind::BrokenPipe;
                    return Err(e.into());
                }
                match &mut self.last {
                    Some((last, n)) if last == ts => *n += 1,
                    _ => self.last = Some((ts.to_string(), 1)),
                }
            }
        }
        Ok(())
    }

    /// Query parameters that resume after the records printed (none before the first).
    fn resume_query(&self) -> String {
        match &self.last {
            Some((ts, n)) => format!("&after={}&after_count={n}", enc(ts)),
            None => String::new(),
        }
    }
}

/// Run `podhost logs`.
pub async fn run(client: &Client, a: LogsArgs) -> Result<i32> {
    let mut base = format!(
        "/v1/pods/{}/{}/log?follow={}&previous={}",
        enc(&a.namespace),
        enc(&a.pod),
        a.follow,
        a.previous
    );
    if let Some(c) = &a.container {
        base.push_str(&format!("&container={}", enc(c)));
    }
    if a.tail >= 0 {
        base.push_str(&format!("&tail={}", a.tail));
    }
    if let Some(t) = &a.since_time {
        base.push_str(&format!("&since_time={}", enc(t)));
    }
    // Records come raw so that a stream cut by a daemon restart resumes after the last
    // record printed (by its timestamp, a position that survives log rotation), in the
    // same container instance: no line lost, none twice.
    base.push_str("&raw=true");
    let mut printer = Printer {
        timestamps: a.timestamps,
        prefix: if a.prefix {
            format!("[pod/{}/{}] ", a.pod, a.container.as_deref().unwrap_or(""))
        } else {
            String::new()
        },
        pending: Vec::new(),
        last: None,
        closed: false,
    };
    let mut instance: Option<String> = None;
    let mut lost_since: Option<Instant> = None;
    loop {
        let path = match &instance {
            Some(id) => format!("{base}&container_id={}{}", enc(id), printer.resume_query()),
            None => base.clone(),
        };
        let mut seen = None;
        let r = client
            .stream(
                &path,
                |h| {
                    seen = h
                        .get(CONTAINER_ID_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                },
                |chunk| {
                    lost_since = None;
                    printer.feed(chunk)
                },
            )
            .await;
        if instance.is_none() {
            instance = seen;
        }
        match r {
            Ok(()) => return Ok(0),
            Err(_) if printer.closed => return Ok(0),
            Err(e)
                if a.follow && instance.is_some() && e.downcast_ref::<DaemonGone>().is_some() =>
            {
                let since = *lost_since.get_or_insert_with(|| {
                    eprintln!(
                        "podhost logs: the daemon went away; following again once it is back"
                    );
                    Instant::now()
                });
                if since.elapsed() > RECONNECT_FOR {
                    return Err(e);
                }
                // A record cut in the middle comes again whole.
                printer.pending.clear();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
