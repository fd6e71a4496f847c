//! A request's fields as the client sent them, without a header map.
//!
//! The HTTP/1 engine ([`parse`](crate::client::parse)) parses a request with the codec. When its head is
//! plain enough (see [`RawHead::new`]) the fields stay in the head's bytes: a
//! [`RawHead`] records where each one lies. The request is routed and keyed from them
//! ([`View`]), and the upstream HTTP/1.1 head is written from their lines
//! ([`Fields::write`]): runs of lines copied as they came, the hop-by-hop and forwarding
//! lines left out, and the forwarding fields the proxy adds ([`Forwarded`]) after them.
//! No header map is built, filled, encoded or dropped for such a request.
//!
//! A request whose route edits headers (`set_headers`, `remove_headers`) or whose pool
//! speaks HTTP/2 gets a map made from these fields ([`RawHead::to_map`]) and takes the
//! general path of [`headers`](crate::request::headers) and [`forwarding`](crate::proxy::forwarding).

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};

use crate::http1::fields::ConnectionOptions;
use crate::request::cookie;
use crate::request::headers::{append_lines, field_map, forwarded_for, is_hop_by_hop};
use lb_core::name::IpText;

/// The most fields a [`RawHead`] records; a head with more gets a header map.
pub(crate) const MAX_RAW_FIELDS: usize = 32;

/// Where one field lies in the head: its line's start, the name's end, the value.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    line: u16,
    name_end: u16,
    value: u16,
    value_end: u16,
}

/// A request head's fields, kept as the bytes they came in (see the module docs).
#[derive(Debug)]
pub struct RawHead {
    head: Bytes,
    spans: [Span; MAX_RAW_FIELDS],
    count: u8,
    /// Bit i: field i is not relayed (hop-by-hop, or a forwarding field the proxy sets).
    skip: u32,
    /// The end of the last field line (where the blank line starts).
    end: u16,
    /// Which field is `Host`, and which `X-Forwarded-For` (at most one each).
    host: u8,
    xff: Option<u8>,
    /// Some `X-Request-Id` field is present.
    request_id: bool,
    /// The `Connection` options read on the way.
    pub(crate) options: ConnectionOptions,
}

/// How a field is treated when the head is kept as bytes.
enum Kind {
    Kept,
    /// Not relayed: hop-by-hop, or set by the proxy.
    Skipped,
    Host,
    ForwardedFor,
    RequestId,
}

