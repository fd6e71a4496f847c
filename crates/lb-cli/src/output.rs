//! Human-readable tables for the admin client's answers (the `--json` output is the
//! server's JSON, pretty-printed, and lives in `main.rs`).
//!
//! Renderers read the documented fields and tolerate missing or extra ones, so a newer
//! server never breaks an older `lb`.

use serde_json::Value;

/// Left-aligned columns separated by two spaces, with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(c);
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(c.chars().count());
            l.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

fn backends(pool: &Value) -> &[Value] {
    pool.get("backends")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn count_state(pool: &Value, state: &str) -> usize {
    backends(pool)
        .iter()
        .filter(|b| b.get("state").and_then(Value::as_str) == Some(state))
        .count()
}

/// `lb pools`: one row per pool with its backend counts by state.
pub fn pools(answer: &Value) -> String {
    let pools = answer
        .get("pools")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if pools.is_empty() {
        return "no pools\n".to_owned();
    }
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| {
            vec![
                text(p, "name"),
                text(p, "strategy"),
                text(p, "source"),
                backends(p).len().to_string(),
                count_state(p, "up").to_string(),
                count_state(p, "down").to_string(),
                count_state(p, "draining").to_string(),
                count_state(p, "ejected").to_string(),
            ]
        })
        .collect();
    table(
        &[
            "POOL", "STRATEGY", "SOURCE", "BACKENDS", "UP", "DOWN", "DRAINING", "EJECTED",
        ],
        &rows,
    )
}

/// `lb pool NAME` (and the answer of a backend add): a summary line, then the backends.
pub fn pool(p: &Value) -> String {
    let mut out = format!(
        "pool {}  strategy {}  source {}  last sync {}\n",
        text(p, "name"),
        text(p, "strategy"),
        text(p, "source"),
        text(p, "last_sync"),
    );
    let rows: Vec<Vec<String>> = backends(p)
        .iter()
        .map(|b| {
            vec![
                text(b, "addr"),
                text(b, "id"),
                text(b, "weight"),
                text(b, "state"),
                text(b, "active"),
                if b.get("backup").and_then(Value::as_bool) == Some(true) {
                    "yes".to_owned()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no backends\n");
    } else {
        out.push_str(&table(
            &["BACKEND", "ID", "WEIGHT", "STATE", "ACTIVE", "BACKUP"],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "LONG"],
            &[
                vec!["xxxx".into(), "1".into()],
                vec!["y".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A     LONG\nxxxx  1\ny     22\n");
    }

    #[test]
    fn pools_counts_states_and_tolerates_missing_fields() {
        let v = serde_json::json!({"pools":[
            {"name":"web","strategy":"maglev","source":"static","backends":[
                {"addr":"127.0.0.1:1","state":"up"},{"addr":"127.0.0.1:2","state":"down"}]},
            {"name":"bare"}
        ]});
        let t = pools(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[1].starts_with("web"), "{t}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(cells, ["web", "maglev", "static", "2", "1", "1", "0", "0"]);
        assert!(lines[2].starts_with("bare  -"), "{t}");
        assert_eq!(pools(&serde_json::json!({"pools":[]})), "no pools\n");
    }
}
