//! A minimal client of the admin API (lb-core's `admin` module serves it): one HTTP/1.1 request per call
//! on a fresh connection, over hyper's low-level client (no connection pool), in plain
//! HTTP or, for `https://` URLs, over TLS verified against `--cacert FILE` or the system
//! roots (lb-core's [`tls::client_config`](lb_core::tls::client_config)).
//!
//! Every call returns the decoded JSON body on a 2xx answer, or an [`AdminError`] that
//! says what to do: the server's own `{"error": ...}` message with its status, a refused
//! connection naming the URL, a timeout, or a body that is not the expected JSON.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

/// Largest admin answer read (a pool listing of many thousand backends fits).
const MAX_ANSWER: usize = 64 << 20;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The `--admin` URL cannot be used.
    #[error("--admin {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Nothing listens there (connection refused) or the host is unreachable.
    #[error("cannot connect to the admin API at {url}: {source} (is lb-proxy or lb-sni running there? set --admin URL)")]
    Connect {
        /// The base URL.
        url: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host:?} of --admin {url}: {reason}")]
    Resolve {
        /// The base URL.
        url: String,
        /// The host part.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The server did not answer within the timeout.
    #[error("the admin API at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The base URL.
        url: String,
        /// The bound.
        timeout: Duration,
    },
    /// The HTTP exchange failed (the peer is not an HTTP server, or closed early).
    #[error("HTTP exchange with {url} failed: {reason}{hint}")]
    Http {
        /// The base URL.
        url: String,
        /// hyper's description.
        reason: String,
        /// A hint for the operator (a plain-HTTP URL may be talking to a TLS server).
        hint: &'static str,
    },
    /// `--cacert` could not be used (or no system roots were found).
    #[error("--cacert: {0}")]
    Ca(#[source] lb_core::tls::ClientTlsError),
    /// The TLS handshake failed: an untrusted or misnamed certificate, or no TLS there.
    #[error("TLS handshake with {url} failed: {reason}{hint}")]
    Tls {
        /// The base URL.
        url: String,
        /// rustls' description.
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The server answered with an error status; `message` is its `{"error"}` text.
    #[error("{message} (HTTP {status}){hint}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's message, or the raw body when it sent no JSON error.
        message: String,
        /// A hint for the operator (for 401: how to pass the token), or empty.
        hint: &'static str,
    },
    /// A 2xx answer whose body is not the JSON the API documents.
    #[error("unexpected answer from {url}: {reason}")]
    BadAnswer {
        /// The base URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// Where the admin API is and how to authenticate.
#[derive(Clone)]
pub struct AdminClient {
    url: String,
    host: String,
    port: u16,
    prefix: String,
    token: Option<String>,
    timeout: Duration,
    tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("url", &self.url)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client of the admin API at `url` (`http://host:port` or `https://host:port`,
    /// optionally with a path prefix), sending `Authorization: Bearer token` when a token
    /// is given. `https` URLs are verified against the system roots.
    pub fn new(url: &str, token: Option<String>) -> Result<AdminClient, AdminError> {
        AdminClient::with_cacert(url, token, None)
    }

    /// [`new`](Self::new), with `https` verified against the CA certificates (PEM) of
    /// `cacert` instead of the system roots; `cacert` with an `http` URL is an error.
    pub fn with_cacert(
        url: &str,
        token: Option<String>,
        cacert: Option<&Path>,
    ) -> Result<AdminClient, AdminError> {
        let bad = |reason| AdminError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let (rest, https) = if let Some(r) = url.strip_prefix("http://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("https://") {
            (r, true)
        } else {
            return Err(bad("expected http://host:port or https://host:port"));
        };
        if cacert.is_some() && !https {
            return Err(bad(
                "--cacert is for an admin API served over TLS: use an https:// URL",
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("expected http://host:port or https://host:port"));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) =
            split_host_port(authority, default_port).ok_or_else(|| bad("bad host or port"))?;
        let tls = if https {
            let config = lb_core::tls::client_config(true, cacert, &[b"http/1.1"])
                .map_err(AdminError::Ca)?;
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(AdminClient {
            tls,
            url: url.trim_end_matches('/').to_owned(),
            host: host.to_owned(),
            port,
            prefix: path.to_owned(),
            token: token.filter(|t| !t.is_empty()),
            timeout: Duration::from_secs(10),
        })
    }

    /// The base URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /api/v1/pools`.
    pub async fn pools(&self) -> Result<Value, AdminError> {
        self.call(Method::GET, "/api/v1/pools", None).await
    }

    /// `GET /api/v1/pools/{pool}`.
    pub async fn pool(&self, pool: &str) -> Result<Value, AdminError> {
        let path = format!("/api/v1/pools/{}", encode(pool));
        self.call(Method::GET, &path, None).await
    }

    /// `POST /api/v1/pools/{pool}/backends`.
    pub async fn add_backend(
        &self,
        pool: &str,
        addr: &str,
        weight: Option<u32>,
        id: Option<&str>,
        backup: bool,
    ) -> Result<Value, AdminError> {
        let mut body = serde_json::json!({ "addr": addr });
        if let Some(w) = weight {
            body["weight"] = w.into();
        }
        if let Some(id) = id {
            body["id"] = id.into();
        }
        if backup {
            body["backup"] = true.into();
        }
        let path = format!("/api/v1/pools/{}/backends", encode(pool));
        self.call(Method::POST, &path, Some(body)).await
    }

    /// `DELETE /api/v1/pools/{pool}/backends/{addr}`.
    pub async fn remove_backend(&self, pool: &str, addr: &str) -> Result<Value, AdminError> {
        let path = format!("/api/v1/pools/{}/backends/{}", encode(pool), encode(addr));
        self.call(Method::DELETE, &path, None).await
    }

    /// `POST /api/v1/pools/{pool}/backends/{addr}/drain`.
    pub async fn drain_backend(&self, pool: &str, addr: &str) -> Result<Value, AdminError> {
        let path = format!(
            "/api/v1/pools/{}/backends/{}/drain",
            encode(pool),
            encode(addr)
        );
        self.call(Method::POST, &path, None).await
    }

    /// `PATCH /api/v1/pools/{pool}/backends/{addr}` with a weight and/or a state.
    pub async fn patch_backend(
        &self,
        pool: &str,
        addr: &str,
        weight: Option<u32>,
        state: Option<&str>,
    ) -> Result<Value, AdminError> {
        let mut body = serde_json::json!({});
        if let Some(w) = weight {
            body["weight"] = w.into();
        }
        if let Some(s) = state {
            body["state"] = s.into();
        }
        let path = format!("/api/v1/pools/{}/backends/{}", encode(pool), encode(addr));
        self.call(Method::PATCH, &path, Some(body)).await
    }

    /// `GET /api/v1/route?pool=P&key=K`: the backend address for an extracted key.
    pub async fn route(&self, pool: &str, key: &str) -> Result<Value, AdminError> {
        let path = format!("/api/v1/route?pool={}&key={}", encode(pool), encode(key));
        self.call(Method::GET, &path, None).await
    }

    /// One request; the JSON body of a 2xx answer (`null` for an empty one).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, AdminError> {
        match tokio::time::timeout(self.timeout, self.exchange(method, path, body)).await {
            Ok(r) => r,
            Err(_) => Err(AdminError::Timeout {
                url: self.url.clone(),
                timeout: self.timeout,
            }),
        }
    }

    async fn connect(&self) -> Result<TcpStream, AdminError> {
        let addrs: Vec<SocketAddr> =
            match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
                Ok(a) => a.collect(),
                Err(e) => {
                    return Err(AdminError::Resolve {
                        url: self.url.clone(),
                        host: self.host.clone(),
                        reason: e.to_string(),
                    })
                }
            };
        let mut last = None;
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(AdminError::Connect {
            url: self.url.clone(),
            source: last.unwrap_or_else(|| std::io::Error::other("no address")),
        })
    }

    /// The TLS handshake, verifying the certificate against the host of the URL.
    async fn tls(
        &self,
        config: &Arc<ClientConfig>,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, AdminError> {
        let name = ServerName::try_from(self.host.clone()).map_err(|_| AdminError::BadUrl {
            url: self.url.clone(),
            reason: "the host is neither an IP address nor a DNS name",
        })?;
        TlsConnector::from(config.clone())
            .connect(name, stream)
            .await
            .map_err(|e| {
                let reason = e.to_string();
                let hint = tls_hint(&reason);
                AdminError::Tls {
                    url: self.url.clone(),
                    reason,
                    hint,
                }
            })
    }

    /// HTTP/1.1 on a connected stream.
    async fn handshake<I>(&self, io: I) -> Result<SendRequest<Full<Bytes>>, AdminError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.http_error(e.to_string()))?;
        tokio::spawn(async move {
            // The exchange reports its own errors; this only drives the connection.
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn http_error(&self, reason: String) -> AdminError {
        AdminError::Http {
            url: self.url.clone(),
            reason,
            hint: if self.tls.is_none() {
                " (if the admin API has [admin] tls, use an https:// URL)"
            } else {
                ""
            },
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, AdminError> {
        let stream = self.connect().await?;
        let mut sender = match &self.tls {
            Some(config) => self.handshake(self.tls(config, stream).await?).await?,
            None => self.handshake(stream).await?,
        };
        let bytes = match &body {
            Some(v) => Bytes::from(v.to_string()),
            None => Bytes::new(),
        };
        let uri = format!("{}{}", self.prefix, path);
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .body(Full::new(bytes))
            .map_err(|e| AdminError::BadUrl {
                url: self.url.clone(),
                reason: if e.is::<hyper::http::uri::InvalidUri>() {
                    "the path is not a valid URI"
                } else {
                    "cannot build a request"
                },
            })?;
        let host = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let headers = req.headers_mut();
        if let Ok(h) = HeaderValue::from_str(&host) {
            headers.insert(HOST, h);
        }
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(t) = &self.token {
            let v =
                HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| AdminError::BadUrl {
                    url: self.url.clone(),
                    reason: "the token must be visible ASCII",
                })?;
            headers.insert(AUTHORIZATION, v);
        }
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.http_error(e.to_string()))?;
        let status = resp.status();
        let raw = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| self.http_error(e.to_string()))?
            .to_bytes();
        let parsed: Option<Value> = if raw.is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_slice(&raw).ok()
        };
        if status.is_success() {
            return parsed.ok_or_else(|| AdminError::BadAnswer {
                url: self.url.clone(),
                reason: format!("HTTP {status} with a body that is not JSON"),
            });
        }
        let message = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&raw);
                let text = text.trim();
                if text.is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("error without a message")
                        .to_owned()
                } else {
                    text.chars().take(300).collect()
                }
            });
        let hint = if status == StatusCode::UNAUTHORIZED {
            "; pass the admin token with --token or LB_TOKEN"
        } else {
            ""
        };
        Err(AdminError::Server {
            status: status.as_u16(),
            message,
            hint,
        })
    }
}

