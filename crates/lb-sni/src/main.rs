//! `lb-sni --config FILE [--check]`.

use std::process::ExitCode;
use std::time::Duration;

use lb_core::config::{Binary, Config};
use lb_core::server::{self, Cli};
use lb_sni::app;

/// The process's allocator (see the `mimalloc` feature in Cargo.toml).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: lb-sni --config FILE [--check]";
const GRACE: Duration = Duration::from_secs(30);

fn usage(error: &str) -> ExitCode {
    if !error.is_empty() {
        eprintln!("lb-sni: {error}");
    }
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = match Cli::parse(std::env::args().skip(1), &[]) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let Some(path) = cli.config else {
        return usage("--config FILE is required");
    };
    if cli.check {
        return if server::check(&path, Binary::Sni) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match Config::load(&path, Binary::Sni) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match server::runtime(config.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lb-sni: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let mut app = match app::start(config).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("lb-sni: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = server::supervise(&mut app, Some(&path), Binary::Sni).await {
            eprintln!("lb-sni: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
        app.shutdown(GRACE).await;
        ExitCode::SUCCESS
    })
}
