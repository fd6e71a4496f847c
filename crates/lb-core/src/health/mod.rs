//! Health checking: a rise/fall state machine per backend, active probes, and the monitor
//! that runs them in the background.
//!
//! - [`HealthState`] (pure, no runtime): `rise` successes in a row take a backend up,
//!   `fall` failures in a row take it down, so one hiccup never flaps it.
//! - [`HealthSettings`] / [`CheckKind`]: the `[pool.X.health]` section as runtime types,
//!   with the spec's defaults.
//! - [`Checker`] (feature `runtime`): one probe of one address. [`TcpChecker`] connects;
//!   [`HttpChecker`] (feature `http`) sends `GET path` and expects a status;
//!   [`HttpsChecker`] (feature `tls`) does the same over rustls. [`checker_for`] builds the
//!   right one from settings.
//! - [`HealthMonitor`] (feature `runtime`): one task per backend probing every
//!   `interval ± jitter`, each probe bounded by `timeout`, flipping
//!   [`BackendState::set_healthy`](crate::BackendState::set_healthy) on transitions and
//!   publishing [`HealthEvent`]s. It follows the pool's membership as it changes.
//!
//! - [`testing`] (feature `runtime`): [`testing::check_checker`] runs the [`Checker`]
//!   contract against your own probe.
//!
//! Health is one atomic per backend: a transition flips it and rebuilds nothing, and the
//! request path only reads it. Passive ejection from real traffic lives in
//! [`outlier`](crate::outlier) and works alongside.
//!
//! ```no_run
//! # #[cfg(feature = "http")]
//! # async fn demo(pool: std::sync::Arc<lb_core::Pool>) -> Result<(), lb_core::health::CheckerError> {
//! use lb_core::health::{checker_for, CheckKind, HealthMonitor, HealthSettings};
//!
//! let settings = HealthSettings::new(CheckKind::http());
//! if let Some(checker) = checker_for(&settings)? {
//!     let monitor = HealthMonitor::spawn(pool, settings, checker, std::future::pending::<()>());
//!     let mut events = monitor.subscribe();
//!     while let Ok(ev) = events.recv().await {
//!         println!("{} {} is {}", ev.pool, ev.addr, if ev.up { "up" } else { "down" });
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod settings;
pub mod state;

#[cfg(feature = "runtime")]
pub mod check;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "runtime")]
pub mod monitor;
#[cfg(feature = "runtime")]
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;

pub use settings::{CheckKind, HealthSettings, ProbeOptions};
pub use state::{HealthState, Transition};

#[cfg(feature = "runtime")]
pub use check::{checker_for, BoxFuture, CheckError, Checker, CheckerError, Source, TcpChecker};
#[cfg(feature = "http")]
pub use http::HttpChecker;
#[cfg(feature = "runtime")]
pub use monitor::{HealthEvent, HealthMonitor};
#[cfg(feature = "tls")]
pub use tls::HttpsChecker;
