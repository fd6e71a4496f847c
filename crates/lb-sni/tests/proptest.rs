//! Property tests: no input panics the parser, mutations of real hellos either parse or
//! fail cleanly, and any framing of a valid hello into records parses the same.

mod common;

use common::{handshake_of, reframe, vectors, Vector};
use lb_sni::hello::{parse_client_hello, Hello, HelloError, MAX_HELLO_BYTES};
use proptest::prelude::*;
use std::sync::OnceLock;

fn all() -> &'static [Vector] {
    static VECTORS: OnceLock<Vec<Vector>> = OnceLock::new();
    VECTORS.get_or_init(vectors)
}

/// What every `Ok` must satisfy, whatever the input.
fn check_ok(hello: &Hello<'_>, input: &[u8]) {
    assert!(hello.consumed() <= input.len());
    assert!(hello.consumed() <= MAX_HELLO_BYTES);
    assert!(hello.records() >= 1);
    assert_eq!(hello.handshake().first(), Some(&1));
    if let Some(name) = hello.sni() {
        assert!(!name.is_empty());
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    }
    assert!(hello.alpn().all(|p| !p.is_empty()));
}

/// What every `Incomplete` must satisfy.
fn check_err(err: &HelloError, input: &[u8]) {
    if let HelloError::Incomplete { needed: Some(n) } = err {
        assert!(*n >= 1);
        assert!(
            input.len() + n <= MAX_HELLO_BYTES + 5,
            "{n} more after {}",
            input.len()
        );
    }
}

fn check(input: &[u8]) {
    match parse_client_hello(input) {
        Ok(hello) => check_ok(&hello, input),
        Err(err) => check_err(&err, input),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_handshake_header_never_panic(
        version in 0u8..5,
        len in 0u16..2048,
        hs_len in 0u32..4096,
        tail in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = vec![0x16, 0x03, version];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.push(1);
        bytes.extend_from_slice(&hs_len.to_be_bytes()[1..]);
        bytes.extend_from_slice(&tail);
        check(&bytes);
    }

    #[test]
    fn mutated_vectors_parse_or_fail_cleanly(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let vector = which.get(all());
        let mut bytes = vector.bytes.clone();
        for (at, value) in &edits {
            let at = at.index(bytes.len());
            bytes[at] = *value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        check(&bytes);
    }

    /// The incremental contract: once an answer other than `Incomplete` is given, more
    /// bytes never change it.
    #[test]
    fn answers_are_final(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let vector = which.get(all());
        let mut bytes = vector.bytes.clone();
        for (at, value) in &edits {
            let at = at.index(bytes.len());
            bytes[at] = *value;
        }
        let prefix = parse_client_hello(&bytes[..cut.index(bytes.len() + 1)]);
        if !prefix.as_ref().is_err_and(HelloError::is_incomplete) {
            prop_assert_eq!(prefix, parse_client_hello(&bytes));
        }
    }

    #[test]
    fn any_framing_of_a_vector_parses_the_same(
        which in any::<prop::sample::Index>(),
        raw_cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        probes in prop::collection::vec(any::<prop::sample::Index>(), 1..16),
    ) {
        let vector = which.get(all());
        let handshake = handshake_of(&vector.bytes);
        let mut cuts: Vec<usize> =
            raw_cuts.iter().map(|c| 1 + c.index(handshake.len() - 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let framed = reframe(&handshake, &cuts);
        let hello = parse_client_hello(&framed).expect("a re-framed vector parses");
        prop_assert_eq!(hello.records(), cuts.len() + 1);
        prop_assert_eq!(hello.consumed(), framed.len());
        prop_assert_eq!(hello.sni(), vector.sni.as_deref());
        let alpn: Vec<&[u8]> = vector.alpn.iter().map(|p| p.as_bytes()).collect();
        prop_assert!(hello.alpn().eq(alpn));
        prop_assert_eq!(hello.handshake(), &handshake[..]);
        prop_assert_eq!(hello.is_borrowed(), cuts.is_empty());
        // Prefixes: just before and after every record boundary, and random ones.
        let mut prefixes: Vec<usize> = probes.iter().map(|p| p.index(framed.len())).collect();
        let mut pos = 0;
        while pos < framed.len() {
            for p in pos.saturating_sub(1)..(pos + 7).min(framed.len()) {
                prefixes.push(p);
            }
            pos += 5 + usize::from(u16::from_be_bytes([framed[pos + 3], framed[pos + 4]]));
        }
        prefixes.push(framed.len() - 1);
        for n in prefixes {
            match parse_client_hello(&framed[..n]) {
                Err(HelloError::Incomplete { needed: Some(k) }) => {
                    prop_assert!(k >= 1 && n + k <= framed.len(), "prefix {} needs {}", n, k);
                }
                other => prop_assert!(false, "prefix {} of {}: {:?}", n, framed.len(), other),
            }
        }
    }
}
