//! `lb ring serve` from command-line options to a running [`Ring`]: the pool (a static one
//! from `--backends`, or a config file's `[pool.NAME]` followed as the proxies run it), its
//! health monitor, and the listener.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lb_core::config::{parse_duration, Binary, Config, HealthConfig, HealthKind};
use lb_core::health::{checker_for, CheckKind, HealthMonitor, HealthSettings};
use lb_core::{Backend, Pool, PoolSettings, StrategyKind};

use crate::ring::{Ring, RingSettings};

/// Options of `lb ring serve` (besides `--listen` and `--threads`); the field docs are
/// its `--help`. Built by hand (tests, embedders), a `None` takes the default.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeOptions {
    /// Hashing strategy (with --backends).
    #[arg(long)]
    pub strategy: Option<String>,
    /// ip:port[=weight],... (with --strategy).
    #[arg(long)]
    pub backends: Option<String>,
    /// Ring points per unit of weight (consistent).
    #[arg(long)]
    pub vnodes: Option<u32>,
    /// Take the strategy, backends and health checks of a pool of this lb-proxy/lb-sni config.
    #[arg(long, conflicts_with_all = ["strategy", "backends", "vnodes"])]
    pub config: Option<PathBuf>,
    /// The pool of --config (needed when it has several).
    #[arg(long, requires = "config")]
    pub pool: Option<String>,
    /// Health checks of the nodes: none, tcp, http or http:/path.
    #[arg(long)]
    pub health: Option<String>,
    /// Time between probes, e.g. 2s.
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Bound on one probe, e.g. 1s.
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Successes in a row to go up.
    #[arg(long)]
    pub rise: Option<u32>,
    /// Failures in a row to go down.
    #[arg(long)]
    pub fall: Option<u32>,
    /// Close a client silent for this long (0s: never).
    #[arg(long, default_value = "300s")]
    pub idle_timeout: Option<String>,
    /// Clients served at once.
    #[arg(long, default_value = "10000")]
    pub max_connections: Option<usize>,
}

/// Parses `ip:port[=weight]` items separated by commas (an empty list is an empty ring).
pub fn parse_backends(list: &str) -> Result<Vec<Backend>, String> {
    let mut out: Vec<Backend> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (addr, weight) = match item.split_once('=') {
            Some((a, w)) => {
                let w: u32 = w.parse().map_err(|_| {
                    format!("--backends {item:?}: weight {w:?} is not a number in 0-256")
                })?;
                (a, w)
            }
            None => (item, 1),
        };
        let addr = addr.parse().map_err(|_| {
            format!(
                "--backends {item:?}: {addr:?} is not an address: expected ip:port or [ipv6]:port"
            )
        })?;
        let b = Backend::new(addr)
            .with_weight(weight)
            .map_err(|e| format!("--backends {item:?}: {e}"))?;
        if out.iter().any(|o| o.addr() == b.addr()) {
            return Err(format!("--backends: {addr} is listed twice"));
        }
        out.push(b);
    }
    Ok(out)
}

fn optional_duration(flag: &str, v: &Option<String>) -> Result<Option<Duration>, String> {
    v.as_deref()
        .map(|s| {
            parse_duration(s).ok_or_else(|| {
                format!("{flag} {s:?}: expected a whole number and a unit: 500ms, 2s, 5m, 1h")
            })
        })
        .transpose()
}

fn duration(flag: &str, v: &Option<String>, default: Duration) -> Result<Duration, String> {
    Ok(optional_duration(flag, v)?.unwrap_or(default))
}

/// Where the ring's membership comes from.
#[derive(Debug)]
pub enum Membership {
    /// `--backends`: a static ring; `RING.ADD`/`RING.DEL` change this process only.
    Static(Arc<Pool>),
    /// `--config FILE [--pool NAME]`: the pool as lb-proxy runs it, with its discovery
    /// source and health checks (see [`follow`](crate::ring::follow)). `config` holds the
    /// validated file with the `--health*` flags applied to that pool.
    Follow {
        /// The validated config.
        config: Box<Config>,
        /// The pool's name.
        pool: String,
    },
}

/// A ring's membership and health settings, ready to serve.
#[derive(Debug)]
pub struct Prepared {
    /// The membership.
    pub membership: Membership,
    /// Its health checks (`kind = none` for no checks).
    pub health: HealthSettings,
    /// The ring settings.
    pub settings: RingSettings,
}

/// The `--health*`, `--rise` and `--fall` flags that were given.
#[derive(Debug, Default)]
struct HealthFlags {
    kind: Option<CheckKind>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    rise: Option<u32>,
    fall: Option<u32>,
}

