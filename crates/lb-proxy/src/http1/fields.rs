//! The fields that decide a message's framing and its connection, judged once.
//!
//! [`Framing`] reads a head's fields one by one (`add`, or `add_length`, `add_coding` and
//! `add_connection` for a caller that already dispatches on names), whatever they were
//! parsed into (httparse's slices, or a header map on the HTTP/2-capable path), and answers what the
//! body is ([`Framing::request_body`], [`Framing::response_body`]) and which `Host` the
//! request names ([`Framing::request_host`]). Errors are kept until they matter: a
//! response that cannot have a body (a 101, a 204) is not refused for a bad length.

use super::{Body, Error, Target, Version};

/// `close` or `keep-alive` (or empty): a `Connection` option that names no header.
pub(crate) fn is_plain_connection_option(option: &[u8]) -> bool {
    let o = option.trim_ascii();
    o.is_empty() || o.eq_ignore_ascii_case(b"keep-alive") || o.eq_ignore_ascii_case(b"close")
}

/// The options of a head's `Connection` fields that decide whether its connection is
/// kept: read the same way from a backend's response and from a client's request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// `close` was named.
    pub close: bool,
    /// `keep-alive` was named.
    pub keep_alive: bool,
    /// `upgrade` was named.
    pub upgrade: bool,
}

impl ConnectionOptions {
    /// Adds the options of one `Connection` value; true when it names other fields (an
    /// option other than `close` and `keep-alive`), which the relay must remove too.
    pub fn add(&mut self, value: &[u8]) -> bool {
        // The usual values, one option each, without splitting.
        if value.eq_ignore_ascii_case(b"keep-alive") {
            self.keep_alive = true;
            return false;
        }
        if value.eq_ignore_ascii_case(b"close") {
            self.close = true;
            return false;
        }
        let mut names_fields = false;
        for o in value.split(|&b| b == b',') {
            let o = o.trim_ascii();
            self.close |= o.eq_ignore_ascii_case(b"close");
            self.keep_alive |= o.eq_ignore_ascii_case(b"keep-alive");
            self.upgrade |= o.eq_ignore_ascii_case(b"upgrade");
            names_fields |= !is_plain_connection_option(o);
        }
        names_fields
    }

    /// Whether the connection persists after a message of `version` with these options
    /// (RFC 9112 §9.3): HTTP/1.1 unless `close`; HTTP/1.0 only with `keep-alive`.
    pub fn persists(self, version: Version) -> bool {
        !self.close && (version == Version::Http11 || self.keep_alive)
    }
}

/// A `Content-Length` value (one of a list): 1 to 19 ASCII digits, which always fit a
/// `u64`; anything else is `None`.
pub(crate) fn decimal_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// What a head's framing fields say, gathered field by field (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Framing<'a> {
    /// The `Content-Length` (every value agrees), or why it is invalid.
    length: Result<Option<u64>, Error>,
    /// Some `Transfer-Encoding` field was seen.
    pub coding: bool,
    /// The codings named so far are exactly one `chunked` (a request's only valid
    /// `Transfer-Encoding`).
    only_chunked: bool,
    /// The last coding named is `chunked` (what a response's framing needs).
    pub chunked_last: bool,
    /// `Host` fields seen, and the first one's value.
    hosts: u8,
    host: Option<&'a [u8]>,
    /// The `Connection` options.
    pub connection: ConnectionOptions,
    /// Some `Connection` option names other fields (to be removed as well).
    pub connection_names_fields: bool,
    /// `Expect: 100-continue` (RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// Some `Expect` field (any expectation).
    pub expect: bool,
    /// Some `Upgrade` field.
    pub upgrade: bool,
    /// Some `TE` field.
    pub te: bool,
    /// A `TE` field names `trailers`: the client accepts trailers.
    pub te_trailers: bool,
}

