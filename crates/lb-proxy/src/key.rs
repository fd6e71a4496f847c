//! Request keys for hashing strategies: what `key = "..."` takes from a request.
//!
//! A missing header, cookie, query parameter or capture falls back to the client IP, so a
//! request always has a key. Keys borrow from the request; only the client IP is written
//! into a small stack buffer.

use hyper::http::request::Parts;
use lb_core::config::KeySpec;

pub use lb_core::name::IpText;

/// Extracts the key for `spec` from a request; `None` means "use the client IP".
pub fn extract<'a>(spec: &KeySpec, parts: &'a Parts, host: &'a str) -> Option<&'a [u8]> {
    match spec {
        KeySpec::ClientIp | KeySpec::Sni => None,
        KeySpec::Host => Some(host.as_bytes()),
        KeySpec::Path => Some(parts.uri.path().as_bytes()),
        KeySpec::Uri => Some(
            parts
                .uri
                .path_and_query()
                .map_or(parts.uri.path().as_bytes(), |pq| pq.as_str().as_bytes()),
        ),
        KeySpec::Header(name) => parts.headers.get(name.as_str()).map(|v| v.as_bytes()),
        KeySpec::Cookie(name) => crate::cookie::find_in(&parts.headers, name),
        KeySpec::Query(name) => parts.uri.query().and_then(|q| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == name).then_some(v.as_bytes())
            })
        }),
        KeySpec::PathRegex(re) => re
            .captures(parts.uri.path())
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = hyper::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_spec() {
        let p = parts(
            "/documents/42/x?a=1&user=bob",
            &[("x-tenant", "t7"), ("cookie", "a=b; sid=s9")],
        );
        let k = |s: &str| {
            extract(
                &s.parse::<KeySpec>().unwrap_or_else(|e| panic!("{e:?}")),
                &p,
                "h.test",
            )
            .map(|b| b.to_vec())
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