impl HealthFlags {
    fn parse(o: &ServeOptions) -> Result<HealthFlags, String> {
        let kind = match o.health.as_deref() {
            None => None,
            Some("none") => Some(CheckKind::None),
            Some("tcp") => Some(CheckKind::Tcp),
            Some("http") => Some(CheckKind::http()),
            Some(other) => match other.strip_prefix("http:") {
                Some(path) if path.starts_with('/') => Some(CheckKind::Http {
                    path: path.to_owned(),
                    expect: 200,
                }),
                _ => {
                    return Err(format!(
                        "--health {other:?}: expected none, tcp, http or http:/path"
                    ))
                }
            },
        };
        let f = HealthFlags {
            kind,
            interval: optional_duration("--health-interval", &o.health_interval)?,
            timeout: optional_duration("--health-timeout", &o.health_timeout)?,
            rise: o.rise.map(|r| r.max(1)),
            fall: o.fall.map(|f| f.max(1)),
        };
        if f.interval.is_some_and(|d| d.is_zero()) || f.timeout.is_some_and(|d| d.is_zero()) {
            return Err("--health-interval and --health-timeout must be more than 0s".into());
        }
        Ok(f)
    }

    fn apply(&self, h: &mut HealthSettings) {
        if let Some(k) = &self.kind {
            h.kind = k.clone();
        }
        h.interval = self.interval.unwrap_or(h.interval);
        h.timeout = self.timeout.unwrap_or(h.timeout);
        h.rise = self.rise.unwrap_or(h.rise);
        h.fall = self.fall.unwrap_or(h.fall);
    }

    /// The same flags over a config pool's `[pool.NAME.health]`.
    fn apply_config(&self, h: &mut HealthConfig) {
        match &self.kind {
            None => {}
            Some(CheckKind::Http { path, expect }) => {
                h.kind = HealthKind::Http;
                h.path = path.clone();
                h.expect = *expect;
            }
            Some(CheckKind::Tcp) => h.kind = HealthKind::Tcp,
            Some(_) => h.kind = HealthKind::None,
        }
        h.interval = self.interval.unwrap_or(h.interval);
        h.timeout = self.timeout.unwrap_or(h.timeout);
        let nz = |v: Option<u32>, cur: NonZeroU32| v.and_then(NonZeroU32::new).unwrap_or(cur);
        h.rise = nz(self.rise, h.rise);
        h.fall = nz(self.fall, h.fall);
    }
}

/// Builds the membership and settings from the options; errors are messages for the
/// operator.
pub fn prepare(o: &ServeOptions) -> Result<Prepared, String> {
    let flags = HealthFlags::parse(o)?;
    let (membership, strategy, health) = match &o.config {
        Some(path) => {
            if o.backends.is_some() || o.strategy.is_some() || o.vnodes.is_some() {
                return Err("--config takes the strategy and backends from the file: drop --strategy, --backends and --vnodes".into());
            }
            // An lb-proxy config, or else an lb-sni one; the lb-proxy error is the one shown.
            let mut config = match Config::load(path, Binary::Proxy) {
                Ok(c) => c,
                Err(e) => Config::load(path, Binary::Sni).map_err(|_| e.to_string())?,
            };
            let names = || config.pools.keys().cloned().collect::<Vec<_>>().join(", ");
            let name = match &o.pool {
                Some(p) if config.pool(p).is_some() => p.clone(),
                Some(p) => {
                    return Err(format!(
                        "--pool {p:?}: {} has no such pool; it defines [{}]",
                        path.display(),
                        names()
                    ))
                }
                None if config.pools.len() == 1 => {
                    config.pools.keys().next().cloned().ok_or("no pool")?
                }
                None => {
                    return Err(format!(
                        "{} defines {} pools: choose one with --pool NAME ([{}])",
                        path.display(),
                        config.pools.len(),
                        names()
                    ))
                }
            };
            let pc = config.pools.get_mut(&name).ok_or("no pool")?;
            flags.apply_config(&mut pc.health);
            let (strategy, health) = (pc.strategy, pc.health_settings());
            let membership = Membership::Follow {
                config: Box::new(config),
                pool: name,
            };
            (membership, strategy, health)
        }
        None => {
            let strategy = o.strategy.as_deref().unwrap_or("consistent");
            let kind: StrategyKind = strategy.parse().map_err(|e| format!("--strategy: {e}"))?;
            let mut settings = PoolSettings::with_strategy(kind);
            if let Some(v) = o.vnodes {
                if !(1..=1000).contains(&v) {
                    return Err(format!("--vnodes {v}: expected 1-1000"));
                }
                settings.params.vnodes = v;
            }
            let backends = parse_backends(o.backends.as_deref().unwrap_or(""))?;
            let mut health = HealthSettings::default();
            flags.apply(&mut health);
            let pool = Pool::new("ring", settings, backends).map_err(|e| e.to_string())?;
            (Membership::Static(Arc::new(pool)), kind, health)
        }
    };
    if !strategy.uses_key() {
        return Err(format!(
            "strategy {strategy} does not hash keys, so a key has no owner: use consistent, rendezvous, maglev, modulo, consistent-bounded or consistent-nginx"
        ));
    }
    let idle = duration("--idle-timeout", &o.idle_timeout, Duration::from_secs(300))?;
    let settings = RingSettings {
        idle_timeout: (!idle.is_zero()).then_some(idle),
        max_connections: o.max_connections.unwrap_or(10_000).max(1),
        ..RingSettings::default()
    };
    Ok(Prepared {
        membership,
        health,
        settings,
    })
}

