//! The captured ClientHellos: whole, at every prefix length, and re-framed.

mod common;

use common::{handshake_of, reframe, vector, vectors};
use lb_sni::hello::{parse_client_hello, HelloError};

#[test]
fn every_vector_parses_with_the_manifest_sni_and_alpn() {
    for v in vectors() {
        assert_eq!(v.bytes.len(), v.declared_len, "{}", v.name);
        let hello = parse_client_hello(&v.bytes).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(hello.sni(), v.sni.as_deref(), "{}", v.name);
        let alpn: Vec<String> = hello
            .alpn()
            .map(|p| String::from_utf8(p.to_vec()).expect("ASCII ALPN"))
            .collect();
        assert_eq!(alpn, v.alpn, "{}", v.name);
        assert_eq!(hello.consumed(), v.bytes.len(), "{}", v.name);
        assert_eq!(hello.legacy_version(), 0x0303, "{}", v.name);
        assert_eq!(hello.record_version() >> 8, 3, "{}", v.name);
        assert_eq!(hello.handshake(), &handshake_of(&v.bytes)[..], "{}", v.name);
        let two = v.name.contains("two-records");
        assert_eq!(hello.records(), if two { 2 } else { 1 }, "{}", v.name);
        assert_eq!(hello.is_borrowed(), !two, "{}", v.name);
    }
}

#[test]
fn every_strict_prefix_is_incomplete_with_an_honest_lower_bound() {
    for v in vectors() {
        for n in 0..v.bytes.len() {
            match parse_client_hello(&v.bytes[..n]) {
                Err(HelloError::Incomplete { needed: Some(k) }) => {
                    assert!(k >= 1, "{} at {n}: needs 0 more", v.name);
                    assert!(n + k <= v.bytes.len(), "{} at {n}: needs {k} more", v.name);
                }
                other => panic!("{} prefix {n}: {other:?}", v.name),
            }
        }
    }
}

#[test]
fn the_no_sni_hello_gives_none() {
    let v = vector("openssl-no-sni.bin");
    let hello = parse_client_hello(&v.bytes).expect("parses");
    assert_eq!(hello.sni(), None);
    assert_eq!(hello.alpn().count(), 0);
}

#[test]
fn names_are_returned_as_sent() {
    let v = vector("openssl-idn-upper-sni.bin");
    let hello = parse_client_hello(&v.bytes).expect("parses");
    assert_eq!(hello.sni(), Some("XN--BCHER-KVA.Example.COM"));
    let v = vector("openssl-long-sni.bin");
    assert_eq!(
        parse_client_hello(&v.bytes)
            .expect("parses")
            .sni()
            .map(str::len),
        Some(249)
    );
}

#[test]
fn alpn_helpers() {
    let v = vector("chromium-sni-alpn.bin");
    let hello = parse_client_hello(&v.bytes).expect("parses");
    assert!(hello.alpn().contains(b"h2"));
    assert!(hello.alpn().contains(b"http/1.1"));
    assert!(!hello.alpn().contains(b"h3"));
    assert!(!hello.alpn().contains(b""));
}

#[test]
fn the_two_record_vector_is_the_single_record_hello_reframed() {
    let one = vector("openssl-sni-alpn.bin");
    let two = vector("openssl-sni-alpn-two-records.bin");
    let a = parse_client_hello(&one.bytes).expect("one record");
    let b = parse_client_hello(&two.bytes).expect("two records");
    assert_eq!(a.handshake(), b.handshake());
    assert_eq!((a.sni(), b.sni()), (Some("app1.test"), Some("app1.test")));
    assert!(a.alpn().eq(b.alpn()));
    // The owned copy outlives the input buffer.
    let owned = {
        let copy = two.bytes.clone();
        parse_client_hello(&copy).expect("parses").into_owned()
    };
    assert_eq!(owned, b);
}

#[test]
fn bytes_after_the_hello_are_not_consumed() {
    for v in vectors() {
        let mut bytes = v.bytes.clone();
        bytes.extend_from_slice(b"\x17\x03\x03\x00\x05early");
        let hello = parse_client_hello(&bytes).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(hello.consumed(), v.bytes.len(), "{}", v.name);
        assert_eq!(hello.sni(), v.sni.as_deref(), "{}", v.name);
    }
}

#[test]
fn every_vector_split_in_one_byte_records_still_parses() {
    for v in vectors() {
        let handshake = handshake_of(&v.bytes);
        // One-byte records cost 6 bytes per handshake byte: keep within the cap.
        if handshake.len() * 6 > lb_sni::MAX_HELLO_BYTES {
            continue;
        }
        let cuts: Vec<usize> = (1..handshake.len()).collect();
        let framed = reframe(&handshake, &cuts);
        let hello = parse_client_hello(&framed).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(hello.records(), handshake.len(), "{}", v.name);
        assert_eq!(hello.sni(), v.sni.as_deref(), "{}", v.name);
        assert_eq!(hello.handshake(), &handshake[..], "{}", v.name);
        for n in (0..framed.len()).step_by(7) {
            assert!(
                parse_client_hello(&framed[..n]).is_err_and(|e| e.is_incomplete()),
                "{} prefix {n}",
                v.name
            );
        }
    }
}
