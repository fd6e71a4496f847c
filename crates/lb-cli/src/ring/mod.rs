//! `lb ring serve`: a pool of lb-core answered over the Redis protocol.
//!
//! A client asks `GET key` and gets the address of the backend that owns the key, exactly
//! as `lb route` and the admin API's `/api/v1/route` answer for the same membership
//! (they all call [`Snapshot::preferred`](lb_core::Snapshot::preferred) on a pool with the
//! same strategy, backends and ids). The ring carries no traffic itself: nginx's redis
//! modules, a Redis client library or `redis-cli` ask it where a key lives.
//!
//! ## Commands
//! | command | answer |
//! |---|---|
//! | `GET key` | the owner's `ip:port` as a bulk string; nil when no backend is usable |
//! | `MGET key [key ...]` | an array of those |
//! | `RING.ADD addr [weight]` | `+OK`; an error for a duplicate or a bad address/weight (0–256), or when the pool's membership comes from a file or DNS |
//! | `RING.DEL addr` | `+OK`; an error when `addr` is not a node, or when the membership comes from a file or DNS |
//! | `RING.NODES` | an array of `[addr, weight, state]` (`up`, `down`, `draining`, `ejected`) |
//! | `PING [msg]`, `ECHO msg` | `+PONG` / the message |
//! | `HELLO [2\|3] [AUTH u p] [SETNAME n]` | server facts; `3` switches the connection to RESP3 |
//! | `INFO [section]` | `server`, `clients`, `stats`, `ring` sections (`ring` shows the membership source and its last sync) |
//! | `SELECT db`, `CLIENT SETNAME\|SETINFO ...` | `+OK` (accepted, ignored) |
//! | `COMMAND ...`, `CONFIG GET ...` | an empty array (so `redis-cli` and `redis-benchmark` start quietly) |
//! | `QUIT` | `+OK`, then the connection closes |
//!
//! Anything else gets `-ERR unknown command`. A frame that can never be a command (see
//! [`proto`]) gets `-ERR Protocol error: ...` and the connection is closed; lengths are
//! bounded by [`proto::Limits`] before anything is buffered. Pipelined commands are parsed
//! from one read and answered with one write.
//!
//! ## Membership
//! A ring over `--backends` is static: `RING.ADD`/`RING.DEL` change this process only. A
//! ring over a config's pool ([`follow`]) serves that pool as lb-proxy runs it: its
//! discovery source (`file`, `dns`, `redis`) keeps the membership current, and
//! `RING.ADD`/`RING.DEL` go through the source as the admin API's writes do — to Redis for
//! a `redis` pool (so every proxy and ring server of the fleet follows), refused for
//! `file` and `dns` pools, whose membership is owned elsewhere.
//!
//! ## Health
//! Health is lb-core's: when the binary runs a [`HealthMonitor`](lb_core::health::HealthMonitor)
//! on the pool, a down node's keys go to the next node in preference order and come back
//! when it recovers; nothing else moves.
//!
//! ## Cost
//! A `GET` parses in place, picks with no lock and no allocation, and formats the address
//! on the stack; a batch of pipelined commands loads the pool's snapshot once.

mod exec;
pub mod follow;
pub mod proto;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lb_core::discovery::{PoolHandle, Source, StaticSource};
use lb_core::Pool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use proto::Limits;

/// Flush the reply buffer before it grows past this, even mid-batch.
const FLUSH_AT: usize = 64 << 10;
/// Keep at least this much free space in the read buffer before a read.
const READ_CHUNK: usize = 4096;
/// Buffers that grew past this are released once empty.
const SHRINK_ABOVE: usize = 64 << 10;

/// Settings of the ring server.
#[derive(Clone, Debug)]
pub struct RingSettings {
    /// Bounds on one command.
    pub limits: Limits,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Close a connection that sent nothing for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
}

impl Default for RingSettings {
    fn default() -> Self {
        RingSettings {
            limits: Limits::DEFAULT,
            max_connections: 10_000,
            idle_timeout: Some(Duration::from_secs(300)),
        }
    }
}

/// Counters shown by `INFO`.
#[derive(Debug, Default)]
struct Stats {
    connected: AtomicUsize,
    connections: AtomicU64,
    commands: AtomicU64,
    protocol_errors: AtomicU64,
}

/// A pool served over RESP.
pub struct Ring {
    pool: Arc<Pool>,
    /// Where membership comes from, and where `RING.ADD`/`RING.DEL` go.
    source: Arc<dyn Source>,
    settings: RingSettings,
    stats: Stats,
    started: Instant,
    health: String,
}

impl Ring {
    /// A static ring answering from `pool` (`RING.ADD`/`RING.DEL` change it locally);
    /// `health` describes its checks for `INFO` (e.g. `tcp every 1s`, or `none`).
    pub fn new(pool: Arc<Pool>, settings: RingSettings, health: impl Into<String>) -> Arc<Ring> {
        Ring::with_source(
            PoolHandle {
                pool,
                source: Arc::new(StaticSource),
            },
            settings,
            health,
        )
    }

