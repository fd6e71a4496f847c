//! AFL++ target for lb-sni's ClientHello parser (`src/hello.rs`).
//!
//! Beyond "never panics", it checks the incremental contract (`../checks/client_hello.rs`,
//! shared with lb-sni's `tests/fuzz_regressions.rs`).
//! Seeds: `seeds/client_hello/` (real hellos from crates/lb-sni/tests/data/client-hello).

// The parser is compiled from its source (std and thiserror only), not through the lb-sni
// crate, which would pull tokio, hyper and rustls into the instrumented build.
#[path = "../../crates/lb-sni/src"]
#[allow(dead_code, unreachable_pub)]
mod sni {
    pub mod hello;
}

mod checks {
    use super::sni::hello::{parse_client_hello, HelloError, MAX_HELLO_BYTES};
    include!("../checks/client_hello.rs");
}

fn main() {
    afl::fuzz!(|data: &[u8]| checks::check(data, false));
}
