//! The process logs of every lb binary: one set-up, on stderr.
//!
//! `RUST_LOG` sets the level and filters (`info` when unset or invalid);
//! `LB_LOG_FORMAT=json` writes one JSON object per line (tracing-subscriber's JSON format),
//! anything else the human text format. Access-log lines are not process logs: they go
//! where `[log] access` says (see the access log of each binary).

use tracing_subscriber::EnvFilter;

/// How process logs are written, from `LB_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line (`LB_LOG_FORMAT=json`).
    Json,
}

impl LogFormat {
    /// The format `LB_LOG_FORMAT` asks for (`json`, case-insensitive; else text).
    pub fn from_env() -> LogFormat {
        match std::env::var("LB_LOG_FORMAT") {
            Ok(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// Installs the process-wide subscriber: stderr, `RUST_LOG` (default `info`), and the
/// format of `LB_LOG_FORMAT`. A second call (a subscriber is already set) does nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match LogFormat::from_env() {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
