//! Replays the ClientHello fuzz target's seeds and every saved crash
//! (`fuzz/seeds/client_hello/`, `fuzz/regressions/client_hello/` at the repository root)
//! through the parser with the target's checks (`fuzz/checks/client_hello.rs`, every
//! strict prefix of an answer tried), so they run without AFL.

use lb_sni::hello::parse_client_hello;
use lb_test_support::fuzz::inputs;

mod checks {
    use lb_sni::hello::{parse_client_hello, HelloError, MAX_HELLO_BYTES};
    include!("../../../fuzz/checks/client_hello.rs");
}

#[test]
fn every_seed_is_a_hello_and_passes_the_fuzz_checks() {
    let seeds = inputs("seeds", "client_hello");
    assert!(seeds.len() >= 9, "{} seeds", seeds.len());
    for (path, bytes) in seeds {
        assert!(parse_client_hello(&bytes).is_ok(), "{}", path.display());
        checks::check(&bytes, true);
    }
}

#[test]
fn every_saved_crash_passes_the_fuzz_checks() {
    for (path, bytes) in inputs("regressions", "client_hello") {
        eprintln!("replaying {}", path.display());
        checks::check(&bytes, true);
    }
}
