//! `discovery = { kind = "redis", url, key, resync }`: one membership shared by a fleet.
//!
//! ## Data model
//! A hash at `key`: field = backend address (`ip:port`, `[v6]:port`), value = weight
//! (`0`..`256`; `0` = draining). Every change is followed by `PUBLISH <key>:events <addr>`.
//! A missing key is an empty pool. A field that is not an address, or a value that is not a
//! weight, is skipped with a warning (every instance skips the same ones, so they still
//! agree). Backends are ordered by address and their placement id is the address, so
//! every instance that read the same hash builds the same table and sends every key to
//! the same backend.
//!
//! ## Keeping current
//! The task holds two connections: one `SUBSCRIBE`d to `<key>:events`, one for `HGETALL`.
//! It subscribes first, then reads the whole hash, so no change can fall between the two.
//! Every event (a burst is coalesced) and every `resync` period triggers a full `HGETALL`;
//! the result is published only when it differs from the pool's membership. The periodic
//! read is what makes a missed message (a write without `PUBLISH`, a dropped connection)
//! heal within `resync`, and it also detects a dead connection.
//!
//! ## Failures
//! On any error (refused, timeout, EOF, an error reply) both connections are dropped and
//! the task reconnects after a backoff that starts at 100 ms and doubles up to
//! `backoff_max` (5 s by default), with up to 25 % jitter. Meanwhile the pool keeps its
//! last good membership and keeps serving; `last_sync` stops advancing.
//!
//! ## Admin writes
//! [`Source::write`] runs one Lua script per change, so the change and its `PUBLISH` are
//! atomic and a check-then-write cannot race another instance:
//! add = `HSETNX` (409 if present), remove = `HDEL` (404 if absent), weight/drain = `HSET`
//! of an existing field (404 if absent). Draining writes weight `0`; `"state": "up"` on a
//! drained backend writes weight `1` (the hash keeps no earlier weight). `id` and `backup`
//! cannot be stored in the hash and are refused (400). After a write the instance re-reads
//! the hash before answering, so its own admin API shows the change at once; the others
//! follow on the event. While Redis is unreachable writes fail with 503.
//!
//! `redis://[user:password@]host[:port][/db]`: `AUTH` and `SELECT` are sent on connect.
//! No TLS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{publish, stopped, BoxFuture, Source, SourceKind, Stopper, SyncClock, WriteError};
use crate::backend::MAX_WEIGHT;
use crate::config::RedisUrl;
use crate::pool::{Change, Pool};
use crate::resp::{encode_command, parse_with, Frame, Limits};
use crate::{Backend, PoolError};

const BACKOFF_MIN: Duration = Duration::from_millis(100);

/// Reply bounds: a hash of up to 512 Ki backends.
const LIMITS: Limits = Limits {
    max_bulk_len: 64 * 1024,
    max_array_len: 1 << 20,
    max_depth: 4,
    max_line_len: 64 * 1024,
};

/// Add: `HSETNX` then `PUBLISH`. 1 = added, 0 = already present.
const ADD: &str = "if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then \
     redis.call('PUBLISH', ARGV[3], ARGV[1]) return 1 end return 0";
/// Remove: `HDEL` then `PUBLISH`. 1 = removed, 0 = absent.
const REMOVE: &str = "if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then \
     redis.call('PUBLISH', ARGV[3], ARGV[1]) return 1 end return 0";
/// Update an existing field; `ARGV[2] = ''` means "undrain": weight 0 becomes 1, others stay.
const UPDATE: &str = "local cur = redis.call('HGET', KEYS[1], ARGV[1]) \
     if not cur then return 0 end \
     local w = ARGV[2] if w == '' then if cur == '0' then w = '1' else w = cur end end \
     redis.call('HSET', KEYS[1], ARGV[1], w) redis.call('PUBLISH', ARGV[3], ARGV[1]) return 1";

/// What a `redis` source follows.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisSettings {
    /// The server.
    pub url: RedisUrl,
    /// The hash; events on `<key>:events`.
    pub key: String,
    /// Full re-read period.
    pub resync: Duration,
    /// Per connect and per command.
    pub timeout: Duration,
    /// Longest reconnect backoff.
    pub backoff_max: Duration,
}

