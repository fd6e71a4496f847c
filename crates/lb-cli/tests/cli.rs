//! The `lb` binary end to end: config checks and hash analysis.

use std::process::Command;

fn lb(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lb"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running lb: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lb-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    p
}

#[test]
fn check_names_file_key_and_value() {
    let good = write(
        "good.toml",
        "[[listener]]\nlisten = \"127.0.0.1:8080\"\n[pool.web]\nbackends = [\"127.0.0.1:9001\"]\n",
    );
    let (code, out, _) = lb(&[
        "check",
        "--binary",
        "lb-proxy",
        good.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("ok"), "{out}");
    let bad = write(
        "bad.toml",
        "[[listener]]\nlisten = \"127.0.0.1:8080\"\n[pool.web]\nstrategy = \"fastest\"\n",
    );
    let (code, _, err) = lb(&[
        "check",
        "--binary",
        "lb-proxy",
        bad.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.toml") && err.contains("pool.web.strategy") && err.contains("fastest"),
        "{err}"
    );
    let (code, _, err) = lb(&[
        "check",
        "--binary",
        "nginx",
        good.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("lb-proxy or lb-sni"), "{err}");
}

fn figure(out: &str, prefix: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in {out}"))
}

#[test]
fn hash_reports_spread_and_moves() {
    let (code, out, err) = lb(&[
        "hash",
        "--strategy",
        "rendezvous",
        "--backends",
        "10",
        "--keys",
        "20000",
        "--add",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let spread = figure(&out, "spread max/mean: ");
    assert!((1.0..1.2).contains(&spread), "{out}");
    let moved = figure(&out, "moved: ");
    assert!((moved - 1.0 / 11.0).abs() < 0.02, "{out}");
    assert!(out.contains("pick: "), "{out}");
    let (code, out, _) = lb(&[
        "hash",
        "--strategy",
        "modulo",
        "--backends",
        "10",
        "--keys",
        "20000",
        "--remove",
        "1",
    ]);
    assert_eq!(code, 0);
    assert!(
        figure(&out, "moved: ") > 0.5,
        "modulo moves most keys: {out}"
    );
}

#[test]
fn hash_refuses_non_hashing_strategies_and_bad_counts() {
    let (code, _, err) = lb(&["hash", "--strategy", "least-conn", "--backends", "3"]);
    assert_eq!(code, 2);
    assert!(err.contains("does not hash keys"), "{err}");
    let (code, _, err) = lb(&[
        "hash",
        "--strategy",
        "maglev",
        "--backends",
        "3",
        "--remove",
        "3",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no backend"), "{err}");
}

#[test]
fn hash_writes_an_svg_chart_with_weights() {
    let path = write("chart.svg", "");
    let (code, out, err) = lb(&[
        "hash",
        "--strategy",
        "maglev",
        "--backends",
        "4",
        "--weights",
        "1,1,1,3",
        "--keys",
        "20000",
        "--add",
        "2",
        "--svg",
        path.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("svg: "), "{out}");
    let svg = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    assert_eq!(svg.matches("class=\"bar\"").count(), 4);
    assert_eq!(svg.matches("class=\"bar-moved\"").count(), 6);
    assert!(svg.contains("add 2: moved"), "{svg}");
    // A weight per backend, or a message saying so.
    let (code, _, err) = lb(&[
        "hash",
        "--strategy",
        "maglev",
        "--backends",
        "4",
        "--weights",
        "1,2",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("one per backend"), "{err}");
    // An unwritable path is an error naming it.
    let (code, _, err) = lb(&[
        "hash",
        "--strategy",
        "maglev",
        "--backends",
        "3",
        "--keys",
        "100",
        "--svg",
        "/nonexistent-dir/x.svg",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent-dir/x.svg"), "{err}");
}

/// `lb hash ... | head`: a reader that goes away must not make `lb hash`
/// panic ("failed printing to stdout: Broken pipe"); it exits 0 quietly.
/// The pipe's read end is closed before `lb` starts, so every write to
/// stdout fails with EPIPE whatever the timing.
#[test]
fn hash_exits_quietly_when_stdout_is_closed() {
    let svg = write("closed.svg", "");
    let (reader, writer) = std::io::pipe().unwrap_or_else(|e| panic!("pipe: {e}"));
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_lb"))
        .args(["hash", "--strategy", "rendezvous", "--backends", "5"])
        .args(["--keys", "1000", "--svg"])
        .arg(&svg)
        .stdout(writer)
        .output()
        .unwrap_or_else(|e| panic!("running lb: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// The same as a person sees it: read the first line, then drop the pipe.
#[test]
fn hash_survives_a_reader_that_stops_after_one_line() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lb"))
        .args(["hash", "--strategy", "modulo", "--backends", "5"])
        .args(["--keys", "1000", "--add", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running lb: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut first = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut first)
        .unwrap_or_else(|e| panic!("reading lb: {e}"));
    assert!(first.starts_with("backends: 5"), "{first}");
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for lb: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
