use super::*;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

/// An in-process directory whose answer and delay the test sets.
struct Scripted {
    calls: AtomicUsize,
    answer: Mutex<Result<Resolution, ResolveError>>,
    delay: Duration,
}

impl Scripted {
    fn new(answer: Result<Resolution, ResolveError>, delay: Duration) -> Arc<Self> {
        Arc::new(Scripted {
            calls: AtomicUsize::new(0),
            answer: Mutex::new(answer),
            delay,
        })
    }
    fn set(&self, answer: Result<Resolution, ResolveError>) {
        *lock(&self.answer) = answer;
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Resolver for Scripted {
    fn resolve<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            lock(&self.answer).clone()
        })
    }
}

fn found(port: u16) -> Resolution {
    Resolution::Found(Arc::from(vec![SocketAddr::from(([127, 0, 0, 1], port))]))
}

fn settings() -> CacheSettings {
    CacheSettings {
        name: "t".into(),
        ttl: Duration::from_secs(30),
        negative_ttl: Duration::from_secs(5),
        stale_ttl: Duration::from_secs(300),
        max_entries: 100,
        error_backoff: Duration::from_secs(1),
    }
}

fn unavailable() -> ResolveError {
    ResolveError::Unavailable("down".into())
}

#[tokio::test(start_paused = true)]
async fn ttl_hit_then_expiry_asks_again() {
    let dir = Scripted::new(Ok(found(1)), Duration::ZERO);
    let cache = Cached::new(dir.clone(), settings());
    assert_eq!(
        cache.lookup("a").await,
        Lookup {
            result: Ok(found(1)),
            answered: Answered::Miss
        }
    );
    assert_eq!(cache.lookup("a").await.answered, Answered::Hit);
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(cache.lookup("a").await.answered, Answered::Hit);
    assert_eq!(dir.calls(), 1);
    dir.set(Ok(found(2)));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        cache.lookup("a").await,
        Lookup {
            result: Ok(found(2)),
            answered: Answered::Miss
        }
    );
    assert_eq!(dir.calls(), 2);
    let stats = cache.stats();
    assert_eq!(
        (
            stats.get(Answered::Hit),
            stats.get(Answered::Miss),
            stats.entries
        ),
        (2, 2, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn negative_ttl_is_separate() {
    let dir = Scripted::new(Ok(Resolution::NotFound), Duration::ZERO);
    let cache = Cached::new(dir.clone(), settings());
    assert_eq!(cache.lookup("gone").await.answered, Answered::Miss);
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(
        cache.lookup("gone").await,
        Lookup {
            result: Ok(Resolution::NotFound),
            answered: Answered::Negative
        }
    );
    assert_eq!(dir.calls(), 1);
    tokio::time::advance(Duration::from_secs(2)).await; // 6 s > negative_ttl, < ttl
    dir.set(Ok(found(3)));
    assert_eq!(
        cache.lookup("gone").await,
        Lookup {
            result: Ok(found(3)),
            answered: Answered::Miss
        }
    );
    assert_eq!(dir.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_then_error_after_stale_ttl() {
    let dir = Scripted::new(Ok(found(1)), Duration::ZERO);
    let cache = Cached::new(dir.clone(), settings());
    cache.lookup("a").await;
    dir.set(Err(unavailable()));
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(
        cache.lookup("a").await,
        Lookup {
            result: Ok(found(1)),
            answered: Answered::Stale
        }
    );
    assert_eq!(dir.calls(), 2);
    // Within the error backoff the stale answer comes from the cache.
    assert_eq!(cache.lookup("a").await.answered, Answered::Stale);
    assert_eq!(dir.calls(), 2);
    // After the backoff the directory is asked again, still stale.
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(cache.lookup("a").await.answered, Answered::Stale);
    assert_eq!(dir.calls(), 3);
    // Past ttl + stale_ttl: the error.
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(
        cache.lookup("a").await,
        Lookup {
            result: Err(unavailable()),
            answered: Answered::Error
        }
    );
    // The directory recovers: fresh again once the backoff ends.
    dir.set(Ok(found(4)));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        cache.lookup("a").await,
        Lookup {
            result: Ok(found(4)),
            answered: Answered::Miss
        }
    );
}

#[tokio::test(start_paused = true)]
async fn errors_are_not_negative_entries() {
    let dir = Scripted::new(Err(unavailable()), Duration::ZERO);
    let cache = Cached::new(
        dir.clone(),
        CacheSettings {
            error_backoff: Duration::ZERO,
            ..settings()
        },
    );
    for i in 1..=3 {
        assert_eq!(cache.lookup("x").await.answered, Answered::Error);
        assert_eq!(dir.calls(), i);
    }
    assert!(cache.is_empty());
    dir.set(Ok(Resolution::NotFound));
    assert_eq!(cache.lookup("x").await.result, Ok(Resolution::NotFound));
}

#[tokio::test(start_paused = true)]
async fn a_stale_found_is_dropped_by_a_later_not_found() {
    let dir = Scripted::new(Ok(found(1)), Duration::ZERO);
    let cache = Cached::new(dir.clone(), settings());
    cache.lookup("a").await;
    tokio::time::advance(Duration::from_secs(31)).await;
    dir.set(Ok(Resolution::NotFound));
    assert_eq!(cache.lookup("a").await.result, Ok(Resolution::NotFound));
    tokio::time::advance(Duration::from_secs(6)).await;
    dir.set(Err(unavailable()));
    assert_eq!(cache.lookup("a").await.answered, Answered::Error);
}

#[tokio::test(start_paused = true)]
async fn size_bound_holds_and_hot_names_survive() {
    let dir = Scripted::new(Ok(found(1)), Duration::ZERO);
    let cache = Cached::new(
        dir.clone(),
        CacheSettings {
            max_entries: 10,
            ..settings()
        },
    );
    for i in 0..100 {
        cache.lookup(&format!("n{i}")).await;
        assert_eq!(cache.lookup("hot").await.result, Ok(found(1)));
        assert!(cache.len() <= 10, "len {} after {i}", cache.len());
    }
    assert_eq!(cache.len(), 10);
    // "hot" was hit between every insert, so CLOCK never evicted it.
    assert_eq!(cache.stats().get(Answered::Miss), 101);
}

#[tokio::test(start_paused = true)]
async fn single_flight_one_upstream_call() {
    let dir = Scripted::new(Ok(found(7)), Duration::from_millis(50));
    let cache = Arc::new(Cached::new(dir.clone(), settings()));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.lookup("cold").await })
        })
        .collect();
    let mut answered = HashMap::new();
    for t in tasks {
        let lookup = t.await.unwrap();
        assert_eq!(lookup.result, Ok(found(7)));
        *answered.entry(lookup.answered).or_insert(0) += 1;
    }
    assert_eq!(dir.calls(), 1);
    assert_eq!(answered.get(&Answered::Miss), Some(&1));
    assert_eq!(answered.get(&Answered::Coalesced), Some(&999));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_over() {
    let dir = Scripted::new(Ok(found(8)), Duration::from_millis(100));
    let cache = Arc::new(Cached::new(dir.clone(), settings()));
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.lookup("n").await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.lookup("n").await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    leader.abort();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        Lookup {
            result: Ok(found(8)),
            answered: Answered::Miss
        }
    );
    assert_eq!(dir.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn cached_is_a_resolver_and_try_get_never_asks() {
    let dir = Scripted::new(Ok(found(9)), Duration::ZERO);
    let cache = Cached::new(dir.clone(), settings());
    assert_eq!(cache.try_get("a"), None);
    assert_eq!(dir.calls(), 0);
    let r: &dyn Resolver = &cache;
    assert_eq!(r.resolve("a").await, Ok(found(9)));
    assert_eq!(cache.try_get("a").map(|l| l.answered), Some(Answered::Hit));
    let labels: Vec<_> = cache.stats().iter().collect();
    assert_eq!(labels[0], ("hit", 1));
    assert_eq!(labels[1], ("miss", 1));
    assert_eq!(labels.len(), 6);
}
