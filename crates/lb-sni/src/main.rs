//! `lb-sni --config FILE`, `--check [FILE]`, `--pid-file FILE`.

use std::process::ExitCode;

use clap::Parser;
use lb_core::config::Binary;
use lb_core::server::{main, ServerArgs};

/// The process's allocator (see the `mimalloc` feature in Cargo.toml).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// lb-sni: routes TLS connections on their SNI (or plain HTTP on its Host) without
/// terminating them.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  lb-sni --config /etc/lb/sni.toml --pid-file /run/lb-sni.pid\n  \
                  lb-sni --check /etc/lb/sni.toml\n\n\
                  Signals: SIGHUP reloads the config, SIGTERM/SIGINT drain and exit.\n\
                  Logs: RUST_LOG=debug for the level, LB_LOG_FORMAT=json for JSON lines."
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    main::main("lb-sni", Binary::Sni, args.server, lb_sni::app::start)
}
