//! Helpers shared by the workspace's tests (a dev-dependency only, never published):
//! self-signed certificates ([`cert`]), temp dirs removed on drop ([`dir`]), polling a
//! condition under a deadline ([`wait`]), simple loopback backends ([`backend`]), a
//! counting global allocator ([`alloc`]) and the fuzz targets' inputs ([`fuzz`]); for the
//! tests that run a server binary as an operator does, its process, config and load loops
//! ([`shell`]), its worker-thread gauge ([`threads`]), and headless Chromium for the stats
//! page ([`browser`]); a waker that counts its wake-ups ([`waker`]).

pub mod alloc;
pub mod backend;
pub mod browser;
pub mod cert;
pub mod dir;
pub mod fuzz;
pub mod shell;
pub mod threads;
pub mod wait;
pub mod waker;

pub use backend::{tcp_echo, HttpBackend};
pub use cert::{self_signed, write_self_signed, Cert};
pub use dir::{temp_dir, TempDir};
pub use wait::{eventually, until, until_timed};
