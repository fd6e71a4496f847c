//! Load-balancing behaviour through the running proxy: round-robin spread, hashing
//! strategies keeping keys, admin removal moving only the removed backend's keys,
//! and the client-IP fallback for a missing key.

mod common;

use std::collections::HashMap;

use common::*;

fn enc(addr: std::net::SocketAddr) -> String {
    addr.to_string().replace(':', "%3A")
}

#[tokio::test]
async fn round_robin_spreads_evenly_over_three_backends() {
    let b = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let p = proxy(&format!(
        "[pool.rr]\nstrategy = \"round-robin\"\nbackends = [\"{}\", \"{}\", \"{}\"]\n\
         [[route]]\nhost = \"rr.test\"\npool = \"rr\"\n",
        b[0].addr, b[1].addr, b[2].addr
    ))
    .await;
    let m = spread(p.addr, "rr.test", "/", 30).await;
    assert_eq!(m.len(), 3, "{m:?}");
    for name in ["a", "b", "c"] {
        assert_eq!(m.get(name), Some(&10), "{m:?}");
    }
    for x in &b {
        assert_eq!(x.count(), 10);
    }
}

/// Maps each key to the backend that answered for it.
async fn mapping(p: &Proxy, keys: &[String], header: bool) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for k in keys {
        let r = if header {
            get_h(p.addr, "h.test", "/", &[("x-user", k)]).await
        } else {
            get(p.addr, "h.test", &format!("/documents/{k}")).await
        };
        assert_eq!(r.status, 200, "{}", r.text());
        m.insert(k.clone(), r.text());
    }
    m
}

async fn hashing_keeps_keys(strategy: &str, header: bool) {
    let b = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let key = if header {
        "header:x-user"
    } else {
        "path-regex:^/documents/([^/?]+)"
    };
    let p = proxy(&format!(
        "[pool.h]\nstrategy = \"{strategy}\"\nkey = \"{key}\"\nbackends = [\"{}\", \"{}\", \"{}\"]\n\
         [[route]]\nhost = \"h.test\"\npool = \"h\"\n",
        b[0].addr, b[1].addr, b[2].addr
    ))
    .await;
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let first = mapping(&p, &keys, header).await;
    let second = mapping(&p, &keys, header).await;
    assert_eq!(first, second, "{strategy}: a key changed backend");
    let used: std::collections::HashSet<&String> = first.values().collect();
    assert!(used.len() >= 2, "{strategy}: all keys on one backend");
    // Remove backend "a" through the admin API.
    let r = admin(
        p.admin,
        "DELETE",
        &format!("/api/v1/pools/h/backends/{}", enc(b[0].addr)),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let after = mapping(&p, &keys, header).await;
    let mut moved_others = 0;
    for k in &keys {
        let (before, now) = (&first[k], &after[k]);
        assert_ne!(now, "a", "{strategy}: key {k} still on the removed backend");
        if before != "a" && before != now {
            moved_others += 1;
        }
    }
    // Maglev refills the removed backend's entries in a shifted turn order, so a few keys
    // of other backends may move too (lb-core's maglev docs: 0.2–0.3 % of keys at 10
    // backends; here 1 of 40 keys in about 1 run of 25, with ports that change per run).
    let allowed = if strategy == "maglev" { 2 } else { 0 };
    assert!(
        moved_others <= allowed,
        "{strategy}: {moved_others} keys of other backends moved"
    );
}

#[tokio::test]
async fn consistent_keeps_path_keys_and_removal_moves_only_its_keys() {
    hashing_keeps_keys("consistent", false).await;
}

#[tokio::test]
async fn consistent_keeps_header_keys() {
    hashing_keeps_keys("consistent", true).await;
}

#[tokio::test]
async fn maglev_keeps_keys_and_removal_moves_only_its_keys() {
    hashing_keeps_keys("maglev", false).await;
}

#[tokio::test]
async fn rendezvous_keeps_keys_and_removal_moves_only_its_keys() {
    hashing_keeps_keys("rendezvous", true).await;
}

#[tokio::test]
async fn missing_key_falls_back_to_client_ip() {
    let b = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let p = proxy(&format!(
        "[pool.h]\nstrategy = \"consistent\"\nkey = \"header:x-user\"\nbackends = [\"{}\", \"{}\", \"{}\"]\n\
         [[route]]\nhost = \"h.test\"\npool = \"h\"\n",
        b[0].addr, b[1].addr, b[2].addr
    ))
    .await;
    // Without the header every request comes from 127.0.0.1: one backend only.
    let m = spread(p.addr, "h.test", "/", 20).await;
    assert_eq!(m.len(), 1, "{m:?}");
    // The admin route endpoint with the client IP as key names that same backend.
    let r = admin(
        p.admin,
        "GET",
        "/api/v1/route?pool=h&key=127.0.0.1",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let chosen = v["backend"].as_str().expect("backend").to_owned();
    let name = m.keys().next().expect("one");
    let expected = b.iter().find(|x| &x.name == name).expect("known").addr;
    assert_eq!(chosen, expected.to_string());
}
