//! Replays the fuzz targets' seeds and every saved crash (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/` at the repository root) through lb-core's parsers with the
//! targets' checks (`fuzz/checks/`, every strict prefix of an answer tried), so they run in
//! `cargo test` without AFL.

use lb_test_support::fuzz::inputs;

mod proxy_protocol {
    use lb_core::proxy_protocol::parse;

    mod checks {
        use std::net::SocketAddr;

        use lb_core::proxy_protocol::{parse, Header, ParseError, Version, V1_MAX, V2_MAX};
        include!("../../../fuzz/checks/proxy_protocol.rs");
    }

    #[test]
    fn every_seed_is_a_header_and_passes_the_fuzz_checks() {
        let seeds = super::inputs("seeds", "proxy_protocol");
        assert!(seeds.len() >= 8, "{} seeds", seeds.len());
        for (path, bytes) in seeds {
            assert!(parse(&bytes).is_ok(), "{}", path.display());
            checks::check(&bytes, true);
        }
    }

    #[test]
    fn every_saved_crash_passes_the_fuzz_checks() {
        for (path, bytes) in super::inputs("regressions", "proxy_protocol") {
            eprintln!("replaying {}", path.display());
            checks::check(&bytes, true);
        }
    }
}

#[cfg(feature = "runtime")]
mod resp {
    use lb_core::resp::parse;

    mod checks {
        use lb_core::resp::{parse, parse_with, Limits};
        include!("../../../fuzz/checks/resp.rs");
    }

    #[test]
    fn every_seed_is_a_frame_and_passes_the_fuzz_checks() {
        let seeds = super::inputs("seeds", "resp");
        assert!(seeds.len() >= 10, "{} seeds", seeds.len());
        for (path, bytes) in seeds {
            let parsed = parse(&bytes);
            assert!(
                matches!(parsed, Ok(Some((_, n))) if n == bytes.len()),
                "{}: {parsed:?}",
                path.display()
            );
            checks::check(&bytes, true);
        }
    }

    #[test]
    fn every_saved_crash_passes_the_fuzz_checks() {
        for (path, bytes) in super::inputs("regressions", "resp") {
            eprintln!("replaying {}", path.display());
            checks::check(&bytes, true);
        }
    }
}

#[cfg(feature = "config")]
mod config {
    use std::path::Path;

    use lb_core::config::{Binary, Config};

    mod checks {
        use std::path::Path;

        use lb_core::config::{Binary, Config};
        include!("../../../fuzz/checks/config.rs");
    }

    #[test]
    fn every_seed_passes_the_fuzz_checks() {
        let seeds = super::inputs("seeds", "config");
        assert!(seeds.len() >= 4, "{} seeds", seeds.len());
        for (_, bytes) in seeds {
            checks::check(&bytes, true);
        }
    }

    #[test]
    fn the_small_seeds_are_valid_configs() {
        for (name, binary) in [
            ("min-proxy.toml", Binary::Proxy),
            ("min-sni.toml", Binary::Sni),
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fuzz/seeds/config")
                .join(name);
            let text = std::fs::read_to_string(&path).expect("seed");
            // The first byte picks the binary in the fuzz target.
            let r = Config::parse(&text[1..], &path, binary);
            assert!(
                r.is_ok(),
                "{name}: {}",
                r.err().map(|e| e.to_string()).unwrap_or_default()
            );
        }
    }

    #[test]
    fn every_saved_crash_passes_the_fuzz_checks() {
        for (path, bytes) in super::inputs("regressions", "config") {
            eprintln!("replaying {}", path.display());
            checks::check(&bytes, true);
        }
    }
}
