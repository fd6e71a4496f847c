//! Replays the fuzz targets' seeds and every saved crash (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/` at the repository root) through lb-core's parsers with the
//! targets' checks (fuzz/fuzz_targets/), so they run in `cargo test` without AFL.

use std::path::{Path, PathBuf};

/// Every file of `fuzz/<kind>/<target>/` but the READMEs.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((path, bytes));
    }
    out.sort();
    out
}

mod proxy_protocol {
    use std::net::SocketAddr;

    use lb_core::proxy_protocol::{parse, Header, ParseError, Version, V1_MAX, V2_MAX};

    /// The fuzz target's checks (fuzz/fuzz_targets/proxy_protocol.rs), every prefix.
    fn check(data: &[u8]) {
        let whole = parse(data);
        if let Ok(p) = &whole {
            let used = p.consumed;
            let max = match p.version {
                Version::V1 => V1_MAX,
                Version::V2 => V2_MAX,
            };
            assert!(used <= data.len() && used <= max);
            assert_eq!(parse(&data[..used]), Ok(*p));
            for cut in 0..used {
                assert_eq!(
                    parse(&data[..cut]),
                    Err(ParseError::Incomplete),
                    "prefix {cut}"
                );
            }
            if let (Some(src), Some(dst)) = (p.src, p.dst) {
                // `encode` unmaps IPv4-mapped addresses and sends mixed families as IPv6: compare
                // canonical forms, and only for one family (which it sends as it is).
                let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
                if canon(src).is_ipv4() == canon(dst).is_ipv4() {
                    let version = p.version;
                    let enc = Header { version, src, dst }.encode();
                    let back = parse(enc.as_bytes()).expect("an encoded header parses");
                    assert_eq!(back.consumed, enc.as_bytes().len());
                    assert_eq!(
                        (back.version, back.src, back.dst),
                        (version, Some(canon(src)), Some(canon(dst)))
                    );
                }
            }
        }
        let half = parse(&data[..data.len() / 2]);
        if half != Err(ParseError::Incomplete) {
            assert_eq!(half, whole);
        }
    }

    #[test]
    fn every_seed_is_a_header_and_passes_the_fuzz_checks() {
        let seeds = super::inputs("seeds", "proxy_protocol");
        assert!(seeds.len() >= 8, "{} seeds", seeds.len());
        for (path, bytes) in seeds {
            assert!(parse(&bytes).is_ok(), "{}", path.display());
            check(&bytes);
        }
    }

    #[test]
    fn every_saved_crash_passes_the_fuzz_checks() {
        for (path, bytes) in super::inputs("regressions", "proxy_protocol") {
            eprintln!("replaying {}", path.display());
            check(&bytes);
        }
    }
}

#[cfg(feature = "runtime")]
mod resp {
    use lb_core::resp::{parse, parse_with, Limits};

    const TIGHT: Limits = Limits {
        max_bulk_len: 64,
        max_array_len: 8,
        max_depth: 4,
        max_line_len: 64,
    };

    /// The fuzz target's checks (fuzz/fuzz_targets/resp.rs), every prefix.
    fn check(data: &[u8]) {
        let whole = parse(data);
        if let Ok(Some((frame, used))) = &whole {
            let used = *used;
            assert!(used <= data.len());
            assert_eq!(parse(&data[..used]), Ok(Some((frame.clone(), used))));
            for cut in 0..used {
                assert_eq!(parse(&data[..cut]), Ok(None), "prefix {cut} of {used}");
            }
            let wire = frame.to_bytes();
            let (again, n) = parse(&wire)
                .expect("an encoded frame parses")
                .expect("an encoded frame is complete");
            assert_eq!(n, wire.len());
            assert_eq!(again.to_bytes(), wire);
        }
        if let Ok(Some(tight)) = parse_with(data, &TIGHT) {
            match &whole {
                Ok(Some(f)) => assert_eq!(f.1, tight.1),
                other => panic!("tight limits gave {tight:?}, defaults {other:?}"),
            }
        }
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
            check(&bytes);
        }
    }

    #[test]
    fn every_saved_crash_passes_the_fuzz_checks() {
        for (path, bytes) in super::inputs("regressions", "resp") {
            eprintln!("replaying {}", path.display());
            check(&bytes);
        }
    }
}

#[cfg(feature = "config")]
mod config {
    use std::path::Path;

    use lb_core::config::{Binary, Config};

    /// The fuzz target's checks (fuzz/fuzz_targets/config.rs): the first byte picks the
    /// binary, the rest is the file.
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
        let origin = Path::new("/nonexistent/lb-fuzz/config.toml");
        if let Err(e) = Config::parse(text, origin, binary) {
            let message = e.to_string();
            assert!(!message.is_empty() && !e.issues.is_empty());
            let lines = text.split('\n').count();
            for issue in &e.issues {
                if let Some(pos) = issue.position {
                    assert!(
                        pos.line >= 1 && pos.line <= lines && pos.column >= 1,
                        "{pos:?}"
                    );
                }
            }
            let again = Config::parse(text, origin, binary).expect_err("the same text fails");
            assert_eq!(again.to_string(), message);
        }
    }

    #[test]
    fn every_seed_passes_the_fuzz_checks() {
        let seeds = super::inputs("seeds", "config");
        assert!(seeds.len() >= 4, "{} seeds", seeds.len());
        for (_, bytes) in seeds {
            check(&bytes);
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
            check(&bytes);
        }
    }
}
