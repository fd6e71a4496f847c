//! The codec's tests: captured bytes for each framing rule, every split of valid and
//! invalid messages, and the chunked decoder against a plain reference.

use std::mem::MaybeUninit;

use lb_core::metrics::Reason;
use proptest::prelude::*;

use super::chunked::{MAX_SIZE_LINE, MAX_TRAILERS};
use super::*;

/// What a head parses to, owned, for comparing parses of different buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Parsed {
    method: String,
    target: String,
    version: Version,
    fields: Vec<(String, Vec<u8>)>,
    len: usize,
    body: Body,
    host: Option<Vec<u8>>,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: bool,
}

fn parse(buf: &[u8]) -> Result<Status<Parsed>, Error> {
    parse_with(buf, &Limits::default())
}

fn parse_with(buf: &[u8], limits: &Limits) -> Result<Status<Parsed>, Error> {
    let mut slots = [const { MaybeUninit::uninit() }; 32];
    Ok(match parse_request_head(buf, limits, &mut slots)? {
        Status::Incomplete => Status::Incomplete,
        Status::Complete(h) => Status::Complete(Parsed {
            method: h.method.to_owned(),
            target: h.target.to_owned(),
            version: h.version,
            fields: h
                .fields
                .iter()
                .map(|f| (f.name.to_owned(), f.value.to_vec()))
                .collect(),
            len: h.len,
            body: h.body,
            host: h.host.map(<[u8]>::to_vec),
            keep_alive: h.keep_alive,
            expect_continue: h.expect_continue,
            upgrade: h.upgrade,
        }),
    })
}

