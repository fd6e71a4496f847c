//! Headless Chromium (Debian's `chromium`) for the stats-page tests of lb-proxy and lb-cli:
//! the page loaded from a running admin API, its DOM dumped or a screenshot taken.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The browser's command name.
///
/// # Panics
/// When neither `chromium` nor `chromium-browser` runs: the test says how to install it.
pub fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser"] {
        if Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return name;
        }
    }
    panic!("headless Chromium is needed for the stats page test: apt-get install -y chromium (CI's .ci/run installs it)");
}

/// A fresh `PREFIX-PID-NAME` directory under the system temp dir (for a browser profile or
/// a screenshot), emptied first if a previous run left it.
pub fn scratch(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Runs headless Chromium on `url` with `extra` flags (a fresh profile, no network but
/// loopback, no background services); returns stdout. Bounded to 90 s.
pub fn headless(url: &str, extra: &[String], profile: &Path) -> String {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                // Ours, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 90 s");
            }
        }
    }
    reader.join().unwrap_or_default()
}

/// The `<tr ATTR="VALUE">` row of a dumped DOM (up to its `</tr>`).
///
/// # Panics
/// When the page has no such row: the message holds the page.
pub fn row<'a>(dom: &'a str, attr: &str, value: &str) -> &'a str {
    let start = dom
        .find(&format!("{attr}=\"{value}\""))
        .unwrap_or_else(|| panic!("no row {attr}={value} in the page:\n{dom}"));
    let end = dom[start..].find("</tr>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}
