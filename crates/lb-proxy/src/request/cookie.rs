//! `Cookie` request headers, and the sticky-session cookie.
//!
//! A `Cookie` header is `name=value` pairs separated by `;` (RFC 6265 §4.2.1); clients put
//! a space after each `;`, HTTP/2 clients may send one header per cookie, and some add
//! stray whitespace. [`find`] reads one header value as bytes, [`find_in`] every `Cookie`
//! header of a request; both borrow the value (no allocation) and never fail: anything
//! malformed is just not a match.
//!
//! The sticky cookie of a pool with `sticky = { cookie = "NAME" }` carries
//! [`lb_core::hash::sticky_id`] of the backend's stable `id` as 16 lowercase hex digits
//! ([`parse_sticky`], [`set_sticky`]): never the address, and the same in every lb-proxy
//! with the same membership.

use hyper::header::{HeaderMap, HeaderValue, COOKIE};

/// The value of cookie `name` in one `Cookie` header value (the first one if repeated),
/// without surrounding whitespace or double quotes. Names compare exactly.
pub(crate) fn find<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        if trim(&pair[..eq]) != name {
            return None;
        }
        let value = trim(&pair[eq + 1..]);
        Some(match value {
            [b'"', inner @ .., b'"'] => inner,
            v => v,
        })
    })
}

/// The value of cookie `name` in any of the request's `Cookie` headers (the first match).
pub(crate) fn find_in<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .find_map(|v| find(v.as_bytes(), name.as_bytes()))
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// A sticky cookie's value as a sticky id: exactly 16 lowercase hex digits, else `None`
/// (an unknown or garbled cookie is ignored, and the request is picked as usual).
pub(crate) fn parse_sticky(value: &[u8]) -> Option<u64> {
    if value.len() != 16 {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(d))
    })
}

/// `Set-Cookie: NAME=<16 hex digits>; Path=/; HttpOnly`, plus `; Secure` on TLS
/// connections. `None` only if `name` is not a valid header value (validation rules that
/// out: a cookie name is a token).
pub(crate) fn set_sticky(name: &str, sticky: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={sticky:016x}; Path=/; HttpOnly{secure}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_takes_the_named_cookie_trimmed() {
        assert_eq!(
            find(b"a=1;  lb_sticky=00ff ; b=2", b"lb_sticky"),
            Some(&b"00ff"[..])
        );
        assert_eq!(find(b"lb_sticky2=x", b"lb_sticky"), None);
    }
    use proptest::prelude::*;

    #[test]
    fn finds_among_others_with_whitespace_and_quotes() {
        let h = b"a=1; lb_sticky=0123456789abcdef; b=2";
        assert_eq!(find(h, b"lb_sticky"), Some(&b"0123456789abcdef"[..]));
        assert_eq!(
            find(b"lb_sticky=x;lb_sticky=y", b"lb_sticky"),
            Some(&b"x"[..])
        );
        assert_eq!(
            find(b" \tlb_sticky = \"q\" \t", b"lb_sticky"),
            Some(&b"q"[..])
        );
        assert_eq!(find(b"lb_sticky=", b"lb_sticky"), Some(&b""[..]));
        assert_eq!(find(b"xlb_sticky=1; lb_stickyx=2", b"lb_sticky"), None);
        assert_eq!(find(b"LB_STICKY=1", b"lb_sticky"), None);
        assert_eq!(find(b"lb_sticky; a=1", b"lb_sticky"), None);
        assert_eq!(find(b";;;", b"lb_sticky"), None);
        assert_eq!(find(b"", b"lb_sticky"), None);
        assert_eq!(find(b"a=\"", b"a"), Some(&b"\""[..]));
    }

    #[test]
    fn finds_across_several_cookie_headers() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(
            COOKIE,
            HeaderValue::from_static("c=3;lb_sticky=00000000000000ff"),
        );
        assert_eq!(find_in(&h, "lb_sticky"), Some(&b"00000000000000ff"[..]));
        assert_eq!(find_in(&h, "b"), Some(&b"2"[..]));
        assert_eq!(find_in(&h, "z"), None);
        assert_eq!(find_in(&HeaderMap::new(), "z"), None);
    }

    #[test]
    fn sticky_values_round_trip_and_garbage_is_refused() {
        assert_eq!(parse_sticky(b"00000000000000ff"), Some(255));
        assert_eq!(parse_sticky(b"ffffffffffffffff"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"ff",
            b"00000000000000FF",
            b"00000000000000fg",
            b"000000000000000ff",
            b"127.0.0.1:19001",
            b"-000000000000001",
        ] {
            assert_eq!(parse_sticky(bad), None, "{bad:?}");
        }
        let v = set_sticky("lb_sticky", 0xab, false).map(|v| v.as_bytes().to_vec());
        assert_eq!(
            v.as_deref(),
            Some(&b"lb_sticky=00000000000000ab; Path=/; HttpOnly"[..])
        );
        let v = set_sticky("s", u64::MAX, true).map(|v| v.as_bytes().to_vec());
        assert_eq!(
            v.as_deref(),
            Some(&b"s=ffffffffffffffff; Path=/; HttpOnly; Secure"[..])
        );
    }

    proptest! {
        /// Arbitrary bytes never panic, and whatever is found lies inside the header.
        #[test]
        fn never_panics_on_arbitrary_bytes(
            header in proptest::collection::vec(any::<u8>(), 0..200),
            name in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            if let Some(v) = find(&header, &name) {
                prop_assert!(v.len() <= header.len());
                let _ = parse_sticky(v);
            }
            let _ = parse_sticky(&header);
        }

        /// The cookie is found wherever it sits among other cookies, with any spacing,
        /// and every sticky id survives the round trip through its cookie text.
        #[test]
        fn finds_the_value_among_other_cookies(
            before in proptest::collection::vec("[a-k]{1,6}=[a-z0-9]{0,8}", 0..5),
            after in proptest::collection::vec("[a-k]{1,6}=[a-z0-9]{0,8}", 0..5),
            sep in "; ?|;\t ?",
            id in any::<u64>(),
        ) {
            let value = format!("{id:016x}");
            let mut pairs = before.clone();
            pairs.push(format!("lb_sticky={value}"));
            pairs.extend(after);
            let header = pairs.join(&sep);
            let found = find(header.as_bytes(), b"lb_sticky");
            prop_assert_eq!(found, Some(value.as_bytes()));
            prop_assert_eq!(found.and_then(parse_sticky), Some(id));
        }
    }
}
