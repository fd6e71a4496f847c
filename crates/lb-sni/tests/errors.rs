//! Bad input: real vectors with edited lengths, built hellos, other protocols.

mod common;

use common::{
    alpn_ext, build_handshake, extension_at, extension_offsets, get16, reframe, server_name_ext,
    set16, vector,
};
use lb_sni::hello::{parse_client_hello, HelloError, MAX_HELLO_BYTES};

fn openssl() -> Vec<u8> {
    vector("openssl-sni-alpn.bin").bytes
}

fn malformed(bytes: &[u8]) -> &'static str {
    match parse_client_hello(bytes) {
        Err(HelloError::Malformed { what }) => what,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

fn one_record(handshake: &[u8]) -> Vec<u8> {
    reframe(handshake, &[])
}

#[test]
fn other_protocols_are_not_tls() {
    for bytes in [
        &b"GET / HTTP/1.1\r\nHost: app1.test\r\n\r\n"[..],
        b"GET / HTTP/1.1",
        b"G",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"PRI * HTTP/2.0\r\n",
        b"\x00\x00\x00\x00\x00",
        b"\x17\x03\x03\x00\x10",     // application data record
        b"\x16\x02\x00\x00\x10",     // 0x16 but not a 3.x record version
        b"\x85\x00\x02\x03\x01\x00", // high bit set, not an SSLv2 CLIENT-HELLO
    ] {
        assert_eq!(
            parse_client_hello(bytes).map(|_| ()),
            Err(HelloError::NotTls),
            "{bytes:?}"
        );
    }
}

#[test]
fn sslv2_hello_is_recognised() {
    // SSLv2-compatible CLIENT-HELLO: length 0x2e (high bit set), type 1, version 3.1,
    // cipher_specs 21 bytes, session id 0, challenge 16.
    let mut hello = vec![
        0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
    ];
    for _ in 0..7 {
        hello.extend_from_slice(&[0x00, 0x00, 0x04]);
    }
    hello.extend_from_slice(&[0xab; 16]);
    assert_eq!(hello.len(), 2 + 0x2e);
    assert_eq!(
        parse_client_hello(&hello).map(|_| ()),
        Err(HelloError::SslV2)
    );
    // Its first two bytes are not enough to tell.
    assert!(parse_client_hello(&hello[..2]).is_err_and(|e| e.is_incomplete()));
}

#[test]
fn empty_input_asks_for_a_record_header() {
    assert_eq!(
        parse_client_hello(&[]).map(|_| ()),
        Err(HelloError::Incomplete { needed: Some(5) })
    );
}

#[test]
fn a_record_longer_than_the_data_is_incomplete() {
    // Record and handshake both claim 10 more bytes: a valid beginning so far.
    let mut bytes = openssl();
    let len = get16(&bytes, 3);
    set16(&mut bytes, 3, len + 10);
    let hs = u32::from_be_bytes([0, bytes[6], bytes[7], bytes[8]]);
    bytes[6..9].copy_from_slice(&(hs + 10).to_be_bytes()[1..]);
    assert_eq!(
        parse_client_hello(&bytes).map(|_| ()),
        Err(HelloError::Incomplete { needed: Some(10) })
    );
    // Once those bytes come, they do not fit the extensions block.
    bytes.extend_from_slice(&[0; 10]);
    assert_eq!(malformed(&bytes), "bytes after the extensions block");
}

#[test]
fn a_record_longer_than_its_handshake_is_malformed_before_the_bytes_come() {
    let mut bytes = openssl();
    let len = get16(&bytes, 3);
    set16(&mut bytes, 3, len + 10);
    assert_eq!(
        malformed(&bytes[..9]),
        "record carries bytes past the ClientHello"
    );
    assert_eq!(
        malformed(&bytes),
        "record carries bytes past the ClientHello"
    );
    bytes.extend_from_slice(&[0; 10]);
    assert_eq!(
        malformed(&bytes),
        "record carries bytes past the ClientHello"
    );
}

#[test]
fn a_record_over_16k_is_oversized_at_its_header() {
    let mut bytes = openssl();
    set16(&mut bytes, 3, 0x4001);
    for prefix in [5, 40, bytes.len()] {
        assert_eq!(
            parse_client_hello(&bytes[..prefix]).map(|_| ()),
            Err(HelloError::Oversized {
                at_least: 5 + 0x4001
            })
        );
    }
}

#[test]
fn a_hello_claiming_20k_is_oversized_early() {
    let mut bytes = openssl();
    bytes[6..9].copy_from_slice(&(20 * 1024u32).to_be_bytes()[1..]);
    for prefix in [9, 100, bytes.len()] {
        assert_eq!(
            parse_client_hello(&bytes[..prefix]).map(|_| ()),
            Err(HelloError::Oversized {
                at_least: 5 + 4 + 20 * 1024
            })
        );
    }
}

#[test]
fn the_cap_is_exact() {
    // Pad a built hello with the padding extension (21) to fill one record exactly.
    let base = build_handshake(Some(&[(0, server_name_ext(&[(0, b"app1.test")]))]));
    let pad = lb_sni::hello::MAX_RECORD_PAYLOAD - base.len() - 4;
    let full = build_handshake(Some(&[
        (0, server_name_ext(&[(0, b"app1.test")])),
        (21, vec![0; pad]),
    ]));
    assert_eq!(full.len(), lb_sni::hello::MAX_RECORD_PAYLOAD);
    let bytes = one_record(&full);
    assert_eq!(bytes.len(), MAX_HELLO_BYTES);
    let hello = parse_client_hello(&bytes).expect("a full record fits");
    assert_eq!(hello.sni(), Some("app1.test"));
    // The same message over two records needs 5 more bytes than the cap.
    let split = reframe(&full, &[100]);
    assert_eq!(
        parse_client_hello(&split).map(|_| ()),
        Err(HelloError::Oversized {
            at_least: MAX_HELLO_BYTES + 5
        })
    );
    // One byte more in one record cannot be framed in a single record at all.
    let over = build_handshake(Some(&[(21, vec![0; lb_sni::hello::MAX_RECORD_PAYLOAD])]));
    assert!(over.len() > lb_sni::hello::MAX_RECORD_PAYLOAD);
    let split = reframe(&over, &[8000]);
    assert!(matches!(
        parse_client_hello(&split),
        Err(HelloError::Oversized { .. })
    ));
}

#[test]
fn an_empty_record_is_malformed() {
    let mut bytes = openssl();
    set16(&mut bytes, 3, 0);
    assert_eq!(malformed(&bytes), "empty handshake record");
}

#[test]
fn a_record_shorter_than_the_hello_continues_into_garbage() {
    // The record ends one byte early: the hello's last byte becomes the next record header.
    let mut bytes = openssl();
    let len = get16(&bytes, 3);
    set16(&mut bytes, 3, len - 1);
    let last = *bytes.last().expect("non-empty");
    let result = parse_client_hello(&bytes);
    if last == 0x16 {
        assert!(result.is_err_and(|e| e.is_incomplete()));
    } else {
        assert_eq!(
            result.map(|_| ()),
            Err(HelloError::Malformed {
                what: "non-handshake record inside the ClientHello"
            })
        );
    }
}

#[test]
fn a_foreign_record_inside_a_split_hello_is_malformed_at_its_first_byte() {
    let mut bytes = vector("openssl-sni-alpn-two-records.bin").bytes;
    let second = 5 + get16(&bytes, 3) as usize;
    bytes[second] = 0x17;
    assert_eq!(
        malformed(&bytes[..=second]),
        "non-handshake record inside the ClientHello"
    );
    assert_eq!(
        malformed(&bytes),
        "non-handshake record inside the ClientHello"
    );
    bytes[second] = 0x16;
    bytes[second + 1] = 0x02;
    assert_eq!(malformed(&bytes[..second + 2]), "record version is not 3.x");
}

#[test]
fn a_server_hello_is_not_a_client_hello() {
    let mut bytes = openssl();
    bytes[5] = 2;
    for prefix in [6, bytes.len()] {
        assert_eq!(
            parse_client_hello(&bytes[..prefix]).map(|_| ()),
            Err(HelloError::NotClientHello { msg_type: 2 })
        );
    }
}

#[test]
fn handshake_length_must_match_its_records() {
    // Shorter than the record: the record carries bytes past the message.
    let mut bytes = openssl();
    let hs = u32::from_be_bytes([0, bytes[6], bytes[7], bytes[8]]);
    bytes[6..9].copy_from_slice(&(hs - 1).to_be_bytes()[1..]);
    assert_eq!(
        malformed(&bytes),
        "record carries bytes past the ClientHello"
    );
    // Longer: the hello continues in a record that has not come yet.
    let mut bytes = openssl();
    bytes[6..9].copy_from_slice(&(hs + 1).to_be_bytes()[1..]);
    assert_eq!(
        parse_client_hello(&bytes).map(|_| ()),
        Err(HelloError::Incomplete { needed: Some(5) })
    );
}

#[test]
fn an_extension_length_past_its_container_is_malformed() {
    let mut bytes = openssl();
    let (_, last) = *extension_offsets(&bytes).last().expect("extensions");
    let len = get16(&bytes, last + 2);
    set16(&mut bytes, last + 2, len + 1);
    assert_eq!(
        malformed(&bytes),
        "extension data past the extensions block"
    );
}

#[test]
fn the_extensions_block_must_fill_the_handshake() {
    let bytes = openssl();
    let first = extension_offsets(&bytes)[0].1;
    let mut longer = bytes.clone();
    let len = get16(&longer, first - 2);
    set16(&mut longer, first - 2, len + 1);
    assert_eq!(malformed(&longer), "extensions past the handshake");
    let mut shorter = bytes;
    set16(&mut shorter, first - 2, len - 1);
    assert_eq!(malformed(&shorter), "bytes after the extensions block");
}

#[test]
fn server_name_list_length_must_match_the_extension() {
    let bytes = openssl();
    let sni = extension_at(&bytes, 0);
    for delta in [-1i32, 1] {
        let mut edited = bytes.clone();
        let list = get16(&edited, sni + 4) as i32;
        set16(&mut edited, sni + 4, (list + delta) as u16);
        assert_eq!(
            malformed(&edited),
            "server_name list length does not match the extension"
        );
    }
    let mut edited = bytes.clone();
    let name_len = get16(&edited, sni + 7);
    set16(&mut edited, sni + 7, name_len + 1);
    assert_eq!(malformed(&edited), "server_name entry past the list");
}

#[test]
fn a_host_name_with_a_nul_is_malformed() {
    let mut bytes = openssl();
    let sni = extension_at(&bytes, 0);
    let name = sni + 9;
    assert_eq!(&bytes[name..name + 9], b"app1.test");
    bytes[name + 4] = 0;
    assert_eq!(
        parse_client_hello(&bytes).unwrap_err(),
        HelloError::BadServerName {
            what: "host_name has bytes no host name can hold"
        }
    );
}

#[test]
fn alpn_list_length_must_match_the_extension() {
    let mut bytes = openssl();
    let alpn = extension_at(&bytes, 16);
    let list = get16(&bytes, alpn + 4);
    set16(&mut bytes, alpn + 4, list - 1);
    assert_eq!(
        malformed(&bytes),
        "ALPN list length does not match the extension"
    );
}

#[test]
fn fixed_fields_are_checked() {
    let bytes = openssl();
    let sid = 5 + 4 + 2 + 32;
    let mut edited = bytes.clone();
    edited[sid] = 33;
    assert_eq!(malformed(&edited), "session_id longer than 32 bytes");
    let suites = sid + 1 + bytes[sid] as usize;
    let mut edited = bytes.clone();
    let n = get16(&edited, suites);
    set16(&mut edited, suites, n - 1);
    assert_eq!(malformed(&edited), "cipher_suites length is zero or odd");
    let mut edited = bytes.clone();
    set16(&mut edited, suites, 0xfffe);
    assert_eq!(malformed(&edited), "cipher_suites past the handshake");
}

#[test]
fn built_hellos() {
    let sni = |name: &[u8]| (0u16, server_name_ext(&[(0, name)]));
    let parse = |exts: Option<&[(u16, Vec<u8>)]>| {
        let bytes = one_record(&build_handshake(exts));
        parse_client_hello(&bytes).map(|h| (h.sni().map(str::to_owned), h.alpn().count()))
    };
    // No extensions block at all (old TLS 1.2 clients).
    assert_eq!(parse(None), Ok((None, 0)));
    assert_eq!(parse(Some(&[])), Ok((None, 0)));
    assert_eq!(
        parse(Some(&[sni(b"a.test")])),
        Ok((Some("a.test".into()), 0))
    );
    // An unknown name type is skipped; the host_name is still found.
    let mixed = server_name_ext(&[(7, b"\x01\x02"), (0, b"b.test")]);
    assert_eq!(parse(Some(&[(0, mixed)])), Ok((Some("b.test".into()), 0)));
    let only_other = server_name_ext(&[(7, b"x")]);
    assert_eq!(parse(Some(&[(0, only_other)])), Ok((None, 0)));
    // Ambiguity is refused: a router and a backend must not disagree on the name.
    let dup = |exts: &[(u16, Vec<u8>)]| match parse(Some(exts)) {
        Err(HelloError::Malformed { what } | HelloError::BadServerName { what }) => what,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        dup(&[sni(b"a.test"), sni(b"b.test")]),
        "two server_name extensions"
    );
    let two_names = server_name_ext(&[(0, b"a.test"), (0, b"b.test")]);
    assert_eq!(
        dup(&[(0, two_names)]),
        "two host_name entries in server_name"
    );
    let h2 = (16u16, alpn_ext(&[b"h2"]));
    assert_eq!(dup(&[h2.clone(), h2.clone()]), "two ALPN extensions");
    assert_eq!(dup(&[(0, vec![0, 0])]), "empty server_name list");
    assert_eq!(
        dup(&[(0, vec![])]),
        "server_name list length past the extension"
    );
    assert_eq!(dup(&[sni(b"")]), "empty host_name");
    assert_eq!(
        dup(&[sni(b"a b.test")]),
        "host_name has bytes no host name can hold"
    );
    assert_eq!(
        dup(&[sni("tést".as_bytes())]),
        "host_name has bytes no host name can hold"
    );
    assert_eq!(
        dup(&[(16, alpn_ext(&[b"h2", b""]))]),
        "empty ALPN protocol name"
    );
    assert_eq!(dup(&[(16, vec![0, 0])]), "empty ALPN list");
    assert_eq!(
        dup(&[(16, vec![0, 3, 5, b'h', b'2'])]),
        "ALPN protocol past the list"
    );
    // ALPN in order.
    let bytes = one_record(&build_handshake(Some(&[(
        16,
        alpn_ext(&[b"h2", b"http/1.1"]),
    )])));
    let hello = parse_client_hello(&bytes).expect("parses");
    assert_eq!(
        hello.alpn().collect::<Vec<_>>(),
        vec![&b"h2"[..], b"http/1.1"]
    );
}

#[test]
fn a_truncated_body_is_malformed_not_incomplete() {
    // The handshake and record lengths say the message is complete, but the body stops
    // inside the cipher suites: that is a lie, not a short read.
    let full = build_handshake(None);
    let cut = 4 + 2 + 32 + 1 + 32 + 3;
    let mut message = full[..cut].to_vec();
    message[1..4].copy_from_slice(&((cut - 4) as u32).to_be_bytes()[1..]);
    assert_eq!(
        malformed(&one_record(&message)),
        "cipher_suites past the handshake"
    );
}
