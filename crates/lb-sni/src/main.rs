//! `lb-sni --config FILE [--check]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lb_core::config::{Binary, Config};
use lb_core::server;
use lb_sni::app::App;

const USAGE: &str = "usage: lb-sni --config FILE [--check]";
const GRACE: Duration = Duration::from_secs(30);

fn parse_args() -> Result<(PathBuf, bool), String> {
    let mut config = None;
    let mut check = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => {
                config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?))
            }
            "--check" => check = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((config.ok_or("--config FILE is required")?, check))
}

fn main() -> ExitCode {
    let (path, check) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("lb-sni: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if check {
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
        let mut app = match App::start(config).await {
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
