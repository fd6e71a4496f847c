//! Around a running binary: the admin listener, signals (reload, stop) and `--check`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

use super::Shutdown;
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

/// The admin API on its own listener; stops accepting when dropped or [`closed`](Self::close).
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    configured: SocketAddr,
    fd: std::os::fd::OwnedFd,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
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
        let listener = super::listeners::bind(listen).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let fd = std::os::fd::AsFd::as_fd(&listener)
            .try_clone_to_owned()
            .map_err(bind_err)?;
        let (stop, shutdown) = Shutdown::new();
        let task = tokio::spawn(crate::admin::serve(listener, state, shutdown.wait()));
        tracing::info!(admin = %addr, "admin API up");
        Ok(AdminServer {
            addr,
            configured: listen,
            fd,
            stop,
            task,
        })
    }

    /// Stops accepting; the returned task ends when the requests in flight are answered.
    pub fn close(self) -> tokio::task::JoinHandle<()> {
        let _ = self.stop.send(true);
        self.task
    }

    /// A duplicate of the listening socket and its configured address, for a binary upgrade.
    pub fn handover(&self) -> std::io::Result<(SocketAddr, std::os::fd::OwnedFd)> {
        Ok((self.configured, self.fd.try_clone()?))
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

    /// Reopens log files (SIGHUP, after log rotation renamed them).
    fn reopen_logs(&self) {}

    /// Every listening socket (duplicates) with its configured address, for a binary upgrade.
    fn handover(&self) -> std::io::Result<Vec<(SocketAddr, std::os::fd::OwnedFd)>> {
        Ok(Vec::new())
    }
}

/// The signals a server answers (SIGHUP, SIGTERM, SIGINT, SIGUSR2), listened for from
/// the moment this is made: until then each has its default action, and SIGHUP and
/// SIGTERM end the process on the spot. Make it before the server binds anything, so a
/// reload or stop that arrives while it starts (a log rotation, a service manager that
/// acts on the first `listening` line) is answered once [`supervise`] runs, not fatal.
/// Needs a tokio runtime with I/O enabled.
#[derive(Debug)]
pub struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening for the four signals.
    pub fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }
}

/// Waits for signals: SIGHUP reopens log files and re-reads `path` (a config that fails
/// validation or cannot be applied is logged and the old one keeps serving; with `path =
/// None` SIGHUP only reopens logs); SIGTERM or SIGINT returns, so the caller can drain.
/// Listens from this call on; [`supervise_upgradable`] takes [`Signals`] made earlier.
pub async fn supervise<A: Reload>(
    app: &mut A,
    path: Option<&Path>,
    binary: Binary,
) -> std::io::Result<()> {
    supervise_upgradable(app, path, binary, None, Signals::new()?).await
}

/// [`supervise`] with `signals` (made before the server started, see [`Signals`]), and
/// SIGUSR2 starts `upgrade`'s successor: once it serves, this returns (the caller drains
/// as on SIGTERM); if it fails, this process keeps serving. Without `upgrade`, SIGUSR2 is
/// logged and ignored.
pub async fn supervise_upgradable<A: Reload>(
    app: &mut A,
    path: Option<&Path>,
    binary: Binary,
    upgrade: Option<&super::upgrade::Upgrade>,
    signals: Signals,
) -> std::io::Result<()> {
    let Signals {
        mut hup,
        mut term,
        mut int,
        mut usr2,
    } = signals;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                app.reopen_logs();
                let Some(p) = path else { continue };
                match Config::load(p, binary) {
                    Ok(c) => match app.reload(c).await {
                        Ok(()) => tracing::info!(config = %p.display(), "config reloaded"),
                        Err(e) => tracing::error!(error = %e, "reload failed; the old config keeps serving"),
                    },
                    Err(e) => tracing::error!(error = %e, "reload rejected; the old config keeps serving"),
                }
            }
            _ = usr2.recv() => {
                let Some(up) = upgrade else {
                    tracing::warn!("SIGUSR2: no upgrade without --config; ignored");
                    continue;
                };
                let sockets = match app.handover() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "upgrade failed: cannot duplicate the listening sockets; this process keeps serving");
                        continue;
                    }
                };
                match up.run(sockets).await {
                    Ok(pid) => {
                        tracing::info!(new_pid = pid, "upgrade: the new process serves; draining this one");
                        return Ok(());
                    }
                    Err(e) => tracing::error!(error = %e, "upgrade failed; this process keeps serving"),
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
