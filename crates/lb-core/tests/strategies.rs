//! Selection strategies: the preference-order contract, determinism, minimal disruption,
//! spread, weights, and their behaviour through the `Pool` API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};

use lb_core::hash::{hash_id, hash_key, mix64};
use lb_core::select::{Loads, NoLoads, Node, Params, PickInput, StrategyKind, Table};
use lb_core::{Backend, Change, Pool, PoolSettings};
use proptest::prelude::*;

const HASHING: [StrategyKind; 3] = [
    StrategyKind::Consistent,
    StrategyKind::Rendezvous,
    StrategyKind::Maglev,
];

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 8080))
}

/// Nodes as the pool builds them: id = the address.
fn node(i: usize, weight: u32) -> Node {
    Node {
        id_hash: hash_id(&addr(i).to_string()),
        weight,
    }
}

fn nodes(ids: impl IntoIterator<Item = usize>, weight: impl Fn(usize) -> u32) -> Vec<Node> {
    ids.into_iter().map(|i| node(i, weight(i))).collect()
}

fn key(i: u64) -> u64 {
    hash_key(format!("key-{i}").as_bytes())
}

fn input(i: u64) -> PickInput {
    PickInput {
        key_hash: key(i),
        random: mix64(i ^ 0xabcdef),
    }
}

fn first(t: &Table, input: PickInput) -> usize {
    t.candidates(input, &NoLoads)
        .next()
        .expect("a non-empty table yields a first choice")
}

fn assert_permutation(order: &[usize], n: usize) {
    assert_eq!(order.len(), n, "order {order:?}");
    let mut seen = vec![false; n];
    for &i in order {
        assert!(i < n, "index {i} out of range");
        assert!(!seen[i], "index {i} twice");
        seen[i] = true;
    }
}

fn build(kind: StrategyKind, nodes: &[Node]) -> Table {
    Table::build(kind, nodes, &Params::default())
}

/// Keys per node index (first choice) over `keys` keys.
fn counts(t: &Table, n: usize, keys: u64) -> Vec<u64> {
    let mut c = vec![0u64; n];
    for k in 0..keys {
        c[first(t, input(k))] += 1;
    }
    c
}

// ---------------------------------------------------------------------------------------
// The contract: every index exactly once.

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_strategy_yields_each_index_exactly_once(
        weights in proptest::collection::vec(1u32..=256, 0..50),
        key_hash in any::<u64>(),
        random in any::<u64>(),
        loads in proptest::collection::vec(0u64..20, 50),
    ) {
        let nodes: Vec<Node> = weights.iter().enumerate().map(|(i, &w)| node(i, w)).collect();
        // Few vnodes: coprime weights up to 256 would otherwise put ~1M points on the ring,
        // slow to build in a debug test; the walk is the same.
        let params = Params::default().with_vnodes(4);
        for kind in StrategyKind::ALL {
            let t = Table::build(kind, &nodes, &params);
            for round in 0..3u64 {
                let inp = PickInput { key_hash: key_hash ^ round, random: mix64(random ^ round) };
                let order: Vec<usize> = t.candidates(inp, &loads[..]).collect();
                assert_permutation(&order, nodes.len());
            }
        }
    }

    #[test]
    fn small_tables_and_vnodes_keep_the_contract(
        weights in proptest::collection::vec(1u32..=256, 1..30),
        vnodes in 0u32..4,
        min_table in 0u32..50,
        key_hash in any::<u64>(),
    ) {
        let nodes: Vec<Node> = weights.iter().enumerate().map(|(i, &w)| node(i, w)).collect();
        let params = Params::default().with_vnodes(vnodes).with_maglev_min_table(min_table);
        for kind in [StrategyKind::Consistent, StrategyKind::Maglev] {
            let t = Table::build(kind, &nodes, &params);
            let order: Vec<usize> = t.candidates(PickInput { key_hash, random: 0 }, &NoLoads).collect();
            assert_permutation(&order, nodes.len());
        }
    }
}

