//! Property tests for the backends-file parser: it never panics, reads back what was
//! written, and rejects every JSON document cut short (a half-written file).

use std::net::SocketAddr;

use lb_core::discovery::{parse_backends, FileFormat};
use proptest::prelude::*;

/// (addr, weight, backup) entries with unique addresses.
fn entries() -> impl Strategy<Value = Vec<(SocketAddr, u16, bool)>> {
    prop::collection::btree_map(
        (any::<[u8; 4]>(), 1u16..),
        (0u16..=256, any::<bool>()),
        0..20,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|((ip, port), (w, b))| (SocketAddr::from((ip, port)), w, b))
            .collect()
    })
}

fn json(list: &[(SocketAddr, u16, bool)], plain: bool) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(a, w, b)| {
            if plain && *w == 1 && !*b {
                format!("\"{a}\"")
            } else {
                format!("{{\"addr\":\"{a}\",\"weight\":{w},\"backup\":{b}}}")
            }
        })
        .collect();
    format!("{{\"backends\":[{}]}}", items.join(","))
}

fn toml(list: &[(SocketAddr, u16, bool)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(a, w, b)| format!("{{ addr = \"{a}\", weight = {w}, backup = {b} }}"))
        .collect();
    format!("backends = [\n{}\n]\n", items.join(",\n"))
}

fn got(text: &str, f: Option<FileFormat>) -> Vec<(SocketAddr, u16, bool)> {
    parse_backends(text, f)
        .expect("valid file")
        .iter()
        .map(|b| (b.addr(), b.weight(), b.is_backup()))
        .collect()
}

proptest! {
    #[test]
    fn never_panics(text in "\\PC{0,200}") {
        let _ = parse_backends(&text, None);
        let _ = parse_backends(&text, Some(FileFormat::Json));
        let _ = parse_backends(&text, Some(FileFormat::Toml));
    }

    #[test]
    fn json_and_toml_round_trip(list in entries(), plain in any::<bool>()) {
        prop_assert_eq!(got(&json(&list, plain), None), list.clone());
        prop_assert_eq!(got(&json(&list, plain), Some(FileFormat::Json)), list.clone());
        prop_assert_eq!(got(&toml(&list), None), list.clone());
        prop_assert_eq!(got(&toml(&list), Some(FileFormat::Toml)), list);
    }

    #[test]
    fn every_cut_json_file_is_rejected(list in entries(), plain in any::<bool>()) {
        let text = json(&list, plain);
        for cut in 0..text.len() {
            prop_assert!(parse_backends(&text[..cut], Some(FileFormat::Json)).is_err(), "{}", &text[..cut]);
            prop_assert!(parse_backends(&text[..cut], None).is_err(), "{}", &text[..cut]);
        }
    }
}
