//! `lb-proxy --config FILE [--check]`, or `lb-proxy --demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lb_core::config::{Binary, Config};
use lb_core::server::{self, Cli};
use lb_proxy::{app, demo};

/// The process's allocator (see the `mimalloc` feature in Cargo.toml).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: lb-proxy --config FILE [--check] | lb-proxy --demo";
const GRACE: Duration = Duration::from_secs(30);

enum Mode {
    Run(PathBuf),
    Check(PathBuf),
    Demo,
}

fn parse_args() -> Result<Mode, String> {
    let cli = Cli::parse(std::env::args().skip(1), &["--demo"])?;
    let demo = cli.has("--demo");
    match (cli.config, cli.check, demo) {
        (_, _, true) => Ok(Mode::Demo),
        (Some(c), true, _) => Ok(Mode::Check(c)),
        (Some(c), false, _) => Ok(Mode::Run(c)),
        (None, _, _) => Err("--config FILE is required".into()),
    }
}

fn main() -> ExitCode {
    let mode = match parse_args() {
        Ok(m) => m,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("lb-proxy: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let (path, threads) = match &mode {
        Mode::Check(p) => {
            return if server::check(p, Binary::Proxy) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Mode::Run(p) => match Config::load(p, Binary::Proxy) {
            Ok(c) => (Some(p.clone()), c.threads),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        Mode::Demo => (None, 0),
    };
    let rt = match server::runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lb-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match run(path).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lb-proxy: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(path: Option<PathBuf>) -> Result<(), String> {
    let config = match &path {
        Some(p) => Config::load(p, Binary::Proxy).map_err(|e| e.to_string())?,
        None => {
            let mut b = [std::net::SocketAddr::from(([127, 0, 0, 1], 0)); 3];
            for (i, slot) in b.iter_mut().enumerate() {
                *slot = demo::backend(format!("backend-{}", i + 1))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            demo::config(&b, "127.0.0.1:8080", "127.0.0.1:9091")?
        }
    };
    let mut app = app::start(config).await.map_err(|e| e.to_string())?;
    if path.is_none() {
        if let Some(l) = app.listen_addrs().first() {
            println!("{}", demo::instructions(*l, app.admin_addr()));
        }
    }
    server::supervise(&mut app, path.as_deref(), Binary::Proxy)
        .await
        .map_err(|e| e.to_string())?;
    app.shutdown(GRACE).await;
    Ok(())
}
