//! Proptests and cases for reading responses: every split of a response decodes the same.

use super::*;
use proptest::prelude::*;

/// What a response decodes to: status, fields, body, trailers, and whether the
/// connection stays reusable.
type DecodedResp = (
    u16,
    Vec<(String, Vec<u8>)>,
    Vec<u8>,
    Vec<(String, Vec<u8>)>,
    bool,
);

/// Fields by name (stable: a name's values keep their order), as a map holds them.
fn pairs(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = map
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Feeds `pieces` in turn, decoding as far as each allows; then EOF.
fn decode_pieces(pieces: &[&[u8]], head_request: bool) -> Result<DecodedResp, H1Error> {
    let mut buf = BytesMut::new();
    let mut head: Option<Response<Reading>> = None;
    let mut body = Vec::new();
    let mut trailers = Vec::new();
    let mut feed = pieces.iter();
    loop {
        let mut more = false;
        if head.is_none() {
            head = parse_head(&mut buf, head_request, false)?;
            more = head.is_none();
        }
        if let Some(resp) = head.as_mut() {
            match resp.body_mut().decode(&mut buf)? {
                Decoded::Data(d) => body.extend_from_slice(&d),
                Decoded::Trailers(t) => trailers = pairs(&t),
                Decoded::End => break,
                Decoded::More => more = true,
            }
        }
        if more {
            match feed.next() {
                Some(p) => buf.extend_from_slice(p),
                None => match head.as_mut() {
                    None => return Err(H1Error::ClosedBeforeHead),
                    Some(resp) => match resp.body_mut().at_eof()? {
                        Decoded::End => break,
                        _ => return Err(H1Error::Truncated),
                    },
                },
            }
        }
    }
    let resp = head.ok_or(H1Error::ClosedBeforeHead)?;
    let keep = resp.body().keep && buf.is_empty();
    // The fields as relayed: the map's, and those kept as bytes.
    let mut fields = resp.headers().clone();
    if let Some(raw) = &resp.body().raw {
        raw.append_to(&mut fields);
    }
    Ok((resp.status().as_u16(), pairs(&fields), body, trailers, keep))
}

fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts {
        out.push(&bytes[at..c]);
        at = c;
    }
    out.push(&bytes[at..]);
    out
}

fn field() -> impl Strategy<Value = (String, String)> {
    ("x-[a-z0-9-]{0,12}", "[!-~]([ -~]{0,30}[!-~])?")
}

