//! `discovery = { kind = "file", path }`: a watched file of backends.
//!
//! The file is JSON or TOML, chosen by its extension (`.json`, `.toml`); any other name is
//! read as JSON when it parses as JSON, else as TOML. Both hold a list of backends, each
//! `"ip:port"` or a table `{ addr, weight = 1, id = addr, backup = false }`:
//!
//! ```json
//! ["10.0.0.1:8080", {"addr": "10.0.0.2:8080", "weight": 2}]
//! ```
//! ```toml
//! backends = ["10.0.0.1:8080", { addr = "10.0.0.2:8080", weight = 2 }]
//! ```
//! (JSON also accepts `{"backends": [...]}`.) Unknown keys, bad addresses, weights above 256,
//! and duplicate addresses or ids reject the whole file.
//!
//! ## Watching
//! The task polls the file every second (a `stat`-free read of a small file; no inotify, so
//! it works the same on every filesystem, including bind mounts and ConfigMap symlink
//! swaps). When the bytes change, the new list is parsed and published. A file that does
//! not parse — a half-written file, a syntax error, a bad entry — is logged once and the
//! last good membership stays; so does a file that disappears. Every poll also
//! re-asserts the last good list, so the file stays the pool's only owner (a change made
//! behind its back is undone within a poll). Write the file elsewhere
//! and `rename(2)` it into place for an atomic update. A JSON document cut short anywhere
//! is always invalid (its closing bracket is missing); a TOML file cut at a line boundary
//! can still be valid TOML, which is a reason to prefer JSON or the rename.

use std::collections::HashSet;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::watch;

use super::{publish, stopped, BoxFuture, Source, SourceKind, Stopper, SyncClock, WriteError};
use crate::backend::MAX_WEIGHT;
use crate::pool::{Change, Pool};
use crate::Backend;

/// Files larger than this are refused (a membership list is small).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The syntax of a backends file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// JSON: a list, or `{"backends": [...]}`.
    Json,
    /// TOML: `backends = [...]`.
    Toml,
}

impl FileFormat {
    /// The format named by a path's extension (`.json`, `.toml`), if any.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(FileFormat::Json),
            "toml" => Some(FileFormat::Toml),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FileFormat::Json => "JSON",
            FileFormat::Toml => "TOML",
        }
    }
}

/// Why a backends file was rejected (the pool keeps its last good membership).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
    /// The file is larger than 16 MiB.
    #[error("the file is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    /// Not valid JSON/TOML (for example a half-written file).
    #[error("not valid {format}: {message}")]
    Syntax {
        /// `JSON` or `TOML`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// Valid syntax, but not a list of backends.
    #[error("expected a list of backends, or a table with backends = [...]")]
    Shape,
    /// The pool refused the list (cannot happen for a list that parsed; kept for safety).
    #[error(transparent)]
    Pool(#[from] crate::PoolError),
    /// One entry is wrong.
    #[error("backends[{index}]: {error}")]
    Entry {
        /// Position in the list, from 0.
        index: usize,
        /// What is wrong with it.
        error: EntryError,
    },
}

/// What is wrong with one entry of a backends file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Neither `"ip:port"` nor a table.
    #[error("expected \"ip:port\" or {{ addr, weight, id, backup }}")]
    Type,
    /// A table without `addr`.
    #[error("missing addr")]
    MissingAddr,
    /// A key other than addr, weight, id, backup.
    #[error("unknown key {0:?}: expected addr, weight, id or backup")]
    UnknownKey(String),
    /// Not an IP literal with a port.
    #[error("{0:?} is not an address: expected ip:port or [ipv6]:port")]
    BadAddress(String),
    /// A weight that is not an integer in 0..=256.
    #[error("weight {0} is out of range: expected 0 (drain) to 256")]
    BadWeight(String),
    /// An `id` that is empty or not a string.
    #[error("id must be a non-empty string")]
    BadId,
    /// A `backup` that is not a boolean.
    #[error("backup must be true or false")]
    BadBackup,
    /// The address appears twice.
    #[error("backend {0} is listed twice")]
    DuplicateAddr(SocketAddr),
    /// The id appears twice.
    #[error("id {0:?} is used twice")]
    DuplicateId(String),
}

