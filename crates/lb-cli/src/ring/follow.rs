//! A ring that follows a pool of an lb-proxy or lb-sni config (`lb ring serve --config
//! FILE --pool NAME`).
//!
//! The pool runs exactly as the proxies run it: [`start`] hands the config, cut down to
//! that one pool, to lb-core's [`build_pools`] — the same
//! call lb-proxy and lb-sni make — so the ring gets the same strategy, the same discovery
//! source (`file`, `dns` or `redis`) and the same health checks, and waits like them for
//! the source's first sync ([`discovery_ready`]).
//! Ring servers and proxies of one fleet that read the same membership therefore answer
//! the same backend for every key.
//!
//! Writes go through the source as the admin API's do ([`Source::write`](lb_core::discovery::Source::write)):
//! a `redis` pool runs them as Lua scripts on the shared hash and publishes them, so every
//! member of the fleet follows within its event delivery (at worst its `resync`); a
//! `static` pool applies them locally; `file` and `dns` pools refuse them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use lb_core::config::Config;
use lb_core::discovery::{SourceKind, WriteError};
use lb_core::server::{build_pools, discovery_ready, RunningPool, DISCOVERY_WAIT};
use lb_core::{Change, PoolError};

use super::exec::{error, simple};
use super::Ring;

/// Starts pool `name` of `config` as the proxies would run it: its membership source and
/// its health checks (stopped when the returned pool is dropped). Waits at most
/// [`DISCOVERY_WAIT`] for the source's first sync. Must run inside a tokio runtime.
pub async fn start(config: &Config, name: &str) -> Result<Arc<RunningPool>, String> {
    let mut only = config.clone();
    only.pools.retain(|n, _| n == name);
    if only.pools.is_empty() {
        return Err(format!("{}: no pool {name:?}", config.origin.display()));
    }
    let mut pools = build_pools(&only, &BTreeMap::new()).map_err(|e| e.to_string())?;
    let running = pools
        .remove(name)
        .ok_or_else(|| format!("pool.{name}: not started"))?;
    let waiting = BTreeMap::from([(name, &*running)]);
    discovery_ready(&waiting, DISCOVERY_WAIT).await;
    Ok(running)
}

/// Writes `change` (from `RING.ADD`/`RING.DEL`) through the ring's source and appends the
/// reply: `+OK`, or an error naming the node or the reason.
pub(super) async fn write_through(ring: &Ring, change: Change, out: &mut Vec<u8>) {
    let (verb, node) = match &change {
        Change::Add(b) => ("added", Some(b.addr())),
        Change::Remove(a) => ("removed", Some(*a)),
        _ => ("changed", None),
    };
    match ring.source.write(&ring.pool, change).await {
        Ok(()) => {
            tracing::info!(
                pool = ring.pool.name(),
                source = ring.source.kind().as_str(),
                node = ?node,
                "ring node {verb}"
            );
            simple(out, "OK");
        }
        Err(e) => {
            tracing::debug!(pool = ring.pool.name(), error = %e, "ring write refused");
            error(out, &write_error(ring, e));
        }
    }
}

/// The error reply for a refused write.
fn write_error(ring: &Ring, e: WriteError) -> String {
    match e {
        WriteError::Pool(PoolError::Duplicate(a)) => format!("ERR {a} is already a node of the ring"),
        WriteError::Pool(PoolError::UnknownBackend(a)) => format!("ERR {a} is not a node of the ring"),
        WriteError::Conflict(owner) => format!(
            "ERR pool {} takes its membership from {} discovery, so RING.ADD and RING.DEL are refused (they write to static and redis pools only); it comes from {owner}",
            ring.pool.name(),
            ring.source.kind().as_str()
        ),
        other => format!("ERR {other}"),
    }
}

/// Appends the `INFO ring` lines of the membership source: `source:` (`static`, `file`,
/// `dns`, `redis`), `last_sync:` (RFC 3339 UTC, `none` before the first or for a static
/// ring) and `last_sync_age_seconds:` (when there was one).
pub(super) fn info(ring: &Ring, s: &mut String) {
    let kind = ring.source.kind();
    s.push_str(&format!("source:{}\r\n", kind.as_str()));
    match ring.source.last_sync() {
        Some(t) => {
            let age = SystemTime::now()
                .duration_since(t)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            s.push_str(&format!(
                "last_sync:{}\r\nlast_sync_age_seconds:{age}\r\n",
                lb_core::admin::rfc3339(t)
            ));
        }
        None if kind == SourceKind::Static => s.push_str("last_sync:none\r\n"),
        None => s.push_str("last_sync:none (waiting for the first sync)\r\n"),
    }
}
