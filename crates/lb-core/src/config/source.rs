//! From text to the file model, keeping enough of the document to point at positions.
//!
//! The text is parsed once into a span-preserving `toml_edit` document. Serde then reads
//! the file model from it; its errors carry a byte span, which [`path_at`] maps back to
//! the key path (the deepest key or value whose span contains it) and [`position`] to a
//! line and column. Semantic issues found later carry a key path, and [`locate`] finds
//! the position of that key's value.

use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike, Value};

use super::error::{KeyPath, Position, Segment};

/// A parsed document.
pub(crate) type Doc = ImDocument<String>;

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn position(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let mut start = offset;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    Position { line, column }
}

/// The deepest key path whose key or value span contains `offset`.
pub(crate) fn path_at(doc: &Doc, offset: usize) -> KeyPath {
    let mut path = KeyPath::root();
    let mut best = KeyPath::root();
    walk_table(doc.as_table(), offset, &mut path, &mut best);
    best
}

fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
    // An empty span (end of input) still points at its start.
    span.is_some_and(|s| s.contains(&offset) || (s.is_empty() && s.start == offset))
}

fn deeper(path: &KeyPath, best: &mut KeyPath) {
    if path.segments().len() > best.segments().len() {
        *best = path.clone();
    }
}

fn walk_table(t: &dyn TableLike, offset: usize, path: &mut KeyPath, best: &mut KeyPath) {
    for (k, _) in t.iter() {
        let Some((key, item)) = t.get_key_value(k) else {
            continue;
        };
        path.push(Segment::Key(k.to_owned()));
        if contains(key.span(), offset) || contains(item.span(), offset) {
            deeper(path, best);
        }
        walk_item(item, offset, path, best);
        path.pop();
    }
}

fn walk_item(item: &Item, offset: usize, path: &mut KeyPath, best: &mut KeyPath) {
    match item {
        Item::Table(t) => {
            if contains(t.span(), offset) {
                deeper(path, best);
            }
            walk_table(t, offset, path, best);
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                path.push(Segment::Index(i));
                if contains(t.span(), offset) {
                    deeper(path, best);
                }
                walk_table(t, offset, path, best);
                path.pop();
            }
        }
        Item::Value(v) => walk_value(v, offset, path, best),
        Item::None => {}
    }
}

fn walk_value(v: &Value, offset: usize, path: &mut KeyPath, best: &mut KeyPath) {
    match v {
        Value::InlineTable(t) => walk_table(t, offset, path, best),
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(Segment::Index(i));
                if contains(v.span(), offset) {
                    deeper(path, best);
                }
                walk_value(v, offset, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The byte offset of the value at `path` (or of its key, or of the nearest ancestor
/// that has a span).
pub(crate) fn locate(doc: &Doc, path: &KeyPath) -> Option<usize> {
    locate_in_table(doc.as_table(), path.segments(), None)
}

fn locate_in_table(t: &dyn TableLike, rest: &[Segment], found: Option<usize>) -> Option<usize> {
    let Some((Segment::Key(k), rest)) = rest.split_first() else {
        return found;
    };
    let Some((key, item)) = t.get_key_value(k) else {
        return found;
    };
    let found = item
        .span()
        .or_else(|| key.span())
        .map(|s| s.start)
        .or(found);
    locate_in_item(item, rest, found)
}

fn locate_in_item(item: &Item, rest: &[Segment], found: Option<usize>) -> Option<usize> {
    match item {
        Item::Table(t) => locate_in_table(t, rest, found),
        Item::Value(v) => locate_in_value(v, rest, found),
        Item::ArrayOfTables(a) => match rest.split_first() {
            Some((Segment::Index(i), tail)) => match a.get(*i) {
                Some(t) => locate_in_table(t, tail, t.span().map(|s| s.start).or(found)),
                None => found,
            },
            _ => found,
        },
        Item::None => found,
    }
}

fn locate_in_value(v: &Value, rest: &[Segment], found: Option<usize>) -> Option<usize> {
    let Some((first, tail)) = rest.split_first() else {
        return found;
    };
    match (v, first) {
        (Value::InlineTable(t), Segment::Key(_)) => locate_in_table(t, rest, found),
        (Value::Array(a), Segment::Index(i)) => match a.get(*i) {
            Some(v) => locate_in_value(v, tail, v.span().map(|s| s.start).or(found)),
            None => found,
        },
        _ => found,
    }
}
