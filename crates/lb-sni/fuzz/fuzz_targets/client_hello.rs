//! Fuzz `parse_client_hello`: it must never panic, and every answer must respect the
//! incremental contract (an answer other than `Incomplete` is final; `Ok` stays inside the
//! input and the cap; `Incomplete` asks for at least one byte).
//!
//! Seed the corpus with the captured hellos: `cp ../tests/data/client-hello/*.bin corpus/client_hello/`.

#![no_main]

use lb_sni::hello::{parse_client_hello, HelloError, MAX_HELLO_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = parse_client_hello(data);
    match &whole {
        Ok(hello) => {
            assert!(hello.consumed() <= data.len());
            assert!(hello.consumed() <= MAX_HELLO_BYTES);
            assert!(hello.alpn().all(|p| !p.is_empty()));
            if let Some(name) = hello.sni() {
                assert!(!name.is_empty() && name.is_ascii());
            }
            // The same hello parses identically with nothing after it.
            assert_eq!(
                parse_client_hello(&data[..hello.consumed()]).as_ref(),
                Ok(hello)
            );
        }
        Err(HelloError::Incomplete { needed: Some(n) }) => assert!(*n >= 1),
        Err(_) => {}
    }
    // Any prefix that already answered must give the same answer.
    let half = parse_client_hello(&data[..data.len() / 2]);
    if !half.as_ref().is_err_and(HelloError::is_incomplete) {
        assert_eq!(half, whole);
    }
});