impl Default for Framing<'_> {
    fn default() -> Self {
        Framing {
            length: Ok(None),
            coding: false,
            only_chunked: false,
            chunked_last: false,
            hosts: 0,
            host: None,
            connection: ConnectionOptions::default(),
            connection_names_fields: false,
            expect_continue: false,
            expect: false,
            upgrade: false,
            te: false,
            te_trailers: false,
        }
    }
}

impl<'a> Framing<'a> {
    /// Takes one field into account. Names are matched case-insensitively; a field
    /// that decides nothing costs one length comparison.
    pub fn add(&mut self, name: &[u8], value: &'a [u8]) {
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                self.hosts = self.hosts.saturating_add(1);
                self.host.get_or_insert(value.trim_ascii());
            }
            2 if name.eq_ignore_ascii_case(b"te") => {
                self.te = true;
                self.te_trailers |= value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                self.expect = true;
                self.expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => self.upgrade = true,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                self.add_connection(value);
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => self.add_length(value),
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => self.add_coding(value),
            _ => {}
        }
    }

    /// One `Connection` value ([`ConnectionOptions::add`]); true when it names other
    /// fields.
    pub fn add_connection(&mut self, value: &[u8]) -> bool {
        let names = self.connection.add(value);
        self.connection_names_fields |= names;
        names
    }

    /// One `Content-Length` value: a list of plain decimal numbers that all agree.
    pub fn add_length(&mut self, value: &[u8]) {
        let Ok(mut length) = self.length else {
            return;
        };
        for part in value.split(|&b| b == b',') {
            length = match (decimal_length(part.trim_ascii()), length) {
                (None, _) => {
                    self.length = Err(Error::BadLength);
                    return;
                }
                (Some(n), Some(l)) if n != l => {
                    self.length = Err(Error::DifferingLengths);
                    return;
                }
                (Some(n), _) => Some(n),
            };
        }
        self.length = Ok(length);
    }

    /// One `Transfer-Encoding` value: its codings, in order, after any before.
    pub fn add_coding(&mut self, value: &[u8]) {
        let first = !self.coding;
        self.coding = true;
        let mut only = first || self.only_chunked;
        let mut chunked_seen = !first && self.only_chunked;
        let mut named = false;
        for c in value.split(|&b| b == b',') {
            let c = c.trim_ascii();
            if c.is_empty() {
                continue;
            }
            named = true;
            let chunked = c.eq_ignore_ascii_case(b"chunked");
            only &= chunked && !chunked_seen;
            chunked_seen |= chunked;
            self.chunked_last = chunked;
        }
        // A value naming no coding at all is as invalid as an unknown one.
        self.only_chunked = only && named;
    }

    /// The body of a request with these fields (RFC 9112 §6.3): chunked, a length, or
    /// none. `Content-Length` with `Transfer-Encoding`, a bad or conflicting length,
    /// and any coding but a single `chunked` are refused; so is `Transfer-Encoding` in
    /// HTTP/1.0, which has none.
    pub fn request_body(&self, version: Version) -> Result<Body, Error> {
        if self.coding {
            if !matches!(self.length, Ok(None)) {
                return Err(Error::LengthAndCoding);
            }
            if !self.only_chunked || version == Version::Http10 {
                return Err(Error::BadCoding);
            }
            return Ok(Body::Chunked);
        }
        match self.length? {
            None | Some(0) => Ok(Body::Empty),
            Some(n) => Ok(Body::Length(n)),
        }
    }

    /// The body of a response with these fields that may have one (not to `HEAD`, not
    /// 1xx, 204 or 304): chunked when the last coding is (HTTP/1.1), else until close
    /// for any other coding; a length; or until close. `Content-Length` with
    /// `Transfer-Encoding` and bad lengths are refused.
    pub fn response_body(&self, version: Version) -> Result<Body, Error> {
        if self.coding {
            if !matches!(self.length, Ok(None)) {
                return Err(Error::LengthAndCoding);
            }
            return Ok(if self.chunked_last && version == Version::Http11 {
                Body::Chunked
            } else {
                Body::Close
            });
        }
        match self.length? {
            Some(0) => Ok(Body::Empty),
            Some(n) => Ok(Body::Length(n)),
            None => Ok(Body::Close),
        }
    }

    /// The authority a request is for (RFC 9112 §3.2): the target's for an
    /// absolute-form target, else the `Host` field. HTTP/1.1 needs exactly one `Host`
    /// field; no request may have two; an absolute-form target's authority and `Host`
    /// must agree (our rule, listed in `http1/mod.rs`; RFC 9112 §3.2.2 lets the target win, we refuse the
    /// ambiguity instead).
    pub fn request_host(
        &self,
        version: Version,
        target: Target<'a>,
    ) -> Result<Option<&'a [u8]>, Error> {
        if self.hosts > 1 {
            return Err(Error::RepeatedHost);
        }
        if let Target::Absolute { https, authority } = target {
            if let Some(host) = self.host {
                if !same_authority(authority, host, if https { 443 } else { 80 }) {
                    return Err(Error::HostMismatch);
                }
            } else if version == Version::Http11 {
                return Err(Error::MissingHost);
            }
            return Ok(Some(authority));
        }
        if self.host.is_none() && version == Version::Http11 {
            return Err(Error::MissingHost);
        }
        Ok(self.host)
    }
}

