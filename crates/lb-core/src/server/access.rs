//! The access log of both binaries (`[log]`): one line per request or connection, written
//! when it ends, as `key=value` text or JSON.
//!
//! A request never waits for the log: a line is formatted by the task that ends the
//! request and handed to a dedicated writer thread through a bounded queue
//! ([`QUEUE_LINES`]); when the queue is full the line is dropped and counted
//! (`lb_access_log_dropped_total`) rather than blocking. The writer batches what is queued,
//! writes it through a buffer and flushes when the queue is empty. With `access = "off"`
//! there is no [`AccessLog`] at all: the request path pays one branch on an `Option`.
//!
//! A file target is reopened on [`AccessLog::reopen`] (SIGHUP): rename the file, send
//! SIGHUP, and the lines after it go to a new file of the configured name.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{AccessFormat, AccessTarget, LogConfig};

/// Lines queued for the writer at most; past that, new lines are dropped (and counted).
pub const QUEUE_LINES: usize = 16 * 1024;

enum Msg {
    Line(String),
    /// Look at the reopen flag now.
    Wake,
    Flush(mpsc::Sender<()>),
}

struct Inner {
    tx: SyncSender<Msg>,
    /// Set by [`AccessLog::reopen`]; the writer reopens before its next write.
    reopen: Arc<AtomicBool>,
    format: AccessFormat,
    config: LogConfig,
    dropped: AtomicU64,
}

/// A running access log; clones share one writer thread, which ends (after writing every
/// queued line) when the last clone is gone.
#[derive(Clone)]
pub struct AccessLog(Arc<Inner>);

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("config", &self.0.config)
            .finish()
    }
}

/// The access log could not be started.
#[derive(Debug, thiserror::Error)]
#[error("[log] access: cannot open {target}: {source}")]
pub struct AccessLogError {
    /// The file (or `stdout`).
    pub target: String,
    /// The OS error.
    pub source: io::Error,
}

/// The access log of a new config generation: `previous`'s own when the settings did not
/// change (a reload keeps the running writer), else a new one (`None` when off).
pub fn for_generation(
    config: &LogConfig,
    previous: Option<&AccessLog>,
) -> Result<Option<AccessLog>, AccessLogError> {
    if let Some(p) = previous.filter(|p| p.config() == config) {
        return Ok(Some(p.clone()));
    }
    AccessLog::start(config).map_err(|source| AccessLogError {
        target: match &config.access {
            AccessTarget::File(p) => p.display().to_string(),
            _ => "stdout".into(),
        },
        source,
    })
}

/// Where the writer thread writes.
enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File(PathBuf, BufWriter<File>),
}

impl Sink {
    fn open(target: &AccessTarget) -> io::Result<Sink> {
        Ok(match target {
            AccessTarget::File(p) => Sink::File(p.clone(), BufWriter::new(append(p)?)),
            _ => Sink::Stdout(BufWriter::new(io::stdout())),
        })
    }

    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(w) => w,
            Sink::File(_, w) => w,
        }
    }
}

fn append(p: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(p)
}

impl AccessLog {
    /// Starts the access log `config` asks for: `None` for `access = "off"`. Fails when
    /// the file cannot be opened for appending.
    pub fn start(config: &LogConfig) -> io::Result<Option<AccessLog>> {
        if config.access == AccessTarget::Off {
            return Ok(None);
        }
        let sink = Sink::open(&config.access)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
        let reopen = Arc::new(AtomicBool::new(false));
        let flag = reopen.clone();
        std::thread::Builder::new()
            .name("lb-access-log".into())
            .spawn(move || write_lines(rx, sink, &flag))?;
        Ok(Some(AccessLog(Arc::new(Inner {
            tx,
            reopen,
            format: config.format,
            config: config.clone(),
            dropped: AtomicU64::new(0),
        }))))
    }

    /// The settings it was started with (a reload keeps the running log when they match).
    pub fn config(&self) -> &LogConfig {
        &self.0.config
    }

    /// A new line, stamped with the current time (`time`, RFC 3339 UTC, milliseconds).
    pub fn line(&self) -> Line {
        let mut l = Line {
            buf: String::with_capacity(256),
            json: self.0.format == AccessFormat::Json,
            empty: true,
        };
        if l.json {
            l.buf.push('{');
        }
        l.key("time");
        let t = SystemTime::now();
        let secs = crate::admin::rfc3339(t);
        let millis = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_millis());
        // `…:SSZ` → `…:SS.mmmZ`.
        let _ = write!(
            l.buf,
            "{}{}.{millis:03}Z{}",
            if l.json { "\"" } else { "" },
            secs.trim_end_matches('Z'),
            if l.json { "\"" } else { "" }
        );
        l
    }

    /// Queues `line` for the writer; drops it (counted) when the queue is full. Never blocks.
    pub fn send(&self, line: Line) {
        let mut buf = line.buf;
        if line.json {
            buf.push('}');
        }
        buf.push('\n');
        if let Err(TrySendError::Full(_)) = self.0.tx.try_send(Msg::Line(buf)) {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// Appends `lb_access_log_dropped_total` in Prometheus text.
    pub fn render(&self, out: &mut String) {
        crate::metrics::header(
            out,
            "lb_access_log_dropped_total",
            "counter",
            "Access-log lines dropped because the writer could not keep up.",
        );
        crate::metrics::sample(
            out,
            "lb_access_log_dropped_total",
            &[],
            self.dropped() as f64,
        );
    }

    /// Reopens a file target (after log rotation renamed it): lines written from then on
    /// go to a new file of the configured name. Nothing to do for stdout. Never blocks:
    /// with the queue full the writer is busy and sees the request after its batch.
    pub fn reopen(&self) {
        if let AccessTarget::File(_) = self.0.config.access {
            self.0.reopen.store(true, Ordering::Release);
            let _ = self.0.tx.try_send(Msg::Wake);
        }
    }

    /// Waits (up to `timeout`) until every line queued so far is written: for a clean exit.
    pub fn flush(&self, timeout: Duration) {
        let (tx, rx) = mpsc::channel();
        if self.0.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }
}

/// The writer thread: batches what is queued, flushes when the queue is empty, reopens
/// the file when `reopen` is set.
fn write_lines(rx: Receiver<Msg>, mut sink: Sink, reopen_wanted: &AtomicBool) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            if reopen_wanted.swap(false, Ordering::Acquire) {
                reopen(&mut sink);
            }
            match msg {
                Msg::Line(l) => {
                    let _ = sink.out().write_all(l.as_bytes());
                }
                Msg::Wake => {}
                Msg::Flush(done) => {
                    let _ = sink.out().flush();
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = sink.out().flush() {
            tracing::warn!(error = %e, "access log write failed");
        }
    }
    let _ = sink.out().flush();
}

fn reopen(sink: &mut Sink) {
    if let Sink::File(path, w) = sink {
        let _ = w.flush();
        match append(path) {
            Ok(f) => {
                *w = BufWriter::new(f);
                tracing::info!(file = %path.display(), "access log reopened");
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "access log reopen failed; writing to the old file")
            }
        }
    }
}

