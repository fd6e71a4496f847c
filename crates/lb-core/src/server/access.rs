//! The access log of both binaries (`[log]`): one line per request or connection, written
//! when it ends, as `key=value` text or JSON.
//!
//! A request never waits for the log, and pays for little more than formatting its line:
//!
//! - The line is formatted by the task that ends the request, straight into bytes (no
//!   `core::fmt` on the common path), in a buffer the thread reuses; the seconds of `time`
//!   are formatted once a second per thread (`line`).
//! - It is appended to the one batch, under a mutex held for that copy only, whole lines
//!   only: lines are never torn or interleaved, and they stay in the order their requests
//!   ended, across worker threads.
//! - A dedicated writer thread takes the batch and writes it with one `write(2)` (as
//!   nginx's `access_log ... buffer=` does). It is not woken per line: it
//!   wakes every [`FLUSH_INTERVAL`] while lines come, earlier when [`WAKE_LINES`] wait,
//!   and sleeps until the next line once a whole interval brought none, that first line
//!   waking it at once. So a line reaches the file within [`FLUSH_INTERVAL`] (plus the
//!   write), and a quiet log costs no wake-ups.
//! - At most [`QUEUE_LINES`] lines wait for the writer; past that a new line is dropped
//!   and counted (`lb_access_log_dropped_total`) rather than blocking.
//!
//! With `access = "off"` there is no [`AccessLog`] at all: the request path pays one
//! branch on an `Option`.
//!
//! A file target is reopened on [`AccessLog::reopen`] (SIGHUP): rename the file, send
//! SIGHUP, and the lines after it go to a new file of the configured name.

mod line;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime};

pub use line::Line;

use crate::config::{AccessFormat, AccessTarget, LogConfig};

/// Lines waiting for the writer at most; past that, new lines are dropped (and counted).
pub const QUEUE_LINES: usize = 16 * 1024;

/// While lines come, the writer writes what waits this often: the longest a line waits.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// The writer is woken before its interval is up when this many lines wait, well before
/// [`QUEUE_LINES`] would drop any.
pub const WAKE_LINES: usize = QUEUE_LINES / 8;

/// Lines waiting for the writer, in the order they were sent: whole lines only.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: usize,
    /// The reopen count ([`Shared::reopens`]) its last line saw.
    reopens: u64,
    /// Where the lines sent after a reopen begin, when it has both kinds.
    reopened_at: Option<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the senders and the writer thread share.
#[derive(Default)]
struct Shared {
    /// The lines waiting, from every thread: one batch keeps them in the order the
    /// requests ended (each sender holds its lock for one copy of a line).
    batch: Mutex<Batch>,
    /// Lines sent and not yet written (the bound of [`QUEUE_LINES`]).
    queued: AtomicUsize,
    dropped: AtomicU64,
    /// The writer sleeps until woken (it found nothing to write for an interval).
    idle: AtomicBool,
    /// The last [`AccessLog`] is gone: write what is left and end.
    closing: AtomicBool,
    /// Set by [`AccessLog::reopen`]; the writer reopens at its next pass.
    reopen: AtomicBool,
    /// Reopens asked for: a line sent after one goes to the new file.
    reopens: AtomicU64,
    /// Flushes asked for ([`AccessLog::flush`]) and done, in order.
    flush_asked: AtomicU64,
    flushed: Mutex<u64>,
    flushed_cv: Condvar,
}

impl Shared {
    /// Appends one whole line to the batch.
    fn append(&self, line: &[u8]) {
        let mut b = lock(&self.batch);
        let reopens = self.reopens.load(Ordering::SeqCst);
        if b.reopens != reopens {
            b.reopens = reopens;
            if b.reopened_at.is_none() {
                b.reopened_at = Some(b.bytes.len());
            }
        }
        b.bytes.extend_from_slice(line);
        b.lines += 1;
    }
}

struct Inner {
    shared: Arc<Shared>,
    /// The writer thread, to wake it.
    writer: Thread,
    format: AccessFormat,
    config: LogConfig,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.writer.unpark();
    }
}

/// A running access log; clones share one writer thread, which ends (after writing every
/// line sent) when the last clone is gone.
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

/// Where the writer thread writes: a file of its own, or its own descriptor of stdout
/// (written directly, past std's line-buffered `Stdout` and its lock). Unbuffered: the
/// writer hands it whole batches.
struct Sink {
    path: Option<PathBuf>,
    file: File,
}

impl Sink {
    fn open(target: &AccessTarget) -> io::Result<Sink> {
        Ok(match target {
            AccessTarget::File(p) => Sink {
                path: Some(p.clone()),
                file: append(p)?,
            },
            _ => Sink {
                path: None,
                file: File::from(io::stdout().as_fd().try_clone_to_owned()?),
            },
        })
    }

    /// Reopens a file target (after log rotation renamed it).
    fn reopen(&mut self) {
        if let Some(path) = &self.path {
            match append(path) {
                Ok(f) => {
                    self.file = f;
                    tracing::info!(file = %path.display(), "access log reopened");
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "access log reopen failed; writing to the old file")
                }
            }
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
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let writer = std::thread::Builder::new()
            .name("lb-access-log".into())
            .spawn(move || Writer::new(theirs, sink).run())?;
        Ok(Some(AccessLog(Arc::new(Inner {
            shared,
            writer: writer.thread().clone(),
            format: config.format,
            config: config.clone(),
        }))))
    }

    /// The settings it was started with (a reload keeps the running log when they match).
    pub fn config(&self) -> &LogConfig {
        &self.0.config
    }