/// Parses a backends file (see the module docs). `format = None` tries JSON, then TOML.
///
/// ```
/// use lb_core::discovery::{parse_backends, FileFormat};
///
/// let b = parse_backends(r#"["127.0.0.1:1", {"addr": "[::1]:2", "weight": 3}]"#, Some(FileFormat::Json)).unwrap();
/// assert_eq!((b.len(), b[1].weight()), (2, 3));
/// let b = parse_backends("backends = [\"127.0.0.1:1\"]\n", None).unwrap();
/// assert_eq!(b[0].addr().to_string(), "127.0.0.1:1");
/// assert!(parse_backends(r#"["127.0.0.1:1", "127.0.0"#, None).is_err()); // cut short
/// ```
pub fn parse_backends(text: &str, format: Option<FileFormat>) -> Result<Vec<Backend>, FileError> {
    let value = match format {
        Some(f) => parse_value(text, f)?,
        None => match parse_value(text, FileFormat::Json) {
            Ok(v) => v,
            Err(json_err) => match parse_value(text, FileFormat::Toml) {
                Ok(v) => v,
                // Report the error of the syntax the file looks like.
                Err(toml_err) => {
                    let looks_json = text.trim_start().starts_with(['{', '['])
                        && !text.trim_start().starts_with("[[");
                    return Err(if looks_json { json_err } else { toml_err });
                }
            },
        },
    };
    let list = match value {
        Value::Array(list) => list,
        Value::Object(mut map) => match map.remove("backends") {
            Some(Value::Array(list)) if map.is_empty() => list,
            _ => return Err(FileError::Shape),
        },
        _ => return Err(FileError::Shape),
    };
    let mut addrs = HashSet::with_capacity(list.len());
    let mut ids = HashSet::with_capacity(list.len());
    let mut out = Vec::with_capacity(list.len());
    for (index, v) in list.into_iter().enumerate() {
        let fail = |error| FileError::Entry { index, error };
        let b = entry(v).map_err(fail)?;
        if !addrs.insert(b.addr()) {
            return Err(fail(EntryError::DuplicateAddr(b.addr())));
        }
        if !ids.insert(b.id().to_owned()) {
            return Err(fail(EntryError::DuplicateId(b.id().to_owned())));
        }
        out.push(b);
    }
    Ok(out)
}

fn parse_value(text: &str, format: FileFormat) -> Result<Value, FileError> {
    let syntax = |message: String| FileError::Syntax {
        format: format.name(),
        message,
    };
    match format {
        FileFormat::Json => serde_json::from_str(text).map_err(|e| syntax(e.to_string())),
        FileFormat::Toml => toml_edit::de::from_str::<Value>(text)
            .map_err(|e| syntax(e.to_string().trim_end().replace('\n', " "))),
    }
}

fn entry(v: Value) -> Result<Backend, EntryError> {
    let addr = |s: &str| {
        s.parse::<SocketAddr>()
            .map_err(|_| EntryError::BadAddress(s.to_owned()))
    };
    let mut map = match v {
        Value::String(s) => return Ok(Backend::new(addr(&s)?)),
        Value::Object(map) => map,
        _ => return Err(EntryError::Type),
    };
    if let Some(k) = map
        .keys()
        .find(|k| !["addr", "weight", "id", "backup"].contains(&k.as_str()))
    {
        return Err(EntryError::UnknownKey(k.clone()));
    }
    let a = match map.remove("addr") {
        Some(Value::String(s)) => addr(&s)?,
        Some(other) => return Err(EntryError::BadAddress(other.to_string())),
        None => return Err(EntryError::MissingAddr),
    };
    let mut b = Backend::new(a);
    if let Some(w) = map.remove("weight") {
        let n = w
            .as_u64()
            .filter(|n| *n <= u64::from(MAX_WEIGHT))
            .ok_or_else(|| EntryError::BadWeight(w.to_string()))?;
        // n <= 256 was checked just above, so with_weight cannot fail.
        b = b
            .with_weight(n as u32)
            .map_err(|_| EntryError::BadWeight(w.to_string()))?;
    }
    match map.remove("id") {
        Some(Value::String(id)) if !id.is_empty() => b = b.with_id(id),
        Some(_) => return Err(EntryError::BadId),
        None => {}
    }
    match map.remove("backup") {
        Some(Value::Bool(x)) => b = b.with_backup(x),
        Some(_) => return Err(EntryError::BadBackup),
        None => {}
    }
    Ok(b)
}

