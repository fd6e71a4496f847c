//! Host and SNI names: normalisation before matching or lookup, and route host patterns.
//!
//! Every name that reaches a route match or a directory goes through [`normalize_name`]
//! first:
//!
//! 1. An IPv6 literal (`[::1]`, `[::1]:8080`, or bare `::1`) becomes its canonical text
//!    without brackets (`::1`). IP addresses are accepted as names because a `Host` header
//!    may legitimately carry one; an IPv4 address already passes the DNS-name rules.
//! 2. Otherwise a `:port` suffix (1 to 5 digits, at most 65535) is removed, then one
//!    trailing dot (`example.com.` is the same name as `example.com`).
//! 3. The rest must be a DNS name: at most 253 bytes, labels of 1 to 63 bytes made of
//!    ASCII letters, digits, `-` and `_`. Upper-case letters are lowered.
//!
//! It runs once per request, so an input that is already normal (the common case) is
//! returned borrowed without allocating; stripping a port or a dot also only borrows.
//!
//! A [`HostPattern`] is the `host` of a `[[route]]`: `*` (any name), `*.example.com`
//! (one or more labels under `example.com`, never `example.com` itself) or an exact name.
//!
//! ```
//! use lb_core::name::{normalize_name, HostPattern};
//!
//! assert_eq!(normalize_name("Tenant-42.Example.COM:8443").unwrap(), "tenant-42.example.com");
//! assert_eq!(normalize_name("[::1]:8080").unwrap(), "::1");
//! assert!(normalize_name("bad name").is_err());
//!
//! let p = HostPattern::parse("*.example.com").unwrap();
//! assert!(p.matches("a.b.example.com"));
//! assert!(!p.matches("example.com"));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;

/// Longest DNS name, in bytes, without the trailing dot.
pub const MAX_NAME_LEN: usize = 253;
/// Longest DNS label, in bytes.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing left after removing the port and trailing dot.
    #[error("empty name")]
    Empty,
    /// Longer than 253 bytes.
    #[error("name is {0} bytes long: at most 253 allowed")]
    TooLong(usize),
    /// Two dots in a row, or a leading dot.
    #[error("empty label (two dots in a row or a leading dot)")]
    EmptyLabel,
    /// A label longer than 63 bytes.
    #[error("label is {0} bytes long: at most 63 allowed")]
    LabelTooLong(usize),
    /// A character outside letters, digits, `-`, `_` and the dots between labels.
    #[error("character {0:?} is not allowed: expected letters, digits, '-', '_' and '.'")]
    BadChar(char),
    /// The `:port` suffix is not 1 to 5 digits up to 65535.
    #[error("bad port suffix {0:?}")]
    BadPort(String),
    /// A bracketed literal that is not an IPv6 address.
    #[error("bad IPv6 literal {0:?}")]
    BadIpv6(String),
    /// A port in a route host pattern.
    #[error("a host pattern takes no port")]
    PortInPattern,
    /// A `*` anywhere but alone or as the whole first label.
    #[error("'*' is only allowed alone (\"*\") or as the first label (\"*.example.com\")")]
    BadWildcard,
}

/// Normalises a host or SNI name (see the [module docs](self) for the rules).
///
/// Returns a borrowed slice of `input` unless upper-case letters had to be lowered or an
/// IPv6 literal was not in canonical form. The output is idempotent:
/// `normalize_name(out) == Ok(out)`.
pub fn normalize_name(input: &str) -> Result<Cow<'_, str>, NameError> {
    // The usual Host: a DNS name without brackets, port or trailing dot, in one pass
    // (none of `[`, `:` or a last `.` gets through it).
    if let Some(has_upper) = dns_name_one_pass(input.as_bytes()) {
        return Ok(lowered(input, has_upper));
    }
    if let Some(rest) = input.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| NameError::BadIpv6(input.to_owned()))?;
        let (inner, after) = (&rest[..close], &rest[close + 1..]);
        if !after.is_empty() {
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| NameError::BadPort(after.to_owned()))?;
            check_port(port)?;
        }
        return ipv6_name(inner);
    }
    let host = match input.split_once(':') {
        // Two or more colons can only be a bare IPv6 address.
        Some((_, port)) if port.contains(':') => return ipv6_name(input),
        Some((host, port)) => {
            check_port(port)?;
            host
        }
        None => input,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let has_upper = check_dns_name(host)?;
    Ok(lowered(host, has_upper))
}

