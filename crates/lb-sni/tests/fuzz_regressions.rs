//! Replays the ClientHello fuzz target's seeds and every saved crash
//! (`fuzz/seeds/client_hello/`, `fuzz/regressions/client_hello/` at the repository root)
//! through the parser with the target's checks, so they run without AFL.

use std::path::{Path, PathBuf};

use lb_sni::hello::{parse_client_hello, HelloError, MAX_HELLO_BYTES};

fn inputs(kind: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("client_hello");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((path, bytes));
    }
    out
}

/// The fuzz target's checks (fuzz/fuzz_targets/client_hello.rs).
fn check(data: &[u8]) {
    let whole = parse_client_hello(data);
    match &whole {
        Ok(hello) => {
            let used = hello.consumed();
            assert!(used <= data.len() && used <= MAX_HELLO_BYTES);
            assert!(hello.alpn().all(|p| !p.is_empty()));
            if let Some(name) = hello.sni() {
                assert!(!name.is_empty() && name.is_ascii());
            }
            assert_eq!(parse_client_hello(&data[..used]).as_ref(), Ok(hello));
            for cut in 0..used {
                let prefix = parse_client_hello(&data[..cut]);
                assert!(
                    prefix.as_ref().is_err_and(HelloError::is_incomplete),
                    "prefix {cut} of {used}: {prefix:?}"
                );
            }
        }
        Err(HelloError::Incomplete { needed: Some(n) }) => assert!(*n >= 1),
        Err(_) => {}
    }
    let half = parse_client_hello(&data[..data.len() / 2]);
    if !half.as_ref().is_err_and(HelloError::is_incomplete) {
        assert_eq!(half, whole);
    }
}

#[test]
fn every_seed_is_a_hello_and_passes_the_fuzz_checks() {
    let seeds = inputs("seeds");
    assert!(seeds.len() >= 9, "{} seeds", seeds.len());
    for (path, bytes) in seeds {
        assert!(parse_client_hello(&bytes).is_ok(), "{}", path.display());
        check(&bytes);
    }
}

#[test]
fn every_saved_crash_passes_the_fuzz_checks() {
    for (path, bytes) in inputs("regressions") {
        eprintln!("replaying {}", path.display());
        check(&bytes);
    }
}