/// Why talking to Redis failed.
#[derive(Debug, thiserror::Error)]
enum RedisError {
    #[error("{0}")]
    Io(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the server answered an error: {0}")]
    Server(String),
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

/// One RESP connection, used strictly request → reply (or, subscribed, reply after reply).
struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
}

impl Conn {
    async fn open(url: &RedisUrl, timeout: Duration) -> Result<Conn, RedisError> {
        let target = url.authority();
        let stream =
            tokio::time::timeout(timeout, TcpStream::connect((url.host.as_str(), url.port)))
                .await
                .map_err(|_| RedisError::Timeout(timeout))?
                .map_err(|e| RedisError::Io(format!("connect {target}: {e}")))?;
        // Latency over throughput: commands are small and rare.
        let _ = stream.set_nodelay(true);
        let mut c = Conn {
            stream,
            rbuf: Vec::with_capacity(4096),
        };
        if let Some(pass) = &url.password {
            match &url.username {
                Some(user) => {
                    c.call(&[b"AUTH", user.as_bytes(), pass.as_bytes()], timeout)
                        .await?
                }
                None => c.call(&[b"AUTH", pass.as_bytes()], timeout).await?,
            };
        }
        if url.db != 0 {
            let db = url.db.to_string();
            c.call(&[b"SELECT", db.as_bytes()], timeout).await?;
        }
        Ok(c)
    }

    async fn send(&mut self, args: &[&[u8]]) -> Result<(), RedisError> {
        let mut out = Vec::new();
        encode_command(args, &mut out);
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| RedisError::Io(format!("write: {e}")))
    }

    /// A whole frame already buffered, if any.
    fn buffered(&mut self) -> Result<Option<Frame>, RedisError> {
        match parse_with(&self.rbuf, &LIMITS) {
            Ok(Some((f, used))) => {
                self.rbuf.drain(..used);
                Ok(Some(f))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(RedisError::Protocol(e.to_string())),
        }
    }

    /// The next frame. Cancel-safe: bytes read so far stay in the buffer.
    async fn read(&mut self) -> Result<Frame, RedisError> {
        loop {
            if let Some(f) = self.buffered()? {
                return Ok(f);
            }
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) => return Err(RedisError::Io("connection closed".into())),
                Ok(_) => {}
                Err(e) => return Err(RedisError::Io(format!("read: {e}"))),
            }
        }
    }

    /// Sends a command and reads its reply within `timeout`; error replies are errors.
    async fn call(&mut self, args: &[&[u8]], timeout: Duration) -> Result<Frame, RedisError> {
        let exchange = async {
            self.send(args).await?;
            self.read().await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(RedisError::Timeout(timeout)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Frame::Error(e))) => Err(RedisError::Server(e)),
            Ok(Ok(Frame::BulkError(e))) => {
                Err(RedisError::Server(String::from_utf8_lossy(&e).into_owned()))
            }
            Ok(Ok(f)) => Ok(f),
        }
    }
}

struct Inner {
    settings: RedisSettings,
    channel: String,
    clock: SyncClock,
    /// Serialises read-then-publish, so a later read is never overwritten by an earlier.
    sync: tokio::sync::Mutex<()>,
    /// The connection admin writes use (opened on demand, dropped on any error).
    writer: tokio::sync::Mutex<Option<Conn>>,
    /// Skipped entries at the last read (logged when the count changes).
    skipped: AtomicUsize,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSource")
            .field("url", &self.settings.url)
            .field("key", &self.settings.key)
            .finish()
    }
}

impl Inner {
    /// `HGETALL` on `conn` and publish the result to `pool`.
    async fn sync(&self, conn: &mut Conn, pool: &Pool) -> Result<(), RedisError> {
        let _serial = self.sync.lock().await;
        let reply = conn
            .call(
                &[b"HGETALL", self.settings.key.as_bytes()],
                self.settings.timeout,
            )
            .await?;
        let (backends, skipped) = membership(reply)?;
        if self.skipped.swap(skipped.len(), Ordering::Relaxed) != skipped.len()
            && !skipped.is_empty()
        {
            tracing::warn!(pool = pool.name(), key = %self.settings.key, skipped = ?skipped, "redis discovery: entries that are not addr → weight (0-256) are ignored");
        }
        let n = backends.len();
        match publish(pool, backends) {
            Ok(true) => {
                tracing::info!(pool = pool.name(), key = %self.settings.key, backends = n, "redis discovery: membership changed")
            }
            Ok(false) => {}
            // Cannot happen: addresses are unique hash fields and ids are the addresses.
            Err(e) => {
                tracing::warn!(pool = pool.name(), error = %e, "redis discovery: membership refused by the pool")
            }
        }
        self.clock.mark();
        Ok(())
    }

