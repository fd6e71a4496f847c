//! [`RespResolver`]: a Redis-protocol directory, `[resolver.X] kind = "resp"`.
//!
//! A lookup sends `GET <prefix><name>` and reads the reply:
//!
//! | reply | result |
//! |---|---|
//! | bulk (or simple) string: one `h:p`, or several separated by commas and/or spaces | `Found` |
//! | `pool:NAME` (or, with [`RespResolver::with_bare_pool`], a bare word) | `Pool` |
//! | nil (`$-1`, or RESP3 `_`) | `NotFound` |
//! | an error reply | `Unavailable` |
//! | an empty list, a bad endpoint, any other type | `BadAnswer` |
//! | nothing within `timeout` (including connecting) | `Timeout` |
//!
//! ## Connection
//! One persistent TCP connection, opened on the first lookup, carries every lookup:
//! concurrent commands are pipelined on it and replies matched in FIFO order (see
//! `conn`). When the connection fails, every lookup waiting on it gets `Unavailable`
//! and the next lookup reconnects. A lookup that times out also drops the connection:
//! a directory that stopped answering is more likely dead than slow, and replies to
//! abandoned commands would otherwise queue up behind it.
//!
//! Works against Redis, Valkey, KeyDB, or `lb ring serve`. The URL form is
//! `redis://host:port` (port defaults to 6379); `AUTH`, database selection and TLS are
//! not supported.

mod conn;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use self::conn::Request;
use super::{parse_text_answer, BoxFuture, Resolution, ResolveError, Resolver};
use crate::resp::{encode_command, Frame};

/// Requests queued towards the connection task before callers wait.
const QUEUE: usize = 1024;

