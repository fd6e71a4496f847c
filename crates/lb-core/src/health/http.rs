//! HTTP probes: `GET path` over HTTP/1.1 (or HTTP/2 with prior knowledge, for pools that
//! speak it) on a fresh connection, healthy on the expected status.
//!
//! Each probe connects, sends one request with `Host` (the backend address, or the TLS
//! server name) and `Connection: close`, waits for the response head, compares the status
//! and closes the connection without reading the body. The hyper connection is driven
//! inside the probe's own future (never spawned), so when the timeout drops the probe the
//! socket closes with it: a backend that accepts and never answers leaks nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::check::{bounded, connect, BoxFuture, CheckError, Checker, Source};
use super::settings::ProbeOptions;

/// The `User-Agent` of every probe.
const AGENT: &str = concat!("lb-health/", env!("CARGO_PKG_VERSION"));

/// Healthy when `GET path` answers `expect` within the timeout.
#[derive(Clone, Debug)]
pub struct HttpChecker {
    path: String,
    expect: u16,
    timeout: Duration,
    probe: ProbeOptions,
}

impl HttpChecker {
    /// A probe of `path` (a leading `/` is added if missing) expecting status `expect`.
    pub fn new(path: impl Into<String>, expect: u16, timeout: Duration) -> HttpChecker {
        HttpChecker {
            path: normalize_path(path.into()),
            expect,
            timeout,
            probe: ProbeOptions::default(),
        }
    }

    /// Sends a PROXY header first and/or speaks HTTP/2 (prior knowledge), as `probe` says.
    pub fn with_options(mut self, probe: ProbeOptions) -> HttpChecker {
        self.probe = probe;
        self
    }
}

impl Checker for HttpChecker {
    fn check<'a>(&'a self, addr: SocketAddr) -> BoxFuture<'a, Result<(), CheckError>> {
        Box::pin(bounded(self.timeout, async move {
            let stream = connect(addr, self.probe.proxy_protocol).await?;
            let version = self.probe.http2.then_some("http");
            get(stream, &self.path, &addr.to_string(), self.expect, version).await
        }))
    }
}

pub(crate) fn normalize_path(path: String) -> String {
    if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

fn protocol(e: impl std::error::Error + Send + Sync + 'static) -> CheckError {
    CheckError::Protocol(Arc::new(e) as Source)
}

/// One `GET` over an established stream; checks the response status. `h2_scheme`: speak
/// HTTP/2 (with this URI scheme, as HTTP/2 carries it) instead of HTTP/1.1.
pub(crate) async fn get<IO>(
    io: IO,
    path: &str,
    host: &str,
    expect: u16,
    h2_scheme: Option<&str>,
) -> Result<(), CheckError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let resp = match h2_scheme {
        None => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(protocol)?;
            let req = Request::get(path)
                .header(HOST, host)
                .header(CONNECTION, "close")
                .header(USER_AGENT, AGENT)
                .body(Empty::<Bytes>::new())
                .map_err(protocol)?;
            exchange(conn, sender.send_request(req)).await?
        }
        Some(scheme) => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                    .await
                    .map_err(protocol)?;
            let req = Request::get(format!("{scheme}://{host}{path}"))
                .header(USER_AGENT, AGENT)
                .body(Empty::<Bytes>::new())
                .map_err(protocol)?;
            exchange(conn, sender.send_request(req)).await?
        }
    };
    let got = resp.status().as_u16();
    if got == expect {
        Ok(())
    } else {
        Err(CheckError::Status {
            got,
            expected: expect,
        })
    }
}

/// Drives a client connection and waits for the response head together, in this future.
async fn exchange<C, R>(
    conn: C,
    response: R,
) -> Result<hyper::Response<hyper::body::Incoming>, CheckError>
where
    C: std::future::Future<Output = Result<(), hyper::Error>>,
    R: std::future::Future<Output = Result<hyper::Response<hyper::body::Incoming>, hyper::Error>>,
{
    let mut conn = std::pin::pin!(conn);
    let mut response = std::pin::pin!(response);
    let resp = tokio::select! {
        biased;
        r = &mut response => r.map_err(protocol)?,
        r = &mut conn => {
            // The connection ended first: it either failed, or finished after handing the
            // response over (then `response` is ready), or closed without one.
            r.map_err(protocol)?;
            response.await.map_err(protocol)?
        }
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_a_leading_slash() {
        assert_eq!(normalize_path("health".into()), "/health");
        assert_eq!(normalize_path("/health".into()), "/health");
        assert_eq!(normalize_path(String::new()), "/");
    }
}
