//! [`Shell`]: a binary's running state around its data path — the current config
//! generation, the listeners, the admin API — and how a reload replaces it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use std::collections::BTreeMap;

use super::{
    discovery_ready, retire_sources, AccessLog, AdminServer, ConnectionGauges, Listeners, Reload,
    RunningPool, ServeError, ServeFn,
};
use crate::admin::{AdminState, AdminTls, AdminTlsError, AdminView, MetricsSource};
use crate::config::Config;

/// Everything a binary's data path reads for one config: routes, pools, directories. Built
/// whole from a validated config and swapped whole on reload.
pub trait Generation: Sized + Send + Sync + 'static {
    /// Why a generation could not be built from a valid config.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Builds the generation for `config`; `previous` lends what should survive a reload
    /// (pools with their live state). Runs inside a tokio runtime.
    fn build(config: &Config, previous: Option<&Self>) -> Result<Self, Self::Error>;

    /// The running pools, by name.
    fn pools(&self) -> BTreeMap<&str, &RunningPool>;

    /// The access log this generation writes to, if any (reopened on SIGHUP, flushed at
    /// exit).
    fn access_log(&self) -> Option<&AccessLog> {
        None
    }

    /// What the admin API shows and changes for this generation (its pools, by default).
    fn admin_view(&self, token: Option<String>) -> AdminView {
        AdminView::from_pools(self.pools().into_iter().map(|(n, p)| (n, &p.handle)), token)
    }
}

/// How long start and reload wait for discovered pools' first sync before serving.
pub const DISCOVERY_WAIT: Duration = Duration::from_secs(2);

/// Why a [`Shell`] could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum ShellError<E: std::error::Error + 'static> {
    /// The generation could not be built.
    #[error(transparent)]
    Build(E),
    /// A listener or the admin address could not be bound.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// `[admin] tls` could not be loaded.
    #[error(transparent)]
    AdminTls(#[from] AdminTlsError),
}

/// A running binary: its config, the current [`Generation`], its listeners and admin API.
pub struct Shell<G> {
    config: Config,
    current: Arc<ArcSwap<G>>,
    admin: Arc<AdminState>,
    admin_server: AdminServer,
    listeners: Listeners,
}

impl<G: Generation> Shell<G> {
    /// Builds the first generation, starts the admin API and binds every listener.
    /// `serve` makes the binary's per-listener loop from the shared current generation;
    /// `metrics` its additions to `/metrics` (given the generation and the open-connection
    /// gauges).
    pub async fn start(
        config: Config,
        serve: impl FnOnce(Arc<ArcSwap<G>>) -> ServeFn,
        metrics: impl FnOnce(Arc<ArcSwap<G>>, Arc<ConnectionGauges>) -> Arc<dyn MetricsSource>,
    ) -> Result<Shell<G>, ShellError<G::Error>> {
        let first = G::build(&config, None).map_err(ShellError::Build)?;
        discovery_ready(&first.pools(), DISCOVERY_WAIT).await;
        let current = Arc::new(ArcSwap::from_pointee(first));
        let mut listeners = Listeners::new(serve(current.clone()));
        let extra = metrics(current.clone(), listeners.gauges());
        let admin = Arc::new(AdminState::new(
            current.load().admin_view(config.admin.token.clone()),
            Some(extra),
        ));
        admin.set_tls(AdminTls::load(&config.admin)?);
        let admin_server = AdminServer::start(config.admin.listen, admin.clone()).await?;
        listeners.sync(&config.listeners).await?;
        super::upgrade::drop_unused();
        Ok(Shell {
            config,
            current,
            admin,
            admin_server,
            listeners,
        })
    }

    /// The current generation.
    pub fn current(&self) -> Arc<G> {
        self.current.load_full()
    }

    /// The bound listener addresses (the real ports when configured with port 0), in the
    /// order of their configured addresses.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.addrs()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_server.addr()
    }

    /// Applies a new, already validated config: a new generation (pools that stay keep
    /// their live state), listeners opened, updated and closed to match, the admin API
    /// following. `threads` and `[admin].listen` need a restart: a warning is logged and
    /// the running values kept. On error nothing changes. In-flight work carries on with
    /// the generation it started with.
    pub async fn reload(&mut self, mut config: Config) -> Result<(), ShellError<G::Error>> {
        for key in config.keep_restart_keys(&self.config) {
            tracing::warn!(
                key,
                "changing this needs a restart; keeping the running value"
            );
        }
        let running = self.current.load_full();
        // Certificates are re-read, so renewed files apply to new admin connections.
        let admin_tls = AdminTls::load(&config.admin)?;
        let next = G::build(&config, Some(&running)).map_err(ShellError::Build)?;
        self.listeners.sync(&config.listeners).await?;
        // Past the last failure point: stop the sources being replaced (so they never race
        // their successors on a shared pool), let the new ones sync, then swap.
        retire_sources(&running.pools(), &next.pools());
        discovery_ready(&next.pools(), DISCOVERY_WAIT).await;
        self.admin
            .replace(next.admin_view(config.admin.token.clone()));
        self.admin.set_tls(admin_tls);
        self.current.store(Arc::new(next));
        self.config = config;
        Ok(())
    }

    /// Stops the admin API and every listener, and waits up to `grace` for in-flight work.
    pub async fn shutdown(self, grace: Duration) {
        let admin = self.admin_server.close();
        self.listeners.shutdown(grace, vec![admin]).await;
        if let Some(log) = self.current.load().access_log().cloned() {
            let _ = tokio::task::spawn_blocking(move || log.flush(Duration::from_secs(2))).await;
        }
    }
}

impl<G: Generation> Reload for Shell<G> {
    async fn reload(&mut self, config: Config) -> Result<(), String> {
        Shell::reload(self, config).await.map_err(|e| e.to_string())
    }

    fn handover(&self) -> std::io::Result<Vec<(SocketAddr, std::os::fd::OwnedFd)>> {
        let mut all = self.listeners.handover()?;
        all.push(self.admin_server.handover()?);
        Ok(all)
    }

    fn reopen_logs(&self) {
        if let Some(log) = self.current.load().access_log() {
            log.reopen();
        }
    }
}
