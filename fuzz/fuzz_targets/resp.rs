//! AFL++ target for lb-core's RESP codec (`src/resp.rs`).
//!
//! Beyond "never panics", it checks the codec's contract: a frame stays inside the input,
//! parses the same from its own bytes, and every strict prefix of it is "incomplete"
//! (`Ok(None)`), never an error; encoding the frame and parsing that gives the frame back
//! (compared as bytes, since NaN != NaN); a frame accepted under tight limits is the same
//! frame under the defaults. Seeds: `seeds/resp/` (commands and replies).

// The codec is compiled from its source (std and thiserror only): in lb-core it sits behind
// the `runtime` feature, which would pull tokio into the instrumented build.
#[path = "../../crates/lb-core/src"]
#[allow(dead_code, unreachable_pub)]
mod core_src {
    pub mod resp;
}

use core_src::resp::{parse, parse_with, Limits};

const TIGHT: Limits = Limits {
    max_bulk_len: 64,
    max_array_len: 8,
    max_depth: 4,
    max_line_len: 64,
};

fn main() {
    afl::fuzz!(|data: &[u8]| check(data));
}

fn check(data: &[u8]) {
    let whole = parse(data);
    if let Ok(Some((frame, used))) = &whole {
        let used = *used;
        assert!(used <= data.len());
        assert_eq!(
            parse(&data[..used]).as_ref(),
            Ok(&Some((frame.clone(), used)))
        );
        for cut in [used.saturating_sub(1), used / 2] {
            if cut < used {
                assert_eq!(parse(&data[..cut]), Ok(None), "prefix {cut} of {used}");
            }
        }
        let wire = frame.to_bytes();
        let (again, n) = parse(&wire)
            .expect("an encoded frame parses")
            .expect("an encoded frame is complete");
        assert_eq!(n, wire.len());
        assert_eq!(again.to_bytes(), wire);
    }
    // Tight limits only ever turn answers into errors.
    if let Ok(Some(tight)) = parse_with(data, &TIGHT) {
        match &whole {
            Ok(Some(f)) => assert_eq!(f.1, tight.1),
            other => panic!("tight limits gave {tight:?}, defaults {other:?}"),
        }
    }
}
