//! docs/config.md is the one config reference: every key the config model accepts is
//! documented there, and every key documented there is accepted.
//!
//! The accepted keys come from the model itself ([`lb_core::config::known_keys`], read off
//! the parser's serde structs). The documented keys come from docs/config.md, read as
//! follows (the parse is deliberately simple; keep the document in this shape):
//!
//! - A `### ` heading whose first code span is a table (`` `[admin]` ``,
//!   `` `[[listener]]` ``, `` `[pool.NAME]` ``) starts that table's section; `### Top level`
//!   is the top level; any other heading (`### Names`) ends the previous section.
//! - In a section, each row of a markdown table (a line starting with `|`, after the header
//!   row and the `|---|` row) documents the keys written as code spans in its first cell
//!   (`` `pool` / `resolver` `` documents two).
//! - A key whose value is an inline table or a list of tables (`tls = { cert, key }`,
//!   `backends = [{ addr, weight }]`) is one row; its own keys count as documented when
//!   they appear as words inside code spans of that row's other cells.
//! - A key that is a table of its own (`admin`, `pool`, `pool.NAME.health`) is documented
//!   by its section.

use std::collections::{BTreeMap, BTreeSet};

use lb_core::config::known_keys;

const DOC: &str = include_str!("../../../docs/config.md");

/// One documented key: its row's code-span words (for the keys of an inline table).
#[derive(Debug, Default)]
struct Section {
    /// key → the words in code spans of the row's other cells.
    rows: BTreeMap<String, BTreeSet<String>>,
}

/// The code spans of `text`, in order.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The identifier-like words of `text` (letters, digits, `_`).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// Splits a table row into cells at `|` outside code spans.
fn cells(row: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cell, mut in_code) = (String::new(), false);
    for c in row.trim().trim_start_matches('|').chars() {
        match c {
            '`' => {
                in_code = !in_code;
                cell.push(c);
            }
            '|' if !in_code => out.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    if !cell.trim().is_empty() {
        out.push(cell);
    }
    out
}

/// The table a `### ` heading starts: `Some("")` for the top level, `Some("pool.NAME")` for
/// `` `[pool.NAME]` ``, `None` for a heading that is no table.
fn heading_table(heading: &str) -> Option<String> {
    if heading.trim() == "Top level" {
        return Some(String::new());
    }
    let first = code_spans(heading).into_iter().next()?;
    let inner = first.trim_start_matches('[').trim_end_matches(']');
    (inner.len() + 2 <= first.len()).then(|| inner.to_owned())
}

/// docs/config.md's sections: table → its documented rows.
fn documented() -> BTreeMap<String, Section> {
    let mut out: BTreeMap<String, Section> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in DOC.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            current = heading_table(h);
            if let Some(t) = &current {
                out.entry(t.clone()).or_default();
            }
            continue;
        }
        if line.starts_with("## ") {
            current = None;
        }
        let (Some(table), true) = (&current, line.starts_with('|')) else {
            continue;
        };
        let cells = cells(line);
        let Some(first) = cells.first() else { continue };
        if first.trim() == "key" || first.trim_start().starts_with("---") {
            continue;
        }
        let rest: BTreeSet<String> = cells[1..]
            .iter()
            .flat_map(|c| code_spans(c).into_iter().flat_map(words).map(str::to_owned))
            .collect();
        let section = out.get_mut(table).expect("section entered above");
        for key in code_spans(first) {
            section.rows.insert(key.to_owned(), rest.clone());
        }
    }
    out
}

fn show(table: &str) -> String {
    if table.is_empty() {
        "the top level (`### Top level`)".to_owned()
    } else {
        format!("`[{table}]`")
    }
}

/// Where the keys of the model table `path` must be documented: its own section, or the
/// row of the longest section prefix whose next segment is the inline table's key.
fn check_model_table(path: &str, keys: &[&str], doc: &BTreeMap<String, Section>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(section) = doc.get(path) {
        for key in keys {
            let sub = if path.is_empty() {
                (*key).to_owned()
            } else {
                format!("{path}.{key}")
            };
            let is_section = doc
                .keys()
                .any(|t| *t == sub || t.starts_with(&format!("{sub}.")));
            if !section.rows.contains_key(*key) && !is_section {
                problems.push(format!(
                    "key `{key}` of {} is accepted by the config model but not documented: \
                     add a row for it to that table in docs/config.md",
                    show(path)
                ));
            }
        }
        return problems;
    }
    let segments: Vec<&str> = path.split('.').collect();
    let parent = (1..segments.len())
        .rev()
        .map(|n| (segments[..n].join("."), segments[n]))
        .find(|(p, _)| doc.contains_key(p));
    let Some((parent, row_key)) = parent else {
        return vec![format!(
            "table `{path}` is accepted by the config model but docs/config.md has no section \
             for it (a `### `[{path}]`` heading with a key table)"
        )];
    };
    let Some(row) = doc[&parent].rows.get(row_key) else {
        return vec![format!(
            "key `{row_key}` of {} is accepted by the config model but not documented: add \
             a row for it to that table in docs/config.md",
            show(&parent)
        )];
    };
    for key in keys {
        if !row.contains(*key) {
            problems.push(format!(
                "key `{key}` of the inline table `{path}` is accepted by the config model but \
                 not documented: name it (in a code span) in the `{row_key}` row of {} in \
                 docs/config.md",
                show(&parent)
            ));
        }
    }
    problems
}

#[test]
fn every_accepted_key_is_documented() {
    let doc = documented();
    let problems: Vec<String> = known_keys()
        .iter()
        .flat_map(|t| check_model_table(t.table, t.keys, &doc))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_documented_key_is_accepted() {
    let model: BTreeMap<&str, &[&str]> = known_keys().iter().map(|t| (t.table, t.keys)).collect();
    let mut problems = Vec::new();
    for (table, section) in documented() {
        let Some(keys) = model.get(table.as_str()) else {
            problems.push(format!(
                "docs/config.md has a section for {} but the config model has no such table \
                 (if it has, add its struct to `known_keys` in lb-core src/config/keys.rs)",
                show(&table)
            ));
            continue;
        };
        for key in section.rows.keys() {
            if !keys.contains(&key.as_str()) {
                problems.push(format!(
                    "docs/config.md documents key `{key}` in {} but the config model does not \
                     accept it there",
                    show(&table)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The parse itself finds the tables and rows it should (so a change to the document's
/// shape cannot make both checks above pass vacuously).
#[test]
fn the_parse_finds_every_section_and_row() {
    let doc = documented();
    for table in [
        "",
        "admin",
        "listener",
        "pool.NAME",
        "pool.NAME.health",
        "route",
        "resolver.NAME",
    ] {
        let section = doc
            .get(table)
            .unwrap_or_else(|| panic!("no section {}", show(table)));
        assert!(!section.rows.is_empty(), "no rows in {}", show(table));
    }
    assert!(doc["pool.NAME"].rows.contains_key("strategy"));
    assert!(doc["route"].rows.contains_key("pool") && doc["route"].rows.contains_key("resolver"));
    assert!(doc["pool.NAME"].rows["outlier"].contains("consecutive_errors"));
}
