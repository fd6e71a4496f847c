// The `config` target's checks (see README.md); the includer imports `Binary`, `Config`
// and `std::path::Path`.
//
// The first byte picks the binary (even: lb-proxy, odd: lb-sni); the rest, if UTF-8, is
// the file. The answer depends on nothing but the text (parsing twice gives the same
// message), and an error names at least one problem, each at a line and column inside the
// text. `every_prefix` is unused: a config has no prefix contract.

/// Relative paths in a config resolve against this directory, which does not exist: the
/// loader checks cert and key files are readable, and no input should find one.
const ORIGIN: &str = "/nonexistent/lb-fuzz/config.toml";

pub(crate) fn check(data: &[u8], _every_prefix: bool) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let binary = if pick % 2 == 0 {
        Binary::Proxy
    } else {
        Binary::Sni
    };
    let origin = Path::new(ORIGIN);
    if let Err(e) = Config::parse(text, origin, binary) {
        let message = e.to_string();
        assert!(!message.is_empty());
        assert!(!e.issues.is_empty(), "an error without issues: {message}");
        let lines = text.split('\n').count();
        for issue in &e.issues {
            if let Some(pos) = issue.position {
                assert!(
                    pos.line >= 1 && pos.line <= lines,
                    "{pos:?} of {lines} lines"
                );
                assert!(pos.column >= 1, "{pos:?}");
            }
        }
        let again = Config::parse(text, origin, binary).expect_err("the same text fails");
        assert_eq!(again.to_string(), message);
    }
}
