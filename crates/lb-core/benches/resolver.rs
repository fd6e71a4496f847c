//! The cached resolver's hit path: `Cached::try_get` (the sync fast path) and
//! `Cached::lookup` polled once (a hit never suspends), on a warm cache of 10 000 names.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lb_core::resolve::{CacheSettings, Cached, StaticResolver};

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn warm_cache() -> Cached<StaticResolver> {
    let names: Vec<(String, Vec<SocketAddr>)> = (0..10_000u16)
        .map(|i| {
            (
                format!("tenant-{i}.example.com"),
                vec![SocketAddr::from(([127, 0, 0, 1], 10_000 + i))],
            )
        })
        .collect();
    let cache = Cached::new(StaticResolver::new(names), CacheSettings::named("bench"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for i in 0..10_000 {
            cache.lookup(&format!("tenant-{i}.example.com")).await;
        }
    });
    cache
}

fn hit_path(c: &mut Criterion) {
    let cache = warm_cache();
    let name = "tenant-4242.example.com";
    c.bench_function("cached/try_get hit", |b| {
        b.iter(|| black_box(cache.try_get(black_box(name))))
    });

    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    c.bench_function("cached/lookup hit (polled once)", |b| {
        b.iter(|| {
            let fut = pin!(cache.lookup(black_box(name)));
            match fut.poll(&mut cx) {
                Poll::Ready(lookup) => black_box(lookup),
                Poll::Pending => unreachable!("a hit never suspends"),
            }
        })
    });
}

criterion_group!(benches, hit_path);
criterion_main!(benches);
