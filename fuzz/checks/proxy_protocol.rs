// The `proxy_protocol` target's checks (see README.md); the includer imports `parse`,
// `Header`, `ParseError`, `Version`, `V1_MAX`, `V2_MAX` and `std::net::SocketAddr`.
//
// A header stays inside the input and the format's maximum, parses the same from its own
// bytes, and every strict prefix of it is `Incomplete`; an answer other than `Incomplete`
// is final (a prefix that answers gives the same answer as the whole); a header with
// addresses of one family re-encodes (`Header::encode`) to bytes that parse to the same
// version and addresses (IPv4-mapped ones as IPv4).

include!("prefixes.rs");

pub(crate) fn check(data: &[u8], every_prefix: bool) {
    let whole = parse(data);
    if let Ok(p) = &whole {
        let used = p.consumed;
        assert!(used <= data.len());
        let max = match p.version {
            Version::V1 => V1_MAX,
            Version::V2 => V2_MAX,
        };
        assert!(used <= max, "{used} > {max}");
        assert_eq!(parse(&data[..used]), Ok(*p));
        for cut in prefixes(used, every_prefix, &[used.saturating_sub(1), used / 2]) {
            assert_eq!(
                parse(&data[..cut]),
                Err(ParseError::Incomplete),
                "prefix {cut} of {used}"
            );
        }
        if let (Some(src), Some(dst)) = (p.src, p.dst) {
            // `encode` unmaps IPv4-mapped addresses and sends mixed families as IPv6: compare
            // canonical forms, and only for one family (which it sends as it is).
            let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
            if canon(src).is_ipv4() == canon(dst).is_ipv4() {
                let version = p.version;
                let enc = Header { version, src, dst }.encode();
                let back = parse(enc.as_bytes()).expect("an encoded header parses");
                assert_eq!(back.consumed, enc.as_bytes().len());
                assert_eq!(
                    (back.version, back.src, back.dst),
                    (version, Some(canon(src)), Some(canon(dst)))
                );
            }
        }
    }
    let half = parse(&data[..data.len() / 2]);
    if half != Err(ParseError::Incomplete) {
        assert_eq!(half, whole);
    }
}