/// Reads at most [`MAX_FILE_BYTES`]; `Ok(None)` when the file does not exist.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::Io(e.to_string())),
    };
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| FileError::Io(e.to_string()))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    Ok(Some(buf))
}

/// What the poller last saw, so an unchanged file is neither re-parsed nor re-logged.
#[derive(Debug, PartialEq)]
enum Seen {
    Nothing,
    Missing,
    Failed(String),
    Content(u64),
}

/// The poller's memory: what it saw, and the last good list it published.
#[derive(Debug)]
struct PollState {
    seen: Seen,
    good: Option<Vec<Backend>>,
}

impl PollState {
    /// Re-asserts the last good list: if anything else wrote the pool meanwhile (a source
    /// being replaced by a reload), the file wins again on the next poll. A no-op when the
    /// pool already holds it.
    fn reassert(&self, pool: &Pool) {
        if let Some(good) = &self.good {
            if let Ok(true) = publish(pool, good.clone()) {
                tracing::info!(pool = pool.name(), "discovery file: membership restored");
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    format: Option<FileFormat>,
    clock: SyncClock,
}

impl Inner {
    /// One poll: read, and publish when the bytes changed and parse.
    fn poll(&self, pool: &Pool, st: &mut PollState) {
        let pname = pool.name();
        let path = self.path.display();
        let bytes = match read_file(&self.path) {
            Ok(Some(b)) => b,
            Ok(None) => {
                if st.seen != Seen::Missing {
                    tracing::warn!(pool = pname, %path, "discovery file does not exist; keeping the last good membership");
                    st.seen = Seen::Missing;
                }
                return st.reassert(pool);
            }
            Err(e) => {
                let msg = e.to_string();
                if st.seen != Seen::Failed(msg.clone()) {
                    tracing::warn!(pool = pname, %path, error = %msg, "discovery file unreadable; keeping the last good membership");
                    st.seen = Seen::Failed(msg);
                }
                return st.reassert(pool);
            }
        };
        let digest = xxhash_rust::xxh3::xxh3_64(&bytes);
        if st.seen == Seen::Content(digest) {
            self.clock.mark();
            return st.reassert(pool);
        }
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| FileError::Syntax {
                format: "UTF-8",
                message: e.to_string(),
            })
            .and_then(|t| parse_backends(t, self.format))
            .and_then(|b| {
                let changed = publish(pool, b.clone())?;
                Ok((b, changed))
            });
        match parsed {
            Ok((list, changed)) => {
                self.clock.mark();
                st.seen = Seen::Content(digest);
                st.good = Some(list);
                if changed {
                    let n = pool.snapshot().members().len();
                    tracing::info!(pool = pname, %path, backends = n, "discovery file loaded");
                }
            }
            Err(e) => {
                // Remember the bad bytes' digest as a failure so it is logged once; a later
                // good write changes the bytes and is picked up.
                let msg = format!("{digest:x}: {e}");
                if st.seen != Seen::Failed(msg.clone()) {
                    tracing::warn!(pool = pname, %path, error = %e, "discovery file rejected; keeping the last good membership");
                    st.seen = Seen::Failed(msg);
                }
                st.reassert(pool);
            }
        }
    }
}

/// The `file` source: see the module docs.
#[derive(Debug)]
pub struct FileSource {
    inner: Arc<Inner>,
    stopper: Stopper,
}

impl FileSource {
    /// Reads `path` once (publishing it if it is good), then polls it every `interval` in
    /// a background task until the source or the pool is dropped. `format = None` picks it
    /// from the extension, or tries JSON then TOML. Must run inside a tokio runtime.
    pub fn spawn(pool: Arc<Pool>, path: PathBuf, interval: Duration) -> FileSource {
        let format = FileFormat::from_path(&path);
        let inner = Arc::new(Inner {
            path,
            format,
            clock: SyncClock::default(),
        });
        let (stopper, rx) = Stopper::new();
        let mut state = PollState {
            seen: Seen::Nothing,
            good: None,
        };
        inner.poll(&pool, &mut state);
        tokio::spawn(run(
            inner.clone(),
            Arc::downgrade(&pool),
            interval,
            state,
            rx,
        ));
        FileSource { inner, stopper }
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

async fn run(
    inner: Arc<Inner>,
    pool: Weak<Pool>,
    interval: Duration,
    mut state: PollState,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let Some(pool) = pool.upgrade() else { return };
        // A small local file: reading it inline costs microseconds, less than handing
        // it to the blocking pool.
        inner.poll(&pool, &mut state);
    }
}

impl Source for FileSource {
    fn kind(&self) -> SourceKind {
        SourceKind::File
    }
    fn last_sync(&self) -> Option<SystemTime> {
        self.inner.clock.get()
    }
    fn write<'a>(&'a self, _: &'a Pool, _: Change) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(async { Err(WriteError::Conflict("a file: edit the file")) })
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

    fn entry_err(text: &str) -> EntryError {
        match parse_backends(text, Some(FileFormat::Json)) {
            Err(FileError::Entry { error, .. }) => error,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn shapes() {
        let j = parse_backends(
            r#"{"backends": ["127.0.0.1:1", {"addr":"127.0.0.1:2","weight":0,"id":"b","backup":true}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(j.len(), 2);
        assert_eq!((j[1].weight(), j[1].id(), j[1].is_backup()), (0, "b", true));
        let t = parse_backends(
            "backends = [\"127.0.0.1:1\", { addr = \"[::1]:2\", weight = 256 }]\n",
            Some(FileFormat::Toml),
        )
        .unwrap();
        assert_eq!(t[1].addr(), "[::1]:2".parse().unwrap());
        let tables = parse_backends(
            "[[backends]]\naddr = \"127.0.0.1:1\"\n[[backends]]\naddr = \"127.0.0.1:2\"\n",
            None,
        )
        .unwrap();
        assert_eq!(tables.len(), 2);
        assert_eq!(parse_backends("[]", None).unwrap(), vec![]);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse_backends("{\"other\": []}", None),
            Err(FileError::Shape)
        ));
        assert!(matches!(parse_backends("3", None), Err(FileError::Shape)));
        assert!(matches!(
            parse_backends("[\"127.0.0.1:1\"", None),
            Err(FileError::Syntax { format: "JSON", .. })
        ));
        assert!(matches!(
            parse_backends("backends = [", None),
            Err(FileError::Syntax { format: "TOML", .. })
        ));
        assert_eq!(
            entry_err(r#"["127.0.0.1"]"#),
            EntryError::BadAddress("127.0.0.1".into())
        );
        assert_eq!(
            entry_err(r#"[{"addr":"127.0.0.1:1","weight":257}]"#),
            EntryError::BadWeight("257".into())
        );
        assert_eq!(
            entry_err(r#"[{"addr":"127.0.0.1:1","weight":-1}]"#),
            EntryError::BadWeight("-1".into())
        );
        assert_eq!(
            entry_err(r#"[{"addr":"127.0.0.1:1","wieght":1}]"#),
            EntryError::UnknownKey("wieght".into())
        );
        assert_eq!(entry_err(r#"[{"weight":1}]"#), EntryError::MissingAddr);
        assert_eq!(entry_err(r#"[1]"#), EntryError::Type);
        assert_eq!(
            entry_err(r#"[{"addr":"127.0.0.1:1","id":""}]"#),
            EntryError::BadId
        );
        assert_eq!(
            entry_err(r#"["127.0.0.1:1", "127.0.0.1:1"]"#),
            EntryError::DuplicateAddr("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(
            entry_err(r#"[{"addr":"127.0.0.1:1","id":"x"},{"addr":"127.0.0.1:2","id":"x"}]"#),
            EntryError::DuplicateId("x".into())
        );
    }
}
