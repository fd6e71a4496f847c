//! AFL++ target for lb-core's config loader: arbitrary TOML text through
//! `Config::parse`, the function `--check` runs (through `Config::load`) for both binaries.
//!
//! The first byte picks the binary (even: lb-proxy, odd: lb-sni); the rest, if UTF-8, is
//! the file. Beyond "never panics" (or hangs), it checks that the answer does not depend
//! on anything but the text (parsing twice gives the same message), and that an error
//! names at least one problem, each at a line and column inside the text.
//! Seeds: `seeds/config/` (configs for both binaries from docs/config.md and the tests).

use std::path::Path;

use lb_core::config::{Binary, Config};

/// Relative paths in a config resolve against this directory, which does not exist: the
/// loader checks cert and key files are readable, and no input should find one.
const ORIGIN: &str = "/nonexistent/lb-fuzz/config.toml";

fn main() {
    afl::fuzz!(|data: &[u8]| check(data));
}

fn check(data: &[u8]) {
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
    match Config::parse(text, origin, binary) {
        Ok(_) => {}
        Err(e) => {
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
}
