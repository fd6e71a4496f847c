//! Request keys for hashing strategies: what `key = "..."` takes from a request.
//!
//! A missing header, cookie, query parameter or capture falls back to the client IP, so a
//! request always has a key. Keys borrow from the request; only the client IP is written
//! into a small stack buffer.

use hyper::Uri;
use lb_core::config::KeySpec;

use crate::request::fields::View;

/// Extracts the key for `spec` from a request; `None` means "use the client IP".
pub(crate) fn extract<'a>(
    spec: &'a KeySpec,
    uri: &'a Uri,
    fields: View<'a>,
    host: &'a str,
) -> Option<&'a [u8]> {
    match spec {
        KeySpec::ClientIp | KeySpec::Sni => None,
        KeySpec::Host => Some(host.as_bytes()),
        KeySpec::Path => Some(uri.path().as_bytes()),
        KeySpec::Uri => Some(
            uri.path_and_query()
                .map_or(uri.path().as_bytes(), |pq| pq.as_str().as_bytes()),
        ),
        KeySpec::Header(name) => fields.get(name),
        KeySpec::Cookie(name) => fields.cookie(name),
        KeySpec::Query(name) => uri.query().and_then(|q| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == name).then_some(v.as_bytes())
            })
        }),
        KeySpec::PathRegex(re) => re
            .captures(uri.path())
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::fields::RawHead;
    use hyper::header::HeaderName;
    use lb_core::name::IpText;

    /// The same request's fields as a header map and as a head kept as bytes.
    fn views(uri: &str, headers: &[(&str, &str)]) -> (hyper::HeaderMap, RawHead) {
        let mut map = hyper::HeaderMap::new();
        let mut head = format!("GET {uri} HTTP/1.1\r\nHost: h.test\r\n");
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            map.append(name, v.parse().unwrap_or_else(|e| panic!("{e}")));
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let head = bytes::Bytes::from(head);
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut fields);
        assert!(matches!(
            req.parse(&head),
            Ok(httparse::Status::Complete(_))
        ));
        let raw = RawHead::new(head.clone(), req.headers).unwrap_or_else(|| panic!("raw"));
        (map, raw)
    }

    #[test]
    fn every_spec() {
        let uri: Uri = "/documents/42/x?a=1&user=bob"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let (map, raw) = views(
            uri.path_and_query().map_or("/", |p| p.as_str()),
            &[("X-Tenant", "t7"), ("cookie", "a=b; sid=s9")],
        );
        for view in [View::Map(&map), View::Raw(&raw)] {
            every_spec_in(&uri, view);
        }
    }

    fn every_spec_in(uri: &Uri, view: View<'_>) {
        let k = |s: &str| {
            let spec = s.parse::<KeySpec>().unwrap_or_else(|e| panic!("{e:?}"));
            extract(&spec, uri, view, "h.test").map(|b| b.to_vec())
        };
        assert_eq!(k("client-ip"), None);
        assert_eq!(k("host").as_deref(), Some(&b"h.test"[..]));
        assert_eq!(k("path").as_deref(), Some(&b"/documents/42/x"[..]));
        assert_eq!(
            k("uri").as_deref(),
            Some(&b"/documents/42/x?a=1&user=bob"[..])
        );
        assert_eq!(k("header:x-tenant").as_deref(), Some(&b"t7"[..]));
        assert_eq!(k("header:x-missing"), None);
        assert_eq!(k("cookie:sid").as_deref(), Some(&b"s9"[..]));
        assert_eq!(k("query:user").as_deref(), Some(&b"bob"[..]));
        assert_eq!(k("query:nope"), None);
        assert_eq!(
            k("path-regex:^/documents/([^/?]+)").as_deref(),
            Some(&b"42"[..])
        );
        assert_eq!(k("path-regex:^/other/(.+)"), None);
    }

    #[test]
    fn ip_text() {
        assert_eq!(
            IpText::new("127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"))).as_bytes(),
            b"127.0.0.1"
        );
        let v6: std::net::IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(IpText::new(v6).as_bytes(), v6.to_string().as_bytes());
    }

    #[test]
    fn ipv4_text_matches_display_for_every_octet_in_every_position() {
        for pos in 0..4 {
            for v in 0..=255u8 {
                let mut o = [7u8, 10, 100, 255];
                o[pos] = v;
                let ip = std::net::IpAddr::from(o);
                assert_eq!(IpText::new(ip).as_bytes(), ip.to_string().as_bytes());
            }
        }
    }
}
