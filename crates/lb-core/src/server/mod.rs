//! What both binaries share around their data path: running pools, listeners that follow
//! the config, the admin listener, signals, reload and drain, the process set-up.
//!
//! A binary implements [`Generation`] for its per-request state (routes over the pools of
//! [`build_pools`]), and runs it in a [`Shell`] with a [`ServeFn`] for its protocol: the
//! shell binds the [`Listeners`] and the [`AdminServer`], and [`supervise`] turns SIGHUP
//! into [`Shell::reload`] with a freshly validated config and SIGTERM/SIGINT into a
//! return, after which [`Shell::shutdown`] drains. Every listener accepts and drains
//! through [`accept_loop`]. [`tunnel`] splices the bytes of a routed or upgraded
//! connection both ways, with half-close and an idle timeout. [`logging`] sets up the
//! process logs of every binary.

mod accept;
#[cfg(feature = "server")]
pub mod access;
#[cfg(feature = "server")]
mod listeners;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "server")]
pub mod main;
#[cfg(feature = "server")]
mod pools;
#[cfg(feature = "server")]
mod reuseport;
#[cfg(feature = "server")]
mod run;
#[cfg(feature = "server")]
mod shell;
#[cfg(feature = "server")]
pub mod tunnel;
#[cfg(feature = "server")]
pub mod upgrade;

pub use crate::rt::runtime;
pub use accept::{accept_loop, accept_until, Accept, Shutdown};
#[cfg(feature = "server")]
pub use access::{AccessLog, AccessLogError};
#[cfg(feature = "server")]
pub use listeners::{ConnectionGauges, Listeners, LiveListenerConfig, ServeFn, ACCEPTED_NODELAY};
#[cfg(feature = "server")]
pub use main::{ServerArgs, GRACE};
#[cfg(feature = "server")]
pub use pools::{build_pools, discovery_ready, retire_sources, PoolBuildError, RunningPool};
#[cfg(feature = "server")]
pub use run::{
    check, render_directories, supervise, supervise_upgradable, AdminServer, Reload, ServeError,
    Signals,
};
#[cfg(feature = "server")]
pub use shell::{Generation, Shell, ShellError, DISCOVERY_WAIT};