/// One access-log line being built: fields in the order they are added.
pub struct Line {
    buf: String,
    json: bool,
    empty: bool,
}

impl Line {
    fn key(&mut self, key: &str) {
        if !self.empty {
            self.buf.push(if self.json { ',' } else { ' ' });
        }
        self.empty = false;
        if self.json {
            self.buf.push('"');
            self.buf.push_str(key);
            self.buf.push_str("\":");
        } else {
            self.buf.push_str(key);
            self.buf.push('=');
        }
    }

    /// A string field (quoted and escaped as JSON needs it; in text, quoted only when it
    /// holds spaces, quotes, `=` or control characters, and empty when empty).
    pub fn str(&mut self, key: &str, value: &str) -> &mut Line {
        self.key(key);
        let plain = !value
            .bytes()
            .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == b'\\' || b == 0x7f);
        if !self.json && plain {
            self.buf.push_str(value);
        } else {
            quote(&mut self.buf, value);
        }
        self
    }

    /// A number field.
    pub fn num(&mut self, key: &str, value: u64) -> &mut Line {
        self.key(key);
        let _ = write!(self.buf, "{value}");
        self
    }

    /// An address field; empty (`""` in JSON) when there is none.
    pub fn addr(&mut self, key: &str, value: Option<SocketAddr>) -> &mut Line {
        self.key(key);
        let q = if self.json { "\"" } else { "" };
        match value {
            Some(a) => {
                let _ = write!(self.buf, "{q}{a}{q}");
            }
            None => self.buf.push_str(q.repeat(2).as_str()),
        }
        self
    }
}

/// `value` as a JSON string literal.
fn quote(buf: &mut String, value: &str) {
    buf.push('"');
    for c in value.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_to(dir: &Path, format: AccessFormat) -> (AccessLog, PathBuf) {
        let path = dir.join("access.log");
        let cfg = LogConfig {
            access: AccessTarget::File(path.clone()),
            format,
        };
        (AccessLog::start(&cfg).expect("open").expect("on"), path)
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lb-access-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn text_and_json_lines_escape_and_parse() {
        let d = tmpdir("fmt");
        let (log, path) = log_to(&d, AccessFormat::Json);
        let mut l = log.line();
        l.str("path", "/a \"b\"\n")
            .num("status", 200)
            .addr("backend", None)
            .str("error", "");
        log.send(l);
        log.flush(Duration::from_secs(5));
        let text = std::fs::read_to_string(&path).expect("read");
        let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(v["path"], "/a \"b\"\n");
        assert_eq!(v["status"], 200);
        assert_eq!(v["backend"], "");
        assert!(v["time"].as_str().expect("time").ends_with('Z'));

        let cfg = LogConfig {
            access: AccessTarget::File(d.join("t.log")),
            format: AccessFormat::Text,
        };
        let log = AccessLog::start(&cfg).expect("open").expect("on");
        let mut l = log.line();
        l.str("ua", "curl 8")
            .str("host", "a.example")
            .str("error", "");
        log.send(l);
        log.flush(Duration::from_secs(5));
        let t = std::fs::read_to_string(d.join("t.log")).expect("read");
        assert!(t.ends_with(" ua=\"curl 8\" host=a.example error=\n"), "{t}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn reopen_after_rename_writes_a_new_file() {
        let d = tmpdir("reopen");
        let (log, path) = log_to(&d, AccessFormat::Text);
        let mut l = log.line();
        l.str("n", "one");
        log.send(l);
        log.flush(Duration::from_secs(5));
        std::fs::rename(&path, d.join("access.log.1")).expect("rename");
        log.reopen();
        let mut l = log.line();
        l.str("n", "two");
        log.send(l);
        log.flush(Duration::from_secs(5));
        let old = std::fs::read_to_string(d.join("access.log.1")).expect("old");
        let new = std::fs::read_to_string(&path).expect("new");
        assert!(old.contains("n=one") && !old.contains("n=two"), "{old}");
        assert!(new.contains("n=two") && !new.contains("n=one"), "{new}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
