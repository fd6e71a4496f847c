//! AFL++ target for the HTTP/1 codec: heads and chunked bodies from arbitrary bytes.
//!
//! Beyond "never panics", it checks the codec's contract: a complete head parses the
//! same from its own bytes and is `Incomplete` at any strict prefix; a chunked body
//! decodes the same whole and cut at a point the input chooses. The first byte chooses
//! the cut; the rest is the message.

#[allow(dead_code, unused_imports, unreachable_pub)]
#[path = "../../src/http1/mod.rs"]
mod http1;

use std::mem::MaybeUninit;

use http1::{Body, Chunked, Event, Limits, Status};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Some((&cut, input)) = data.split_first() {
            request(input, cut as usize);
            response(input);
            chunked(input, cut as usize);
        }
    });
}

type Head = (usize, Body, Option<Vec<u8>>, bool, usize);

fn parse(buf: &[u8]) -> Result<Status<Head>, http1::Error> {
    let mut slots = [const { MaybeUninit::uninit() }; 32];
    let limits = Limits { max_head: 2048 };
    Ok(match http1::parse_request_head(buf, &limits, &mut slots)? {
        Status::Incomplete => Status::Incomplete,
        Status::Complete(h) => Status::Complete((
            h.len,
            h.body,
            h.host.map(<[u8]>::to_vec),
            h.keep_alive,
            h.fields.len(),
        )),
    })
}

fn request(input: &[u8], cut: usize) {
    let Ok(Status::Complete(head)) = parse(input) else {
        return;
    };
    let len = head.0;
    assert!(len <= input.len());
    assert_eq!(
        parse(&input[..len]).ok(),
        Some(Status::Complete(head.clone()))
    );
    if len > 0 {
        let k = cut % len;
        assert_eq!(
            parse(&input[..k]).ok(),
            Some(Status::Incomplete),
            "prefix {k}"
        );
    }
    if head.1 == Body::Chunked {
        chunked(&input[len..], cut);
    }
}

fn response(input: &[u8]) {
    let mut slots = [const { MaybeUninit::uninit() }; 32];
    if let Ok(Status::Complete(h)) =
        http1::parse_response_head(input, &Limits::default(), &mut slots)
    {
        assert!(h.len <= input.len());
        let _ = http1::response_body(h.code, h.version, false, &h.framing());
    }
}

/// Data, trailer bytes, and how it ended (offset, or error and offset).
type Decoded = (
    Vec<u8>,
    Vec<u8>,
    Option<Result<usize, (http1::ChunkError, usize)>>,
);

fn decode(input: &[u8], cut: usize) -> Decoded {
    let mut dec = Chunked::new();
    let (mut data, mut trailers) = (vec![], vec![]);
    let cut = cut.min(input.len());
    let mut at = 0;
    for end in [cut, input.len()] {
        loop {
            let (n, ev) = dec.decode(&input[at..end]);
            assert!(at + n <= end);
            let piece = &input[at..at + n];
            at += n;
            match ev {
                Event::Data => data.extend_from_slice(piece),
                Event::Trailer => trailers.extend_from_slice(piece),
                Event::Framing => continue,
                Event::NeedMore => break,
                Event::End => return (data, trailers, Some(Ok(at))),
                Event::Error(e) => return (data, trailers, Some(Err((e, at)))),
            }
            if at == end {
                break;
            }
        }
    }
    (data, trailers, None)
}

fn chunked(input: &[u8], cut: usize) {
    let whole = decode(input, input.len());
    assert_eq!(decode(input, cut), whole);
    assert_eq!(decode(input, 0), whole);
}