prop_compose! {
    fn response()(
        status in prop_oneof![200u16..204, 205u16..304, 305u16..600],
        fields in prop::collection::vec(field(), 0..12),
        body in prop::collection::vec(any::<u8>(), 0..3000),
        chunked in any::<bool>(),
        sizes in prop::collection::vec(1usize..700, 1..20),
        ext in any::<bool>(),
        trailers in prop::collection::vec(field(), 0..4),
    ) -> (Vec<u8>, u16, Vec<(String, String)>, Vec<u8>, Vec<(String, String)>) {
        let mut out = format!("HTTP/1.1 {status} Whatever\r\n").into_bytes();
        for (n, v) in &fields {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        let mut all = fields.clone();
        let trailers = if chunked { trailers } else { Vec::new() };
        if chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            all.push(("transfer-encoding".into(), "chunked".into()));
            let mut rest = &body[..];
            let mut i = 0;
            while !rest.is_empty() {
                let k = sizes[i % sizes.len()].min(rest.len());
                let e = if ext { ";a=b;c" } else { "" };
                out.extend_from_slice(format!("{k:X}{e}\r\n").as_bytes());
                out.extend_from_slice(&rest[..k]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[k..];
                i += 1;
            }
            out.extend_from_slice(b"0\r\n");
            for (n, v) in &trailers {
                out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            all.push(("content-length".into(), body.len().to_string()));
            out.extend_from_slice(&body);
        }
        (out, status, all, body, trailers)
    }
}

fn as_pairs(v: &[(String, String)]) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = v
        .iter()
        .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

proptest! {
    #[test]
    fn any_split_decodes_like_the_whole(
        (bytes, status, fields, body, trailers) in response(),
        points in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = decode_pieces(&[&bytes], false).expect("valid response decodes");
        prop_assert_eq!(whole.0, status);
        // Relayed from the head's bytes, without the hop-by-hop `Transfer-Encoding`.
        let relayed: Vec<_> = fields
            .iter()
            .filter(|(n, _)| n != "transfer-encoding")
            .cloned()
            .collect();
        prop_assert_eq!(&whole.1, &as_pairs(&relayed));
        prop_assert_eq!(&whole.2, &body);
        prop_assert_eq!(&whole.3, &as_pairs(&trailers));
        prop_assert!(whole.4, "a complete framed response keeps the connection");
        let split = decode_pieces(&split_at_points(&bytes, &points), false)
            .expect("split response decodes");
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        prefix in prop::sample::select(vec![
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n",
        ]),
        points in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut all = prefix.to_vec();
        all.extend_from_slice(&bytes);
        let _ = decode_pieces(&split_at_points(&all, &points), false);
        let _ = decode_pieces(&split_at_points(&all, &points), true);
    }
}

#[test]
fn chunk_sizes() {
    assert_eq!(chunk_size(b"0").unwrap(), 0);
    assert_eq!(chunk_size(b"000").unwrap(), 0);
    assert_eq!(chunk_size(b"1aF").unwrap(), 0x1af);
    assert_eq!(chunk_size(b"10 ;ext=1").unwrap(), 16);
    assert_eq!(chunk_size(b"10;ext").unwrap(), 16);
    assert!(chunk_size(b"").is_err());
    assert!(chunk_size(b"g").is_err());
    assert!(chunk_size(b"10 x").is_err());
    assert!(chunk_size(b"1000000000000000").is_err());
}

#[test]
fn head_request_and_framing_rules() {
    let r = decode_pieces(&[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"], true).unwrap();
    assert_eq!((r.0, r.2.len(), r.4), (200, 0, true));
    // Close-delimited: complete at EOF, never reused.
    let r = decode_pieces(&[b"HTTP/1.1 200 OK\r\n\r\nabc", b"def"], false).unwrap();
    assert_eq!((r.2.as_slice(), r.4), (&b"abcdef"[..], false));
    // Connection: close is not reused.
    let r = decode_pieces(
        &[b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\na"],
        false,
    )
    .unwrap();
    assert!(!r.4);
    // Extra bytes after the body: not reusable.
    let r = decode_pieces(&[b"HTTP/1.1 204 No Content\r\n\r\nextra"], false).unwrap();
    assert!(!r.4);
    assert!(decode_pieces(&[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabc"], false).is_err());
    assert!(decode_pieces(&[b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"], false).is_err());
    assert!(decode_pieces(
        &[b"HTTP/1.1 200 OK\r\ncontent-length: 1, 1\r\n\r\na"],
        false
    )
    .is_ok());
    assert!(decode_pieces(&[b"HTTP/1.1 101 Switching Protocols\r\n\r\n"], false).is_err());
}

/// The head parsed from `text`, whole.
fn head_of(text: &[u8]) -> Response<Reading> {
    let mut buf = BytesMut::from(text);
    parse_head(&mut buf, false, false)
        .expect("valid head")
        .expect("complete head")
}

#[test]
fn raw_fields_are_written_as_sent_without_hop_by_hop_lines() {
    let resp = head_of(
        b"HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
          Content-Type:  text/plain \r\nProxy-Connection: x\r\nContent-Length: 2\r\n\
          Date: Thu, 03 Dec 2026 08:00:00 GMT\r\n\r\n",
    );
    assert!(resp.headers().is_empty(), "no map for a head kept as bytes");
    let raw = resp.body().raw.as_ref().expect("kept as bytes");
    let mut out = Vec::new();
    raw.write(&mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "Server: x\r\nContent-Type:  text/plain \r\nContent-Length: 2\r\n\
         Date: Thu, 03 Dec 2026 08:00:00 GMT\r\n"
    );
    assert!(raw.has_date && raw.has_length);
    assert_eq!(resp.body().size_hint().exact(), Some(2));
    let mut map = HeaderMap::new();
    raw.append_to(&mut map);
    assert_eq!(
        pairs(&map),
        vec![
            ("content-length".to_owned(), b"2".to_vec()),
            ("content-type".to_owned(), b"text/plain".to_vec()),
            ("date".to_owned(), b"Thu, 03 Dec 2026 08:00:00 GMT".to_vec()),
            ("server".to_owned(), b"x".to_vec()),
        ]
    );
    // No fields at all.
    let resp = head_of(b"HTTP/1.1 200 OK\r\n\r\n");
    let mut out = Vec::new();
    resp.body().raw.as_ref().expect("kept").write(&mut out);
    assert!(out.is_empty());
}

#[test]
fn heads_that_need_a_map_get_one() {
    for head in [
        // Connection names a field, which must go too.
        &b"HTTP/1.1 200 OK\r\nConnection: x-secret\r\nx-secret: 1\r\ncontent-length: 0\r\n\r\n"[..],
        // More hop-by-hop lines than are skipped from the bytes.
        b"HTTP/1.1 200 OK\r\nte: a\r\nte: b\r\nupgrade: c\r\nkeep-alive: d\r\nkeep-alive: e\r\ncontent-length: 0\r\n\r\n",
        // A length on a 304.
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
        // A line ended by LF alone.
        b"HTTP/1.1 200 OK\r\nx-a: 1\ncontent-length: 0\r\n\r\n",
    ] {
        let resp = head_of(head);
        assert!(
            resp.body().raw.is_none(),
            "{}",
            String::from_utf8_lossy(head)
        );
        assert!(!resp.headers().is_empty());
    }
}

/// The size of a chunk-size line (without CRLF), as the codec's decoder reads it.
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let mut chunked = Chunked::new();
    for part in [line, b"\r\n"] {
        let mut at = 0;
        while at < part.len() {
            match chunked.decode(&part[at..]) {
                (_, Event::Error(e)) => return Err(http1::Error::Chunk(e).into()),
                (0, _) => break,
                (n, _) => at += n,
            }
        }
    }
    // A size line leaves the decoder in the chunk's data (none for the last chunk).
    Ok(chunked.data_left())
}