/// A one-line description of the health checks for `INFO` and the log.
pub fn describe(h: &HealthSettings) -> String {
    match &h.kind {
        CheckKind::None => "none".to_owned(),
        CheckKind::Http { path, .. } => format!(
            "http {path} every {}",
            lb_core::config::format_duration(h.interval)
        ),
        k => format!(
            "{} every {}",
            k.as_str(),
            lb_core::config::format_duration(h.interval)
        ),
    }
}

/// Starts the ring on `listener` until `shutdown` resolves: a static pool with its health
/// monitor (when checks are on), or a config's pool followed as the proxies run it (which
/// waits, bounded, for its source's first sync). Then logs and prints
/// `lb ring listening on ADDR` (scripts wait for that line to learn the port).
/// Must run inside a tokio runtime.
pub async fn run(
    prepared: Prepared,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let Prepared {
        membership,
        health,
        settings,
    } = prepared;
    let describe = describe(&health);
    // Whatever keeps the pool's background work alive (health monitor, source) while serving.
    let (ring, keep): (Arc<Ring>, Box<dyn std::any::Any + Send>) = match membership {
        Membership::Static(pool) => {
            let monitor = checker_for(&health)
                .map_err(|e| e.to_string())?
                .map(|checker| {
                    HealthMonitor::spawn(
                        pool.clone(),
                        health.clone(),
                        checker,
                        std::future::pending::<()>(),
                    )
                });
            (
                Ring::new(pool, settings, describe.clone()),
                Box::new(monitor),
            )
        }
        Membership::Follow { config, pool } => {
            let running = crate::ring::follow::start(&config, &pool).await?;
            let ring = Ring::with_source(running.handle.clone(), settings, describe.clone());
            (ring, Box::new(running))
        }
    };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let pool = ring.pool();
    tracing::info!(
        listen = %addr,
        pool = pool.name(),
        strategy = %pool.settings().strategy,
        nodes = pool.snapshot().members().len(),
        health = %describe,
        "lb ring serving"
    );
    println!("lb ring listening on {addr}");
    crate::ring::serve(listener, ring, shutdown).await;
    drop(keep);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_lists() {
        let b = parse_backends("127.0.0.1:7001, 127.0.0.1:7002=2,[::1]:7003=0").unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!((b[1].weight(), b[2].weight()), (2, 0));
        assert!(parse_backends("").unwrap().is_empty());
        for (bad, msg) in [
            ("127.0.0.1", "not an address"),
            ("127.0.0.1:1=x", "not a number"),
            ("127.0.0.1:1=300", "weight"),
            ("127.0.0.1:1,127.0.0.1:1", "twice"),
        ] {
            let e = parse_backends(bad).unwrap_err();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn options_are_checked() {
        let o = ServeOptions {
            strategy: Some("round-robin".into()),
            ..ServeOptions::default()
        };
        assert!(prepare(&o).unwrap_err().contains("does not hash keys"));
        let o = ServeOptions {
            health: Some("icmp".into()),
            ..ServeOptions::default()
        };
        assert!(prepare(&o).unwrap_err().contains("--health"));
        let o = ServeOptions {
            health: Some("http:/healthz".into()),
            health_interval: Some("250ms".into()),
            backends: Some("127.0.0.1:1=3".into()),
            ..ServeOptions::default()
        };
        let p = prepare(&o).unwrap();
        assert_eq!(describe(&p.health), "http /healthz every 250ms");
        let Membership::Static(pool) = &p.membership else {
            panic!("--backends makes a static ring")
        };
        assert_eq!(pool.settings().strategy, StrategyKind::Consistent);
        assert_eq!(pool.snapshot().members()[0].backend().weight(), 3);
    }

    #[test]
    fn a_config_pool_is_followed_with_the_flags_over_its_health() {
        let dir = std::env::temp_dir().join(format!("lb-serve-prepare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lb.toml");
        std::fs::write(
            &path,
            "[[listener]]\nlisten = \"127.0.0.1:8080\"\n[pool.web]\nstrategy = \"consistent-nginx\"\n\
             backends = [\"127.0.0.1:1\"]\n[pool.web.health]\nkind = \"tcp\"\ninterval = \"5s\"\nrise = 4\n",
        )
        .unwrap();
        let o = ServeOptions {
            config: Some(path.clone()),
            health: Some("http:/ready".into()),
            health_interval: Some("200ms".into()),
            ..ServeOptions::default()
        };
        let p = prepare(&o).unwrap();
        assert_eq!(describe(&p.health), "http /ready every 200ms");
        assert_eq!(p.health.rise, 4, "unflagged values come from the file");
        let Membership::Follow { config, pool } = &p.membership else {
            panic!("--config follows the pool")
        };
        assert_eq!(pool, "web");
        let pc = config.pool("web").unwrap();
        assert_eq!(
            pc.health_settings(),
            p.health,
            "the flags are in the config run"
        );
        let o = ServeOptions {
            config: Some(path),
            health_timeout: Some("0s".into()),
            ..ServeOptions::default()
        };
        assert!(prepare(&o).unwrap_err().contains("more than 0s"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