#[test]
fn empty_tables_yield_nothing() {
    for kind in StrategyKind::ALL {
        let t = build(kind, &[]);
        assert_eq!(t.candidates(input(1), &NoLoads).next(), None, "{kind}");
    }
}

#[test]
fn two_thousand_backends_each_once() {
    // Past the 1024-bit inline set: indices >= 1024 are deduplicated by the position index.
    let n = 2000;
    let nodes = nodes(0..n, |i| 1 + (i % 3) as u32);
    for kind in StrategyKind::ALL {
        let t = build(kind, &nodes);
        let keys: &[u64] = if kind == StrategyKind::Rendezvous {
            &[1]
        } else {
            &[1, 2, 3]
        };
        for &k in keys {
            let order: Vec<usize> = t.candidates(input(k), &NoLoads).collect();
            assert_permutation(&order, n);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Determinism.

#[test]
fn independently_built_tables_agree() {
    for kind in [
        StrategyKind::Modulo,
        StrategyKind::Consistent,
        StrategyKind::Rendezvous,
        StrategyKind::Maglev,
    ] {
        let a = build(kind, &nodes(0..37, |i| 1 + (i % 4) as u32));
        let b = build(kind, &nodes(0..37, |i| 1 + (i % 4) as u32));
        for k in 0..2000 {
            let oa: Vec<usize> = a.candidates(input(k), &NoLoads).take(5).collect();
            let ob: Vec<usize> = b.candidates(input(k), &NoLoads).take(5).collect();
            assert_eq!(oa, ob, "{kind} key {k}");
        }
        for k in 0..20 {
            assert!(a
                .candidates(input(k), &NoLoads)
                .eq(b.candidates(input(k), &NoLoads)));
        }
    }
}

/// Placement is part of the contract: these answers must be the same in every process,
/// on every machine, in every release. A change here moves keys in production.
#[test]
fn placement_is_pinned() {
    let nodes = nodes(0..5, |_| 1);
    let mut got = String::new();
    for kind in [
        StrategyKind::Modulo,
        StrategyKind::Consistent,
        StrategyKind::Rendezvous,
        StrategyKind::Maglev,
    ] {
        let t = build(kind, &nodes);
        got.push_str(kind.as_str());
        got.push(':');
        for k in 0..16 {
            got.push_str(&first(&t, input(k)).to_string());
        }
        got.push(' ');
    }
    assert_eq!(got, PINNED);
}

const PINNED: &str = "modulo:0141414032024103 consistent:3314344104324002 rendezvous:2033224442333313 maglev:0021102230030433 ";

// ---------------------------------------------------------------------------------------
// Minimal disruption.

/// Per key, the backend (by address index) it goes to.
fn placement(kind: StrategyKind, ids: &[usize], keys: u64) -> Vec<usize> {
    let t = build(kind, &nodes(ids.iter().copied(), |_| 1));
    (0..keys).map(|k| ids[first(&t, input(k))]).collect()
}

fn moved(a: &[usize], b: &[usize]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

#[test]
fn adding_or_removing_a_backend_moves_about_one_nth() {
    const KEYS: u64 = 100_000;
    let ten: Vec<usize> = (0..10).collect();
    let eleven: Vec<usize> = (0..11).collect();
    let nine: Vec<usize> = (0..10).filter(|&i| i != 4).collect();
    for kind in HASHING {
        let base = placement(kind, &ten, KEYS);
        // Add an 11th: ideal 1/11 of the keys move, all of them to the new backend.
        let added = placement(kind, &eleven, KEYS);
        let m = moved(&base, &added) as f64 / KEYS as f64;
        let ideal = 1.0 / 11.0;
        assert!(
            (m - ideal).abs() <= 0.2 * ideal,
            "{kind} add: moved {m:.4}, ideal {ideal:.4}"
        );
        let not_to_new = base
            .iter()
            .zip(&added)
            .filter(|(a, b)| a != b && **b != 10)
            .count();
        // Remove one: ideal 1/10 move.
        let removed = placement(kind, &nine, KEYS);
        let m = moved(&base, &removed) as f64 / KEYS as f64;
        assert!(
            (m - 0.1).abs() <= 0.02,
            "{kind} remove: moved {m:.4}, ideal 0.1"
        );
        let extra = base
            .iter()
            .zip(&removed)
            .filter(|(a, b)| a != b && **a != 4)
            .count();
        println!("{kind}: add moved to others {not_to_new}, remove moved extra {extra}");
        if kind == StrategyKind::Maglev {
            // Maglev refills the table: a few keys of other backends move too. Measured
            // 0.22 % (add) and 0.29 % (remove) of all keys at 10 backends; bound at 0.5 %.
            assert!(
                extra as u64 <= KEYS / 200,
                "maglev remove moved {extra} extra keys"
            );
            assert!(
                not_to_new as u64 <= KEYS / 200,
                "maglev add moved {not_to_new} keys among old backends"
            );
        } else {
            assert_eq!(extra, 0, "{kind}: only the removed backend's keys may move");
            assert_eq!(
                not_to_new, 0,
                "{kind}: keys may only move to the added backend"
            );
        }
    }
}

#[test]
fn modulo_moves_most_keys() {
    let base = placement(StrategyKind::Modulo, &(0..10).collect::<Vec<_>>(), 100_000);
    let added = placement(StrategyKind::Modulo, &(0..11).collect::<Vec<_>>(), 100_000);
    let m = moved(&base, &added) as f64 / 100_000.0;
    assert!(m > 0.5, "modulo moved only {m}");
    let removed = placement(StrategyKind::Modulo, &(0..9).collect::<Vec<_>>(), 100_000);
    let m = moved(&base, &removed) as f64 / 100_000.0;
    assert!(m > 0.5, "modulo moved only {m}");
}

// ---------------------------------------------------------------------------------------
// Spread and weights.

fn max_over_mean(t: &Table) -> f64 {
    let c = counts(t, 10, 100_000);
    *c.iter().max().unwrap_or(&0) as f64 / 10_000.0
}

#[test]
fn ten_equal_backends_spread_evenly() {
    for kind in [StrategyKind::Rendezvous, StrategyKind::Maglev] {
        let ratio = max_over_mean(&build(kind, &nodes(0..10, |_| 1)));
        println!("{kind}: max/mean {ratio:.3}");
        assert!(ratio <= 1.10, "{kind}: max/mean {ratio}");
    }
    // A ring's per-backend share has a relative deviation of ~1/sqrt(vnodes): at the default
    // 160 the busiest of 10 backends carries ~1.12 x the mean on average over id sets
    // (see the unit test in consistent.rs), 1.128 for this set. 1.10 needs more vnodes.
    let ring = |vnodes| {
        Table::build(
            StrategyKind::Consistent,
            &nodes(0..10, |_| 1),
            &Params::default().with_vnodes(vnodes),
        )
    };
    let at_160 = max_over_mean(&ring(160));
    let at_1000 = max_over_mean(&ring(1000));
    println!("consistent: max/mean {at_160:.3} at 160 vnodes, {at_1000:.3} at 1000");
    assert!(at_160 <= 1.15, "consistent 160 vnodes: max/mean {at_160}");
    assert!(
        at_1000 <= 1.10,
        "consistent 1000 vnodes: max/mean {at_1000}"
    );
}

/// Shares for weights 1..=5 (ideal w/15) within 5 % (relative) of the weight share.
fn assert_weighted(what: &str, c: &[u64], weights: &[u32]) {
    let total: u64 = c.iter().sum();
    let wsum: u32 = weights.iter().sum();
    for (i, (&got, &w)) in c.iter().zip(weights).enumerate() {
        let share = got as f64 / total as f64;
        let ideal = f64::from(w) / f64::from(wsum);
        println!("{what}: node {i} share {share:.4} ideal {ideal:.4}");
        assert!(
            (share - ideal).abs() <= 0.05 * ideal,
            "{what}: node {i} share {share:.4}, ideal {ideal:.4}"
        );
    }
}

#[test]
fn weights_are_honoured_by_every_weighted_strategy() {
    let weights = [1u32, 2, 3, 4, 5];
    let ns = nodes(0..5, |i| weights[i]);
    const KEYS: u64 = 200_000;
    for kind in [
        StrategyKind::Rendezvous,
        StrategyKind::Maglev,
        StrategyKind::Random,
        StrategyKind::RoundRobin,
    ] {
        let t = build(kind, &ns);
        assert_weighted(kind.as_str(), &counts(&t, 5, KEYS), &weights);
    }
    // The ring's share deviates by ~1/sqrt(points per backend): 160 vnodes is ±8 %, so
    // weighted shares within 5 % need more points (4000 per unit of weight: ±1.6 %).
    let t = Table::build(
        StrategyKind::Consistent,
        &ns,
        &Params::default().with_vnodes(4000),
    );
    assert_weighted("consistent (4000 vnodes)", &counts(&t, 5, KEYS), &weights);
}

#[test]
fn least_conn_is_weighted_when_idle() {
    let weights = [1u32, 2, 3, 4, 5];
    let t = build(StrategyKind::LeastConn, &nodes(0..5, |i| weights[i]));
    assert_weighted("least-conn", &counts(&t, 5, 200_000), &weights);
}

// ---------------------------------------------------------------------------------------
// Round-robin and least-conn.

#[test]
fn round_robin_is_nginx_smooth_sequence() {
    let t = build(StrategyKind::RoundRobin, &nodes(0..3, |i| [5, 1, 1][i]));
    let picks: Vec<usize> = (0..14).map(|k| first(&t, input(k))).collect();
    assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn least_conn_prefers_the_less_loaded_of_two() {
    let t = build(StrategyKind::LeastConn, &nodes(0..2, |_| 1));
    for k in 0..200 {
        let order: Vec<usize> = t.candidates(input(k), &[7u64, 3][..]).collect();
        assert_eq!(order, vec![1, 0]);
    }
    // Per weight: 3 active on weight 2 (1.5) beats 2 active on weight 1 (2).
    let t = build(StrategyKind::LeastConn, &nodes(0..2, |i| [2, 1][i]));
    for k in 0..200 {
        assert_eq!(t.candidates(input(k), &[3u64, 2][..]).next(), Some(0));
    }
    // Ten backends, one heavily loaded: it is never the first choice (it can only be
    // drawn together with a less loaded one), and is still offered later.
    let t = build(StrategyKind::LeastConn, &nodes(0..10, |_| 1));
    let loads = [100u64, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    let mut second = 0;
    for k in 0..5000 {
        let order: Vec<usize> = t.candidates(input(k), &loads[..]).collect();
        assert_ne!(order[0], 0);
        assert_permutation(&order, 10);
        if order[1] == 0 {
            second += 1;
        }
    }
    assert!(
        second > 500,
        "backend 0 drawn as the runner-up only {second} times"
    );
}

struct Fixed(Vec<u64>);
impl Loads for Fixed {
    fn active(&self, i: usize) -> u64 {
        self.0[i]
    }
}

#[test]
fn least_conn_reads_loads_through_the_trait() {
    let t = build(StrategyKind::LeastConn, &nodes(0..3, |_| 1));
    let loads = Fixed(vec![0, 50, 50]);
    let firsts = (0..1000)
        .filter(|&k| t.candidates(input(k), &loads).next() == Some(0))
        .count();
    // Backend 0 wins whenever it is one of the two draws: 2/3 of picks.
    assert!((600..=730).contains(&firsts), "{firsts}");
}

// ---------------------------------------------------------------------------------------
// Through the Pool.

fn pool(kind: StrategyKind, weights: &[u32]) -> Pool {
    let backends = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            Backend::new(addr(i))
                .with_weight(w)
                .expect("weight in range")
        })
        .collect();
    Pool::new("t", PoolSettings::with_strategy(kind), backends).expect("valid pool")
}

fn picks(pool: &Pool, keys: u64) -> Vec<Option<SocketAddr>> {
    let snap = pool.snapshot();
    (0..keys)
        .map(|k| {
            snap.select(format!("key-{k}").as_bytes())
                .next()
                .map(|l| l.addr())
        })
        .collect()
}

#[test]
fn an_unhealthy_backend_moves_only_its_keys_and_they_return() {
    for kind in [
        StrategyKind::Modulo,
        StrategyKind::Consistent,
        StrategyKind::Rendezvous,
        StrategyKind::Maglev,
    ] {
        let p = pool(kind, &[1; 10]);
        let before = picks(&p, 20_000);
        let down = addr(3);
        let on_down = before.iter().filter(|a| **a == Some(down)).count();
        assert!(on_down > 1000, "{kind}: {on_down}");
        p.snapshot().members()[3].state().set_healthy(false);
        let during = picks(&p, 20_000);
        for (b, d) in before.iter().zip(&during) {
            assert_ne!(*d, Some(down), "{kind}: a key went to the down backend");
            if *b != Some(down) {
                assert_eq!(b, d, "{kind}: a healthy backend's key moved");
            }
        }
        p.snapshot().members()[3].state().set_healthy(true);
        assert_eq!(picks(&p, 20_000), before, "{kind}: keys did not come back");
        assert_eq!(p.active(), 0);
    }
}

#[test]
fn round_robin_spreads_a_down_backends_turns() {
    let p = pool(StrategyKind::RoundRobin, &[1; 4]);
    p.snapshot().members()[1].state().set_healthy(false);
    let mut c: HashMap<SocketAddr, u32> = HashMap::new();
    for a in picks(&p, 300).into_iter().flatten() {
        *c.entry(a).or_default() += 1;
    }
    assert_eq!(c.get(&addr(1)), None);
    for i in [0, 2, 3] {
        assert_eq!(c[&addr(i)], 100, "{c:?}");
    }
}

#[test]
fn round_robin_pool_follows_the_sequence() {
    let p = pool(StrategyKind::RoundRobin, &[5, 1, 1]);
    let got: Vec<usize> = picks(&p, 7)
        .into_iter()
        .map(|a| (0..3).find(|&i| Some(addr(i)) == a).expect("a member"))
        .collect();
    assert_eq!(got, [0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn weight_zero_gets_nothing_and_all_zero_yields_nothing() {
    for kind in StrategyKind::ALL {
        let p = pool(kind, &[0, 1, 2, 0]);
        let got = picks(&p, 2000);
        assert!(got.iter().all(|a| a.is_some()), "{kind}");
        assert!(
            !got.contains(&Some(addr(0))) && !got.contains(&Some(addr(3))),
            "{kind}"
        );
        let snap = p.snapshot();
        assert_eq!(snap.select(b"x").count(), 2, "{kind}");
        let p = pool(kind, &[0, 0, 0]);
        assert!(p.snapshot().select(b"x").next().is_none(), "{kind}");
        assert!(p.snapshot().route(b"x").is_none(), "{kind}");
        // Draining to 0 and back through the pool API.
        let p = pool(kind, &[1, 1]);
        p.apply(Change::Update {
            addr: addr(0),
            weight: Some(0),
            draining: None,
        })
        .expect("update");
        assert!(picks(&p, 200).iter().all(|a| *a == Some(addr(1))), "{kind}");
    }
}

/// `ceil(bound × (total + 1) × share)` for one of `n` equal backends.
fn cap(bound: f64, total: u64, n: usize) -> u64 {
    (bound * (total + 1) as f64 / n as f64).ceil() as u64
}

#[test]
fn bounded_loads_cap_every_backend() {
    let p = pool(StrategyKind::ConsistentBounded, &[1; 8]);
    let bound = p.settings().bound;
    let snap = p.snapshot();
    let mut leases = Vec::new();
    // One hot key: without the bound every request would land on one backend.
    for _ in 0..400 {
        let l = snap
            .select(b"hot")
            .next()
            .expect("the bound always leaves room");
        leases.push(l);
        let total = p.active();
        for m in snap.members() {
            assert!(
                m.state().active() <= cap(bound, total, 8),
                "active {} total {total}",
                m.state().active()
            );
            // Single-threaded the cap was computed with exactly `total - 1` before.
            assert!(m.state().active() <= cap(bound, total - 1, 8));
        }
    }
    // The hot key overflowed along its ring successors: with every backend at most at
    // the final cap, at least 400 / cap of them took part.
    let busy = snap
        .members()
        .iter()
        .filter(|m| m.state().active() > 0)
        .count() as u64;
    assert!(
        busy >= 400u64.div_ceil(cap(bound, 399, 8)),
        "only {busy} backends used"
    );
    drop(leases);
    assert_eq!(p.active(), 0);
    // Idle again: the hot key goes back to its ring owner.
    let owner = snap.route(b"hot").map(|m| m.backend().addr());
    assert_eq!(snap.select(b"hot").next().map(|l| l.addr()), owner);
}

#[test]
fn bounded_loads_hold_under_concurrent_picks() {
    const THREADS: usize = 4;
    const PER: usize = 250;
    let p = Arc::new(pool(StrategyKind::ConsistentBounded, &[1; 8]));
    let bound = p.settings().bound;
    let start = Arc::new(Barrier::new(THREADS));
    let done = Arc::new(Barrier::new(THREADS + 1));
    let release = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (p, start, done, release) =
                (p.clone(), start.clone(), done.clone(), release.clone());
            std::thread::spawn(move || {
                start.wait();
                let snap = p.snapshot();
                let mut leases = Vec::new();
                // Violations are returned, not asserted here: a panic would strand the
                // other threads at the barriers.
                let mut violations = Vec::new();
                for i in 0..PER {
                    // Half hot key, half spread keys.
                    let key = if i % 2 == 0 {
                        "hot".to_owned()
                    } else {
                        format!("k{t}-{i}")
                    };
                    let Some(l) = snap.select(key.as_bytes()).next() else {
                        violations.push((u64::MAX, p.active()));
                        continue;
                    };
                    // Loads only grow while leases are held: read the member, then the total.
                    let active = l.member().state().active();
                    let total = p.active();
                    if active > cap(bound, total, 8) {
                        violations.push((active, total));
                    }
                    leases.push(l);
                }
                done.wait();
                release.wait();
                drop(leases);
                violations
            })
        })
        .collect();
    done.wait();
    let total = p.active();
    assert_eq!(total, (THREADS * PER) as u64);
    for m in p.snapshot().members() {
        assert!(
            m.state().active() <= cap(bound, total, 8),
            "{}",
            m.state().active()
        );
    }
    release.wait();
    for h in handles {
        let violations = h.join().expect("picker thread");
        assert!(
            violations.is_empty(),
            "over the cap (active, total): {violations:?}"
        );
    }
    assert_eq!(p.active(), 0);
}

#[test]
fn duplicate_addresses_and_ids_are_refused() {
    let p = pool(StrategyKind::Consistent, &[1; 3]);
    assert_eq!(
        p.apply(Change::Add(Backend::new(addr(1)))),
        Err(lb_core::PoolError::Duplicate(addr(1)))
    );
    let same_id = Backend::new(addr(9)).with_id(addr(2).to_string());
    assert_eq!(
        p.apply(Change::Add(same_id)),
        Err(lb_core::PoolError::DuplicateId(addr(2).to_string()))
    );
    let reset = vec![
        Backend::new(addr(5)),
        Backend::new(addr(6)),
        Backend::new(addr(5)),
    ];
    assert_eq!(
        p.apply(Change::Reset(reset)),
        Err(lb_core::PoolError::Duplicate(addr(5)))
    );
    assert_eq!(p.snapshot().members().len(), 3);
}

// ---------------------------------------------------------------------------------------
// consistent-nginx: nginx's ring (the placement itself is checked against the real nginx
// in lb-proxy's `tests/nginx_placement.rs`).

/// Nodes as a pool builds them for `consistent-nginx`: the id hash is nginx's.
fn nginx_nodes(ids: &[usize], weights: &[u32]) -> Vec<Node> {
    ids.iter()
        .zip(weights)
        .map(|(&i, &w)| Node {
            id_hash: StrategyKind::ConsistentNginx.hash_id(&addr(i).to_string()),
            weight: w,
        })
        .collect()
}

fn nginx_order(t: &Table, key: &[u8]) -> Vec<usize> {
    let input = PickInput {
        key_hash: StrategyKind::ConsistentNginx.hash_key(key),
        random: 0,
    };
    t.candidates(input, &NoLoads).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Two tables built independently from the same members answer the same order for
    /// every key, and each order names every member once.
    #[test]
    fn consistent_nginx_is_deterministic(
        weights in proptest::collection::vec(1u32..=4, 1..12),
        keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 1..40),
    ) {
        let ids: Vec<usize> = (0..weights.len()).collect();
        let a = build(StrategyKind::ConsistentNginx, &nginx_nodes(&ids, &weights));
        let b = build(StrategyKind::ConsistentNginx, &nginx_nodes(&ids, &weights));
        for k in &keys {
            let order = nginx_order(&a, k);
            assert_permutation(&order, weights.len());
            prop_assert_eq!(&order, &nginx_order(&b, k));
        }
    }

    /// Removing one member moves exactly its keys, each to its next choice; adding it back
    /// takes exactly those keys back.
    #[test]
    fn consistent_nginx_moves_only_the_removed_backends_keys(
        weights in proptest::collection::vec(1u32..=3, 2..10),
        gone in any::<proptest::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let n = weights.len();
        let gone = gone.index(n);
        let ids: Vec<usize> = (0..n).collect();
        let full = build(StrategyKind::ConsistentNginx, &nginx_nodes(&ids, &weights));
        let rest_ids: Vec<usize> = ids.iter().copied().filter(|&i| i != gone).collect();
        let rest_w: Vec<u32> = rest_ids.iter().map(|&i| weights[i]).collect();
        let rest = build(StrategyKind::ConsistentNginx, &nginx_nodes(&rest_ids, &rest_w));
        for k in 0..500u64 {
            let key = format!("k{}", mix64(seed ^ k));
            let before = nginx_order(&full, key.as_bytes());
            let after: Vec<usize> = nginx_order(&rest, key.as_bytes()).iter().map(|&j| rest_ids[j]).collect();
            // The order without `gone` is the order with it, minus `gone`.
            let expected: Vec<usize> = before.iter().copied().filter(|&i| i != gone).collect();
            prop_assert_eq!(after, expected, "key {}", key);
        }
    }
}

#[test]
fn consistent_nginx_through_the_pool_skips_a_down_backend() {
    let p = pool(StrategyKind::ConsistentNginx, &[1, 2, 1, 2, 1]);
    let before = picks(&p, 10_000);
    let down = addr(1);
    let on_down = before.iter().filter(|a| **a == Some(down)).count();
    // Weight 2 of 7: about 2,857 keys.
    assert!((2_000..3_700).contains(&on_down), "{on_down}");
    p.snapshot().members()[1].state().set_healthy(false);
    let during = picks(&p, 10_000);
    for (b, d) in before.iter().zip(&during) {
        assert_ne!(*d, Some(down));
        if *b != Some(down) {
            assert_eq!(b, d, "a healthy backend's key moved");
        }
    }
    p.snapshot().members()[1].state().set_healthy(true);
    assert_eq!(picks(&p, 10_000), before);
    // `route` (lb route, /api/v1/route) places by the same CRC-32 hashes.
    let snap = p.snapshot();
    for (k, want) in before.iter().enumerate().take(1000) {
        let key = format!("key-{k}");
        assert_eq!(
            snap.route(key.as_bytes()).map(|m| m.backend().addr()),
            *want,
            "{key}"
        );
    }
}
