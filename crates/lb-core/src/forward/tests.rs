use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::backend::{Backend, BackendStatus};
use crate::hash;
use crate::outlier::OutlierSettings;
use crate::pool::{Pool, PoolSettings};
use crate::select::StrategyKind;

fn pool(n: u16, strategy: StrategyKind) -> Pool {
    let backends = (0..n)
        .map(|i| Backend::new(SocketAddr::from(([127, 0, 0, 1], 20_000 + i))))
        .collect();
    Pool::new("t", PoolSettings::with_strategy(strategy), backends).expect("distinct backends")
}

fn input(key: &[u8]) -> PickInput {
    PickInput {
        key_hash: hash::hash_key(key),
        random: 7,
    }
}

const CONNECT: Verdict = Verdict::Backend {
    failure: Failure::Connect,
    replayable: true,
};

/// Every address the attempts hand out while each attempt fails to connect.
fn walk(pool: &Pool, snap: &Arc<Snapshot>, key: &[u8], policy: &RetryPolicy) -> Vec<SocketAddr> {
    let mut attempts = Attempts::new(pool, snap, input(key), policy);
    let mut seen = Vec::new();
    let mut next = attempts.first();
    while let Some(l) = next {
        seen.push(l.addr());
        next = attempts.report(&l, CONNECT);
    }
    assert_eq!(attempts.tries() as usize, seen.len());
    seen
}

fn order(snap: &Arc<Snapshot>, key: &[u8]) -> Vec<SocketAddr> {
    // Leases are dropped as they come: only the order matters here.
    snap.select_with(input(key)).map(|l| l.addr()).collect()
}

#[test]
fn follows_the_preference_order_up_to_retries() {
    let p = pool(5, StrategyKind::Rendezvous);
    let snap = p.snapshot();
    let policy = RetryPolicy {
        retries: 2,
        ..RetryPolicy::default()
    };
    let tried = walk(&p, &snap, b"k", &policy);
    assert_eq!(tried, order(&snap, b"k")[..3]);
    assert_eq!(p.stats().retries.load(Ordering::Relaxed), 2);
    assert_eq!(p.stats().retries_in_flight.load(Ordering::Relaxed), 0);
}

#[test]
fn skips_backends_that_are_down() {
    let p = pool(4, StrategyKind::Maglev);
    let snap = p.snapshot();
    let preferred = order(&snap, b"key")[0];
    snap.member(preferred)
        .expect("member")
        .state()
        .set_healthy(false);
    let policy = RetryPolicy {
        retries: 10,
        ..RetryPolicy::default()
    };
    let tried = walk(&p, &snap, b"key", &policy);
    assert_eq!(tried.len(), 3);
    assert!(!tried.contains(&preferred));
}

#[test]
fn sticky_backend_first_then_the_order_without_it() {
    let p = pool(4, StrategyKind::Consistent);
    let snap = p.snapshot();
    let natural = order(&snap, b"user");
    let sticky = natural[2];
    let policy = RetryPolicy {
        retries: 10,
        ..RetryPolicy::default()
    };
    let id = hash::sticky_id(snap.member(sticky).expect("member").backend().id());
    let mut attempts = Attempts::new(&p, &snap, input(b"user"), &policy).sticky_first(Some(id));
    let mut seen = Vec::new();
    let mut next = attempts.first();
    while let Some(l) = next {
        seen.push(l.addr());
        next = attempts.report(&l, CONNECT);
    }
    let mut expected = vec![sticky];
    expected.extend(natural.iter().filter(|a| **a != sticky));
    assert_eq!(seen, expected);
}

#[test]
fn an_unusable_sticky_backend_is_passed_over() {
    let p = pool(3, StrategyKind::RoundRobin);
    let snap = p.snapshot();
    let m = &snap.members()[1];
    m.state().set_draining(true);
    let id = hash::sticky_id(m.backend().id());
    let policy = RetryPolicy::default();
    let mut attempts = Attempts::new(&p, &snap, input(b""), &policy).sticky_first(Some(id));
    let first = attempts.first().expect("a usable backend");
    assert_ne!(first.addr(), m.backend().addr());
}

#[test]
fn only_listed_replayable_failures_are_retried() {
    let p = pool(3, StrategyKind::RoundRobin);
    let snap = p.snapshot();
    let policy = RetryPolicy {
        retry_on: RetryOn {
            connect: true,
            reset: false,
            status_502: true,
            status_503: false,
        },
        ..RetryPolicy::default()
    };
    let cases = [
        (Failure::Connect, true, true),
        (Failure::Connect, false, false),
        (Failure::Reset, true, false),
        (Failure::Timeout, true, false),
        (Failure::Status(502), true, true),
        (Failure::Status(503), true, false),
        (Failure::Status(500), true, false),
    ];
    for (failure, replayable, retried) in cases {
        let mut attempts = Attempts::new(&p, &snap, input(b""), &policy);
        let l = attempts.first().expect("backend");
        let next = attempts.report(
            &l,
            Verdict::Backend {
                failure,
                replayable,
            },
        );
        assert_eq!(
            next.is_some(),
            retried,
            "{failure:?} replayable={replayable}"
        );
    }
}

