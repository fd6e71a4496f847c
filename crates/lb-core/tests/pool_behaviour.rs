//! Pool behaviour through the public API: slow start, passive ejection, backups, limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use lb_core::{
    Backend, BackendStatus, Change, Outcome, OutlierSettings, Pool, PoolSettings, StrategyKind,
};

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20_000 + i))
}

fn shares(pool: &Pool, picks: usize) -> HashMap<SocketAddr, usize> {
    let snap = pool.snapshot();
    let mut m = HashMap::new();
    for i in 0..picks {
        let lease = snap
            .select(&i.to_le_bytes())
            .next()
            .expect("a usable backend");
        *m.entry(lease.addr()).or_default() += 1;
    }
    m
}

#[test]
fn slow_start_ramps_a_new_backend_then_gives_it_a_full_share() {
    let settings = {
        let mut s = PoolSettings::with_strategy(StrategyKind::RoundRobin);
        s.slow_start = Duration::from_millis(600);
        s
    };
    let pool = Pool::new(
        "p",
        settings,
        vec![Backend::new(addr(1)), Backend::new(addr(2))],
    )
    .expect("pool");
    pool.apply(Change::Add(Backend::new(addr(3)))).expect("add");
    let early = shares(&pool, 3000);
    let new_share = early.get(&addr(3)).copied().unwrap_or(0);
    assert!(
        new_share < 600,
        "a fresh backend gets far less than 1/3 at first: {early:?}"
    );
    std::thread::sleep(Duration::from_millis(700));
    let later = shares(&pool, 3000);
    let new_share = later.get(&addr(3)).copied().unwrap_or(0);
    assert!(
        (900..=1100).contains(&new_share),
        "after the window, a full share: {later:?}"
    );
}

#[test]
fn a_lone_backend_in_slow_start_still_takes_traffic() {
    let settings = {
        let mut s = PoolSettings::with_strategy(StrategyKind::Random);
        s.slow_start = Duration::from_secs(60);
        s
    };
    let pool = Pool::new("p", settings, vec![]).expect("pool");
    pool.apply(Change::Add(Backend::new(addr(1)))).expect("add");
    let snap = pool.snapshot();
    for i in 0..100u32 {
        assert_eq!(
            snap.select(&i.to_le_bytes()).next().map(|l| l.addr()),
            Some(addr(1))
        );
    }
}

#[test]
fn consecutive_failures_eject_and_the_share_limit_holds() {
    let settings = {
        let mut s = PoolSettings::with_strategy(StrategyKind::Consistent);
        s.outlier = {
            let mut s = OutlierSettings::default();
            s.consecutive_errors = 3;
            s.base_ejection = Duration::from_secs(30);
            s.max_ejected = 0.5;
            s
        };
        s
    };
    let pool = Pool::new(
        "p",
        settings,
        (1..=4).map(|i| Backend::new(addr(i))).collect(),
    )
    .expect("pool");
    let snap = pool.snapshot();
    let fail = |a: SocketAddr| {
        for _ in 0..3 {
            // Lease the failing backend directly: find a key it owns.
            let key = (0u32..10_000)
                .map(|k| k.to_le_bytes())
                .find(|k| snap.select(k).next().map(|l| l.addr()) == Some(a))
                .expect("a key of this backend");
            let lease = snap.select(&key).next().expect("lease");
            assert_eq!(lease.addr(), a);
            lease.report(Outcome::Failure);
        }
    };
    fail(addr(1));
    let now = lb_core::clock::now_nanos();
    assert_eq!(
        snap.member(addr(1)).map(|m| m.status(now)),
        Some(BackendStatus::Ejected)
    );
    assert!(
        !shares(&pool, 2000).contains_key(&addr(1)),
        "an ejected backend gets nothing"
    );
    fail(addr(2));
    // Two of four ejected is the 50 % cap: a third never is.
    let key_of_3 = (0u32..10_000)
        .map(|k| k.to_le_bytes())
        .find(|k| snap.select(k).next().map(|l| l.addr()) == Some(addr(3)))
        .expect("key");
    for _ in 0..10 {
        snap.select(&key_of_3)
            .next()
            .expect("lease")
            .report(Outcome::Failure);
    }
    let now = lb_core::clock::now_nanos();
    assert_eq!(
        snap.member(addr(3)).map(|m| m.status(now)),
        Some(BackendStatus::Up)
    );
}

#[test]
fn backups_only_when_no_primary_is_usable() {
    let pool = Pool::new(
        "p",
        PoolSettings::with_strategy(StrategyKind::RoundRobin),
        vec![
            Backend::new(addr(1)),
            Backend::new(addr(9)).with_backup(true),
        ],
    )
    .expect("pool");
    assert_eq!(shares(&pool, 100).get(&addr(1)), Some(&100));
    let snap = pool.snapshot();
    snap.member(addr(1))
        .expect("member")
        .state()
        .set_healthy(false);
    assert_eq!(shares(&pool, 100).get(&addr(9)), Some(&100));
}

