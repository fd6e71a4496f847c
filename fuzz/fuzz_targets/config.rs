//! AFL++ target for lb-core's config loader: arbitrary TOML text through
//! `Config::parse`, the function `--check` runs (through `Config::load`) for both binaries.
//!
//! The first byte picks the binary (even: lb-proxy, odd: lb-sni); the rest, if UTF-8, is
//! the file. Beyond "never panics" (or hangs), it checks that the answer does not depend
//! on anything but the text and that an error names its problems inside the text
//! (`../checks/config.rs`, shared with lb-core's `tests/fuzz_regressions.rs`).
//! Seeds: `seeds/config/` (configs for both binaries from docs/config.md and the tests).

mod checks {
    use std::path::Path;

    use lb_core::config::{Binary, Config};
    include!("../checks/config.rs");
}

fn main() {
    afl::fuzz!(|data: &[u8]| checks::check(data, false));
}
