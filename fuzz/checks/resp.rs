// The `resp` target's checks (see README.md); the includer imports `parse`, `parse_with`
// and `Limits`.
//
// A frame stays inside the input, parses the same from its own bytes, and every strict
// prefix of it is "incomplete" (`Ok(None)`), never an error; encoding the frame and parsing
// that gives the frame back (compared as bytes, since NaN != NaN); a frame accepted under
// tight limits is the same frame under the defaults.

include!("prefixes.rs");

const TIGHT: Limits = Limits {
    max_bulk_len: 64,
    max_array_len: 8,
    max_depth: 4,
    max_line_len: 64,
};

pub(crate) fn check(data: &[u8], every_prefix: bool) {
    let whole = parse(data);
    if let Ok(Some((frame, used))) = &whole {
        let used = *used;
        assert!(used <= data.len());
        assert_eq!(
            parse(&data[..used]).as_ref(),
            Ok(&Some((frame.clone(), used)))
        );
        for cut in prefixes(used, every_prefix, &[used.saturating_sub(1), used / 2]) {
            assert_eq!(parse(&data[..cut]), Ok(None), "prefix {cut} of {used}");
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
