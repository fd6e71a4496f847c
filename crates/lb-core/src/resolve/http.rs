//! [`HttpResolver`]: an HTTP/JSON directory, `[resolver.X] kind = "http"`.
//!
//! A lookup is `GET` on the URL template with `{name}` replaced by the percent-encoded
//! name (RFC 3986 unreserved characters `A-Z a-z 0-9 - . _ ~` are kept, every other
//! byte becomes `%XX`). The answer:
//!
//! | response | result |
//! |---|---|
//! | `200` with `{"endpoint":"h:p"}` or `{"endpoints":["h:p", ...]}` | `Found` |
//! | `200` with `{"pool":"NAME"}` | `Pool` |
//! | `200` `text/plain`: the trimmed body read as a RESP value is ([`parse_text_answer`]; a bare word names a pool with [`HttpResolver::with_bare_pool`]) | `Found` or `Pool` |
//! | `200` with an empty list, both keys, neither, bad JSON or a bad endpoint | `BadAnswer` |
//! | `404` | `NotFound` |
//! | any other status, or a connect/IO error | `Unavailable` |
//! | no complete answer within `timeout` (connect, head and body) | `Timeout` |
//!
//! Bodies are read up to [`MAX_BODY`] bytes; a larger one is a `BadAnswer`. Connections
//! are kept alive and reused (hyper-util's pooled client). Plain `http://` only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{
    parse_endpoint, parse_text_answer, pool_answer, BoxFuture, Resolution, ResolveError, Resolver,
};

/// Largest response body read from the directory (64 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// Why a URL template was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template has no `{name}` placeholder.
    #[error("url {0:?} has no {{name}} placeholder")]
    NoPlaceholder(String),
    /// The template is not an `http://` URL.
    #[error("url {0:?} must start with http://")]
    NotHttp(String),
    /// The template does not make a valid URL.
    #[error("url {url:?} is invalid: {reason}")]
    Invalid {
        /// The template.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// The directory's JSON answer.
#[derive(serde::Deserialize)]
struct Answer {
    endpoint: Option<String>,
    endpoints: Option<Vec<String>>,
    pool: Option<String>,
}

/// An HTTP/JSON directory; see the module docs.
#[derive(Clone, Debug)]
pub struct HttpResolver {
    /// The template split at each `{name}`: `parts.len() - 1` placeholders.
    parts: Arc<[String]>,
    timeout: Duration,
    bare_pool: bool,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpResolver {
    /// Validates `url_template` (an `http://` URL containing `{name}` at least once) and
    /// builds a resolver whose every lookup completes within `timeout`.
    ///
    /// ```
    /// use lb_core::resolve::HttpResolver;
    /// use std::time::Duration;
    ///
    /// assert!(HttpResolver::new("http://127.0.0.1:6280/backend/{name}", Duration::from_secs(1)).is_ok());
    /// assert!(HttpResolver::new("http://127.0.0.1:6280/backend", Duration::from_secs(1)).is_err());
    /// assert!(HttpResolver::new("ftp://h/{name}", Duration::from_secs(1)).is_err());
    /// ```
    pub fn new(url_template: &str, timeout: Duration) -> Result<Self, TemplateError> {
        let owned = || url_template.to_string();
        if !url_template.contains("{name}") {
            return Err(TemplateError::NoPlaceholder(owned()));
        }
        if !url_template
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        {
            return Err(TemplateError::NotHttp(owned()));
        }
        let parts: Arc<[String]> = url_template.split("{name}").map(str::to_string).collect();
        let sample: Uri = parts
            .join("x")
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| TemplateError::Invalid {
                url: owned(),
                reason: e.to_string(),
            })?;
        if matches!(sample.host(), None | Some("")) {
            return Err(TemplateError::Invalid {
                url: owned(),
                reason: "no host".to_string(),
            });
        }
        // `Uri` keeps an out-of-range port as text; the part after the last `]` (IPv6)
        // must carry a valid u16 port, if any.
        let after_host = sample
            .authority()
            .and_then(|a| a.as_str().rsplit(']').next())
            .unwrap_or("");
        if after_host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_err())
        {
            return Err(TemplateError::Invalid {
                url: owned(),
                reason: "bad port".to_string(),
            });
        }
        if sample.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(TemplateError::Invalid {
                url: owned(),
                reason: "user info is not supported".to_string(),
            });
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(HttpResolver {
            parts,
            timeout,
            bare_pool: false,
            client,
        })
    }

    /// With `true` (`bare = "pool"`), a `text/plain` answer that is one word without `:`
    /// names a pool (`pod0`), as a host → pod directory answers.
    pub fn with_bare_pool(mut self, bare_pool: bool) -> Self {
        self.bare_pool = bare_pool;
        self
    }

    /// The URL asked for `name`.
    pub fn url_for(&self, name: &str) -> String {
        let encoded = percent_encode(name);
        self.parts.join(&encoded)
    }

    async fn ask(&self, name: &str) -> Result<Resolution, ResolveError> {
        let url = self.url_for(name);
        let uri: Uri = url
            .parse()
            .map_err(|_| ResolveError::BadAnswer(format!("cannot build a URL for {name:?}")))?;
        let req = Request::get(uri)
            .header(hyper::header::ACCEPT, "application/json, text/plain")
            .body(Empty::new())
            .map_err(|e| ResolveError::Unavailable(format!("request: {e}")))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| ResolveError::Unavailable(describe(&e)))?;
        let status = resp.status();
        let text = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/plain")
            });
        let body = match Limited::new(resp.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(ResolveError::BadAnswer(format!(
                    "body larger than {MAX_BODY} bytes"
                )));
            }
            Err(e) => return Err(ResolveError::Unavailable(format!("reading body: {e}"))),
        };
        match status {
            StatusCode::OK if text => match std::str::from_utf8(&body) {
                Ok(t) => parse_text_answer(t, self.bare_pool),
                Err(_) => Err(ResolveError::BadAnswer("text answer is not UTF-8".into())),
            },
            StatusCode::OK => parse_json(&body),
            StatusCode::NOT_FOUND => Ok(Resolution::NotFound),
            other => Err(ResolveError::Unavailable(format!(
                "directory answered {other}"
            ))),
        }
    }
}