#[test]
fn max_conns_per_backend_skips_full_backends_and_all_full_yields_nothing() {
    let settings = {
        let mut s = PoolSettings::with_strategy(StrategyKind::Maglev);
        s.max_conns_per_backend = 1;
        s
    };
    let pool = Pool::new(
        "p",
        settings,
        vec![Backend::new(addr(1)), Backend::new(addr(2))],
    )
    .expect("pool");
    let snap = pool.snapshot();
    let a = snap.select(b"k").next().expect("first");
    let b = snap.select(b"k").next().expect("second goes elsewhere");
    assert_ne!(a.addr(), b.addr());
    assert!(snap.select(b"k").next().is_none(), "both full");
    drop(a);
    assert!(snap.select(b"k").next().is_some(), "a slot freed");
    assert_eq!(pool.active(), 1);
}

#[test]
fn drain_and_weight_changes_keep_live_state() {
    let pool = Pool::new(
        "p",
        PoolSettings::with_strategy(StrategyKind::Consistent),
        vec![Backend::new(addr(1)), Backend::new(addr(2))],
    )
    .expect("pool");
    let held = pool.snapshot().select(b"x").next().expect("lease");
    let who = held.addr();
    pool.apply(Change::Update {
        addr: who,
        weight: Some(3),
        draining: None,
    })
    .expect("reweight");
    let m = pool
        .snapshot()
        .member(who)
        .map(|m| (m.backend().weight(), m.state().active()));
    assert_eq!(
        m,
        Some((3, 1)),
        "the in-flight request is still counted after the rebuild"
    );
    pool.apply(Change::Update {
        addr: who,
        weight: None,
        draining: Some(true),
    })
    .expect("drain");
    assert!(
        !shares(&pool, 200).contains_key(&who),
        "drained: no new traffic"
    );
    assert_eq!(
        pool.apply(Change::Update {
            addr: who,
            weight: Some(257),
            draining: None
        }),
        Err(lb_core::PoolError::BadWeight(257))
    );
    drop(held);
    assert_eq!(pool.active(), 0);
}

#[test]
fn sticky_ids_lease_only_usable_primaries_and_agree_across_pools() {
    use lb_core::hash::sticky_id;
    let backends = || {
        vec![
            Backend::new(addr(1)).with_id("web-1"),
            Backend::new(addr(2)).with_id("web-2"),
            Backend::new(addr(3)).with_id("web-3").with_backup(true),
        ]
    };
    let settings = || {
        let mut s = PoolSettings::with_strategy(StrategyKind::RoundRobin);
        s.max_conns_per_backend = 1;
        s
    };
    let pool = Pool::new("p", settings(), backends()).expect("pool");
    // Another instance with the same membership in another order maps ids the same way.
    let mut other = backends();
    other.reverse();
    let twin = Pool::new("q", settings(), other).expect("pool");
    let snap = pool.snapshot();
    for (id, a) in [("web-1", addr(1)), ("web-2", addr(2)), ("web-3", addr(3))] {
        let h = sticky_id(id);
        assert_eq!(snap.sticky_member(h).map(|m| m.backend().addr()), Some(a));
        assert_eq!(
            twin.snapshot().sticky_member(h).map(|m| m.backend().addr()),
            Some(a)
        );
    }
    assert!(snap.sticky_member(sticky_id("127.0.0.1:20001")).is_none());
    assert!(snap.sticky_member(0).is_none());

    let lease = snap.lease_sticky(sticky_id("web-2")).expect("usable");
    assert_eq!(lease.addr(), addr(2));
    assert_eq!(lease.sticky_id(), sticky_id("web-2"));
    assert!(snap.lease_sticky(sticky_id("web-2")).is_none(), "full");
    drop(lease);
    assert!(snap.lease_sticky(sticky_id("web-3")).is_none(), "a backup");
    snap.member(addr(2))
        .expect("member")
        .state()
        .set_draining(true);
    assert!(snap.lease_sticky(sticky_id("web-2")).is_none(), "draining");
    snap.member(addr(1))
        .expect("member")
        .state()
        .set_healthy(false);
    assert!(snap.lease_sticky(sticky_id("web-1")).is_none(), "down");
    pool.apply(Change::Update {
        addr: addr(2),
        weight: Some(0),
        draining: Some(false),
    })
    .expect("weight 0");
    assert!(
        pool.snapshot().lease_sticky(sticky_id("web-2")).is_none(),
        "weight 0"
    );
    pool.apply(Change::Remove(addr(2))).expect("remove");
    assert!(pool.snapshot().sticky_member(sticky_id("web-2")).is_none());
    assert_eq!(pool.active(), 0);
}
