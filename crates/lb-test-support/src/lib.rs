//! Helpers shared by the workspace's tests (a dev-dependency only, never published):
//! self-signed certificates ([`cert`]), temp dirs removed on drop ([`dir`]), polling a
//! condition under a deadline ([`wait`]), simple loopback backends ([`backend`]) and a
//! counting global allocator ([`alloc`]).

pub mod alloc;
pub mod backend;
pub mod cert;
pub mod dir;
pub mod wait;

pub use backend::{tcp_echo, HttpBackend};
pub use cert::{self_signed, write_self_signed, Cert};
pub use dir::{temp_dir, TempDir};
pub use wait::{eventually, until, until_timed};
