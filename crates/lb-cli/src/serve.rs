//! `lb ring serve` from command-line options to a running [`Ring`]: the pool (from
//! `--backends` or a config file's `[pool.NAME]`), its health monitor, and the listener.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lb_core::config::{parse_duration, Binary, Config};
use lb_core::health::{checker_for, CheckKind, HealthMonitor, HealthSettings};
use lb_core::{Backend, Pool, PoolSettings, StrategyKind};

use crate::ring::{Ring, RingSettings};

/// Options of `lb ring serve` (parsed by clap in `main.rs`).
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// `--strategy` (with `--backends`).
    pub strategy: Option<String>,
    /// `--backends ip:port[=weight],...`.
    pub backends: Option<String>,
    /// `--vnodes`.
    pub vnodes: Option<u32>,
    /// `--config FILE` (an lb-proxy or lb-sni config).
    pub config: Option<PathBuf>,
    /// `--pool NAME` in that config (default: its only pool).
    pub pool: Option<String>,
    /// `--health none|tcp|http[:PATH]`.
    pub health: Option<String>,
    /// `--health-interval`.
    pub health_interval: Option<String>,
    /// `--health-timeout`.
    pub health_timeout: Option<String>,
    /// `--rise`.
    pub rise: Option<u32>,
    /// `--fall`.
    pub fall: Option<u32>,
    /// `--idle-timeout` (`0s` = never).
    pub idle_timeout: Option<String>,
    /// `--max-connections`.
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

fn duration(flag: &str, v: &Option<String>, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).ok_or_else(|| {
            format!("{flag} {s:?}: expected a whole number and a unit: 500ms, 2s, 5m, 1h")
        }),
    }
}

/// A pool and its health settings, ready to serve.
#[derive(Debug)]
pub struct Prepared {
    /// The pool.
    pub pool: Arc<Pool>,
    /// Its health checks (`kind = none` for no checks).
    pub health: HealthSettings,
    /// The ring settings.
    pub settings: RingSettings,
}

/// Builds the pool and settings from the options; errors are messages for the operator.
pub fn prepare(o: &ServeOptions) -> Result<Prepared, String> {
    let (name, settings, backends, mut health) = match &o.config {
        Some(path) => {
            if o.backends.is_some() || o.strategy.is_some() || o.vnodes.is_some() {
                return Err("--config takes the strategy and backends from the file: drop --strategy, --backends and --vnodes".into());
            }
            // An lb-proxy config, or else an lb-sni one; the lb-proxy error is the one shown.
            let config = match Config::load(path, Binary::Proxy) {
                Ok(c) => c,
                Err(e) => Config::load(path, Binary::Sni).map_err(|_| e.to_string())?,
            };
            let pc = match &o.pool {
                Some(p) => config.pool(p).ok_or_else(|| {
                    format!(
                        "--pool {p:?}: {} has no such pool; it defines [{}]",
                        path.display(),
                        config.pools.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                })?,
                None if config.pools.len() == 1 => config.pools.values().next().ok_or("no pool")?,
                None => {
                    return Err(format!(
                        "{} defines {} pools: choose one with --pool NAME ([{}])",
                        path.display(),
                        config.pools.len(),
                        config.pools.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                }
            };
            if pc.discovery.kind() != "static" {
                return Err(format!(
                    "pool.{}: discovery {:?} is not supported by the ring yet; list the backends",
                    pc.name,
                    pc.discovery.kind()
                ));
            }
            (
                pc.name.clone(),
                pc.pool_settings(),
                pc.backends(),
                pc.health_settings(),
            )
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
            (
                "ring".to_owned(),
                settings,
                backends,
                HealthSettings::default(),
            )
        }
    };
    if !settings.strategy.uses_key() {
        return Err(format!(
            "strategy {} does not hash keys, so a key has no owner: use consistent, rendezvous, maglev, modulo, consistent-bounded or consistent-nginx",
            settings.strategy
        ));
    }
    if let Some(h) = &o.health {
        health.kind = match h.as_str() {
            "none" => CheckKind::None,
            "tcp" => CheckKind::Tcp,
            "http" => CheckKind::http(),
            other => match other.strip_prefix("http:") {
                Some(path) if path.starts_with('/') => CheckKind::Http {
                    path: path.to_owned(),
                    expect: 200,
                },
                _ => {
                    return Err(format!(
                        "--health {other:?}: expected none, tcp, http or http:/path"
                    ))
                }
            },
        };
    }
    health.interval = duration("--health-interval", &o.health_interval, health.interval)?;
    health.timeout = duration("--health-timeout", &o.health_timeout, health.timeout)?;
    if health.interval.is_zero() || health.timeout.is_zero() {
        return Err("--health-interval and --health-timeout must be more than 0s".into());
    }
    if let Some(r) = o.rise {
        health.rise = r.max(1);
    }
    if let Some(f) = o.fall {
        health.fall = f.max(1);
    }
    let pool = Pool::new(name, settings, backends).map_err(|e| e.to_string())?;
    let idle = duration("--idle-timeout", &o.idle_timeout, Duration::from_secs(300))?;
    let settings = RingSettings {
        idle_timeout: (!idle.is_zero()).then_some(idle),
        max_connections: o.max_connections.unwrap_or(10_000).max(1),
        ..RingSettings::default()
    };
    Ok(Prepared {
        pool: Arc::new(pool),
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

/// Starts the ring: the health monitor (when checks are on) and the server on `listener`,
/// until `shutdown` resolves. Must run inside a tokio runtime.
pub async fn run(
    prepared: Prepared,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let Prepared {
        pool,
        health,
        settings,
    } = prepared;
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
    let ring = Ring::new(pool, settings, describe(&health));
    crate::ring::serve(listener, ring, shutdown).await;
    drop(monitor);
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
        assert_eq!(p.pool.settings().strategy, StrategyKind::Consistent);
        assert_eq!(p.pool.snapshot().members()[0].backend().weight(), 3);
    }
}
