//! What both binaries share around their data path: running pools, listeners that follow
//! the config, the admin listener, signals, reload and drain.
//!
//! A binary implements [`Generation`] for its per-request state (routes over the pools of
//! [`build_pools`]), and runs it in a [`Shell`] with a [`ServeFn`] for its protocol: the
//! shell binds the [`Listeners`] and the [`AdminServer`], and [`supervise`] turns SIGHUP
//! into [`Shell::reload`] with a freshly validated config and SIGTERM/SIGINT into a
//! return, after which [`Shell::shutdown`] drains. [`tunnel`] splices the bytes of a routed
//! or upgraded connection both ways, with half-close and an idle timeout.

mod listeners;
mod pools;
mod reuseport;
mod shell;
pub mod tunnel;

pub use crate::rt::runtime;
pub use listeners::{
    accept_loop, ConnectionGauges, Listeners, LiveListenerConfig, ServeFn, Shutdown,
    ACCEPTED_NODELAY,
};
pub use pools::{build_pools, discovery_ready, retire_sources, PoolBuildError, RunningPool};
pub use shell::{Generation, Shell, ShellError, DISCOVERY_WAIT};

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::AdminState;
use crate::config::{Binary, Config};

/// Why a listener or the admin API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The admin API on its own listener; stops when dropped.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

impl AdminServer {
    /// Binds `listen` and serves `state` on it.
    pub async fn start(
        listen: SocketAddr,
        state: Arc<AdminState>,
    ) -> Result<AdminServer, ServeError> {
        let bind_err = |source| ServeError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let (stop, shutdown) = Shutdown::new();
        tokio::spawn(crate::admin::serve(listener, state, shutdown.wait()));
        tracing::info!(admin = %addr, "admin API up");
        Ok(AdminServer { addr, _stop: stop })
    }

    /// The bound address (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A running binary that can take a new, validated config.
pub trait Reload {
    /// Applies `config`; on error the running config keeps serving.
    fn reload(&mut self, config: Config) -> impl Future<Output = Result<(), String>> + Send;
}

/// Waits for signals: SIGHUP re-reads `path` (a config that fails validation or cannot be
/// applied is logged and the old one keeps serving; with `path = None` SIGHUP is ignored);
/// SIGTERM or SIGINT returns, so the caller can drain.
pub async fn supervise<A: Reload>(
    app: &mut A,
    path: Option<&Path>,
    binary: Binary,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let Some(p) = path else { continue };
                match Config::load(p, binary) {
                    Ok(c) => match app.reload(c).await {
                        Ok(()) => tracing::info!(config = %p.display(), "config reloaded"),
                        Err(e) => tracing::error!(error = %e, "reload failed; the old config keeps serving"),
                    },
                    Err(e) => tracing::error!(error = %e, "reload rejected; the old config keeps serving"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: draining in-flight work");
    Ok(())
}

/// `--config FILE --check`: validates `path` for `binary`, prints `FILE: ok` or every
/// problem (one per line), and returns whether it is valid.
pub fn check(path: &Path, binary: Binary) -> bool {
    match Config::load(path, binary) {
        Ok(_) => {
            println!("{}: ok", path.display());
            true
        }
        Err(e) => {
            eprintln!("{e}");
            false
        }
    }
}

/// Appends `lb_resolver_lookups_total{resolver,result}` for each named directory.
pub fn render_directories<'a>(
    out: &mut String,
    directories: impl IntoIterator<Item = (&'a str, &'a crate::config::Directory)>,
) {
    crate::metrics::header(
        out,
        "lb_resolver_lookups_total",
        "counter",
        "Directory lookups by result.",
    );
    for (name, d) in directories {
        for (result, n) in d.stats().iter() {
            crate::metrics::sample(
                out,
                "lb_resolver_lookups_total",
                &[("resolver", name), ("result", result)],
                n as f64,
            );
        }
    }
}

/// The command line of `lb-proxy` and `lb-sni`: `--config FILE [--check]` and switches of
/// the binary's own.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cli {
    /// `--config FILE` / `-c FILE`.
    pub config: Option<std::path::PathBuf>,
    /// `--check`: validate and exit.
    pub check: bool,
    /// The binary's own switches that were given (from the `switches` list).
    pub switches: Vec<&'static str>,
}

impl Cli {
    /// Parses `args` (without the program name). `switches` are extra flags the binary
    /// takes. `Err("")` means `--help`; any other error names the bad argument.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        switches: &[&'static str],
    ) -> Result<Cli, String> {
        let mut cli = Cli::default();
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            match a.as_str() {
                "--config" | "-c" => {
                    let file = args.next().ok_or("--config needs a file")?;
                    cli.config = Some(file.into());
                }
                "--check" => cli.check = true,
                "-h" | "--help" => return Err(String::new()),
                other => match switches.iter().find(|s| **s == other) {
                    Some(s) => cli.switches.push(s),
                    None => return Err(format!("unknown argument {other:?}")),
                },
            }
        }
        Ok(cli)
    }

    /// True when `switch` was given.
    pub fn has(&self, switch: &str) -> bool {
        self.switches.contains(&switch)
    }
}