impl RawHead {
    /// The fields of `head` (the whole head, request line to blank line) as `parsed`
    /// found them in it. `None` when the head needs a header map instead: more than
    /// [`MAX_RAW_FIELDS`] fields or 64 KiB, a line not ended by CRLF, no `Host` or more
    /// than one, more than one `X-Forwarded-For`, or a `Connection` option naming fields
    /// (which must be removed too).
    ///
    /// The caller has already sent the requests this module does not serve elsewhere
    /// (bodies, upgrades, `TE`, `Expect`).
    pub fn new(head: Bytes, parsed: &[httparse::Header<'_>]) -> Option<RawHead> {
        let total = head.len();
        if parsed.len() > MAX_RAW_FIELDS
            || total > usize::from(u16::MAX)
            || !head.ends_with(b"\r\n\r\n")
        {
            return None;
        }
        let base = head.as_ptr() as usize;
        let mut raw = RawHead {
            head,
            spans: [Span::default(); MAX_RAW_FIELDS],
            count: parsed.len() as u8,
            skip: 0,
            end: (total - 2) as u16,
            host: u8::MAX,
            xff: None,
            request_id: false,
            options: ConnectionOptions::default(),
        };
        // Offsets in the head (httparse's slices lie in it, and it is at most 64 KiB).
        let at = |s: &[u8]| (s.as_ptr() as usize).wrapping_sub(base) as u16;
        for (i, h) in parsed.iter().enumerate() {
            let name = h.name.as_bytes();
            let line = at(name);
            let value = at(h.value);
            raw.spans[i] = Span {
                line,
                name_end: line + name.len() as u16,
                value,
                value_end: value + h.value.len() as u16,
            };
            let kind = match name.len() {
                4 if name.eq_ignore_ascii_case(b"host") => Kind::Host,
                10 if name.eq_ignore_ascii_case(b"connection") => {
                    if raw.options.add(h.value) {
                        return None;
                    }
                    Kind::Skipped
                }
                16 if name.eq_ignore_ascii_case(b"x-forwarded-host") => Kind::Skipped,
                17 if name.eq_ignore_ascii_case(b"x-forwarded-proto") => Kind::Skipped,
                15 if name.eq_ignore_ascii_case(b"x-forwarded-for") => Kind::ForwardedFor,
                12 if name.eq_ignore_ascii_case(b"x-request-id") => Kind::RequestId,
                // `Keep-Alive`, `Proxy-Connection` (the others do not reach here).
                _ if is_hop_by_hop(name) => Kind::Skipped,
                _ => Kind::Kept,
            };
            match kind {
                Kind::Kept => {}
                Kind::Skipped => raw.skip |= 1 << i,
                Kind::Host if raw.host == u8::MAX => raw.host = i as u8,
                Kind::ForwardedFor if raw.xff.is_none() => {
                    raw.xff = Some(i as u8);
                    raw.skip |= 1 << i;
                }
                Kind::RequestId => raw.request_id = true,
                Kind::Host | Kind::ForwardedFor => return None,
            }
        }
        // Every line ends with CRLF: the byte before the next line's start (or the blank
        // line's) is CR. Before a bare LF lies the value or whitespace, never CR.
        for i in 0..raw.count as usize {
            let next = raw.line_end(i);
            if raw.head[usize::from(next) - 2] != b'\r' {
                return None;
            }
        }
        (raw.host != u8::MAX).then_some(raw)
    }

    fn line_end(&self, i: usize) -> u16 {
        if i + 1 < self.count as usize {
            self.spans[i + 1].line
        } else {
            self.end
        }
    }

    fn fields(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> {
        self.spans[..self.count as usize].iter().map(|s| {
            (
                &self.head[usize::from(s.line)..usize::from(s.name_end)],
                &self.head[usize::from(s.value)..usize::from(s.value_end)],
            )
        })
    }

    fn value(&self, i: u8) -> &[u8] {
        let s = &self.spans[usize::from(i)];
        &self.head[usize::from(s.value)..usize::from(s.value_end)]
    }

    /// The `Host` value.
    pub fn host(&self) -> &[u8] {
        self.value(self.host)
    }

    /// The `X-Forwarded-For` value, if the client sent one.
    pub fn forwarded_for(&self) -> Option<&[u8]> {
        self.xff.map(|i| self.value(i))
    }

    /// Some `X-Request-Id` field is present.
    pub fn has_request_id(&self) -> bool {
        self.request_id
    }

    /// Every value of the field `name` (ASCII case-insensitive), in order.
    pub fn values<'a, 'n>(
        &'a self,
        name: &'n [u8],
    ) -> impl DoubleEndedIterator<Item = &'a [u8]> + use<'a, 'n> {
        self.fields()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The header map of the general path: every field but `Connection` and
    /// `Keep-Alive`, which are hop-by-hop (the head has no `Connection` naming others).
    /// Values share the head's bytes. `None` for a name or value the `http` types refuse.
    pub fn to_map(&self) -> Option<HeaderMap> {
        let named = self.fields();
        field_map(&self.head, named, self.count as usize + 4, true).map(|(map, _)| map)
    }

    /// The relayed lines, as they came.
    fn write_lines(&self, out: &mut Vec<u8>) {
        let mut run = self.spans[..self.count as usize]
            .first()
            .map_or(self.end, |s| s.line);
        let mut skip = self.skip;
        while skip != 0 {
            let i = skip.trailing_zeros() as usize;
            skip &= skip - 1;
            out.extend_from_slice(&self.head[usize::from(run)..usize::from(self.spans[i].line)]);
            run = self.line_end(i);
        }
        out.extend_from_slice(&self.head[usize::from(run)..usize::from(self.end)]);
    }
}

/// The forwarding fields the proxy adds to a request kept as bytes (the general path
/// sets the same in its header map: [`headers`](crate::request::headers)).
#[derive(Debug)]
pub struct Forwarded {
    /// `X-Forwarded-For`: the client's chain is appended to (when believed).
    pub append: bool,
    /// The peer's address.
    pub ip: IpText,
    /// `X-Forwarded-Proto: https`.
    pub tls: bool,
    /// `X-Forwarded-Host`, when normalising changed the `Host` value; `None`: the value
    /// as the client sent it.
    pub host: Option<HeaderValue>,
    /// A new `X-Request-Id`, when the client sent none.
    pub request_id: Option<[u8; 32]>,
}

/// Writes each field of `headers` as `name: value` and CRLF.
pub(crate) fn write_map(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// A request's fields as they go upstream.
#[derive(Debug)]
pub enum Fields<'a> {
    /// The general path: a header map, edited in place.
    Map(HeaderMap),
    /// A head kept as bytes and what the proxy adds to it.
    Raw(&'a RawHead, Forwarded),
}

impl Fields<'_> {
    /// The fields for reading, as the client sent them.
    pub fn view(&self) -> View<'_> {
        match self {
            Fields::Map(m) => View::Map(m),
            Fields::Raw(r, _) => View::Raw(r),
        }
    }

    /// Writes the fields, each `name: value` and CRLF.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Fields::Map(headers) => write_map(out, headers),
            Fields::Raw(raw, add) => {
                raw.write_lines(out);
                out.extend_from_slice(b"x-forwarded-for: ");
                for part in forwarded_for(raw.forwarded_for(), add.append, add.ip.as_bytes()) {
                    out.extend_from_slice(part);
                }
                out.extend_from_slice(if add.tls {
                    b"\r\nx-forwarded-proto: https\r\nx-forwarded-host: "
                } else {
                    b"\r\nx-forwarded-proto: http\r\nx-forwarded-host: "
                });
                match &add.host {
                    Some(h) => out.extend_from_slice(h.as_bytes()),
                    None => out.extend_from_slice(raw.host()),
                }
                out.extend_from_slice(b"\r\n");
                if let Some(id) = &add.request_id {
                    out.extend_from_slice(b"x-request-id: ");
                    out.extend_from_slice(id);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }

    /// The fields as a header map (for hyper's HTTP/2 client): the map itself, or one
    /// parsed from what [`Fields::write`] writes.
    pub fn to_map(&self) -> HeaderMap {
        match self {
            Fields::Map(m) => m.clone(),
            Fields::Raw(..) => {
                let mut lines = Vec::with_capacity(512);
                self.write(&mut lines);
                let mut map = HeaderMap::new();
                append_lines::<{ MAX_RAW_FIELDS + 4 }>(&mut map, lines);
                map
            }
        }
    }
}

/// A request's fields for reading: a header map, or a head kept as bytes.
#[derive(Clone, Copy)]
pub enum View<'a> {
    /// The general path.
    Map(&'a HeaderMap),
    /// A head kept as bytes.
    Raw(&'a RawHead),
}

impl<'a> View<'a> {
    /// Every value of the field `name`, in order. A name as text: a configured one (a
    /// `header:` key) is looked up without making a `HeaderName` of it, which would
    /// allocate.
    pub fn values<'n>(
        self,
        name: &'n str,
    ) -> impl DoubleEndedIterator<Item = &'a [u8]> + use<'a, 'n> {
        let (map, raw) = match self {
            View::Map(m) => (
                Some(m.get_all(name).iter().map(HeaderValue::as_bytes)),
                None,
            ),
            View::Raw(r) => (None, Some(r.values(name.as_bytes()))),
        };
        map.into_iter().flatten().chain(raw.into_iter().flatten())
    }

    /// The first value of `name`.
    pub fn get(self, name: &str) -> Option<&'a [u8]> {
        self.values(name).next()
    }

