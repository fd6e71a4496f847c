//! Header fields as a map: building one from a head's fields, hop-by-hop removal
//! (keeping an upgrade's when asked), values the proxy makes (shared by reference count,
//! so a retry's copy of the map allocates nothing), request ids. The forwarding headers
//! themselves are the proxy's ([`proxy::forwarding`](crate::proxy::forwarding)).

use bytes::Bytes;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::Version;
use lb_core::hash;

use crate::http1::fields::{is_plain_connection_option, ConnectionOptions};

/// Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded.
///
/// `Trailer` is not one (RFC 9110 §6.6.2): it declares the trailer fields end to end, and
/// hyper's HTTP/1.1 server sends a response's trailers only when it names them.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// True for a [`HOP_BY_HOP`] name given as bytes (ASCII case-insensitive), for heads read
/// without a map: one length switch, no hashing.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    match name.len() {
        2 => name.eq_ignore_ascii_case(b"te"),
        7 => name.eq_ignore_ascii_case(b"upgrade"),
        10 => name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive"),
        16 => name.eq_ignore_ascii_case(b"proxy-connection"),
        17 => name.eq_ignore_ascii_case(b"transfer-encoding"),
        _ => false,
    }
}

/// A field value as text, as `HeaderValue::to_str` takes it: visible ASCII and tabs only.
pub(crate) fn as_text(value: &[u8]) -> Option<&str> {
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
    {
        return None;
    }
    std::str::from_utf8(value).ok()
}

// Names built once at compile time, so no request parses them.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const X_LB_ERROR: HeaderName = HeaderName::from_static("x-lb-error");

/// Which hop-by-hop names (bit i = `HOP_BY_HOP[i]`) occur in `headers`: one pass over the
/// names, comparing without hashing.
fn hop_by_hop_present(headers: &HeaderMap) -> u8 {
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    present
}

/// Bit of `Upgrade` in [`hop_by_hop_present`]'s answer (`Connection` is bit 0).
const UPGRADE_BIT: u8 = 1 << 5;

/// Removes the hop-by-hop headers, and those that `Connection` names. Most messages carry
/// none (or only `Connection: keep-alive`), so this costs one pass over the names.
#[cfg(test)]
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_keeping_upgrade(headers, false);
}

/// Removes the hop-by-hop headers and those that `Connection` names; with
/// `keep_upgrade`, a message with `Connection: upgrade` and an `Upgrade` header keeps
/// `Upgrade` (its first value) and gets exactly `Connection: upgrade`. Returns true when
/// it did. Found in the same pass over the names, so messages without `Upgrade` pay
/// nothing more.
pub(crate) fn strip_keeping_upgrade(headers: &mut HeaderMap, keep_upgrade: bool) -> bool {
    let present = hop_by_hop_present(headers);
    if present == 0 {
        return false;
    }
    let upgrade = if keep_upgrade && present & (UPGRADE_BIT | 1) == UPGRADE_BIT | 1 {
        headers
            .get(header::UPGRADE)
            .filter(|_| connection_has(headers, "upgrade"))
            .cloned()
    } else {
        None
    };
    if present & 1 != 0 && connection_names_headers(headers) {
        // Options other than the usual `close` / `keep-alive` name headers to drop.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter(|n| !is_plain_connection_option(n.as_bytes()))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in &named {
            headers.remove(n);
        }
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(n);
        }
    }
    match upgrade {
        Some(v) => {
            headers.insert(header::UPGRADE, v);
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            true
        }
        None => false,
    }
}

/// True when some `Connection` option is `option` (ASCII case-insensitive).
fn connection_has(headers: &HeaderMap, option: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|o| o.trim().eq_ignore_ascii_case(option))
}