#[test]
fn client_faults_never_count_against_the_backend() {
    let backends = vec![
        Backend::new("127.0.0.1:20001".parse().expect("addr")),
        Backend::new("127.0.0.1:20002".parse().expect("addr")),
    ];
    let settings = PoolSettings {
        outlier: OutlierSettings {
            consecutive_errors: 2,
            base_ejection: Duration::from_secs(30),
            max_ejected: 0.5,
        },
        ..PoolSettings::default()
    };
    let p = Pool::new("t", settings, backends).expect("pool");
    let snap = p.snapshot();
    let policy = RetryPolicy::default();
    for _ in 0..50 {
        let mut attempts = Attempts::new(&p, &snap, input(b""), &policy);
        let l = attempts.first().expect("backend");
        assert!(attempts.report(&l, Verdict::Client).is_none());
    }
    let now = crate::clock::now_nanos();
    for m in snap.members() {
        assert_eq!(m.status(now), BackendStatus::Up);
        assert_eq!(m.state().failures(), 0);
    }
    // The same number of backend failures does eject one.
    for _ in 0..4 {
        let mut attempts = Attempts::new(&p, &snap, input(b""), &policy);
        let l = attempts.first().expect("backend");
        let not_replayable = Verdict::Backend {
            failure: Failure::Reset,
            replayable: false,
        };
        assert!(attempts.report(&l, not_replayable).is_none());
    }
    let ejected = snap
        .members()
        .iter()
        .filter(|m| m.status(crate::clock::now_nanos()) == BackendStatus::Ejected)
        .count();
    assert_eq!(ejected, 1);
}

#[test]
fn the_budget_bounds_retries_in_flight() {
    let p = pool(4, StrategyKind::RoundRobin);
    let snap = p.snapshot();
    let policy = RetryPolicy {
        retries: 3,
        budget: RetryBudget {
            ratio: 0.0,
            min_concurrent: 1,
        },
        ..RetryPolicy::default()
    };
    let mut a = Attempts::new(&p, &snap, input(b""), &policy);
    let la = a.first().expect("backend");
    let la2 = a
        .report(&la, CONNECT)
        .expect("the one retry the budget allows");
    // A second request may not retry while the first one is retrying.
    let mut b = Attempts::new(&p, &snap, input(b""), &policy);
    let lb = b.first().expect("backend");
    assert!(b.report(&lb, CONNECT).is_none(), "budget exhausted");
    assert_eq!(b.tries(), 1);
    // The retrying request keeps its slot for its further retries, then gives it back.
    let la3 = a.report(&la2, CONNECT).expect("same request, same slot");
    assert!(a.report(&la3, Verdict::Served).is_none());
    assert_eq!(p.stats().retries_in_flight.load(Ordering::Relaxed), 0);
    let mut c = Attempts::new(&p, &snap, input(b""), &policy);
    let lc = c.first().expect("backend");
    assert!(c.report(&lc, CONNECT).is_some(), "room again");
    drop(c);
    assert_eq!(p.stats().retries_in_flight.load(Ordering::Relaxed), 0);
    assert_eq!(p.stats().retries.load(Ordering::Relaxed), 3);
}

#[test]
fn the_budget_grows_with_active_requests() {
    let b = RetryBudget {
        ratio: 0.2,
        min_concurrent: 3,
    };
    assert_eq!(b.allowed(0), 3);
    assert_eq!(b.allowed(10), 3);
    assert_eq!(b.allowed(100), 20);
}

#[test]
fn an_empty_pool_has_no_first() {
    let p = pool(0, StrategyKind::RoundRobin);
    let snap = p.snapshot();
    let policy = RetryPolicy::default();
    let mut a = Attempts::new(&p, &snap, input(b""), &policy);
    assert!(a.first().is_none());
    assert_eq!(a.tries(), 0);
}

proptest! {
    /// Whatever is down and however many retries: the attempts are the preference order
    /// without the unusable backends, each once, at most `retries + 1` of them, and the
    /// retry counter and the in-flight count agree.
    #[test]
    fn attempts_are_the_usable_prefix_of_the_order(
        n in 1u16..12,
        down in proptest::collection::vec(any::<bool>(), 12),
        retries in 0u32..15,
        key in any::<u64>(),
        strategy in prop_oneof![
            Just(StrategyKind::Rendezvous),
            Just(StrategyKind::Maglev),
            Just(StrategyKind::Consistent),
            Just(StrategyKind::Modulo),
        ],
    ) {
        let p = pool(n, strategy);
        let snap = p.snapshot();
        for (m, d) in snap.members().iter().zip(&down) {
            m.state().set_healthy(!d);
        }
        let key = key.to_le_bytes();
        let policy = RetryPolicy { retries, budget: RetryBudget { ratio: 0.0, min_concurrent: 1 }, ..RetryPolicy::default() };
        let tried = walk(&p, &snap, &key, &policy);
        let usable = order(&snap, &key);
        let expect = usable.len().min(retries as usize + 1);
        prop_assert_eq!(&tried[..], &usable[..expect]);
        prop_assert_eq!(p.stats().retries.load(Ordering::Relaxed), expect.saturating_sub(1) as u64);
        prop_assert_eq!(p.stats().retries_in_flight.load(Ordering::Relaxed), 0);
    }
}
