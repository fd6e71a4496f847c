//! A pick allocates nothing: a counting global allocator around `System` proves it for
//! every strategy at 1000 backends, through `Table::candidates` and through
//! `Snapshot::select` (including dropping the lease).

use lb_core::hash::hash_key;
use lb_core::select::{NoLoads, PickInput, StrategyKind};
use lb_core::{Backend, Pool, PoolSettings};
use lb_test_support::alloc::{thread_allocations, Counting};

/// Counts allocations per thread (the test harness allocates on other threads).
#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    thread_allocations()
}

const N: usize = 1000;

fn pool(kind: StrategyKind) -> Pool {
    let backends = (0..N)
        .map(|i| {
            Backend::new(std::net::SocketAddr::from((
                [10, 1, (i / 256) as u8, (i % 256) as u8],
                80,
            )))
        })
        .collect();
    Pool::new("alloc", PoolSettings::with_strategy(kind), backends).expect("valid pool")
}

#[test]
fn the_counter_counts() {
    let before = allocations();
    let v: Vec<u8> = Vec::with_capacity(16);
    assert_eq!(allocations(), before + 1);
    drop(v);
}

#[test]
fn picks_allocate_nothing() {
    let keys: Vec<Vec<u8>> = (0..512)
        .map(|i| format!("/users/{i}/profile").into_bytes())
        .collect();
    for kind in StrategyKind::ALL {
        let pool = pool(kind);
        let snap = pool.snapshot();
        // Warm up lazily initialised process state (clock epoch, thread RNG).
        for k in &keys[..8] {
            drop(snap.select(k).next());
        }
        let before = allocations();
        let mut picked = 0;
        for k in &keys {
            if let Some(lease) = snap.select(k).next() {
                picked += 1;
                drop(lease);
            }
            // Also a few fallbacks (the retry path).
            let mut sel = snap.select(k);
            let _ = (sel.next(), sel.next(), sel.next());
        }
        let after = allocations();
        assert_eq!(picked, keys.len(), "{kind}");
        assert_eq!(
            after - before,
            0,
            "{kind}: {} allocations in {} picks",
            after - before,
            keys.len()
        );
        assert_eq!(pool.active(), 0);
    }
}

#[test]
fn table_candidates_allocate_nothing() {
    use lb_core::select::{Node, Params, Table};
    let nodes: Vec<Node> = (0..N as u64)
        .map(|i| Node {
            id_hash: lb_core::hash::mix64(i),
            weight: 1 + (i % 5) as u32,
        })
        .collect();
    for kind in StrategyKind::ALL {
        let table = Table::build(kind, &nodes, &Params::default());
        let before = allocations();
        let mut sum = 0usize;
        for i in 0..512u64 {
            let input = PickInput {
                key_hash: hash_key(&i.to_le_bytes()),
                random: i,
            };
            sum += table.candidates(input, &NoLoads).take(3).sum::<usize>();
        }
        let after = allocations();
        assert!(sum > 0);
        assert_eq!(after - before, 0, "{kind}");
    }
}