    /// A new line, stamped with the current time (`time`, RFC 3339 UTC, milliseconds).
    pub fn line(&self) -> Line {
        Line::new(self.0.format == AccessFormat::Json, SystemTime::now())
    }

    /// Queues `line` for the writer; drops it (counted) when [`QUEUE_LINES`] already
    /// wait. Never waits on the writer (the batch is locked for a copy, or a swap).
    pub fn send(&self, mut line: Line) {
        let s = &self.0.shared;
        let before = s.queued.fetch_add(1, Ordering::SeqCst);
        if before >= QUEUE_LINES {
            s.queued.fetch_sub(1, Ordering::Relaxed);
            s.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            s.append(line.end());
            // Wake the writer when it sleeps for want of lines, or when many wait.
            if before + 1 == WAKE_LINES
                || (s.idle.load(Ordering::SeqCst) && s.idle.swap(false, Ordering::SeqCst))
            {
                self.0.writer.unpark();
            }
        }
        line.recycle();
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.0.shared.dropped.load(Ordering::Relaxed)
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

    /// Reopens a file target (after log rotation renamed it): lines sent before are
    /// written to the old file, and lines written from then on go to a new file of the
    /// configured name. Nothing to do for stdout. Never blocks.
    pub fn reopen(&self) {
        if let AccessTarget::File(_) = self.0.config.access {
            self.0.shared.reopens.fetch_add(1, Ordering::SeqCst);
            self.0.shared.reopen.store(true, Ordering::SeqCst);
            self.0.writer.unpark();
        }
    }

    /// Waits (up to `timeout`) until every line sent so far is written: for a clean exit.
    pub fn flush(&self, timeout: Duration) {
        let s = &self.0.shared;
        let want = s.flush_asked.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.writer.unpark();
        let deadline = Instant::now() + timeout;
        let mut done = lock(&s.flushed);
        while *done < want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            done = s
                .flushed_cv
                .wait_timeout(done, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    sink: Sink,
    /// The buffer swapped with the batch (they trade buffers, keeping capacity).
    spare: Vec<u8>,
    /// The last write failed (warned once until one succeeds).
    failing: bool,
}

impl Writer {
    fn new(shared: Arc<Shared>, sink: Sink) -> Writer {
        Writer {
            shared,
            sink,
            spare: Vec::new(),
            failing: false,
        }
    }

    /// Writes batches every [`FLUSH_INTERVAL`] while lines come, sleeps while none do;
    /// ends once the last [`AccessLog`] is gone and every line is written.
    fn run(mut self) {
        loop {
            // Read before writing: what was sent before these were set gets written now.
            let closing = self.shared.closing.load(Ordering::SeqCst);
            let asked = self.shared.flush_asked.load(Ordering::SeqCst);
            let reopen = self.shared.reopen.swap(false, Ordering::SeqCst);
            let wrote = self.write_batch(reopen);
            {
                let mut done = lock(&self.shared.flushed);
                if *done < asked {
                    *done = asked;
                    self.shared.flushed_cv.notify_all();
                }
            }
            if closing {
                break;
            }
            if wrote > 0 {
                std::thread::park_timeout(FLUSH_INTERVAL);
                continue;
            }
            // Nothing came for a whole interval: sleep until a line (or anything) comes.
            // A sender adds to `queued` then looks at `idle`; this sets `idle` then looks
            // at `queued`: one of the two sees the other (all SeqCst).
            self.shared.idle.store(true, Ordering::SeqCst);
            if self.shared.queued.load(Ordering::SeqCst) == 0 {
                std::thread::park();
            } else {
                // A line on its way into a batch: write it within an interval.
                std::thread::park_timeout(FLUSH_INTERVAL);
            }
            self.shared.idle.store(false, Ordering::SeqCst);
        }
        *lock(&self.shared.batch) = Batch::default();
    }

    /// Writes the batch, one `write(2)` (more only for a partial write); the number of
    /// lines written. With `reopen`, the lines sent before it go to the old file, the rest
    /// to the new one.
    fn write_batch(&mut self, reopen: bool) -> usize {
        let (lines, reopened_at) = {
            let mut b = lock(&self.shared.batch);
            if b.lines == 0 && !reopen {
                return 0;
            }
            std::mem::swap(&mut b.bytes, &mut self.spare);
            (std::mem::take(&mut b.lines), b.reopened_at.take())
        };
        match reopened_at.filter(|_| reopen) {
            Some(at) => {
                write(&mut self.sink, &self.spare[..at], &mut self.failing);
                self.sink.reopen();
                write(&mut self.sink, &self.spare[at..], &mut self.failing);
            }
            None => {
                write(&mut self.sink, &self.spare, &mut self.failing);
                if reopen {
                    self.sink.reopen();
                }
            }
        }
        self.shared.queued.fetch_sub(lines, Ordering::SeqCst);
        self.spare.clear();
        if self.spare.capacity() > 1 << 20 {
            self.spare = Vec::new(); // a burst's buffer: give it back
        }
        lines
    }
}

/// Writes `bytes` whole; warns of a failure once until a write succeeds again.
fn write(sink: &mut Sink, bytes: &[u8], failing: &mut bool) {
    if bytes.is_empty() {
        return;
    }
    match sink.file.write_all(bytes) {
        Ok(()) => *failing = false,
        Err(e) => {
            if !std::mem::replace(failing, true) {
                tracing::warn!(error = %e, "access log write failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
