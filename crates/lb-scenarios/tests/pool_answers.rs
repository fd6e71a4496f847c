//! A pool-name answer from every resolver kind (HTTP JSON, HTTP `text/plain` with
//! `bare = "pool"`, RESP against a real `redis-server`, static) is served by that pool
//! with its own strategy and health: a backend its health check took down gets nothing.
//! Both binaries.

use std::time::Duration;

use std::sync::atomic::Ordering;

use lb_scenarios::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_names_from_every_resolver_kind_follow_the_pools_health() {
    let a = Backend::start("pod-a").await;
    let b = Backend::start("pod-b").await;
    let dir = Directory::start().await;
    dir.set_json("json.test", "{\"pool\":\"pod\"}");
    dir.set("text.test", "text/plain", "pod\n");
    let redis = Redis::start().await;
    assert!(redis
        .command(&["SET", "tenant:resp.test", "pool:pod"])
        .await
        .contains("OK"));
    let config = format!(
        "[pool.pod]\nstrategy = \"round-robin\"\nbackends = [\"{}\", \"{}\"]\n\
         [pool.pod.health]\nkind = \"http\"\npath = \"/health\"\ninterval = \"100ms\"\n\
         timeout = \"500ms\"\nrise = 1\nfall = 1\n\
         {}{}\
         [resolver.resp]\nkind = \"resp\"\nurl = \"redis://{}\"\nprefix = \"tenant:\"\n\
         [resolver.fixed]\nkind = \"static\"\nmap = {{ \"static.test\" = \"pool:pod\" }}\n\
         [[route]]\nhost = \"json.test\"\nresolver = \"json\"\n\
         [[route]]\nhost = \"text.test\"\nresolver = \"text\"\n\
         [[route]]\nhost = \"resp.test\"\nresolver = \"resp\"\n\
         [[route]]\nhost = \"static.test\"\nresolver = \"fixed\"\n",
        a.addr,
        b.addr,
        dir.resolver("json", ""),
        dir.resolver("text", "bare = \"pool\""),
        redis.addr,
    );
    let hosts = ["json.test", "text.test", "resp.test", "static.test"];
    for bin in Bin::BOTH {
        b.health.store(200, Ordering::SeqCst);
        let r = bin.start(&config).await;
        // Both backends up: the pool's round-robin spreads each kind's requests.
        for host in hosts {
            let mut tags = std::collections::BTreeSet::new();
            for _ in 0..4 {
                let seen = r.get(host).await;
                assert_eq!(seen.status, 200, "{bin:?} {host}: {seen:?}");
                tags.insert(seen.body.trim().to_owned());
            }
            assert_eq!(
                tags.len(),
                2,
                "{bin:?} {host}: round-robin over the pool: {tags:?}"
            );
        }
        // The health check takes pod-b down: no request reaches it, whatever answered.
        b.health.store(503, Ordering::SeqCst);
        let down = eventually(Duration::from_secs(5), || async {
            r.states("pod")
                .await
                .iter()
                .any(|(addr, s)| *addr == b.addr.to_string() && s == "down")
        })
        .await;
        assert!(down, "{bin:?}: pod-b marked down by its health check");
        let before = b.served();
        for host in hosts {
            for _ in 0..5 {
                let seen = r.get(host).await;
                assert_eq!(seen.status, 200, "{bin:?} {host}: {seen:?}");
                assert_eq!(seen.body.trim(), "pod-a", "{bin:?} {host}");
            }
        }
        assert_eq!(b.served(), before, "{bin:?}: a down backend got traffic");
    }
}