    /// The value of cookie `name` in any `Cookie` field (the first match).
    pub fn cookie(self, name: &str) -> Option<&'a [u8]> {
        match self {
            View::Map(m) => cookie::find_in(m, name),
            View::Raw(r) => r
                .values(header::COOKIE.as_str().as_bytes())
                .find_map(|v| cookie::find(v, name.as_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(head: &[u8]) -> Option<RawHead> {
        let head = Bytes::copy_from_slice(head);
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut fields);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.len()),
            other => panic!("{other:?}"),
        }
        RawHead::new(head.clone(), req.headers)
    }

    fn written(raw: &RawHead, add: Forwarded) -> String {
        let mut out = Vec::new();
        Fields::Raw(raw, add).write(&mut out);
        String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"))
    }

    fn add(append: bool, tls: bool, id: Option<[u8; 32]>) -> Forwarded {
        Forwarded {
            append,
            ip: IpText::new([10, 0, 0, 9].into()),
            tls,
            host: None,
            request_id: id,
        }
    }

    #[test]
    fn lines_are_relayed_as_sent_without_hop_by_hop_and_forwarding_ones() {
        let raw = parse(
            b"GET / HTTP/1.1\r\nHost: A.test\r\nConnection: keep-alive\r\nX-Forwarded-For: 1.2.3.4\r\n\
              Accept:  */*  \r\nKeep-Alive: 5\r\nX-Forwarded-Proto: https\r\nCookie: a=1; b=2\r\n\
              X-Forwarded-Host: evil\r\nProxy-Connection: x\r\nX-Request-Id: r1\r\n\r\n",
        )
        .unwrap_or_else(|| panic!("kept as bytes"));
        assert_eq!(raw.host(), b"A.test");
        assert_eq!(raw.forwarded_for(), Some(&b"1.2.3.4"[..]));
        assert!(raw.options.keep_alive && !raw.options.close);
        assert_eq!(
            written(&raw, add(true, false, None)),
            "Host: A.test\r\nAccept:  */*  \r\nCookie: a=1; b=2\r\nX-Request-Id: r1\r\n\
             x-forwarded-for: 1.2.3.4, 10.0.0.9\r\nx-forwarded-proto: http\r\n\
             x-forwarded-host: A.test\r\n"
        );
        // A chain not believed is replaced; a request id is added when there was none.
        let raw = parse(b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\nhost: b\r\n\r\n")
            .unwrap_or_else(|| panic!("kept as bytes"));
        let mut fwd = add(false, true, Some([b'f'; 32]));
        fwd.host = HeaderValue::from_str("b.test").ok();
        assert_eq!(
            written(&raw, fwd),
            format!(
                "host: b\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: https\r\n\
                 x-forwarded-host: b.test\r\nx-request-id: {}\r\n",
                "f".repeat(32)
            )
        );
    }

    #[test]
    fn heads_that_need_a_map_are_refused() {
        for head in [
            &b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1\r\nx-forwarded-for: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        ] {
            assert!(parse(head).is_none(), "{:?}", String::from_utf8_lossy(head));
        }
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_RAW_FIELDS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(parse(&many).is_none());
        assert!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n")
                .is_some_and(|r| r.options.close)
        );
    }