/// `host:port`, `[v6]:port`, or `host` with `default_port`; `None` when malformed.
fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?.parse().ok()?;
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.contains(':') => Some((h, p.parse().ok()?)),
        Some(_) => None,
        None => Some((authority, default_port)),
    }
}

/// What to do about a failed handshake, from rustls' message.
fn tls_hint(reason: &str) -> &'static str {
    if reason.contains("UnknownIssuer") || reason.contains("BadSignature") {
        " (the admin API's certificate is not signed by a CA trusted here: pass the CA certificate that signed it with --cacert FILE)"
    } else if reason.contains("NotValidForName") {
        " (the certificate does not name this host: use in --admin the name or IP address it was issued for)"
    } else if reason.contains("Expired") || reason.contains("NotValidYet") {
        " (the admin API's certificate is outside its validity period)"
    } else if reason.contains("corrupt message") || reason.contains("InvalidContentType") {
        " (the admin API does not speak TLS there: use an http:// URL)"
    } else {
        ""
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so `+`, `&`, `/`,
/// `[`, `:` and spaces survive a path segment or a query value).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = AdminClient::new("http://127.0.0.1:9091", None).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.prefix.as_str()),
            ("127.0.0.1", 9091, "")
        );
        let c = AdminClient::new("http://[::1]:81/lb/", None).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.prefix.as_str()),
            ("::1", 81, "/lb")
        );
        let c = AdminClient::new("http://localhost", Some(String::new())).unwrap();
        assert_eq!((c.port, c.token.is_none()), (80, true));
        let c = AdminClient::new("https://127.0.0.1", None).unwrap();
        assert_eq!((c.port, c.tls.is_some()), (443, true));
        let cacert = Path::new("/nonexistent/ca.pem");
        assert!(AdminClient::with_cacert("http://127.0.0.1:1", None, Some(cacert)).is_err());
        assert!(AdminClient::with_cacert("https://127.0.0.1:1", None, Some(cacert)).is_err());
        for bad in [
            "ftp://x:1",
            "127.0.0.1:9091",
            "http://",
            "http://h:x",
            "http://::1:80",
            "http://u@h:1",
        ] {
            assert!(AdminClient::new(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn encoding_keeps_only_unreserved_bytes() {
        assert_eq!(encode("[::1]:80"), "%5B%3A%3A1%5D%3A80");
        assert_eq!(encode("a b+c&d=e/f%"), "a%20b%2Bc%26d%3De%2Ff%25");
        assert_eq!(encode("plain-key_1.2~"), "plain-key_1.2~");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