/// The codec's request-framing rules ([`crate::http1`]) applied to an HTTP/1.x request
/// hyper parsed: `Transfer-Encoding` naming any coding but `chunked`, `Content-Length`
/// with `Transfer-Encoding`, conflicting lengths, a missing (HTTP/1.1) or repeated `Host`,
/// or one that disagrees with an absolute-form target. HTTP/2 requests pass.
pub(crate) fn check_framing(parts: &Parts) -> Result<(), crate::http1::Error> {
    use crate::http1::{fields::Framing, Target};
    let version = match parts.version {
        Version::HTTP_10 => crate::http1::Version::Http10,
        Version::HTTP_11 => crate::http1::Version::Http11,
        _ => return Ok(()),
    };
    let mut framing = Framing::default();
    for (name, value) in &parts.headers {
        framing.add(name.as_str().as_bytes(), value.as_bytes());
    }
    framing.request_body(version)?;
    let target = match (parts.uri.scheme_str(), parts.uri.authority()) {
        (Some(scheme), Some(authority)) if parts.method != hyper::Method::CONNECT => {
            Target::Absolute {
                https: scheme.eq_ignore_ascii_case("https"),
                authority: authority.as_str().as_bytes(),
            }
        }
        (_, Some(authority)) => Target::Authority(authority.as_str()),
        _ => Target::Origin(parts.uri.path()),
    };
    framing.request_host(version, target)?;
    Ok(())
}

/// A header map of fields that lie in `source` (values share it, a reference count), with
/// the `Connection` options read on the way. With `drop_hop`, `Keep-Alive` fields and
/// `Connection` fields that name no other field are left out: they are hop-by-hop, and the
/// relay would only look them up to remove them again (a `Connection` that names fields
/// stays, so those are removed too). `None` when a name or value is one the `http` types
/// refuse. `capacity`: the fields and what will be added.
pub(crate) fn field_map<'a>(
    source: &Bytes,
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    capacity: usize,
    drop_hop: bool,
) -> Option<(HeaderMap, ConnectionOptions)> {
    let mut map = HeaderMap::with_capacity(capacity);
    let mut options = ConnectionOptions::default();
    for (name, value) in fields {
        if name.eq_ignore_ascii_case(b"connection") {
            if !options.add(value) && drop_hop {
                continue;
            }
        } else if drop_hop && name.eq_ignore_ascii_case(b"keep-alive") {
            continue;
        }
        let name = HeaderName::from_bytes(name).ok()?;
        let value = HeaderValue::from_maybe_shared(source.slice_ref(value)).ok()?;
        map.append(name, value);
    }
    Some((map, options))
}

/// Appends to `map` the fields of `lines` (`name: value` lines, each ended by CRLF, as a
/// head's fields are relayed), at most `N` of them; values share the lines' bytes. For a
/// server or client that encodes from a map. The lines were parsed before, as part of a
/// whole head, so none is refused.
pub(crate) fn append_lines<const N: usize>(map: &mut HeaderMap, mut lines: Vec<u8>) {
    lines.extend_from_slice(b"\r\n");
    let lines = Bytes::from(lines);
    let mut parsed = [httparse::EMPTY_HEADER; N];
    if let Ok(httparse::Status::Complete((_, fields))) =
        httparse::parse_headers(&lines, &mut parsed)
    {
        for f in fields.iter() {
            let name = HeaderName::from_bytes(f.name.as_bytes());
            let value = HeaderValue::from_maybe_shared(lines.slice_ref(f.value));
            if let (Ok(name), Ok(value)) = (name, value) {
                map.append(name, value);
            }
        }
    }
}

/// True when some `Connection` option names a header (anything but `close`/`keep-alive`).
fn connection_names_headers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| match v.to_str() {
            Ok(v) => !v
                .split(',')
                .all(|o| is_plain_connection_option(o.as_bytes())),
            // Not text: no header name could be taken from it either.
            Err(_) => false,
        })
}

/// A header value from `parts` concatenated, cut from this thread's shared buffer
/// ([`slab`](crate::request::slab)): making it allocates nothing, and copying the header
/// map (for an HTTP/2 backend) shares it, a reference count. Invalid bytes give `None`, like
/// `HeaderValue::from_bytes`.
pub(crate) fn shared_value(parts: &[&[u8]]) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(crate::request::slab::copy(parts)).ok()
}

/// A request id: 32 random hex digits.
pub(crate) fn request_id_text() -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut random = [0u8; 16];
    random[..8].copy_from_slice(&hash::thread_random().to_be_bytes());
    random[8..].copy_from_slice(&hash::thread_random().to_be_bytes());
    let mut buf = [0u8; 32];
    for (pair, byte) in buf.chunks_exact_mut(2).zip(random) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    buf
}

/// A request id as a header value.
pub(crate) fn request_id() -> HeaderValue {
    // Hex digits are always a valid header value.
    shared_value(&[&request_id_text()]).unwrap_or_else(|| HeaderValue::from_static("0"))
}

