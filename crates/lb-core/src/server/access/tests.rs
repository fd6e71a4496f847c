//! The access log end to end: formats, batching and its bound, reopening.

use super::*;

fn log_to(dir: &Path, format: AccessFormat) -> (AccessLog, PathBuf) {
    let path = dir.join("access.log");
    let cfg = LogConfig {
        access: AccessTarget::File(path.clone()),
        format,
    };
    (AccessLog::start(&cfg).expect("open").expect("on"), path)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lb-access-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

#[test]
fn text_and_json_lines_escape_and_parse() {
    let d = tmpdir("fmt");
    let (log, path) = log_to(&d, AccessFormat::Json);
    let mut l = log.line();
    l.str("path", "/a \"b\"\n")
        .num("status", 200)
        .addr("backend", None)
        .str("error", "");
    log.send(l);
    log.flush(Duration::from_secs(5));
    let text = std::fs::read_to_string(&path).expect("read");
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(v["path"], "/a \"b\"\n");
    assert_eq!(v["status"], 200);
    assert_eq!(v["backend"], "");
    assert!(v["time"].as_str().expect("time").ends_with('Z'));

    let cfg = LogConfig {
        access: AccessTarget::File(d.join("t.log")),
        format: AccessFormat::Text,
    };
    let log = AccessLog::start(&cfg).expect("open").expect("on");
    let mut l = log.line();
    l.str("ua", "curl 8")
        .str("host", "a.example")
        .str("error", "");
    log.send(l);
    log.flush(Duration::from_secs(5));
    let t = std::fs::read_to_string(d.join("t.log")).expect("read");
    assert!(t.ends_with(" ua=\"curl 8\" host=a.example error=\n"), "{t}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn reopen_after_rename_writes_a_new_file() {
    let d = tmpdir("reopen");
    let (log, path) = log_to(&d, AccessFormat::Text);
    let mut l = log.line();
    l.str("n", "one");
    log.send(l);
    log.flush(Duration::from_secs(5));
    std::fs::rename(&path, d.join("access.log.1")).expect("rename");
    log.reopen();
    let mut l = log.line();
    l.str("n", "two");
    log.send(l);
    log.flush(Duration::from_secs(5));
    let old = std::fs::read_to_string(d.join("access.log.1")).expect("old");
    let new = std::fs::read_to_string(&path).expect("new");
    assert!(old.contains("n=one") && !old.contains("n=two"), "{old}");
    assert!(new.contains("n=two") && !new.contains("n=one"), "{new}");
    let _ = std::fs::remove_dir_all(&d);
}

/// Polls `path` until it holds `n` lines (or 5 s pass); returns its lines.
fn lines_within(path: &Path, n: usize, limit: Duration) -> (Vec<String>, Duration) {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || start.elapsed() > limit {
            return (lines, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn lines_reach_the_file_within_the_interval_without_a_flush() {
    let d = tmpdir("interval");
    let (log, path) = log_to(&d, AccessFormat::Text);
    // The first line after a quiet spell wakes the writer at once.
    let mut l = log.line();
    l.num("n", 0);
    log.send(l);
    let (lines, took) = lines_within(&path, 1, Duration::from_secs(5));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(took < FLUSH_INTERVAL * 10, "the first line took {took:?}");
    // Steady traffic, then none: the last lines are written within the interval,
    // with no flush asked for (a flush is only at exit).
    for n in 1..=300 {
        let mut l = log.line();
        l.num("n", n);
        log.send(l);
        if n % 50 == 0 {
            std::thread::sleep(FLUSH_INTERVAL / 4);
        }
    }
    let (lines, took) = lines_within(&path, 301, Duration::from_secs(5));
    assert_eq!(lines.len(), 301, "every line, once");
    assert!(took < FLUSH_INTERVAL * 10, "the last lines took {took:?}");
    for (n, line) in lines.iter().enumerate() {
        assert!(line.ends_with(&format!(" n={n}")), "in order: {line}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn lines_of_many_threads_are_whole_and_none_is_lost() {
    let d = tmpdir("threads");
    let (log, path) = log_to(&d, AccessFormat::Json);
    let (threads, each) = (8, 1000);
    // Long values, so batches are large and writes can be partial.
    let pad = "x".repeat(300);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (log, pad) = (log.clone(), &pad);
            s.spawn(move || {
                for n in 0..each {
                    let mut l = log.line();
                    l.num("thread", t).num("n", n).str("pad", pad);
                    log.send(l);
                }
            });
        }
    });
    log.flush(Duration::from_secs(10));
    let text = std::fs::read_to_string(&path).expect("read");
    let mut seen = vec![Vec::new(); threads as usize];
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a whole JSON line");
        assert_eq!(v["pad"], pad.as_str());
        let t = v["thread"].as_u64().expect("thread") as usize;
        seen[t].push(v["n"].as_u64().expect("n"));
    }
    for (t, ns) in seen.iter().enumerate() {
        // A thread's own lines stay in the order it sent them.
        assert_eq!(ns, &(0..each).collect::<Vec<_>>(), "thread {t}");
    }
    assert_eq!(log.dropped(), 0);
    // The writer ends after the last clone is gone, writing what was sent.
    let mut l = log.line();
    l.str("last", "yes");
    log.send(l);
    drop(log);
    let (lines, _) = lines_within(
        &path,
        threads as usize * each as usize + 1,
        Duration::from_secs(5),
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("\"last\":\"yes\"")),
        "{:?}",
        lines.last()
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_stuck_writer_drops_lines_past_the_bound_and_counts_them() {
    let d = tmpdir("stuck");
    let path = d.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&path).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("no mkfifo: skipped");
        return;
    }
    // A reader that never reads: the writer's first large write blocks.
    let reader = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&path)
        .expect("fifo");
    let cfg = LogConfig {
        access: AccessTarget::File(path.clone()),
        format: AccessFormat::Text,
    };
    let log = AccessLog::start(&cfg).expect("open").expect("on");
    let pad = "y".repeat(100);
    let sent = QUEUE_LINES + 3000;
    for n in 0..sent {
        let mut l = log.line();
        l.num("n", n as u64).str("pad", &pad);
        log.send(l);
    }
    // At most QUEUE_LINES wait (plus what the writer took before it blocked).
    let dropped = log.dropped() as usize;
    assert!(
        dropped > 0 && dropped <= sent - QUEUE_LINES,
        "dropped {dropped}"
    );
    let mut out = String::new();
    log.render(&mut out);
    assert!(
        out.contains(&format!("lb_access_log_dropped_total {dropped}")),
        "{out}"
    );
    drop(reader); // the writer's write fails (EPIPE) and it goes on
    drop(log);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn lines_sent_before_a_reopen_go_to_the_old_file() {
    let d = tmpdir("reopen-pending");
    let (log, path) = log_to(&d, AccessFormat::Text);
    for n in 0..100 {
        let mut l = log.line();
        l.num("old", n);
        log.send(l);
    }
    // No flush: some of these may still wait in their batch.
    std::fs::rename(&path, d.join("access.log.1")).expect("rename");
    log.reopen();
    log.flush(Duration::from_secs(5));
    let mut l = log.line();
    l.str("new", "yes");
    log.send(l);
    log.flush(Duration::from_secs(5));
    let old = std::fs::read_to_string(d.join("access.log.1")).expect("old");
    let new = std::fs::read_to_string(&path).expect("new");
    assert_eq!(old.lines().count(), 100, "{old}");
    assert!(!old.contains("new=yes"), "{old}");
    assert!(new.contains("new=yes") && !new.contains("old="), "{new}");
    let _ = std::fs::remove_dir_all(&d);
}
