//! Helpers shared by the ClientHello tests: the captured vectors, a re-framer and a small
//! ClientHello builder. Written independently of the parser under test.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(unreachable_pub)] // helpers `pub` for the test files that include this module

use std::path::PathBuf;

/// The captured ClientHellos (`tests/data/client-hello`, listed in its `manifest.json`).
pub const VECTOR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/client-hello");

/// One captured ClientHello and what `manifest.json` says about it.
#[derive(Debug, Clone)]
pub struct Vector {
    pub name: String,
    pub bytes: Vec<u8>,
    pub declared_len: usize,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
}

/// Every vector listed in the manifest, sorted by file name.
pub fn vectors() -> Vec<Vector> {
    let dir = PathBuf::from(VECTOR_DIR);
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest JSON");
    let entries = manifest.as_object().expect("manifest is an object");
    let mut out: Vec<Vector> = entries
        .iter()
        .map(|(name, entry)| Vector {
            name: name.clone(),
            bytes: std::fs::read(dir.join(name)).expect("vector file"),
            declared_len: entry["bytes"].as_u64().expect("bytes") as usize,
            sni: entry["sni"].as_str().map(str::to_owned),
            alpn: entry["alpn"]
                .as_array()
                .expect("alpn array")
                .iter()
                .map(|p| p.as_str().expect("alpn string").to_owned())
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 9, "expected the nine captured hellos");
    out
}

/// The vector named `name`.
pub fn vector(name: &str) -> Vector {
    vectors()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

/// The handshake message carried by valid records: the concatenated payloads.
pub fn handshake_of(records: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 5 <= records.len() {
        let len = u16::from_be_bytes([records[pos + 3], records[pos + 4]]) as usize;
        out.extend_from_slice(&records[pos + 5..pos + 5 + len]);
        pos += 5 + len;
    }
    assert_eq!(pos, records.len(), "records end on a record boundary");
    out
}

/// Frame `handshake` as handshake records (version 0x0301), cut at the sorted, distinct
/// offsets `cuts` (each strictly inside the message).
pub fn reframe(handshake: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&handshake.len())) {
        assert!(end > start && end <= handshake.len(), "cuts must increase");
        let payload = &handshake[start..end];
        out.extend_from_slice(&[0x16, 0x03, 0x01]);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
        start = end;
    }
    out
}

/// A ClientHello handshake message with the given extensions (`None`: no extensions block
/// at all, as an old TLS 1.2 client may send).
pub fn build_handshake(extensions: Option<&[(u16, Vec<u8>)]>) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(32);
    body.extend_from_slice(&[0x11; 32]); // session id
    body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0x13, 0x02]); // two cipher suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    if let Some(extensions) = extensions {
        let mut block = Vec::new();
        for (kind, data) in extensions {
            block.extend_from_slice(&kind.to_be_bytes());
            block.extend_from_slice(&(data.len() as u16).to_be_bytes());
            block.extend_from_slice(data);
        }
        body.extend_from_slice(&(block.len() as u16).to_be_bytes());
        body.extend_from_slice(&block);
    }
    let mut message = vec![0x01];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    message
}

/// `server_name` extension data holding the given (name_type, name) entries.
pub fn server_name_ext(entries: &[(u8, &[u8])]) -> Vec<u8> {
    let mut list = Vec::new();
    for (kind, name) in entries {
        list.push(*kind);
        list.extend_from_slice(&(name.len() as u16).to_be_bytes());
        list.extend_from_slice(name);
    }
    let mut data = (list.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&list);
    data
}

/// ALPN extension data offering `protocols`.
pub fn alpn_ext(protocols: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for p in protocols {
        list.push(p.len() as u8);
        list.extend_from_slice(p);
    }
    let mut data = (list.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&list);
    data
}

/// Offsets in a single-record hello: where each extension's 4-byte header starts, by type.
/// Walks the layout independently of the parser.
pub fn extension_offsets(record: &[u8]) -> Vec<(u16, usize)> {
    let mut p = 5 + 4 + 2 + 32;
    p += 1 + record[p] as usize;
    p += 2 + u16::from_be_bytes([record[p], record[p + 1]]) as usize;
    p += 1 + record[p] as usize;
    let end = p + 2 + u16::from_be_bytes([record[p], record[p + 1]]) as usize;
    p += 2;
    let mut out = Vec::new();
    while p < end {
        let kind = u16::from_be_bytes([record[p], record[p + 1]]);
        out.push((kind, p));
        p += 4 + u16::from_be_bytes([record[p + 2], record[p + 3]]) as usize;
    }
    assert_eq!(p, end);
    out
}

/// Offset of the first extension of type `kind` in a single-record hello.
pub fn extension_at(record: &[u8], kind: u16) -> usize {
    extension_offsets(record)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, at)| at)
        .unwrap_or_else(|| panic!("no extension {kind}"))
}

/// Read / write a big-endian u16 at `at`.
pub fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn set16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