/// `name` in lower case: borrowed unless it has upper-case letters.
fn lowered(name: &str, has_upper: bool) -> Cow<'_, str> {
    if has_upper {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// True when `name` is already normal: `normalize_name(name) == Ok(Borrowed(name))`.
pub fn is_normal(name: &str) -> bool {
    matches!(normalize_name(name), Ok(Cow::Borrowed(n)) if n.len() == name.len())
}

fn ipv6_name(inner: &str) -> Result<Cow<'_, str>, NameError> {
    let ip: Ipv6Addr = inner
        .parse()
        .map_err(|_| NameError::BadIpv6(inner.to_owned()))?;
    // Display of Ipv6Addr is the canonical RFC 5952 form (lower case, longest zero run
    // compressed). Compare without allocating by writing into a stack buffer.
    let mut buf = StackStr::<64>::new();
    use fmt::Write as _;
    if write!(buf, "{ip}").is_ok() && buf.as_str() == inner {
        Ok(Cow::Borrowed(inner))
    } else {
        Ok(Cow::Owned(ip.to_string()))
    }
}

fn check_port(port: &str) -> Result<(), NameError> {
    let ok = (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| p <= 65_535);
    if ok {
        Ok(())
    } else {
        Err(NameError::BadPort(port.to_owned()))
    }
}

/// Validates a DNS name (no port, no trailing dot); returns whether it has upper case.
/// The common case of [`check_dns_name`] in one pass over the bytes: `Some(has_upper)`
/// for a valid name; `None` for anything else, which the label-by-label walk diagnoses.
fn dns_name_one_pass(host: &[u8]) -> Option<bool> {
    if host.is_empty() || host.len() > MAX_NAME_LEN {
        return None;
    }
    let mut has_upper = false;
    let mut label = 0usize;
    for &b in host {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => label += 1,
            b'A'..=b'Z' => {
                has_upper = true;
                label += 1;
            }
            b'.' if label > 0 => label = 0,
            _ => return None,
        }
        if label > MAX_LABEL_LEN {
            return None;
        }
    }
    (label > 0).then_some(has_upper)
}

/// Checks a DNS name (without port or trailing dot); true when it has upper-case letters.
fn check_dns_name(host: &str) -> Result<bool, NameError> {
    // Every request's Host goes through here: one pass for the common case; anything
    // wrong is diagnosed by the label-by-label walk.
    match dns_name_one_pass(host.as_bytes()) {
        Some(has_upper) => Ok(has_upper),
        None => check_dns_name_slowly(host),
    }
}

fn check_dns_name_slowly(host: &str) -> Result<bool, NameError> {
    if host.is_empty() {
        return Err(NameError::Empty);
    }
    if host.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(host.len()));
    }
    let mut has_upper = false;
    for label in host.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong(label.len()));
        }
        for c in label.chars() {
            match c {
                'a'..='z' | '0'..='9' | '-' | '_' => {}
                'A'..='Z' => has_upper = true,
                other => return Err(NameError::BadChar(other)),
            }
        }
    }
    Ok(has_upper)
}

