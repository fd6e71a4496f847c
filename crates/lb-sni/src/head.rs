//! The plain-HTTP side of lb-sni: find the `Host` of a request head without consuming it.
//!
//! A `protocol = "http"` listener reads the first request head of a connection (up to
//! `max_header_bytes`), takes its `Host`, routes, and replays every byte it read to the
//! backend, then splices; later requests on the same connection go to the same backend,
//! as with any layer-4 router. Like [`parse_client_hello`](crate::parse_client_hello),
//! [`parse_head`] is pure and incremental: give it everything read so far.
//!
//! ```
//! use lb_sni::head::{parse_head, HeadError};
//!
//! let head = parse_head(b"GET / HTTP/1.1\r\nHost: App.Test:8080\r\n\r\n", 65536).unwrap();
//! assert_eq!(head.host, Some("App.Test:8080")); // normalised by the router
//! assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHo", 65536), Err(HeadError::Incomplete));
//! assert!(matches!(parse_head(b"\x16\x03\x01\x02\x00", 65536), Err(HeadError::Malformed(_))));
//! ```

/// Headers a request head may carry before it is refused.
pub const MAX_HEADERS: usize = 128;

/// A request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'a> {
    /// The `Host` header's value as sent (port included); `None` when absent (HTTP/1.0).
    pub host: Option<&'a str>,
    /// Length of the head, blank line included.
    pub consumed: usize,
}

/// Why [`parse_head`] gave no [`Head`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// A valid beginning: read more and call again.
    #[error("incomplete request head")]
    Incomplete,
    /// Not an HTTP/1.x request head.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// The head is not complete within the byte limit.
    #[error("request head larger than the limit")]
    TooLarge,
}

/// Parses the request head at the start of `buf`; a head that is not complete within
/// `max` bytes is [`HeadError::TooLarge`].
pub fn parse_head(buf: &[u8], max: usize) -> Result<Head<'_>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf).map_err(|e| {
        HeadError::Malformed(match e {
            httparse::Error::TooManyHeaders => "too many headers",
            httparse::Error::Version => "not HTTP/1.x",
            httparse::Error::Token => "bad method or token",
            httparse::Error::HeaderName => "bad header name",
            httparse::Error::HeaderValue => "bad header value",
            httparse::Error::NewLine | httparse::Error::Status => "bad line ending",
        })
    })?;
    let consumed = match status {
        httparse::Status::Complete(n) if n <= max => n,
        httparse::Status::Complete(_) => return Err(HeadError::TooLarge),
        httparse::Status::Partial if buf.len() >= max => return Err(HeadError::TooLarge),
        httparse::Status::Partial => return Err(HeadError::Incomplete),
    };
    let mut host = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Err(HeadError::Malformed("more than one Host header"));
            }
            let v = std::str::from_utf8(h.value)
                .map_err(|_| HeadError::Malformed("Host is not ASCII"))?;
            host = Some(v.trim());
        }
    }
    Ok(Head { host, consumed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn host_is_found_and_checked() {
        let h = parse_head(
            b"GET /x HTTP/1.1\r\nUser-Agent: t\r\nhOsT:  a.test \r\n\r\nbody",
            1024,
        )
        .unwrap();
        assert_eq!(h.host, Some("a.test"));
        assert_eq!(h.consumed, 50);
        assert_eq!(
            parse_head(b"GET / HTTP/1.0\r\n\r\n", 1024).unwrap().host,
            None
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 1024),
            Err(HeadError::Malformed("more than one Host header"))
        );
        assert!(matches!(
            parse_head(b"SSH-2.0-OpenSSH\r\n", 1024),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"GET / HTTP/2.0\r\n\r\n", 1024),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn limit_applies_to_partial_and_complete_heads() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(2000, b'a');
        assert_eq!(parse_head(&big, 1024), Err(HeadError::TooLarge));
        assert_eq!(parse_head(&big, 4096), Err(HeadError::Incomplete));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_head(&big, 1024), Err(HeadError::TooLarge));
        assert!(parse_head(&big, 4096).is_ok());
    }

    proptest! {
        #[test]
        fn every_prefix_of_a_head_is_incomplete(host in "[a-z0-9.-]{1,40}", path in "/[a-z0-9/]{0,30}", n in 0usize..10) {
            let mut text = format!("GET {path} HTTP/1.1\r\n");
            for i in 0..n { text.push_str(&format!("X-{i}: v{i}\r\n")); }
            text.push_str(&format!("Host: {host}\r\n\r\n"));
            let b = text.as_bytes();
            for i in 0..b.len() {
                prop_assert_eq!(parse_head(&b[..i], 65536), Err(HeadError::Incomplete));
            }
            let h = parse_head(b, 65536).unwrap();
            prop_assert_eq!(h.host, Some(host.as_str()));
            prop_assert_eq!(h.consumed, b.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512), max in 1usize..600) {
            if let Ok(h) = parse_head(&b, max) {
                prop_assert!(h.consumed <= b.len() && h.consumed <= max);
            }
        }
    }
}
