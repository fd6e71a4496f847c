//! `lb-proxy --config FILE`, `--check [FILE]`, `--pid-file FILE`, or `--demo`.

use std::process::ExitCode;

use clap::Parser;
use lb_core::config::Binary;
use lb_core::server::{main, ServerArgs};
use lb_proxy::{app, demo};

/// The process's allocator (see the `mimalloc` feature in Cargo.toml).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// lb-proxy: the HTTP load balancer of lb.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  lb-proxy --config /etc/lb/lb.toml --pid-file /run/lb-proxy.pid\n  \
                  lb-proxy --check /etc/lb/lb.toml\n  lb-proxy --demo\n\n\
                  Signals: SIGHUP reloads the config, SIGTERM/SIGINT drain and exit.\n\
                  Logs: RUST_LOG=debug for the level, LB_LOG_FORMAT=json for JSON lines."
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Start three demo backends and a proxy in front of them on 127.0.0.1:8080.
    #[arg(long, conflicts_with_all = ["config", "check", "pid_file"])]
    demo: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.demo {
        return demo::main();
    }
    main::main("lb-proxy", Binary::Proxy, args.server, app::start)
}
