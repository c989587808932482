//! `podhost`: the CLI, and the daemon with `podhost serve`.

use std::future::Future;

use clap::Parser;
use podhost::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(ref args) => {
            init_logging(args.trace_startup);
            // The daemon serves many pods at once; the CLI does one request at a time.
            let config = cli.config();
            run(true, serve(config))
        }
        _ => run(false, podhost::cli::run(cli)),
    };
    std::process::exit(code);
}

/// The daemon's log on stderr (RUST_LOG, default `info`), plus the start-up trace's
/// lines with `--trace-startup`. Each has its own filter: the trace's DEBUG spans never
/// reach the log's formatter.
fn init_logging(trace_startup: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        );
    let trace = trace_startup.then(|| {
        podhost::startup_trace::StartupTrace::new(std::io::stderr()).with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(podhost_runtime::trace::TARGET, tracing::Level::DEBUG),
        )
    });
    tracing_subscriber::registry().with(log).with(trace).init();
}

/// `podhost serve`: the daemon on this machine's runtime (the only place that names it).
async fn serve(config: podhost::config::Config) -> anyhow::Result<i32> {
    let prepared = podhost::server::prepare(&config)?;
    let runtime = podhost_runtime::local::LocalRuntime::open(config.runtime.clone())?;
    // Kubelet's streaming server, on loopback: CRI's Exec, Attach and PortForward (and
    // the API's streaming URLs) answer with one-time URLs on it. Sessions run on the
    // shared runtime; both front doors check a container or sandbox is theirs first.
    let streaming_config = podhost_streaming::server::StreamingConfig {
        addr: config.streaming_addr,
        ..Default::default()
    };
    let streaming = std::sync::Arc::new(
        podhost_streaming::server::StreamingServer::start(streaming_config, runtime.clone())
            .await?,
    );
    podhost::server::run(
        prepared,
        runtime,
        streaming,
        config,
        podhost::server::shutdown_signal(),
    )
    .await?;
    Ok(0)
}

/// Run `fut` on a fresh tokio runtime and turn its result into an exit code.
fn run<E: std::fmt::Display>(multi_thread: bool, fut: impl Future<Output = Result<i32, E>>) -> i32 {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return 1;
        }
    };
    let result = rt.block_on(fut);
    // A read of stdin (an attach session's input) may still block in a blocking-pool
    // thread: a session ended by the container's exit or a signal must not wait for the
    // user's next line. The process exits right after.
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
