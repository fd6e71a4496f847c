//! The fuzz targets' inputs (`fuzz/` at the repository root), for the tests that replay
//! them through the parsers without AFL.

use std::path::{Path, PathBuf};

/// Every file of `fuzz/KIND/TARGET/` (`KIND`: `seeds` or `regressions`) but the READMEs,
/// with its bytes, sorted by path.
///
/// # Panics
/// When the directory or a file cannot be read.
pub fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
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
