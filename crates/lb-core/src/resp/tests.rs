use super::*;
use proptest::prelude::*;

fn ok(bytes: &[u8]) -> Frame {
    match parse(bytes) {
        Ok(Some((frame, used))) => {
            assert_eq!(used, bytes.len(), "whole input consumed for {bytes:?}");
            frame
        }
        other => panic!("{bytes:?} parsed as {other:?}"),
    }
}

#[test]
fn resp2_types() {
    assert_eq!(ok(b"+OK\r\n"), Frame::Simple("OK".into()));
    assert_eq!(
        ok(b"-ERR wrong type\r\n"),
        Frame::Error("ERR wrong type".into())
    );
    assert_eq!(ok(b":-42\r\n"), Frame::Integer(-42));
    assert_eq!(ok(b"$0\r\n\r\n"), Frame::Bulk(Some(vec![])));
    assert_eq!(ok(b"$-1\r\n"), Frame::Bulk(None));
    assert_eq!(ok(b"*-1\r\n"), Frame::Array(None));
    assert_eq!(ok(b"*0\r\n"), Frame::Array(Some(vec![])));
    assert_eq!(
        ok(b"*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n"),
        Frame::Array(Some(vec![
            Frame::Bulk(Some(b"GET".to_vec())),
            Frame::Bulk(Some(b"a\r\nb".to_vec()))
        ]))
    );
}

#[test]
fn resp3_types() {
    assert_eq!(ok(b"_\r\n"), Frame::Null);
    assert_eq!(ok(b"#t\r\n"), Frame::Boolean(true));
    assert_eq!(ok(b"#f\r\n"), Frame::Boolean(false));
    assert_eq!(ok(b",1.5\r\n"), Frame::Double(1.5));
    assert_eq!(ok(b",-inf\r\n"), Frame::Double(f64::NEG_INFINITY));
    assert_eq!(ok(b",1e3\r\n"), Frame::Double(1000.0));
    assert!(matches!(ok(b",nan\r\n"), Frame::Double(d) if d.is_nan()));
    assert_eq!(
        ok(b"(-123456789012345678901234567890\r\n"),
        Frame::BigNumber("-123456789012345678901234567890".into())
    );
    assert_eq!(ok(b"!3\r\nbad\r\n"), Frame::BulkError(b"bad".to_vec()));
    assert_eq!(
        ok(b"=8\r\ntxt:some\r\n"),
        Frame::Verbatim {
            format: *b"txt",
            data: b"some".to_vec()
        }
    );
    assert_eq!(
        ok(b"%1\r\n+server\r\n+redis\r\n"),
        Frame::Map(vec![(
            Frame::Simple("server".into()),
            Frame::Simple("redis".into())
        )])
    );
    assert_eq!(ok(b"~1\r\n:1\r\n"), Frame::Set(vec![Frame::Integer(1)]));
    assert_eq!(
        ok(b">2\r\n+message\r\n:7\r\n"),
        Frame::Push(vec![Frame::Simple("message".into()), Frame::Integer(7)])
    );
}

#[test]
fn pipelined_frames_parse_one_at_a_time() {
    let buf = b"+OK\r\n:1\r\n$-1\r\n";
    let (f, n) = parse(buf).unwrap().unwrap();
    assert_eq!((f, n), (Frame::Simple("OK".into()), 5));
    let (f, n2) = parse(&buf[n..]).unwrap().unwrap();
    assert_eq!((f, n2), (Frame::Integer(1), 4));
    assert_eq!(parse(&buf[n + n2..]).unwrap(), Some((Frame::Bulk(None), 5)));
    assert_eq!(parse(b"").unwrap(), None);
}

#[test]
fn malformed_input_is_an_error() {
    let cases: &[(&[u8], RespError)] = &[
        (b"?\r\n", RespError::UnknownType(b'?')),
        (b"+OK\n", RespError::BadTerminator),
        (b"+OK\rX", RespError::BadTerminator),
        (b":12a\r\n", RespError::InvalidNumber("integer")),
        (b":+1\r\n", RespError::InvalidNumber("integer")),
        (
            b":99999999999999999999\r\n",
            RespError::InvalidNumber("integer"),
        ),
        (b"$-2\r\n", RespError::InvalidLength(-2)),
        (b"%-1\r\n", RespError::InvalidLength(-1)),
        (b"$3\r\nabcd\r\n", RespError::BadTerminator),
        (b"$3\r\nabcX", RespError::BadTerminator),
        (b"#x\r\n", RespError::InvalidNumber("boolean")),
        (b",infinity\r\n", RespError::InvalidNumber("double")),
        (b"(12a\r\n", RespError::InvalidNumber("big number")),
        (b"=3\r\ntxt\r\n", RespError::BadVerbatim),
        (b"|1\r\n+a\r\n+b\r\n", RespError::Unsupported("attributes")),
        (b"*?\r\n", RespError::Unsupported("streamed aggregates")),
        (b"+\xff\r\n", RespError::InvalidUtf8),
    ];
    for (bytes, want) in cases {
        assert_eq!(parse(bytes).as_ref(), Err(want), "{bytes:?}");
    }
}

