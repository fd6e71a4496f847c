//! One table of directory and retry scenarios, run against both binaries: each must end
//! with the same outcome class (status and `x-lb-error`), the same `lb_retries_total`
//! change and the same passive-health effect (what the next request does, or the pool's
//! state in the admin API).

use std::time::Duration;

use lb_scenarios::*;

/// What one scenario came to.
#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    status: u16,
    error: String,
    /// Who answered: a backend's tag ("pod" for either backend of pool `pod`), or "".
    served: String,
    /// Change of the scenario's `lb_retries_total` series.
    retries: f64,
    /// The passive-health effect, in words the table states.
    effect: String,
}

fn outcome(seen: &Seen, retries: f64, effect: &str) -> Outcome {
    let served = if seen.status == 200 {
        let tag = seen.body.trim();
        if tag.starts_with("pod-") {
            "pod".to_owned()
        } else {
            tag.to_owned()
        }
    } else {
        String::new()
    };
    Outcome {
        status: seen.status,
        error: seen.error.clone(),
        served,
        retries,
        effect: effect.to_owned(),
    }
}

const DIR: &str = "lb_retries_total{pool=\"dir\"}";

struct World {
    good: Backend,
    pod: [Backend; 2],
    dir: Directory,
    refuse: std::net::SocketAddr,
    dead: Blackhole,
    budget_refuse: std::net::SocketAddr,
}

impl World {
    async fn new() -> World {
        let good = Backend::start("good").await;
        let pod = [Backend::start("pod-a").await, Backend::start("pod-b").await];
        let dir = Directory::start().await;
        let refuse = refusing_before(good.addr);
        let mut dead = Blackhole::open().await;
        while first_for_local_client(&[dead.addr, good.addr]) != dead.addr {
            dead = Blackhole::open().await;
        }
        let budget_refuse = refusing_before(good.addr);
        let json = |eps: &[std::net::SocketAddr]| {
            let list: Vec<String> = eps.iter().map(|a| format!("\"{a}\"")).collect();
            format!("{{\"endpoints\":[{}]}}", list.join(","))
        };
        dir.set_json("refuse.dir.test", &json(&[refuse, good.addr]));
        dir.set_json("dead.dir.test", &json(&[dead.addr, good.addr]));
        dir.set_json("empty.dir.test", "{\"endpoints\":[]}");
        dir.set_json("pod.dir.test", "{\"pool\":\"pod\"}");
        dir.set_json("nope.dir.test", "{\"pool\":\"nope\"}");
        dir.set_json("stale.short.test", &json(&[good.addr]));
        World {
            good,
            pod,
            dir,
            refuse,
            dead,
            budget_refuse,
        }
    }

    fn config(&self) -> String {
        format!(
            "[pool.pod]\nbackends = [\"{}\", \"{}\"]\n\
             [pool.budget]\nstrategy = \"rendezvous\"\nbackends = [\"{}\", \"{}\"]\n\
             retry_budget = {{ ratio = 0.0, min_concurrent = 0 }}\n\
             {}{}\
             [resolver.gone]\nkind = \"http\"\nurl = \"http://{}/dir/{{name}}\"\n\
             [[route]]\nhost = \"budget.test\"\npool = \"budget\"\n\
             [[route]]\nhost = \"*.dir.test\"\nresolver = \"dir\"\n\
             [[route]]\nhost = \"*.short.test\"\nresolver = \"short\"\n\
             [[route]]\nhost = \"*.gone.test\"\nresolver = \"gone\"\n",
            self.pod[0].addr,
            self.pod[1].addr,
            self.budget_refuse,
            self.good.addr,
            self.dir.resolver(
                "dir",
                "connect_timeout = \"300ms\"\nnegative_ttl = \"30s\"\nttl = \"30s\""
            ),
            self.dir.resolver("short", "ttl = \"200ms\""),
            refusing(),
        )
    }
}