    /// A ring answering from a pool with its membership source: `RING.ADD`/`RING.DEL`
    /// are written through `handle.source` (see [`follow`]).
    pub fn with_source(
        handle: PoolHandle,
        settings: RingSettings,
        health: impl Into<String>,
    ) -> Arc<Ring> {
        Arc::new(Ring {
            pool: handle.pool,
            source: handle.source,
            settings,
            stats: Stats::default(),
            started: Instant::now(),
            health: health.into(),
        })
    }

    /// The pool answered from.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("pool", &self.pool.name())
            .field("source", &self.source.kind())
            .field("health", &self.health)
            .finish()
    }
}

/// Serves `ring` on `listener` until `shutdown` resolves; open connections are closed
/// then (each command is answered whole or not at all).
pub async fn serve(listener: TcpListener, ring: Arc<Ring>, shutdown: impl Future<Output = ()>) {
    let max = ring.settings.max_connections;
    let mut next_id = 0u64;
    lb_core::server::accept_until(listener, max, shutdown, |stream, peer, stop| {
        next_id += 1;
        let id = next_id;
        let ring = ring.clone();
        let mut stop = stop.clone();
        async move {
            let _ = stream.set_nodelay(true);
            ring.stats.connections.fetch_add(1, Ordering::Relaxed);
            ring.stats.connected.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                r = connection(&ring, stream, id) => {
                    if let Err(e) = r {
                        tracing::debug!(client = %peer, error = %e, "ring connection ended");
                    }
                }
                _ = stop.stopped() => {}
            }
            ring.stats.connected.fetch_sub(1, Ordering::Relaxed);
        }
    })
    .await;
}

/// What the connection does after a command.
#[derive(Clone, Debug, PartialEq)]
enum After {
    Continue,
    /// `RING.ADD`/`RING.DEL`: write the change through the source (awaited in order, so
    /// pipelined replies stay in order), reply, then load the snapshot again.
    Write(lb_core::Change),
    /// Reply, then close (QUIT).
    Close,
}

/// Per-connection state.
struct Conn {
    id: u64,
    /// 2 or 3 (`HELLO 3`).
    proto: u8,
    args: Vec<std::ops::Range<usize>>,
}

#[allow(clippy::too_many_lines)] // the connection's read-execute-write loop with its limits, kept whole for the no-allocation proof
async fn connection(ring: &Ring, mut stream: TcpStream, id: u64) -> std::io::Result<()> {
    let limits = ring.settings.limits;
    let mut conn = Conn {
        id,
        proto: 2,
        args: Vec::with_capacity(8),
    };
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut need = 1usize;
    // The idle timer is armed once and moved only when it fires early (lazily), so a busy
    // connection does not register a timer per read.
    let mut idle = ring
        .settings
        .idle_timeout
        .map(|d| (d, Box::pin(tokio::time::sleep(d))));
    let mut last_read = tokio::time::Instant::now();
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK {
            buf.reserve(READ_CHUNK.max(need.saturating_sub(buf.len())));
        }
        let n = match &mut idle {
            None => stream.read_buf(&mut buf).await?,
            Some((limit, timer)) => loop {
                tokio::select! {
                    biased;
                    r = stream.read_buf(&mut buf) => break r?,
                    _ = timer.as_mut() => {
                        let deadline = last_read + *limit;
                        if tokio::time::Instant::now() >= deadline {
                            return Ok(());
                        }
                        timer.as_mut().reset(deadline);
                    }
                }
            },
        };
        if idle.is_some() {
            last_read = tokio::time::Instant::now();
        }
        if n == 0 {
            return Ok(());
        }
        if buf.len() < need {
            continue;
        }
        let mut pos = 0;
        let mut snap = ring.pool.snapshot();
        let mut done = 0u64;
        let mut close = false;
        loop {
            match proto::parse_command(&buf[pos..], &mut conn.args, &limits) {
                Ok(proto::Parsed::Command { used }) => {
                    let cmd = &buf[pos..pos + used];
                    pos += used;
                    if conn.args.is_empty() {
                        continue;
                    }
                    done += 1;
                    match exec::execute(ring, &mut conn, cmd, &snap, &mut out) {
                        After::Continue => {}
                        After::Write(change) => {
                            follow::write_through(ring, change, &mut out).await;
                            snap = ring.pool.snapshot();
                        }
                        After::Close => {
                            close = true;
                            break;
                        }
                    }
                    if out.len() >= FLUSH_AT {
                        stream.write_all(&out).await?;
                        out.clear();
                    }
                }
                Ok(proto::Parsed::Incomplete { need: n }) => {
                    need = n;
                    break;
                }
                Err(e) => {
                    ring.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    exec::error(&mut out, &format!("ERR Protocol error: {e}"));
                    close = true;
                    break;
                }
            }
        }
        ring.stats.commands.fetch_add(done, Ordering::Relaxed);
        buf.drain(..pos);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
        if buf.is_empty() && buf.capacity() > SHRINK_ABOVE {
            buf = Vec::with_capacity(READ_CHUNK);
        }
        if out.capacity() > SHRINK_ABOVE {
            out = Vec::with_capacity(READ_CHUNK);
        }
    }
}
