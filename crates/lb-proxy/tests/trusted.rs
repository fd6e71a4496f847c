//! `trusted_proxies`: X-Forwarded-For names the client only when it comes from a trusted
//! peer; `client-ip` keys follow the real client; a spoofed chain is dropped.

mod common;

use common::*;

/// A proxy whose only listener trusts `trusted`, in front of `backends` hashed on the
/// client IP.
async fn proxy_trusting(trusted: &str, backends: &[&Backend]) -> Proxy {
    let list = backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr))
        .collect::<Vec<_>>()
        .join(", ");
    proxy_text(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [{trusted}]\n\
         [pool.web]\nstrategy = \"maglev\"\nkey = \"client-ip\"\nbackends = [{list}]\n[[route]]\npool = \"web\"\n"
    ))
    .await
}

#[tokio::test]
async fn a_trusted_peer_names_the_client_for_keys_and_the_chain_is_kept() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
        Backend::start("d").await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    // The test client is on 127.0.0.1, inside the trusted block; 10.9.9.9 is a trusted hop.
    let p = proxy_trusting("\"127.0.0.0/8\", \"10.0.0.0/8\"", &refs).await;
    // Each client address is placed by its own IP, the same every time, whatever trusted
    // hops follow it in the chain, and different clients spread over the backends.
    let mut seen = std::collections::BTreeSet::new();
    for i in 1..=40 {
        let client = format!("203.0.113.{i}");
        let first = get_h(p.addr, "web.test", "/", &[("x-forwarded-for", &client)])
            .await
            .text();
        let chained = format!("{client}, 10.9.9.9");
        let again = get_h(p.addr, "web.test", "/", &[("x-forwarded-for", &chained)])
            .await
            .text();
        assert_eq!(first, again, "{client}");
        seen.insert(first);
    }
    assert!(seen.len() >= 3, "clients spread over backends: {seen:?}");
    // The chain goes upstream with the peer appended.
    let r = get_h(
        p.addr,
        "web.test",
        "/",
        &[("x-forwarded-for", "203.0.113.1, 10.9.9.9")],
    )
    .await;
    assert_eq!(r.status, 200);
    let served = backends
        .iter()
        .find(|b| b.count() > 0 && r.text() == b.name)
        .expect("a backend answered");
    let head = served.last_head();
    assert_eq!(
        head.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
        Some("203.0.113.1, 10.9.9.9, 127.0.0.1")
    );
}

#[tokio::test]
async fn a_spoofed_chain_from_an_untrusted_peer_is_ignored_and_dropped() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    // Only 10.0.0.0/8 is trusted: the test client (127.0.0.1) is not.
    let p = proxy_trusting("\"10.0.0.0/8\"", &refs).await;
    // Whatever it claims, every request is placed by 127.0.0.1: one backend for all.
    let mut answers = std::collections::BTreeSet::new();
    for i in 1..=20 {
        let spoof = format!("198.51.100.{i}");
        answers.insert(
            get_h(p.addr, "web.test", "/", &[("x-forwarded-for", &spoof)])
                .await
                .text(),
        );
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    let name = answers.into_iter().next().expect("one answer");
    let served = backends.iter().find(|b| b.name == name).expect("backend");
    assert_eq!(
        served
            .last_head()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok()),
        Some("127.0.0.1"),
        "the spoofed chain is not passed on"
    );
}