    /// One connected stretch: subscribe, read, then follow events and the resync timer.
    /// `Ok(())` means stop (asked to, or the pool is gone).
    async fn session(
        &self,
        pool: &Weak<Pool>,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
        failing: &mut bool,
    ) -> Result<(), RedisError> {
        let s = &self.settings;
        let mut sub = Conn::open(&s.url, s.timeout).await?;
        sub.send(&[b"SUBSCRIBE", self.channel.as_bytes()]).await?;
        match tokio::time::timeout(s.timeout, sub.read()).await {
            Err(_) => return Err(RedisError::Timeout(s.timeout)),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Frame::Error(e))) => return Err(RedisError::Server(e)),
            Ok(Ok(_)) => {}
        }
        let mut cmd = Conn::open(&s.url, s.timeout).await?;
        let Some(p) = pool.upgrade() else {
            return Ok(());
        };
        self.sync(&mut cmd, &p).await?;
        drop(p);
        *backoff = BACKOFF_MIN;
        if std::mem::take(failing) {
            tracing::info!(key = %s.key, "redis discovery: reconnected and resynced");
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + s.resync, s.resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped(stop) => return Ok(()),
                frame = sub.read() => {
                    if !is_message(&frame?) {
                        continue;
                    }
                    // Coalesce a burst: every event already read triggers one read.
                    while sub.buffered()?.is_some() {}
                }
                _ = tick.tick() => {}
            }
            let Some(p) = pool.upgrade() else {
                return Ok(());
            };
            self.sync(&mut cmd, &p).await?;
        }
    }

    /// Runs one admin write, then re-reads the hash so this instance shows it at once.
    async fn write(&self, pool: &Pool, change: Change) -> Result<(), WriteError> {
        let key = self.settings.key.as_bytes();
        let (script, addr, weight) = match &change {
            Change::Add(b) => {
                if b.is_backup() || b.id() != b.addr().to_string() {
                    return Err(WriteError::Unsupported(
                        "a redis pool stores only addr → weight: id and backup are not supported",
                    ));
                }
                (ADD, b.addr(), b.weight().to_string())
            }
            Change::Remove(a) => (REMOVE, *a, String::new()),
            Change::Update {
                addr,
                weight,
                draining,
            } => {
                let w = match (weight, draining) {
                    (_, Some(true)) => "0".to_owned(),
                    (Some(w), _) => {
                        crate::backend::check_weight(*w)?;
                        w.to_string()
                    }
                    (None, _) => String::new(),
                };
                (UPDATE, *addr, w)
            }
            Change::Reset(_) => {
                return Err(WriteError::Unsupported(
                    "replacing a redis pool's whole membership is done in Redis",
                ))
            }
        };
        let a = addr.to_string();
        let s = &self.settings;
        let unavailable =
            |e: RedisError| WriteError::Unavailable(format!("redis {}: {e}", s.url.authority()));
        let mut guard = self.writer.lock().await;
        // A kept connection may have died with a Redis restart since the last write: check
        // it with a PING (writes are rare) rather than fail the write on it.
        if let Some(conn) = guard.as_mut() {
            if conn.call(&[b"PING"], s.timeout).await.is_err() {
                *guard = None;
            }
        }
        if guard.is_none() {
            *guard = Some(Conn::open(&s.url, s.timeout).await.map_err(unavailable)?);
        }
        // Just filled above when it was empty.
        let Some(conn) = guard.as_mut() else {
            return Err(WriteError::Unavailable("no connection".into()));
        };
        let args: [&[u8]; 7] = [
            b"EVAL",
            script.as_bytes(),
            b"1",
            key,
            a.as_bytes(),
            weight.as_bytes(),
            self.channel.as_bytes(),
        ];
        let result = async {
            let r = conn.call(&args, s.timeout).await?;
            self.sync(conn, pool).await?;
            Ok::<_, RedisError>(r)
        }
        .await;
        let reply = match result {
            Ok(r) => r,
            Err(e) => {
                *guard = None;
                return Err(unavailable(e));
            }
        };
        match (reply, &change) {
            (Frame::Integer(1), _) => Ok(()),
            (Frame::Integer(0), Change::Add(_)) => Err(PoolError::Duplicate(addr).into()),
            (Frame::Integer(0), _) => Err(PoolError::UnknownBackend(addr).into()),
            (other, _) => Err(WriteError::Unavailable(format!(
                "redis answered {other:?} to a membership write"
            ))),
        }
    }
}

/// Is this a pub/sub `message` (RESP2 array or RESP3 push)?
fn is_message(f: &Frame) -> bool {
    let items = match f {
        Frame::Array(Some(items)) | Frame::Push(items) => items,
        _ => return false,
    };
    matches!(items.first(), Some(Frame::Bulk(Some(kind))) if kind.as_slice() == b"message")
}