/// Runs every scenario against `bin`, in order, and says what each came to.
async fn run(bin: Bin, w: &World) -> Vec<(&'static str, Outcome)> {
    let r = bin.start(&w.config()).await;
    let mut out = Vec::new();

    // An endpoint that refuses, preferred for this client: the next one serves (one
    // retry); the refusing endpoint is ejected, so the next request goes straight on.
    let before = r.metric(DIR).await;
    let first = r.get("refuse.dir.test").await;
    let mid = r.metric(DIR).await;
    let second = r.get("refuse.dir.test").await;
    let effect = if second.status == 200 && r.metric(DIR).await == mid {
        "next request not retried"
    } else {
        "next request retried"
    };
    out.push(("refusing endpoint", outcome(&first, mid - before, effect)));

    // An endpoint that never accepts (connect timeout): the same.
    let before = r.metric(DIR).await;
    let first = r.get("dead.dir.test").await;
    let mid = r.metric(DIR).await;
    let second = r.get("dead.dir.test").await;
    let effect = if second.status == 200 && r.metric(DIR).await == mid {
        "next request not retried"
    } else {
        "next request retried"
    };
    out.push(("dead endpoint", outcome(&first, mid - before, effect)));

    // An empty endpoint list is a bad answer.
    let before = r.metric(DIR).await;
    let seen = r.get("empty.dir.test").await;
    out.push((
        "empty answer",
        outcome(&seen, r.metric(DIR).await - before, "-"),
    ));

    // A pool-name answer is served by the pool.
    let before = r.metric("lb_retries_total{pool=\"pod\"}").await;
    let seen = r.get("pod.dir.test").await;
    let after = r.metric("lb_retries_total{pool=\"pod\"}").await;
    let states = r.states("pod").await;
    let effect = if states.iter().all(|(_, s)| s == "up") {
        "pool pod all up"
    } else {
        "pool pod changed"
    };
    out.push(("pool-name answer", outcome(&seen, after - before, effect)));

    // A pool the config does not have: a bad answer, cached like not-found.
    let asked = w.dir.asked();
    let seen = r.get("nope.dir.test").await;
    let again = r.get("nope.dir.test").await;
    let effect = if again == seen && w.dir.asked() == asked + 1 {
        "cached"
    } else {
        "asked again"
    };
    out.push(("unknown pool name", outcome(&seen, 0.0, effect)));

    // The retry budget is exhausted (min_concurrent 0, ratio 0): no retry at all; one
    // failure does not eject.
    let series = "lb_retries_total{pool=\"budget\"}";
    let before = r.metric(series).await;
    let seen = r.get("budget.test").await;
    let after = r.metric(series).await;
    let states = r.states("budget").await;
    let effect = if states.iter().all(|(_, s)| s == "up") {
        "pool budget all up"
    } else {
        "pool budget changed"
    };
    out.push(("budget exhausted", outcome(&seen, after - before, effect)));

    // The directory fails after a good answer: the stale answer serves.
    let first = r.get("stale.short.test").await;
    assert_eq!(first.status, 200, "{bin:?}: {first:?}");
    w.dir.set_down(true);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let seen = r.get("stale.short.test").await;
    w.dir.set_down(false);
    out.push(("directory down, stale answer", outcome(&seen, 0.0, "-")));

    // The directory is unreachable and nothing was cached.
    let seen = r.get("x.gone.test").await;
    out.push(("directory down, nothing cached", outcome(&seen, 0.0, "-")));
    out
}

fn expected() -> Vec<(&'static str, Outcome)> {
    let o = |status: u16, error: &str, served: &str, retries: f64, effect: &str| Outcome {
        status,
        error: error.to_owned(),
        served: served.to_owned(),
        retries,
        effect: effect.to_owned(),
    };
    vec![
        (
            "refusing endpoint",
            o(200, "", "good", 1.0, "next request not retried"),
        ),
        (
            "dead endpoint",
            o(200, "", "good", 1.0, "next request not retried"),
        ),
        (
            "empty answer",
            o(502, "directory-unavailable", "", 0.0, "-"),
        ),
        (
            "pool-name answer",
            o(200, "", "pod", 0.0, "pool pod all up"),
        ),
        (
            "unknown pool name",
            o(502, "directory-unavailable", "", 0.0, "cached"),
        ),
        (
            "budget exhausted",
            o(502, "upstream-connect", "", 0.0, "pool budget all up"),
        ),
        ("directory down, stale answer", o(200, "", "good", 0.0, "-")),
        (
            "directory down, nothing cached",
            o(502, "directory-unavailable", "", 0.0, "-"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_scenarios_end_the_same_way_in_both_binaries() {
    let w = World::new().await;
    let proxy = run(Bin::Proxy, &w).await;
    let sni = run(Bin::Sni, &w).await;
    let want = expected();
    for ((name, p), (_, s)) in proxy.iter().zip(&sni) {
        assert_eq!(p, s, "{name}: lb-proxy and lb-sni differ");
    }
    for ((name, got), (_, want)) in proxy.iter().zip(&want) {
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(proxy.len(), want.len());
    // Both asked about the refusing endpoint and went on to the good one.
    assert!(w.good.served() >= 8, "good served {}", w.good.served());
    let _ = (&w.refuse, &w.dead);
}