/// A small fixed-capacity string for allocation-free formatting.
struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    fn new() -> Self {
        StackStr {
            buf: [0; N],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended, so the bytes are valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > N {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The `host` of a route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `*`: any name; in lb-sni also a ClientHello without SNI.
    Any,
    /// `*.example.com`: one or more labels under the suffix, never the bare suffix. Holds
    /// the suffix with its leading dot (`.example.com`), normalised.
    Suffix(Box<str>),
    /// An exact, normalised name.
    Exact(Box<str>),
}

impl HostPattern {
    /// Parses a route host: `*`, `*.suffix` or a name. Names are normalised (case, trailing
    /// dot); a port is an error.
    pub fn parse(s: &str) -> Result<HostPattern, NameError> {
        if s == "*" {
            return Ok(HostPattern::Any);
        }
        if let Some(suffix) = s.strip_prefix("*.") {
            let name = pattern_name(suffix)?;
            return Ok(HostPattern::Suffix(format!(".{name}").into_boxed_str()));
        }
        Ok(HostPattern::Exact(pattern_name(s)?.into()))
    }

    /// True when the normalised `name` matches. Allocation-free; ASCII case is ignored so
    /// an un-normalised name still compares correctly.
    #[inline]
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(e) => name.eq_ignore_ascii_case(e),
            HostPattern::Suffix(s) => {
                name.len() > s.len()
                    && name.is_char_boundary(name.len() - s.len())
                    && name[name.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }

    /// Like [`matches`](Self::matches) for an optional name (a ClientHello without SNI):
    /// `None` matches only [`HostPattern::Any`].
    #[inline]
    pub fn matches_opt(&self, name: Option<&str>) -> bool {
        match name {
            Some(n) => self.matches(n),
            None => matches!(self, HostPattern::Any),
        }
    }
}

fn pattern_name(s: &str) -> Result<String, NameError> {
    if s.contains('*') {
        return Err(NameError::BadWildcard);
    }
    // normalize_name strips a port; a pattern must not have one.
    let colons = s.bytes().filter(|&b| b == b':').count();
    if colons == 1 || (s.starts_with('[') && s.contains("]:")) {
        return Err(NameError::PortInPattern);
    }
    let n = normalize_name(s)?;
    Ok(n.into_owned())
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
            HostPattern::Exact(e) => f.write_str(e),
        }
    }
}

/// A client IP in text form, on the stack: the key `client-ip` hashes (the same bytes in
/// lb-proxy, lb-sni, `lb route` and `/api/v1/route?key=`).
///
/// ```
/// let ip = lb_core::name::IpText::new("2001:db8::1".parse().unwrap());
/// assert_eq!(ip.as_bytes(), b"2001:db8::1");
/// assert_eq!(format!("{ip:?}"), "2001:db8::1");
/// ```
pub struct IpText {
    buf: [u8; 64],
    len: usize,
}

impl IpText {
    /// Formats `ip` (IPv4 by hand: `Display` costs ~1 µs of formatting machinery).
    pub fn new(ip: std::net::IpAddr) -> IpText {
        let mut buf = [0u8; 64];
        let len = match ip {
            std::net::IpAddr::V4(v4) => {
                let mut n = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[n] = b'.';
                        n += 1;
                    }
                    if octet >= 100 {
                        buf[n] = b'0' + octet / 100;
                        n += 1;
                    }
                    if octet >= 10 {
                        buf[n] = b'0' + octet / 10 % 10;
                        n += 1;
                    }
                    buf[n] = b'0' + octet % 10;
                    n += 1;
                }
                n
            }
            std::net::IpAddr::V6(_) => {
                use std::io::Write;
                let mut w = &mut buf[..];
                // 64 bytes hold any IPv6 text form (at most 45 bytes).
                let _ = write!(w, "{ip}");
                64 - w.len()
            }
        };
        IpText { buf, len }
    }

    /// The text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Debug for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only ASCII digits, dots, colons and hex letters are written.
        f.write_str(std::str::from_utf8(self.as_bytes()).unwrap_or("?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normal_names_borrow() {
        for n in [
            "example.com",
            "a",
            "tenant-42.example.com",
            "_srv.x",
            "1.2.3.4",
            "::1",
        ] {
            assert!(
                matches!(normalize_name(n), Ok(Cow::Borrowed(b)) if b == n),
                "{n}"
            );
            assert!(is_normal(n));
        }
        assert!(matches!(normalize_name("a.b:80"), Ok(Cow::Borrowed("a.b"))));
        assert!(matches!(normalize_name("a.b."), Ok(Cow::Borrowed("a.b"))));
        assert!(matches!(
            normalize_name("[::1]:443"),
            Ok(Cow::Borrowed("::1"))
        ));
        assert!(!is_normal("a.b:80"));
    }

    #[test]
    fn normalises() {
        assert_eq!(normalize_name("App.TEST.:8080").unwrap(), "app.test");
        assert_eq!(normalize_name("[0:0::1]").unwrap(), "::1");
        assert_eq!(normalize_name("[FE80::1]:80").unwrap(), "fe80::1");
        assert_eq!(normalize_name("FE80::1").unwrap(), "fe80::1");
    }

    #[test]
    fn rejects() {
        assert_eq!(normalize_name(""), Err(NameError::Empty));
        assert_eq!(normalize_name(":80"), Err(NameError::Empty));
        assert_eq!(normalize_name("."), Err(NameError::Empty));
        assert_eq!(normalize_name("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(normalize_name(".a"), Err(NameError::EmptyLabel));
        assert_eq!(normalize_name("a.b.."), Err(NameError::EmptyLabel));
        assert_eq!(normalize_name("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(normalize_name("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(normalize_name("é.com"), Err(NameError::BadChar('é')));
        assert!(matches!(normalize_name("a:"), Err(NameError::BadPort(_))));
        assert!(matches!(
            normalize_name("a:65536"),
            Err(NameError::BadPort(_))
        ));
        assert!(matches!(normalize_name("a:x"), Err(NameError::BadPort(_))));
        assert!(matches!(normalize_name("[::1"), Err(NameError::BadIpv6(_))));
        assert!(matches!(normalize_name("[x]"), Err(NameError::BadIpv6(_))));
        assert!(matches!(
            normalize_name("[::1]x"),
            Err(NameError::BadPort(_))
        ));
        assert_eq!(
            normalize_name(&"a".repeat(64)),
            Err(NameError::LabelTooLong(64))
        );
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(normalize_name(&long), Err(NameError::TooLong(255)));
        let max = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(61));
        assert_eq!(max.len(), 253);
        assert!(normalize_name(&max).is_ok());
    }

    #[test]
    fn patterns() {
        assert_eq!(HostPattern::parse("*").unwrap(), HostPattern::Any);
        let s = HostPattern::parse("*.Example.com.").unwrap();
        assert_eq!(s, HostPattern::Suffix(".example.com".into()));
        assert_eq!(s.to_string(), "*.example.com");
        assert!(s.matches("a.example.com"));
        assert!(s.matches("a.b.example.com"));
        assert!(s.matches("A.EXAMPLE.COM"));
        assert!(!s.matches("example.com"));
        assert!(!s.matches("aexample.com"));
        assert!(!s.matches("a.example.org"));
        assert!(!s.matches_opt(None));
        assert!(HostPattern::Any.matches_opt(None));
        let e = HostPattern::parse("App.Test").unwrap();
        assert!(e.matches("app.test"));
        assert!(!e.matches("x.app.test"));
        assert_eq!(HostPattern::parse("a.b:80"), Err(NameError::PortInPattern));
        assert_eq!(HostPattern::parse("a.*.b"), Err(NameError::BadWildcard));
        assert_eq!(HostPattern::parse("*a.b"), Err(NameError::BadWildcard));
        assert_eq!(HostPattern::parse("**.b"), Err(NameError::BadWildcard));
        assert_eq!(
            HostPattern::parse("[::1]").unwrap(),
            HostPattern::Exact("::1".into())
        );
    }

    fn name_chars() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9_.:\\-\\[\\] é*/]{0,80}").expect("valid regex")
    }

    proptest! {
        #[test]
        fn never_panics_and_is_idempotent(s in name_chars()) {
            if let Ok(n) = normalize_name(&s) {
                let again = normalize_name(&n).expect("normal output is valid");
                prop_assert_eq!(&*again, &*n);
                prop_assert!(matches!(again, Cow::Borrowed(_)));
                prop_assert!(n.len() <= MAX_NAME_LEN);
                prop_assert!(!n.bytes().any(|b| b.is_ascii_uppercase()));
            }
        }

        #[test]
        fn one_pass_check_agrees_with_the_label_walk(
            s in proptest::string::string_regex("[a-zA-Z0-9_.\\-é]{0,70}|[a-z.]{60,300}").expect("valid regex")
        ) {
            prop_assert_eq!(check_dns_name(&s), check_dns_name_slowly(&s));
        }

        #[test]
        fn the_one_pass_shortcut_agrees_with_the_full_rules(
            s in proptest::string::string_regex("[a-z0-9_.\\-]{0,70}|[a-zA-Z0-9_.:\\-\\[\\]]{0,20}|[a-z.]{60,300}").expect("valid regex")
        ) {
            if let Some(has_upper) = dns_name_one_pass(s.as_bytes()) {
                // What normalize_name's full path would take as the name: all of it.
                prop_assert!(!s.contains([':', '[']) && !s.ends_with('.'));
                prop_assert_eq!(check_dns_name_slowly(&s), Ok(has_upper));
            } else {
                prop_assert!(check_dns_name_slowly(&s).is_err() || s.contains([':', '[']) || s.ends_with('.'));
            }
        }

        #[test]
        fn arbitrary_unicode_never_panics(s in "\\PC{0,40}") {
            let _ = normalize_name(&s);
            if let Ok(p) = HostPattern::parse(&s) {
                let _ = p.matches(&s);
            }
        }

        #[test]
        fn valid_labels_roundtrip(labels in proptest::collection::vec("[a-zA-Z0-9_-]{1,20}", 1..6),
                                  port in proptest::option::of(0u16..), dot in any::<bool>()) {
            let name = labels.join(".");
            let mut input = name.clone();
            if dot { input.push('.'); }
            if let Some(p) = port { input.push_str(&format!(":{p}")); }
            let n = normalize_name(&input).expect("valid");
            prop_assert_eq!(n.into_owned(), name.to_ascii_lowercase());
        }

        #[test]
        fn suffix_matches_iff_under(labels in proptest::collection::vec("[a-z0-9]{1,8}", 1..4),
                                    sub in proptest::collection::vec("[a-z0-9]{1,8}", 0..3)) {
            let base = labels.join(".");
            let p = HostPattern::parse(&format!("*.{base}")).expect("valid");
            let mut name = sub.clone();
            name.extend(labels.iter().cloned());
            let name = name.join(".");
            prop_assert_eq!(p.matches(&name), !sub.is_empty());
            prop_assert!(HostPattern::parse(&base).expect("valid").matches(&base));
            prop_assert!(HostPattern::Any.matches(&name));
        }
    }
}