/// Why a `redis://` URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RespUrlError {
    /// Not a `redis://` URL.
    #[error("url {0:?} must start with redis://")]
    NotRedis(String),
    /// No host, or a bad port.
    #[error("url {url:?} is invalid: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Where the directory is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Addr(SocketAddr),
    /// A host name, looked up at each connect.
    Host(String, u16),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Host(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// The live connection: its id and the channel to its task.
#[derive(Clone, Debug)]
struct Conn {
    id: u64,
    tx: mpsc::Sender<Request>,
}

/// A Redis-protocol directory; see the module docs.
#[derive(Debug)]
pub struct RespResolver {
    target: Target,
    prefix: String,
    timeout: Duration,
    bare_pool: bool,
    current: Mutex<Option<Conn>>,
    /// Serialises connecting, so concurrent first lookups open one connection.
    connecting: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

impl RespResolver {
    /// A resolver asking the server at `addr` for `GET <prefix><name>`, each lookup
    /// within `timeout`. Nothing is connected until the first lookup.
    pub fn new(addr: SocketAddr, prefix: impl Into<String>, timeout: Duration) -> Self {
        Self::with_target(Target::Addr(addr), prefix.into(), timeout)
    }

    /// Like [`RespResolver::new`] from a `redis://host[:port][/]` URL.
    ///
    /// ```
    /// use lb_core::resolve::RespResolver;
    /// use std::time::Duration;
    ///
    /// assert!(RespResolver::from_url("redis://127.0.0.1:6379", "backend:", Duration::from_secs(1)).is_ok());
    /// assert!(RespResolver::from_url("redis://[::1]", "", Duration::from_secs(1)).is_ok());
    /// assert!(RespResolver::from_url("http://127.0.0.1:6379", "", Duration::from_secs(1)).is_err());
    /// ```
    pub fn from_url(
        url: &str,
        prefix: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, RespUrlError> {
        Ok(Self::with_target(parse_url(url)?, prefix.into(), timeout))
    }

    /// With `true` (`bare = "pool"`), a value that is one word without `:` names a pool
    /// (`pod0`), as `pool:pod0` always does.
    pub fn with_bare_pool(mut self, bare_pool: bool) -> Self {
        self.bare_pool = bare_pool;
        self
    }

    fn with_target(target: Target, prefix: String, timeout: Duration) -> Self {
        RespResolver {
            target,
            prefix,
            timeout,
            bare_pool: false,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Sends one command and waits for its reply, within the timeout.
    pub async fn command(&self, args: &[&[u8]]) -> Result<Frame, ResolveError> {
        let mut cmd = Vec::new();
        encode_command(args, &mut cmd);
        let mut used = None;
        match tokio::time::timeout(self.timeout, self.roundtrip(cmd, &mut used)).await {
            Ok(reply) => reply,
            Err(_) => {
                if let Some(id) = used {
                    self.drop_conn(id);
                }
                Err(ResolveError::Timeout(self.timeout))
            }
        }
    }

    async fn roundtrip(&self, cmd: Vec<u8>, used: &mut Option<u64>) -> Result<Frame, ResolveError> {
        let conn = self.connection().await?;
        *used = Some(conn.id);
        let (reply, rx) = oneshot::channel();
        let closed = || ResolveError::Unavailable(format!("{}: connection closed", self.target));
        conn.tx
            .send(Request { cmd, reply })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// The live connection, connecting if there is none.
    async fn connection(&self) -> Result<Conn, ResolveError> {
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let stream = self.connect().await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let conn = Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
        };
        tokio::spawn(conn::run(stream, rx, self.target.to_string()));
        *lock(&self.current) = Some(conn.clone());
        Ok(conn)
    }

    fn live(&self) -> Option<Conn> {
        lock(&self.current)
            .as_ref()
            .filter(|c| !c.tx.is_closed())
            .cloned()
    }

    fn drop_conn(&self, id: u64) {
        let mut current = lock(&self.current);
        if current.as_ref().is_some_and(|c| c.id == id) {
            *current = None;
        }
    }

    async fn connect(&self) -> Result<TcpStream, ResolveError> {
        let fail =
            |e: std::io::Error| ResolveError::Unavailable(format!("connect {}: {e}", self.target));
        let stream = match &self.target {
            Target::Addr(a) => TcpStream::connect(a).await,
            Target::Host(h, p) => TcpStream::connect((h.as_str(), *p)).await,
        }
        .map_err(fail)?;
        stream.set_nodelay(true).map_err(fail)?;
        Ok(stream)
    }
}

/// Locks a mutex, ignoring poisoning (the guarded `Option` is always consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parses `redis://host[:port][/]`.
fn parse_url(url: &str) -> Result<Target, RespUrlError> {
    let invalid = |reason| RespUrlError::Invalid {
        url: url.to_string(),
        reason,
    };
    let rest = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("redis://"))
        .map(|_| &url[8..])
        .ok_or_else(|| RespUrlError::NotRedis(url.to_string()))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(invalid("AUTH (user info) is not supported"));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(invalid("database selection and options are not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid("unclosed [ in host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    let port = match port {
        None => 6379,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid("bad port"))?,
    };
    Ok(match host.parse() {
        Ok(ip) => Target::Addr(SocketAddr::new(ip, port)),
        Err(_) => Target::Host(host.to_ascii_lowercase(), port),
    })
}

/// Interprets the reply to `GET` (no bare pool names).
#[cfg(test)]
fn interpret(frame: Frame) -> Result<Resolution, ResolveError> {
    interpret_with(frame, false)
}

/// Interprets the reply to `GET`; `bare_pool`: see [`parse_text_answer`].
fn interpret_with(frame: Frame, bare_pool: bool) -> Result<Resolution, ResolveError> {
    let text = match frame {
        Frame::Bulk(None) | Frame::Null => return Ok(Resolution::NotFound),
        Frame::Bulk(Some(bytes)) => String::from_utf8(bytes)
            .map_err(|_| ResolveError::BadAnswer("endpoint list is not UTF-8".into()))?,
        Frame::Simple(s) => s,
        Frame::Error(e) => return Err(ResolveError::Unavailable(e)),
        Frame::BulkError(e) => {
            return Err(ResolveError::Unavailable(
                String::from_utf8_lossy(&e).into_owned(),
            ))
        }
        other => {
            return Err(ResolveError::BadAnswer(format!(
                "unexpected reply {other:?}"
            )))
        }
    };
    parse_text_answer(&text, bare_pool)
}

impl Resolver for RespResolver {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        Box::pin(async move {
            let key = [self.prefix.as_bytes(), name.as_bytes()].concat();
            interpret_with(self.command(&[b"GET", &key]).await?, self.bare_pool)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn urls() {
        let addr = |s: &str| Target::Addr(s.parse().unwrap());
        assert_eq!(
            parse_url("redis://127.0.0.1:7000"),
            Ok(addr("127.0.0.1:7000"))
        );
        assert_eq!(parse_url("REDIS://127.0.0.1/"), Ok(addr("127.0.0.1:6379")));
        assert_eq!(parse_url("redis://[::1]:7001"), Ok(addr("[::1]:7001")));
        assert_eq!(
            parse_url("redis://Dir.Local:7"),
            Ok(Target::Host("dir.local".into(), 7))
        );
        for bad in [
            "redis://",
            "redis://:1",
            "redis://h:0",
            "redis://h:x",
            "redis://u:p@h",
            "redis://h/1",
            "redis://[::1",
        ] {
            assert!(
                matches!(parse_url(bad), Err(RespUrlError::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_url("http://h"),
            Err(RespUrlError::NotRedis(_))
        ));
    }

    #[test]
    fn replies() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "[::1]:2".parse().unwrap();
        let bulk = |s: &str| Frame::Bulk(Some(s.as_bytes().to_vec()));
        assert_eq!(
            interpret(bulk("127.0.0.1:1")),
            Ok(Resolution::Found(Arc::from(vec![a])))
        );
        assert_eq!(
            interpret(bulk(" 127.0.0.1:1, [::1]:2 ")),
            Ok(Resolution::Found(Arc::from(vec![a, b])))
        );
        assert_eq!(
            interpret(bulk("127.0.0.1:1 [::1]:2")),
            Ok(Resolution::Found(Arc::from(vec![a, b])))
        );
        assert_eq!(
            interpret(bulk("pool:pod0")),
            Ok(Resolution::Pool(Arc::from("pod0")))
        );
        assert!(interpret(bulk("pod0")).is_err());
        assert_eq!(
            interpret_with(bulk("pod0"), true),
            Ok(Resolution::Pool(Arc::from("pod0")))
        );
        assert!(interpret(bulk("pool:")).is_err());
        assert_eq!(interpret(Frame::Bulk(None)), Ok(Resolution::NotFound));
        assert_eq!(interpret(Frame::Null), Ok(Resolution::NotFound));
        assert_eq!(
            interpret(Frame::Error("WRONGTYPE x".into())),
            Err(ResolveError::Unavailable("WRONGTYPE x".into()))
        );
        assert!(matches!(
            interpret(bulk(" , ")),
            Err(ResolveError::BadAnswer(_))
        ));
        assert!(matches!(
            interpret(bulk("127.0.0.1")),
            Err(ResolveError::BadAnswer(_))
        ));
        assert!(matches!(
            interpret(Frame::Integer(1)),
            Err(ResolveError::BadAnswer(_))
        ));
    }
}