    #[test]
    fn views_read_the_same_from_bytes_and_from_the_map() {
        let raw = parse(
            b"GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1\r\nX-Tenant: t7\r\ncookie: sid=s9\r\n\
              Connection: keep-alive\r\nx-tenant: t8\r\n\r\n",
        )
        .unwrap_or_else(|| panic!("kept as bytes"));
        let map = raw.to_map().unwrap_or_else(|| panic!("a map"));
        assert!(map.get(header::CONNECTION).is_none());
        assert_eq!(map.len(), 5);
        for view in [View::Raw(&raw), View::Map(&map)] {
            assert_eq!(view.get("x-tenant"), Some(&b"t7"[..]));
            assert_eq!(view.values("x-tenant").next_back(), Some(&b"t8"[..]));
            assert_eq!(view.cookie("sid"), Some(&b"s9"[..]));
            assert_eq!(view.cookie("x"), Some(&b"1"[..]));
            assert_eq!(view.cookie("nope"), None);
            assert_eq!(view.get(header::ACCEPT.as_str()), None);
        }
    }

    fn field_name() -> impl Strategy<Value = String> {
        // Every head gets one Host; a second one now and then.
        prop_oneof![
            1 => Just("host".to_owned()),
            1 => Just("Connection".to_owned()),
            1 => Just("keep-alive".to_owned()),
            1 => Just("Proxy-Connection".to_owned()),
            1 => Just("X-Forwarded-For".to_owned()),
            1 => Just("x-forwarded-proto".to_owned()),
            1 => Just("X-FORWARDED-HOST".to_owned()),
            1 => Just("X-Request-Id".to_owned()),
            1 => Just("Cookie".to_owned()),
            12 => "[A-Za-z][A-Za-z0-9-]{0,12}",
        ]
    }

    fn field_value(name: &str) -> BoxedStrategy<String> {
        if name.eq_ignore_ascii_case("connection") {
            prop_oneof![
                Just("keep-alive"),
                Just("Close"),
                Just("close, keep-alive"),
                Just("upgrade"),
                Just("x-hop"),
            ]
            .prop_map(str::to_owned)
            .boxed()
        } else {
            "[!-~]([ -~]{0,16}[!-~])?".boxed()
        }
    }

