//! AFL++ target for lb-core's PROXY protocol header parser (`proxy_protocol::parse`).
//!
//! Beyond "never panics", it checks the parser's contract (`../checks/proxy_protocol.rs`,
//! shared with lb-core's `tests/fuzz_regressions.rs`).
//! Seeds: `seeds/proxy_protocol/` (v1 and v2 headers, TCP4/TCP6/UNKNOWN/LOCAL).

mod checks {
    use std::net::SocketAddr;

    use lb_core::proxy_protocol::{parse, Header, ParseError, Version, V1_MAX, V2_MAX};
    include!("../checks/proxy_protocol.rs");
}

fn main() {
    afl::fuzz!(|data: &[u8]| checks::check(data, false));
}
