//! Facts about the client connection a request came on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lb_core::config::Cidr;

use crate::upstream::ClientSlot;

/// Facts about the client connection a request came on.
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    /// The client's address: the peer's, or the source of the PROXY header the peer (a
    /// trusted balancer) sent first.
    pub client: SocketAddr,
    /// The address the client connected to: the listener's, or the PROXY header's
    /// destination.
    pub local: SocketAddr,
    /// This connection's own upstream connections to PROXY protocol pools; allocated only
    /// when some pool uses the PROXY protocol as the connection is accepted.
    pub slot: Option<Arc<ClientSlot>>,
    /// The listener's `trusted_proxies`, when it has any: then `X-Forwarded-For` from a
    /// peer inside them names the client, and from any other peer it is dropped.
    pub trusted: Option<Arc<[Cidr]>>,
    /// True on TLS listeners (sticky cookies then get `Secure`).
    pub tls: bool,
    /// The listener's `idle_timeout`: also how long an upgraded (WebSocket) tunnel may
    /// go without a byte either way.
    pub idle: Duration,
    /// `max_body_bytes` of the listener (0 = unlimited).
    pub max_body: u64,
    /// `max_header_bytes` of the listener (0 = unchecked here). HTTP/1 heads are
    /// measured on the bytes by the client connection layer; HTTP/2 header blocks are measured
    /// here, per request.
    pub max_header: u64,
}

#[cfg(test)]
impl ConnInfo {
    /// A plain connection from `client` to `local`, without limits, for unit tests.
    pub(crate) fn for_tests(client: SocketAddr, local: SocketAddr) -> ConnInfo {
        ConnInfo {
            client,
            local,
            slot: None,
            trusted: None,
            tls: false,
            idle: Duration::from_secs(1),
            max_body: 0,
            max_header: 0,
        }
    }
}