    /// Names the relay leaves out of a head kept as bytes: the hop-by-hop ones
    /// (`is_hop_by_hop`: among them `TE` and `Upgrade`, which random names can hit, though
    /// `front` hands such heads to hyper before they get here) and these, which it writes
    /// itself.
    const FORWARDING: [&str; 3] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

    proptest! {
        #[test]
        fn kept_heads_relay_every_other_line_in_order(
            mut fields in proptest::collection::vec(
                field_name().prop_flat_map(|n| (Just(n.clone()), field_value(&n))),
                0..36,
            ),
            host_at in 0..36usize,
            spaces in proptest::collection::vec(0..3usize, 40),
            bare_lf in proptest::option::of(0..80usize),
        ) {
            fields.insert(host_at.min(fields.len()), ("Host".to_owned(), "h.test".to_owned()));
            let mut head = b"GET / HTTP/1.1\r\n".to_vec();
            let mut lines = Vec::new();
            for (i, (n, v)) in fields.iter().enumerate() {
                let end = if bare_lf == Some(i) { "\n" } else { "\r\n" };
                let line = format!("{n}:{}{v}{}{end}", " ".repeat(spaces[i]), " ".repeat(spaces[39 - i]));
                head.extend_from_slice(line.as_bytes());
                lines.push((n.to_ascii_lowercase(), v.clone(), line));
            }
            head.extend_from_slice(b"\r\n");
            let head = Bytes::from(head);
            let mut parsed = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut parsed);
            prop_assert!(matches!(req.parse(&head), Ok(httparse::Status::Complete(_))));
            let raw = RawHead::new(head.clone(), req.headers);
            let count = |name: &str| lines.iter().filter(|l| l.0 == name).count();
            let names_fields = lines.iter().any(|(n, v, _)| {
                n == "connection" && (v == "upgrade" || v == "x-hop")
            });
            let fits = lines.len() <= MAX_RAW_FIELDS
                && bare_lf.is_none_or(|i| i >= lines.len())
                && count("host") == 1
                && count("x-forwarded-for") <= 1
                && !names_fields;
            prop_assert_eq!(raw.is_some(), fits);
            let Some(raw) = raw else { return Ok(()) };
            let mut out = Vec::new();
            raw.write_lines(&mut out);
            let kept: String = lines
                .iter()
                .filter(|(n, _, _)| !FORWARDING.contains(&n.as_str()) && !is_hop_by_hop(n.as_bytes()))
                .map(|(_, _, line)| line.as_str())
                .collect();
            prop_assert_eq!(String::from_utf8_lossy(&out), kept);
            let host = lines.iter().find(|l| l.0 == "host").map(|l| l.1.as_bytes());
            prop_assert_eq!(Some(raw.host()), host);
            prop_assert_eq!(raw.has_request_id(), count("x-request-id") > 0);
            prop_assert_eq!(
                raw.options.close,
                lines.iter().any(|(n, v, _)| n == "connection" && v.to_ascii_lowercase().contains("close"))
            );
            // The map path sees the same fields, less Connection and Keep-Alive.
            let map = raw.to_map().ok_or_else(|| TestCaseError::fail("no map"))?;
            let expected = lines.iter().filter(|l| l.0 != "connection" && l.0 != "keep-alive").count();
            prop_assert_eq!(map.len(), expected);
        }
    }

    #[test]
    fn the_map_of_raw_fields_holds_what_is_written() {
        let raw = parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nKeep-Alive: 1\r\n\r\n")
            .unwrap_or_else(|| panic!("kept as bytes"));
        let fields = Fields::Raw(&raw, add(true, false, Some([b'0'; 32])));
        let map = fields.to_map();
        assert_eq!(map.get("x-a").map(HeaderValue::as_bytes), Some(&b"1"[..]));
        assert_eq!(
            map.get("x-forwarded-for").map(HeaderValue::as_bytes),
            Some(&b"10.0.0.9"[..])
        );
        assert_eq!(map.get("x-request-id").map(HeaderValue::len), Some(32));
        assert!(map.get("keep-alive").is_none());
        assert_eq!(map.len(), 6);
    }
}
