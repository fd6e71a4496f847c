//! AFL++ target for lb-sni's ClientHello parser (`src/hello.rs`).
//!
//! Beyond "never panics", it checks the incremental contract: an answer other than
//! `Incomplete` is final (a prefix that answers gives the same answer as the whole);
//! `Ok` stays inside the input and the cap, parses the same from its own bytes, and every
//! strict prefix of it is `Incomplete`; `Incomplete` asks for at least one byte.
//! Seeds: `seeds/client_hello/` (real hellos from crates/lb-sni/tests/data/client-hello).

// The parser is compiled from its source (std and thiserror only), not through the lb-sni
// crate, which would pull tokio, hyper and rustls into the instrumented build.
#[path = "../../crates/lb-sni/src"]
#[allow(dead_code, unreachable_pub)]
mod sni {
    pub mod hello;
}

use sni::hello::{parse_client_hello, HelloError, MAX_HELLO_BYTES};

fn main() {
    afl::fuzz!(|data: &[u8]| check(data));
}

fn check(data: &[u8]) {
    let whole = parse_client_hello(data);
    match &whole {
        Ok(hello) => {
            let used = hello.consumed();
            assert!(used <= data.len());
            assert!(used <= MAX_HELLO_BYTES);
            assert!(hello.alpn().all(|p| !p.is_empty()));
            if let Some(name) = hello.sni() {
                assert!(!name.is_empty() && name.is_ascii());
            }
            // The same hello parses identically with nothing after it.
            assert_eq!(parse_client_hello(&data[..used]).as_ref(), Ok(hello));
            // A strict prefix of a hello is never an answer.
            for cut in [used.saturating_sub(1), used / 2, used * 2 / 3] {
                if cut < used {
                    let prefix = parse_client_hello(&data[..cut]);
                    assert!(
                        prefix.as_ref().is_err_and(HelloError::is_incomplete),
                        "prefix {cut} of {used}: {prefix:?}"
                    );
                }
            }
        }
        Err(HelloError::Incomplete { needed: Some(n) }) => assert!(*n >= 1),
        Err(_) => {}
    }
    // Any prefix that already answered must give the same answer.
    let half = parse_client_hello(&data[..data.len() / 2]);
    if !half.as_ref().is_err_and(HelloError::is_incomplete) {
        assert_eq!(half, whole);
    }
}