fn complete(buf: &[u8]) -> Parsed {
    match parse(buf) {
        Ok(Status::Complete(p)) => p,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn refused(buf: &[u8]) -> Error {
    match parse(buf) {
        Err(e) => e,
        other => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(buf)),
    }
}

#[test]
fn the_usual_heads() {
    let p = complete(b"\r\nGET /a?b HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\n\r\nnext");
    assert_eq!((p.method.as_str(), p.target.as_str()), ("GET", "/a?b"));
    assert_eq!((p.len, p.body, p.keep_alive), (47, Body::Empty, true));
    assert_eq!(p.host.as_deref(), Some(&b"app.test"[..]));
    let p = complete(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!((p.body, p.expect_continue), (Body::Chunked, true));
    let p = complete(
        b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert!(p.upgrade);
    let p = complete(b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    assert!(!p.upgrade, "Upgrade not named by Connection");
}

#[test]
fn http10_keeps_alive_only_when_asked() {
    assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    let p = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: a\r\n\r\n");
    assert!(p.keep_alive);
    assert_eq!(p.version, Version::Http10);
    assert!(!complete(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
}

#[test]
fn absolute_form_targets_name_the_host() {
    let p = complete(b"GET http://other.test/x HTTP/1.1\r\nHost: other.test\r\n\r\n");
    assert_eq!(p.host.as_deref(), Some(&b"other.test"[..]));
    let t = Target::parse("GET", "http://other.test:8080?q").expect("absolute");
    assert_eq!(t.path_and_query("http://other.test:8080?q"), Some("?q"));
    assert_eq!(
        Target::parse("GET", "http://a.test").and_then(|t| t.path_and_query("http://a.test")),
        Some("/")
    );
    for bad in ["ftp://a/", "http:///x", "http://u@a/", "x", "*"] {
        assert_eq!(Target::parse("GET", bad), None, "{bad}");
    }
    assert_eq!(Target::parse("OPTIONS", "*"), Some(Target::Asterisk));
    assert_eq!(
        Target::parse("CONNECT", "a.test:443"),
        Some(Target::Authority("a.test:443"))
    );
}

/// One captured request per framing rule of the module docs (`http1/mod.rs`), with the
/// error it gets.
pub(crate) const REFUSED: &[(&str, &[u8], Error)] = &[
    (
        "CL with TE",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        Error::LengthAndCoding,
    ),
    (
        "TE with CL",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        Error::LengthAndCoding,
    ),
    (
        "differing CLs",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        Error::DifferingLengths,
    ),
    (
        "CL list",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
        Error::DifferingLengths,
    ),
    (
        "CL not digits",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
        Error::BadLength,
    ),
    (
        "CL hex",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
        Error::BadLength,
    ),
    (
        "TE last not chunked",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        Error::BadCoding,
    ),
    (
        "TE other coding",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        Error::BadCoding,
    ),
    (
        "TE unknown",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
        Error::BadCoding,
    ),
    (
        "TE in HTTP/1.0",
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        Error::BadCoding,
    ),
    (
        "space before colon",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n",
        Error::SpaceBeforeColon,
    ),
    (
        "tab before colon",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n",
        Error::SpaceBeforeColon,
    ),
    (
        "obs-fold",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n",
        Error::ObsFold,
    ),
    (
        "obs-fold tab",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n",
        Error::ObsFold,
    ),
    (
        "CR in value",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n",
        Error::BadValue,
    ),
    (
        "LF in value",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\n2\r\n\r\n",
        Error::BadValue,
    ),
    (
        "NUL in value",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n",
        Error::BadValue,
    ),
    (
        "no Host",
        b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n",
        Error::MissingHost,
    ),
    (
        "two Hosts",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        Error::RepeatedHost,
    ),
    (
        "two equal Hosts",
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        Error::RepeatedHost,
    ),
    (
        "Host disagrees with target",
        b"GET http://other.test/x HTTP/1.1\r\nHost: app.test\r\n\r\n",
        Error::HostMismatch,
    ),
];

#[test]
fn every_framing_rule_refuses_its_captured_request() {
    for (name, bytes, want) in REFUSED {
        assert_eq!(refused(bytes), *want, "{name}");
        assert_eq!(want.reason(), Reason::BadRequest, "{name}");
    }
}

#[test]
fn size_limits_are_431() {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let at = Limits {
        max_head: head.len(),
    };
    assert!(matches!(parse_with(head, &at), Ok(Status::Complete(_))));
    let under = Limits {
        max_head: head.len() - 1,
    };
    assert_eq!(parse_with(head, &under), Err(Error::HeadTooLarge));
    assert_eq!(
        parse_with(&head[..head.len() - 1], &under),
        Err(Error::HeadTooLarge)
    );
    let many: Vec<u8> = [
        &b"GET / HTTP/1.1\r\nHost: a\r\n"[..],
        &b"X: 1\r\n".repeat(40),
        b"\r\n",
    ]
    .concat();
    assert_eq!(parse(&many), Err(Error::TooManyFields));
    assert_eq!(Error::TooManyFields.reason(), Reason::HeaderTooLarge);
    assert_eq!(Error::BodyTooLarge.reason(), Reason::BodyTooLarge);
}

#[test]
fn the_h2c_preface_is_spotted() {
    assert_eq!(h2c_preface(b""), Status::Incomplete);
    assert_eq!(h2c_preface(b"PRI * HTTP/2.0\r\n"), Status::Incomplete);
    assert_eq!(h2c_preface(H2_PREFACE), Status::Complete(true));
    assert_eq!(
        h2c_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
        Status::Complete(true)
    );
    assert_eq!(h2c_preface(b"GET / HTTP/1.1\r\n"), Status::Complete(false));
    assert_eq!(h2c_preface(b"PRX"), Status::Complete(false));
}

#[test]
fn responses_are_framed_by_status_and_fields() {
    let mut slots = [const { MaybeUninit::uninit() }; 16];
    let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    let Ok(Status::Complete(h)) = parse_response_head(bytes, &Limits::default(), &mut slots) else {
        panic!("complete");
    };
    assert_eq!(
        (h.code, h.len, h.keep_alive()),
        (200, bytes.len() - 3, true)
    );
    assert_eq!(
        response_body(200, h.version, false, &h.framing()),
        Ok(Body::Length(3))
    );
    assert_eq!(
        response_body(200, h.version, true, &h.framing()),
        Ok(Body::Empty)
    );
    assert_eq!(
        response_body(304, h.version, false, &h.framing()),
        Ok(Body::Empty)
    );
    let mut slots = [const { MaybeUninit::uninit() }; 16];
    let bytes = b"HTTP/1.0 200 OK\r\nX: 1\r\n\r\n";
    let Ok(Status::Complete(h)) = parse_response_head(bytes, &Limits::default(), &mut slots) else {
        panic!("complete");
    };
    assert!(!h.keep_alive());
    assert_eq!(
        response_body(200, h.version, false, &h.framing()),
        Ok(Body::Close)
    );
    let mut slots = [const { MaybeUninit::uninit() }; 16];
    let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    let Ok(Status::Complete(h)) = parse_response_head(bad, &Limits::default(), &mut slots) else {
        panic!("complete");
    };
    assert_eq!(
        response_body(200, h.version, false, &h.framing()),
        Err(Error::LengthAndCoding)
    );
    assert_eq!(
        response_body(101, h.version, false, &h.framing()),
        Ok(Body::Empty)
    );
}

/// Everything a chunked body decodes to, fed in pieces cut at `cuts`: the data, the
/// trailer bytes, and how it ended (the offset after the body, or the error and where).
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    data: Vec<u8>,
    trailers: Vec<u8>,
    end: Result<Option<usize>, (ChunkError, usize)>,
}

fn decode_split(bytes: &[u8], cuts: &[usize]) -> Decoded {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.extend([0, bytes.len()]);
    points.sort_unstable();
    points.dedup();
    let mut dec = Chunked::new();
    let mut out = Decoded {
        data: vec![],
        trailers: vec![],
        end: Ok(None),
    };
    for w in points.windows(2) {
        let mut at = w[0];
        loop {
            let (n, ev) = dec.decode(&bytes[at..w[1]]);
            let piece = &bytes[at..at + n];
            at += n;
            match ev {
                Event::Data => out.data.extend_from_slice(piece),
                Event::Trailer => out.trailers.extend_from_slice(piece),
                Event::Framing => {}
                Event::NeedMore => break,
                Event::End => {
                    out.end = Ok(Some(at));
                    return out;
                }
                Event::Error(e) => {
                    out.end = Err((e, at));
                    return out;
                }
            }
            if at == w[1] && ev != Event::Framing {
                break;
            }
        }
    }
    out
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let body = b"5;a=b\r\nhello\r\nA \t; x\r\n0123456789\r\n000\r\nX-Sum: 1\r\nY: 2\r\n\r\nGET";
    let d = decode_split(body, &[]);
    assert_eq!(d.data, b"hello0123456789");
    assert_eq!(d.trailers, b"X-Sum: 1\r\nY: 2\r\n");
    assert_eq!(d.end, Ok(Some(body.len() - 3)));
}

#[test]
fn broken_chunk_framing_is_refused_where_it_breaks() {
    let cases: &[(&[u8], ChunkError, usize)] = &[
        (b"zz\r\n", ChunkError::Size, 0),
        (b"5x\r\nhello\r\n", ChunkError::Size, 1),
        (b"5 5\r\nhello\r\n", ChunkError::Size, 2),
        (b"5\nhello\r\n", ChunkError::LineEnd, 1),
        (b"5\rhello\r\n", ChunkError::LineEnd, 2),
        (b"5\r\nhelloXX\r\n0\r\n\r\n", ChunkError::DataEnd, 8),
        (b"5\r\nhello\n0\r\n\r\n", ChunkError::DataEnd, 8),
        (b"5\r\nhello\r0\r\n\r\n", ChunkError::DataEnd, 9),
        (b"5;a\x00\r\nhello\r\n", ChunkError::Control, 3),
        (b"1000000000000000\r\n", ChunkError::SizeTooLarge, 15),
        (b"000ffffffffffffffff\r\n", ChunkError::SizeTooLarge, 18),
        (b"000fffffffffffffff\r\r", ChunkError::LineEnd, 19),
        (b"0\r\nX: 1\n\r\n", ChunkError::LineEnd, 7),
        (b"0\r\n\n", ChunkError::LineEnd, 3),
        (b"0\r\n\r\r", ChunkError::LineEnd, 4),
        (b"0\r\nX: 1\r\n folded\r\n\r\n", ChunkError::Trailer, 9),
    ];
    for (bytes, err, at) in cases {
        for cut in 0..=bytes.len() {
            let d = decode_split(bytes, &[cut]);
            assert_eq!(
                d.end,
                Err((*err, *at)),
                "{:?} cut at {cut}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    let long = [&b"1;"[..], &b"x".repeat(MAX_SIZE_LINE as usize)].concat();
    assert!(matches!(
        decode_split(&long, &[]).end,
        Err((ChunkError::TooLong, _))
    ));
    let trailers = [&b"0\r\nX: "[..], &b"x".repeat(MAX_TRAILERS as usize)].concat();
    assert!(matches!(
        decode_split(&trailers, &[]).end,
        Err((ChunkError::TooLong, _))
    ));
}

/// A whole chunked body: its data, its trailer lines, and its length.
type Whole = (Vec<u8>, Vec<u8>, usize);

/// A plain reading of RFC 9112 §7.1 over the whole input, line by line: what the
/// decoder must agree with. `None` when the input ends before the body does.
fn reference(b: &[u8]) -> Option<Result<Whole, ()>> {
    let text = |s: &[u8]| s.iter().all(|&c| c == b'\t' || (c >= b' ' && c != 0x7f));
    let line_at = |i: usize| -> Option<Result<&[u8], ()>> {
        let rest = &b[i..];
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(n) if rest[..n].contains(&b'\r') || rest[..n].contains(&b'\n') => Some(Err(())),
            Some(n) => Some(Ok(&rest[..n])),
            None if rest.contains(&b'\n') => Some(Err(())),
            None => None,
        }
    };
    let (mut i, mut data, mut trailers) = (0, vec![], vec![]);
    loop {
        let Ok(line) = line_at(i)? else {
            return Some(Err(()));
        };
        if line.len() + 2 > MAX_SIZE_LINE as usize {
            return Some(Err(()));
        }
        let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
        let rest = line[digits..].trim_ascii_start();
        let hex = &line[..digits];
        let significant = &hex[hex.iter().position(|&c| c != b'0').unwrap_or(digits)..];
        if digits == 0
            || significant.len() > 15
            || !(rest.is_empty() || rest[0] == b';')
            || !text(rest)
        {
            return Some(Err(()));
        }
        let size = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()? as usize;
        i += line.len() + 2;
        if size == 0 {
            break;
        }
        if b.len() - i < size.saturating_add(2) {
            let tail = &b[i.saturating_add(size).min(b.len())..];
            return if b"\r\n".starts_with(tail) {
                None
            } else {
                Some(Err(()))
            };
        }
        data.extend_from_slice(&b[i..i + size]);
        if &b[i + size..i + size + 2] != b"\r\n" {
            return Some(Err(()));
        }
        i += size + 2;
    }
    loop {
        let Ok(line) = line_at(i)? else {
            return Some(Err(()));
        };
        if line.is_empty() {
            return Some(Ok((data, trailers, i + 2)));
        }
        if matches!(line[0], b' ' | b'\t') || !text(line) {
            return Some(Err(()));
        }
        trailers.extend_from_slice(line);
        trailers.extend_from_slice(b"\r\n");
        if trailers.len() > MAX_TRAILERS as usize {
            return Some(Err(()));
        }
        i += line.len() + 2;
    }
}

/// A valid chunked body: chunks of the given sizes over `data`, with some extensions,
/// upper-case or zero-padded sizes, and trailer lines.
fn chunked_body() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(1usize..40, 0..8),
        proptest::collection::vec("[A-Za-z][A-Za-z0-9-]{0,8}: [ -~]{0,12}", 0..3),
        any::<u8>(),
    )
        .prop_map(|(data, sizes, trailers, style)| {
            let mut out = vec![];
            let mut rest = &data[..];
            let mut i = 0;
            while !rest.is_empty() {
                let k = sizes.get(i).copied().unwrap_or(rest.len()).min(rest.len());
                let size = match (style >> (i % 4)) & 3 {
                    0 => format!("{k:x}"),
                    1 => format!("{k:X}"),
                    2 => format!("00{k:x}"),
                    _ => format!("{k:x} ;name=\"v\";x"),
                };
                out.extend_from_slice(size.as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&rest[..k]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[k..];
                i += 1;
            }
            out.extend_from_slice(if style & 16 == 0 {
                b"0\r\n"
            } else {
                b"0;last\r\n"
            });
            for t in &trailers {
                out.extend_from_slice(t.trim_end().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out
        })
}

/// A valid request head (with a `Host`, maybe a body's framing field).
fn request_head() -> impl Strategy<Value = Vec<u8>> {
    let field = ("[a-zA-Z][a-zA-Z0-9-]{0,12}", "[!-~]([ -~]{0,20}[!-~])?").prop_filter_map(
        "not a field the framing reads",
        |(n, v)| {
            let l = n.to_ascii_lowercase();
            (![
                "host",
                "content-length",
                "transfer-encoding",
                "connection",
                "upgrade",
                "expect",
            ]
            .contains(&l.as_str()))
            .then(|| format!("{n}: {v}\r\n"))
        },
    );
    (
        prop_oneof![Just("GET"), Just("POST"), Just("HEAD"), Just("PUT")],
        "/[a-z0-9/._-]{0,20}(\\?[a-z=&]{0,10})?",
        proptest::collection::vec(field, 0..8),
        0usize..4,
        any::<bool>(),
    )
        .prop_map(|(method, target, fields, framing, v10)| {
            let mut out = format!(
                "{method} {target} HTTP/1.{}\r\nHost: app.test\r\n",
                u8::from(!v10)
            );
            for f in &fields {
                out.push_str(f);
            }
            out.push_str(match (framing, v10) {
                (1, _) => "Content-Length: 12\r\n",
                (2, false) => "Transfer-Encoding: chunked\r\n",
                (3, _) => "Connection: keep-alive\r\nExpect: 100-continue\r\n",
                _ => "",
            });
            out.push_str("\r\n");
            out.into_bytes()
        })
}

/// One of the [`REFUSED`] heads.
fn refused_head() -> impl Strategy<Value = (Vec<u8>, Error)> {
    (0..REFUSED.len()).prop_map(|i| (REFUSED[i].1.to_vec(), REFUSED[i].2))
}

proptest! {
    /// A valid head is `Incomplete` at every strict prefix, and complete with the same
    /// parse at its whole length and with any bytes after it.
    #[test]
    fn valid_heads_at_every_split(head in request_head(), after in proptest::collection::vec(any::<u8>(), 0..16)) {
        let whole = complete(&head);
        prop_assert_eq!(whole.len, head.len());
        for k in 0..head.len() {
            prop_assert_eq!(parse(&head[..k]), Ok(Status::Incomplete), "prefix {}", k);
        }
        let more = [&head[..], &after].concat();
        prop_assert_eq!(parse(&more), Ok(Status::Complete(whole)));
    }

    /// A refused head is `Incomplete` or refused at every prefix (never accepted), and
    /// refused for its rule whole.
    #[test]
    fn refused_heads_at_every_split((head, want) in refused_head()) {
        for k in 0..head.len() {
            prop_assert!(!matches!(parse(&head[..k]), Ok(Status::Complete(_))), "prefix {} accepted", k);
        }
        prop_assert_eq!(parse(&head), Err(want));
    }

    /// Arbitrary bytes never panic, and the answer never depends on bytes past a
    /// complete head.
    #[test]
    fn arbitrary_heads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), max in 1usize..400) {
        let limits = Limits { max_head: max };
        if let Ok(Status::Complete(p)) = parse_with(&bytes, &limits) {
            prop_assert!(p.len <= bytes.len().min(max));
            prop_assert_eq!(parse_with(&bytes[..p.len], &limits), Ok(Status::Complete(p)));
        }
    }

    /// A chunked body decodes the same fed whole, cut in two anywhere, or cut at random
    /// points; and it decodes to what was encoded.
    #[test]
    fn chunked_bodies_at_every_split(body in chunked_body(), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
        let whole = decode_split(&body, &[]);
        prop_assert_eq!(whole.end, Ok(Some(body.len())));
        for cut in 0..=body.len() {
            prop_assert_eq!(&decode_split(&body, &[cut]), &whole);
        }
        prop_assert_eq!(&decode_split(&body, &cuts), &whole);
        let Some(Ok((data, trailers, end))) = reference(&body) else {
            return Err(TestCaseError::fail("reference refused a valid body"));
        };
        prop_assert_eq!((&whole.data, &whole.trailers, end), (&data, &trailers, body.len()));
    }

    /// Differential: valid bodies with bytes replaced, inserted or cut off decode as the
    /// plain reference says — the same data and end when it accepts, an error when it
    /// refuses, and the same answer for any split.
    #[test]
    fn chunked_decoder_agrees_with_the_reference(
        body in chunked_body(),
        edits in proptest::collection::vec((any::<usize>(), prop_oneof![
            Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b'a'), Just(b'g'), Just(b';'),
            Just(b' '), Just(0u8), any::<u8>()
        ], 0u8..3), 0..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut bytes = body;
        for (at, b, how) in edits {
            let at = at % (bytes.len() + 1);
            match how {
                0 if at < bytes.len() => bytes[at] = b,
                1 => bytes.insert(at, b),
                _ => bytes.truncate(at),
            }
        }
        let got = decode_split(&bytes, &[]);
        prop_assert_eq!(&decode_split(&bytes, &cuts), &got);
        match reference(&bytes) {
            Some(Ok((data, trailers, end))) => {
                prop_assert_eq!((got.data, got.trailers, got.end), (data, trailers, Ok(Some(end))));
            }
            Some(Err(())) => prop_assert!(got.end.is_err(), "decoder accepted: {:?}", got),
            None => prop_assert!(!matches!(got.end, Ok(Some(_))), "decoder ended early: {:?}", got),
        }
    }
}
