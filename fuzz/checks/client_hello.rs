// The `client_hello` target's checks (see README.md); the includer imports
// `parse_client_hello`, `HelloError` and `MAX_HELLO_BYTES`.
//
// An answer other than `Incomplete` is final (a prefix that answers gives the same answer
// as the whole); `Ok` stays inside the input and the cap, parses the same from its own
// bytes, and every strict prefix of it is `Incomplete`; `Incomplete` asks for at least one
// byte.

include!("prefixes.rs");

pub(crate) fn check(data: &[u8], every_prefix: bool) {
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
            let few = [used.saturating_sub(1), used / 2, used * 2 / 3];
            for cut in prefixes(used, every_prefix, &few) {
                let prefix = parse_client_hello(&data[..cut]);
                assert!(
                    prefix.as_ref().is_err_and(HelloError::is_incomplete),
                    "prefix {cut} of {used}: {prefix:?}"
                );
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
