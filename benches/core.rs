//! lb-core micro-benchmarks: pick latency per strategy and snapshot publish cost.
//!
//! `cargo bench -p lb-benches -- --warm-up-time 1 --measurement-time 2`
//!
//! - `pick_table/S/n`: `hash_key` of a ~20-byte key + `Table::candidates(..).next()`.
//! - `pick_select/S/n`: `Snapshot::select(key).next()` and dropping the lease (health and
//!   load checks, the lease's atomic counters, the thread RNG).
//! - `publish/S/n`: `Pool::apply(Add)` then `Pool::apply(Remove)` (two table builds and two
//!   snapshot swaps).

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lb_core::hash::{hash_id, hash_key};
use lb_core::select::{NoLoads, Node, Params, PickInput, StrategyKind, Table};
use lb_core::{Backend, Change, Pool, PoolSettings};

const SIZES: [usize; 3] = [10, 100, 1000];

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 2, (i / 256) as u8, (i % 256) as u8], 8080))
}

/// 1024 keys of 20 bytes each (`/api/v1/users/000042`).
fn keys() -> Vec<Vec<u8>> {
    (0..1024)
        .map(|i| format!("/api/v1/users/{i:06}").into_bytes())
        .collect()
}

fn pool(kind: StrategyKind, n: usize) -> Pool {
    let backends = (0..n).map(|i| Backend::new(addr(i))).collect();
    Pool::new("bench", PoolSettings::with_strategy(kind), backends).expect("valid pool")
}

fn pick_table(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("pick_table");
    for kind in StrategyKind::ALL {
        for n in SIZES {
            let nodes: Vec<Node> = (0..n)
                .map(|i| Node {
                    id_hash: hash_id(&addr(i).to_string()),
                    weight: 1,
                })
                .collect();
            let table = Table::build(kind, &nodes, &Params::default());
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new(kind.as_str(), n), |b| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    let input = PickInput {
                        key_hash: hash_key(black_box(&keys[i])),
                        random: i as u64,
                    };
                    black_box(table.candidates(input, &NoLoads).next())
                })
            });
        }
    }
    g.finish();
}

fn pick_select(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("pick_select");
    for kind in StrategyKind::ALL {
        for n in SIZES {
            let pool = pool(kind, n);
            let snap = pool.snapshot();
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new(kind.as_str(), n), |b| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    let lease = snap.select(black_box(&keys[i])).next();
                    black_box(lease.as_ref().map(|l| l.addr()))
                })
            });
        }
    }
    g.finish();
}

fn publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish");
    g.sample_size(10);
    for kind in [
        StrategyKind::Consistent,
        StrategyKind::Maglev,
        StrategyKind::Rendezvous,
        StrategyKind::RoundRobin,
    ] {
        for n in [100, 1000] {
            let pool = pool(kind, n);
            let extra = addr(n + 1);
            g.bench_function(BenchmarkId::new(kind.as_str(), n), |b| {
                b.iter(|| {
                    pool.apply(Change::Add(Backend::new(extra))).expect("add");
                    pool.apply(Change::Remove(extra)).expect("remove");
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, pick_table, pick_select, publish);
criterion_main!(benches);