#[test]
fn hostile_lengths_are_refused_before_data() {
    let limits = Limits {
        max_bulk_len: 10,
        max_array_len: 4,
        max_depth: 3,
        max_line_len: 16,
    };
    assert_eq!(
        parse_with(b"$11\r\n", &limits),
        Err(RespError::BulkTooLong { len: 11, max: 10 })
    );
    assert_eq!(
        parse_with(b"*5\r\n", &limits),
        Err(RespError::ArrayTooLong { len: 5, max: 4 })
    );
    assert_eq!(
        parse_with(b"%5\r\n", &limits),
        Err(RespError::ArrayTooLong { len: 5, max: 4 })
    );
    assert_eq!(
        parse_with(b"*1\r\n*1\r\n*1\r\n*1\r\n", &limits),
        Err(RespError::TooDeep(3))
    );
    assert_eq!(
        parse_with(b"*1\r\n*1\r\n*0\r\n", &limits)
            .unwrap()
            .map(|x| x.1),
        Some(12)
    );
    assert_eq!(
        parse_with(&[b'+'; 18], &limits),
        Err(RespError::LineTooLong(16))
    );
    // A huge declared count with the default limits costs nothing until elements arrive.
    assert_eq!(parse(b"*1048576\r\n"), Ok(None));
    assert_eq!(
        parse(b"$9999999999\r\n"),
        Err(RespError::BulkTooLong {
            len: 9_999_999_999,
            max: 16 << 20
        })
    );
}

#[test]
fn encode_command_and_resp2_nil() {
    let mut out = Vec::new();
    encode_command(&[b"SET", b"k", b""], &mut out);
    assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    assert_eq!(Frame::Bulk(None).to_bytes(), b"$-1\r\n");
    assert_eq!(Frame::Simple("a\r\nb".into()).to_bytes(), b"+a  b\r\n");
    assert_eq!(Frame::Double(f64::INFINITY).to_bytes(), b",inf\r\n");
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let line = "[^\r\n]{0,12}";
    let leaf = prop_oneof![
        line.prop_map(Frame::Simple),
        line.prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..24)).prop_map(Frame::Bulk),
        Just(Frame::Array(None)),
        Just(Frame::Null),
        any::<bool>().prop_map(Frame::Boolean),
        any::<f64>()
            .prop_filter("NaN != NaN", |d| !d.is_nan())
            .prop_map(Frame::Double),
        "-?[0-9]{1,40}".prop_map(Frame::BigNumber),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Frame::BulkError),
        (
            any::<[u8; 3]>(),
            proptest::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(format, data)| Frame::Verbatim { format, data }),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(|v| Frame::Array(Some(v))),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Frame::Map),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            proptest::collection::vec(inner, 0..6).prop_map(Frame::Push),
        ]
    })
}

proptest! {
    #[test]
    fn encode_then_parse_roundtrips(frame in arb_frame(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut bytes = frame.to_bytes();
        let len = bytes.len();
        bytes.extend_from_slice(&tail);
        let (back, used) = parse(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, frame);
        prop_assert_eq!(used, len);
    }

    #[test]
    fn every_prefix_is_incomplete(frame in arb_frame()) {
        let bytes = frame.to_bytes();
        for cut in 0..bytes.len() {
            prop_assert_eq!(parse(&bytes[..cut]), Ok(None), "prefix of {} bytes", cut);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let limits = Limits { max_bulk_len: 64, max_array_len: 8, max_depth: 4, max_line_len: 32 };
        if let Ok(Some((_, used))) = parse_with(&bytes, &limits) {
            prop_assert!(used <= bytes.len());
        }
        let _ = parse(&bytes);
    }

    #[test]
    fn typed_garbage_never_panics(ty in proptest::sample::select(b"+-:$*_#,(!=%~>|".to_vec()),
                                  rest in "[-0-9?\r\n:tfa-z]{0,40}") {
        let mut bytes = vec![ty];
        bytes.extend_from_slice(rest.as_bytes());
        if let Ok(Some((frame, used))) = parse(&bytes) {
            // Whatever parsed re-encodes to something that parses back the same.
            prop_assert!(used <= bytes.len());
            let again = frame.to_bytes();
            let reparsed = parse(&again).unwrap().unwrap().0;
            if !matches!(frame, Frame::Double(d) if d.is_nan()) {
                prop_assert_eq!(reparsed, frame);
            }
        }
    }
}
