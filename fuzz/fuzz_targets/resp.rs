//! AFL++ target for lb-core's RESP codec (`src/resp.rs`).
//!
//! Beyond "never panics", it checks the codec's contract (`../checks/resp.rs`, shared with
//! lb-core's `tests/fuzz_regressions.rs`). Seeds: `seeds/resp/` (commands and replies).

// The codec is compiled from its source (std and thiserror only): in lb-core it sits behind
// the `runtime` feature, which would pull tokio into the instrumented build.
#[path = "../../crates/lb-core/src"]
#[allow(dead_code, unreachable_pub)]
mod core_src {
    pub mod resp;
}

mod checks {
    use super::core_src::resp::{parse, parse_with, Limits};
    include!("../checks/resp.rs");
}

fn main() {
    afl::fuzz!(|data: &[u8]| checks::check(data, false));
}