/// `host[:port]` split; an IPv6 literal keeps its brackets.
fn split_port(authority: &[u8]) -> (&[u8], Option<&[u8]>) {
    let after_literal = authority.iter().rposition(|&b| b == b']').unwrap_or(0);
    match authority.iter().rposition(|&b| b == b':') {
        Some(i) if i >= after_literal => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    }
}

/// Two authorities name the same host and port (a missing or empty port being the
/// scheme's `default`); host names compare case-insensitively.
fn same_authority(a: &[u8], b: &[u8], default: u64) -> bool {
    let (ha, pa) = split_port(a);
    let (hb, pb) = split_port(b);
    let port = |p: Option<&[u8]>| match p {
        None | Some(b"") => Some(default),
        Some(p) => decimal_length(p),
    };
    ha.eq_ignore_ascii_case(hb) && port(pa).is_some() && port(pa) == port(pb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing<'a>(fields: &[(&str, &'a str)]) -> Framing<'a> {
        let mut f = Framing::default();
        for (n, v) in fields {
            f.add(n.as_bytes(), v.as_bytes());
        }
        f
    }

    #[test]
    fn lengths_agree_or_are_refused() {
        let body = |fs: &[(&str, &str)]| framing(fs).request_body(Version::Http11);
        assert_eq!(body(&[("Content-Length", "5")]), Ok(Body::Length(5)));
        assert_eq!(
            body(&[("content-length", "5, 5"), ("CONTENT-LENGTH", "5")]),
            Ok(Body::Length(5))
        );
        assert_eq!(body(&[("Content-Length", "0")]), Ok(Body::Empty));
        assert_eq!(
            body(&[("Content-Length", "5"), ("Content-Length", "6")]),
            Err(Error::DifferingLengths)
        );
        assert_eq!(
            body(&[("Content-Length", "5, 6")]),
            Err(Error::DifferingLengths)
        );
        for bad in [
            "+5",
            "-1",
            "0x5",
            "5.0",
            "",
            " ",
            "5 5",
            "99999999999999999999",
            "5,",
        ] {
            assert_eq!(
                body(&[("Content-Length", bad)]),
                Err(Error::BadLength),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn codings_other_than_one_chunked_are_refused_in_requests() {
        let body = |fs: &[(&str, &str)]| framing(fs).request_body(Version::Http11);
        assert_eq!(body(&[("Transfer-Encoding", "chunked")]), Ok(Body::Chunked));
        assert_eq!(
            body(&[("Transfer-Encoding", " Chunked ,")]),
            Ok(Body::Chunked)
        );
        for bad in [
            &[("Transfer-Encoding", "gzip, chunked")][..],
            &[("Transfer-Encoding", "chunked, gzip")],
            &[("Transfer-Encoding", "chunked, chunked")],
            &[
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "chunked"),
            ],
            &[
                ("Transfer-Encoding", "gzip"),
                ("Transfer-Encoding", "chunked"),
            ],
            &[("Transfer-Encoding", "identity")],
            &[("Transfer-Encoding", "")],
            &[("Transfer-Encoding", "chunked;x=1")],
        ] {
            assert_eq!(body(bad), Err(Error::BadCoding), "{bad:?}");
        }
        assert_eq!(
            body(&[("Transfer-Encoding", "chunked"), ("Content-Length", "5")]),
            Err(Error::LengthAndCoding)
        );
        assert_eq!(
            framing(&[("Transfer-Encoding", "chunked")]).request_body(Version::Http10),
            Err(Error::BadCoding)
        );
    }

    #[test]
    fn responses_read_other_codings_until_close() {
        let body = |fs: &[(&str, &str)], v| framing(fs).response_body(v);
        assert_eq!(
            body(&[("Transfer-Encoding", "gzip, chunked")], Version::Http11),
            Ok(Body::Chunked)
        );
        assert_eq!(
            body(&[("Transfer-Encoding", "chunked, gzip")], Version::Http11),
            Ok(Body::Close)
        );
        assert_eq!(
            body(&[("Transfer-Encoding", "chunked")], Version::Http10),
            Ok(Body::Close)
        );
        assert_eq!(body(&[], Version::Http11), Ok(Body::Close));
        assert_eq!(
            body(&[("Content-Length", "0")], Version::Http11),
            Ok(Body::Empty)
        );
    }

    #[test]
    fn host_rules() {
        let host = |fs: &[(&str, &'static str)], v, t| framing(fs).request_host(v, t);
        let origin = Target::Origin("/");
        let abs = |a: &'static str| Target::Absolute {
            https: false,
            authority: a.as_bytes(),
        };
        assert_eq!(
            host(&[("Host", "a.test")], Version::Http11, origin),
            Ok(Some(&b"a.test"[..]))
        );
        assert_eq!(host(&[], Version::Http11, origin), Err(Error::MissingHost));
        assert_eq!(host(&[], Version::Http10, origin), Ok(None));
        assert_eq!(
            host(&[("Host", "a"), ("host", "a")], Version::Http10, origin),
            Err(Error::RepeatedHost)
        );
        assert_eq!(
            host(&[("Host", "A.test:80")], Version::Http11, abs("a.test")),
            Ok(Some(&b"a.test"[..]))
        );
        assert_eq!(
            host(&[("Host", "a.test")], Version::Http11, abs("other.test")),
            Err(Error::HostMismatch)
        );
        assert_eq!(
            host(&[("Host", "a.test:81")], Version::Http11, abs("a.test")),
            Err(Error::HostMismatch)
        );
        assert_eq!(
            host(&[("Host", "[::1]:80")], Version::Http11, abs("[::1]")),
            Ok(Some(&b"[::1]"[..]))
        );
        assert_eq!(
            host(&[], Version::Http10, abs("a.test")),
            Ok(Some(&b"a.test"[..]))
        );
    }

    #[test]
    fn connection_persistence_by_version() {
        let opts = |v: &str| {
            let mut o = ConnectionOptions::default();
            o.add(v.as_bytes());
            o
        };
        assert!(opts("").persists(Version::Http11));
        assert!(!opts("").persists(Version::Http10));
        assert!(opts("Keep-Alive").persists(Version::Http10));
        assert!(!opts("close").persists(Version::Http11));
        assert!(!opts("keep-alive, close").persists(Version::Http10));
        assert!(opts("Upgrade").upgrade);
    }
}