/// Walks an error's source chain into one line (hyper-util's top error says little).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Parses a `200` JSON body: a pool name, or a non-empty endpoint list.
fn parse_json(body: &[u8]) -> Result<Resolution, ResolveError> {
    let mut answer: Answer = serde_json::from_slice(body)
        .map_err(|e| ResolveError::BadAnswer(format!("invalid JSON: {e}")))?;
    match (answer.pool.take(), &answer.endpoint, &answer.endpoints) {
        (Some(pool), None, None) => pool_answer(&pool),
        (Some(_), _, _) => Err(ResolveError::BadAnswer(
            "\"pool\" together with \"endpoint\" or \"endpoints\"".into(),
        )),
        (None, _, _) => endpoints_of(answer).map(Resolution::Found),
    }
}

/// Parses a `200` body into a non-empty endpoint list.
#[cfg(test)]
fn parse_answer(body: &[u8]) -> Result<Arc<[SocketAddr]>, ResolveError> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| ResolveError::BadAnswer(format!("invalid JSON: {e}")))?;
    endpoints_of(answer)
}

/// The endpoint list of a JSON answer.
fn endpoints_of(answer: Answer) -> Result<Arc<[SocketAddr]>, ResolveError> {
    let list = match (answer.endpoint, answer.endpoints) {
        (Some(one), None) => vec![one],
        (None, Some(many)) => many,
        (Some(_), Some(_)) => {
            return Err(ResolveError::BadAnswer(
                "both \"endpoint\" and \"endpoints\"".into(),
            ))
        }
        (None, None) => {
            return Err(ResolveError::BadAnswer(
                "neither \"endpoint\" nor \"endpoints\"".into(),
            ))
        }
    };
    if list.is_empty() {
        return Err(ResolveError::BadAnswer("empty endpoint list".into()));
    }
    list.iter().map(|s| parse_endpoint(s)).collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

impl Resolver for HttpResolver {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.ask(name)).await {
                Ok(result) => result,
                Err(_) => Err(ResolveError::Timeout(self.timeout)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_may_name_a_pool() {
        assert_eq!(
            parse_json(br#"{"pool":"pod0"}"#),
            Ok(Resolution::Pool(Arc::from("pod0")))
        );
        assert!(parse_json(br#"{"pool":"pod0","endpoint":"127.0.0.1:1"}"#).is_err());
        assert!(parse_json(br#"{"pool":"not a name"}"#).is_err());
        assert!(parse_json(br#"{"pool":""}"#).is_err());
        assert!(matches!(
            parse_json(br#"{"endpoint":"127.0.0.1:1"}"#),
            Ok(Resolution::Found(e)) if e.len() == 1
        ));
    }

    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(percent_encode("a-b.c_d~9Z"), "a-b.c_d~9Z");
        assert_eq!(percent_encode("a b/c?d%"), "a%20b%2Fc%3Fd%25");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn template_validation() {
        let t = Duration::from_secs(1);
        assert!(matches!(
            HttpResolver::new("http://h/x", t),
            Err(TemplateError::NoPlaceholder(_))
        ));
        assert!(matches!(
            HttpResolver::new("https://h/{name}", t),
            Err(TemplateError::NotHttp(_))
        ));
        assert!(matches!(
            HttpResolver::new("http:///{name}", t),
            Err(TemplateError::Invalid { .. })
        ));
        assert!(matches!(
            HttpResolver::new("http://u:p@h/{name}", t),
            Err(TemplateError::Invalid { .. })
        ));
        assert!(matches!(
            HttpResolver::new("http://h:99999/{name}", t),
            Err(TemplateError::Invalid { .. })
        ));
        let r = HttpResolver::new("HTTP://h:1/b/{name}?n={name}", t).unwrap();
        assert_eq!(r.url_for("a b"), "HTTP://h:1/b/a%20b?n=a%20b");
    }

    #[test]
    fn answers() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(
            parse_answer(br#"{"endpoint":"127.0.0.1:1"}"#).unwrap()[..],
            [a]
        );
        assert_eq!(
            parse_answer(br#"{"endpoints":["127.0.0.1:1","[::1]:2"],"x":1}"#)
                .unwrap()
                .len(),
            2
        );
        for bad in [
            &br#"{"endpoints":[]}"#[..],
            br#"{}"#,
            br#"{"endpoint":"nope"}"#,
            b"<html>",
            br#"{"endpoint":1}"#,
        ] {
            assert!(
                matches!(parse_answer(bad), Err(ResolveError::BadAnswer(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