/// The `X-Forwarded-For` value sent upstream, in parts to concatenate: the client's chain
/// and `, ` when it is appended to (`append`, see
/// [`believed`](crate::proxy::forwarding::believed), and not empty), then the peer's
/// address.
pub(crate) fn forwarded_for<'a>(
    prev: Option<&'a [u8]>,
    append: bool,
    ip: &'a [u8],
) -> [&'a [u8]; 3] {
    match prev.filter(|p| append && !p.is_empty()) {
        Some(prev) => [prev, b", ", ip],
        None => [b"", b"", ip],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            let name = HeaderName::from_bytes(n.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let value = HeaderValue::from_bytes(v).unwrap_or_else(|e| panic!("{e}"));
            h.append(name, value);
        }
        h
    }

    #[test]
    fn hop_by_hop_bytes_are_the_hop_by_hop_names() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name.as_str().as_bytes()), "{name}");
            assert!(
                is_hop_by_hop(name.as_str().to_ascii_uppercase().as_bytes()),
                "{name}"
            );
        }
        for name in ["trailer", "host", "te2", "connections", "keep-alive ", ""] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn hop_by_hop_strip_keeps_end_to_end_fields() {
        let mut h = map(&[
            ("content-type", b"text/plain"),
            ("connection", b"Keep-Alive"),
            ("keep-alive", b"timeout=5"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));

        let mut h = map(&[
            ("connection", b"close, X-Hop , keep-alive"),
            ("connection", b"x-other"),
            ("x-hop", b"1"),
            ("x-other", b"2"),
            ("x-kept", b"3"),
            ("te", b"trailers"),
            ("upgrade", b"websocket"),
            ("transfer-encoding", b"chunked"),
            ("trailer", b"x-t"),
            ("proxy-connection", b"keep-alive"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        // `Trailer` is end to end: it names the trailers the client will get.
        assert_eq!(names, ["trailer", "x-kept"]);

        // A Connection value that is not text names nothing; it is still removed.
        let mut h = map(&[("connection", b"\xff\xfe"), ("x-kept", b"1")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);

        let mut h = map(&[("x-a", b"1"), ("x-b", b"2")]);
        assert_eq!(hop_by_hop_present(&h), 0);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn upgrade_headers_are_kept_only_when_asked_and_both_present() {
        let upgrade = || {
            map(&[
                ("connection", b"keep-alive, Upgrade"),
                ("upgrade", b"websocket"),
                ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                ("keep-alive", b"timeout=5"),
                ("te", b"trailers"),
            ])
        };
        let mut h = upgrade();
        assert!(strip_keeping_upgrade(&mut h, true));
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["connection", "sec-websocket-key", "upgrade"]);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");

        // Not asked (HTTP/2, or a response that is not a 101): all hop-by-hop go.
        let mut h = upgrade();
        assert!(!strip_keeping_upgrade(&mut h, false));
        assert_eq!(h.len(), 1);

        // Upgrade without `Connection: upgrade`, or the other way round: no upgrade.
        let mut h = map(&[("upgrade", b"websocket"), ("connection", b"keep-alive")]);
        assert!(!strip_keeping_upgrade(&mut h, true));
        assert!(h.is_empty());
        let mut h = map(&[("connection", b"upgrade")]);
        assert!(!strip_keeping_upgrade(&mut h, true));
        assert!(h.is_empty());
        let mut h = map(&[("x-a", b"1")]);
        assert!(!strip_keeping_upgrade(&mut h, true));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn shared_values_concatenate_and_validate_short_and_long() {
        let v = shared_value(&[b"10.0.0.1", b", ", b"127.0.0.1"]);
        assert_eq!(
            v.as_ref().map(HeaderValue::as_bytes),
            Some(&b"10.0.0.1, 127.0.0.1"[..])
        );
        let long = vec![b'a'; crate::request::slab::MAX_COPY + 1];
        let v = shared_value(&[&long, b"b"]);
        assert_eq!(v.map(|v| v.len()), Some(crate::request::slab::MAX_COPY + 2));
        assert_eq!(shared_value(&[b"ok", b"\n"]), None);
        assert_eq!(shared_value(&[&[b'x'; 300][..], b"\r"]), None);
        assert_eq!(shared_value(&[]).map(|v| v.len()), Some(0));
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_differ() {
        let a = request_id();
        let b = request_id();
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit), "{a:?}");
        assert_ne!(a, b);
    }
}