/// An `HGETALL` reply → backends sorted by address, and the fields that were skipped.
fn membership(reply: Frame) -> Result<(Vec<Backend>, Vec<String>), RedisError> {
    let pairs: Vec<(Frame, Frame)> = match reply {
        Frame::Array(Some(items)) => {
            if items.len() % 2 != 0 {
                return Err(RedisError::Protocol("HGETALL answered an odd count".into()));
            }
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        Frame::Array(None) | Frame::Null => Vec::new(),
        Frame::Map(pairs) => pairs,
        other => return Err(RedisError::Protocol(format!("HGETALL answered {other:?}"))),
    };
    let text = |f: &Frame| match f {
        Frame::Bulk(Some(b)) => std::str::from_utf8(b).ok().map(str::to_owned),
        Frame::Simple(s) => Some(s.clone()),
        _ => None,
    };
    let mut backends = Vec::with_capacity(pairs.len());
    let mut skipped = Vec::new();
    for (k, v) in pairs {
        let field = text(&k);
        let addr = field.as_deref().and_then(|s| s.parse::<SocketAddr>().ok());
        let weight = text(&v)
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|w| *w <= u32::from(MAX_WEIGHT));
        match (addr, weight) {
            (Some(a), Some(w)) => {
                let b = Backend::new(a);
                // w <= MAX_WEIGHT was checked above.
                backends.push(b.clone().with_weight(w).unwrap_or(b));
            }
            _ => skipped.push(field.unwrap_or_else(|| format!("{k:?}"))),
        }
    }
    backends.sort_by_key(|b| b.addr());
    backends.dedup_by_key(|b| b.addr());
    Ok((backends, skipped))
}

/// The `redis` source: see the module docs.
#[derive(Debug)]
pub struct RedisSource {
    inner: Arc<Inner>,
    stopper: Stopper,
}

impl RedisSource {
    /// Spawns the task that connects, reads the hash and follows it until the source or
    /// the pool is dropped. Must run inside a tokio runtime.
    pub fn spawn(pool: Arc<Pool>, settings: RedisSettings) -> RedisSource {
        let inner = Arc::new(Inner {
            channel: format!("{}:events", settings.key),
            settings,
            clock: SyncClock::default(),
            sync: tokio::sync::Mutex::new(()),
            writer: tokio::sync::Mutex::new(None),
            skipped: AtomicUsize::new(0),
        });
        let (stopper, rx) = Stopper::new();
        tokio::spawn(run(inner.clone(), Arc::downgrade(&pool), rx));
        RedisSource { inner, stopper }
    }
}

async fn run(inner: Arc<Inner>, pool: Weak<Pool>, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    loop {
        let e = match inner
            .session(&pool, &mut stop, &mut backoff, &mut failing)
            .await
        {
            Ok(()) => return,
            Err(e) => e,
        };
        let Some(p) = pool.upgrade() else { return };
        let key = &inner.settings.key;
        if !failing {
            tracing::warn!(pool = p.name(), %key, error = %e, "redis discovery: store unreachable; keeping the last good membership and reconnecting");
            failing = true;
        } else {
            tracing::debug!(pool = p.name(), %key, error = %e, retry_in = ?backoff, "redis discovery: still unreachable");
        }
        drop(p);
        let jitter = backoff.mul_f64((crate::hash::thread_random() % 256) as f64 / 1024.0);
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(inner.settings.backoff_max.max(BACKOFF_MIN));
    }
}

impl Source for RedisSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Redis
    }
    fn last_sync(&self) -> Option<SystemTime> {
        self.inner.clock.get()
    }
    fn write<'a>(
        &'a self,
        pool: &'a Pool,
        change: Change,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(self.inner.write(pool, change))
    }
    fn stop(&self) {
        self.stopper.stop();
    }
    fn ready(&self) -> BoxFuture<'_, ()> {
        self.inner.clock.synced()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Some(s.as_bytes().to_vec()))
    }

    #[test]
    fn hgetall_replies() {
        let reply = Frame::Array(Some(vec![
            bulk("127.0.0.2:80"),
            bulk("2"),
            bulk("127.0.0.1:80"),
            bulk("0"),
            bulk("not-an-addr"),
            bulk("1"),
            bulk("127.0.0.3:80"),
            bulk("257"),
        ]));
        let (b, skipped) = membership(reply).unwrap();
        let got: Vec<_> = b
            .iter()
            .map(|b| (b.addr().to_string(), b.weight()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("127.0.0.1:80".to_owned(), 0),
                ("127.0.0.2:80".to_owned(), 2)
            ]
        );
        assert_eq!(skipped, vec!["not-an-addr", "127.0.0.3:80"]);
        assert_eq!(membership(Frame::Array(Some(vec![]))).unwrap().0, vec![]);
        assert!(membership(Frame::Array(Some(vec![bulk("x")]))).is_err());
        assert!(membership(Frame::Integer(1)).is_err());
        let map = Frame::Map(vec![(bulk("[::1]:9"), bulk("3"))]);
        assert_eq!(membership(map).unwrap().0[0].weight(), 3);
    }

    #[test]
    fn messages() {
        assert!(is_message(&Frame::Array(Some(vec![
            bulk("message"),
            bulk("k:events"),
            bulk("127.0.0.1:1")
        ]))));
        assert!(!is_message(&Frame::Array(Some(vec![
            bulk("subscribe"),
            bulk("k:events"),
            Frame::Integer(1)
        ]))));
        assert!(!is_message(&Frame::Simple("OK".into())));
    }
}
