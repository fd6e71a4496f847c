//! Per-route rate limits (`[[route]] rate_limit = { key, rate, burst, max_keys }`): GCRA
//! per key in a sharded table of bounded size.
//!
//! **GCRA** (the generic cell rate algorithm, as in ATM and in `governor`) keeps one
//! number per key, its *theoretical arrival time* `tat`. With the emission interval
//! `T = per / count` and the tolerance `τ = (burst − 1) × T`, a request at `now` is
//! admitted when `tat − now ≤ τ`, and then `tat = max(tat, now) + T`. A fresh key may send
//! `burst` requests at once, then one every `T`: over any span `t` at most
//! `burst + t / T` are admitted. A refused request waits `tat − τ − now`, sent as
//! `Retry-After` in whole seconds (at least 1). A key whose `tat` is in the past is in the
//! same state as a key never seen, so forgetting it loses nothing.
//!
//! **The table** is split into [`SHARDS`] shards by the key's hash, each behind its own
//! mutex, held for a hash probe and a few arithmetic operations: no lock is shared by all
//! requests, and requests of different keys rarely meet. Each shard holds at most its share
//! of `max_keys` entries, allocated when the config is loaded (about 70 bytes per key:
//! 7 MB at the default 100000), so a flood of distinct keys neither allocates on the
//! request path nor grows memory. When a shard is full, a new key takes the place chosen by
//! a CLOCK sweep (second chance): an entry seen again since it came or since the hand last
//! passed it is spared once, and an entry whose `tat` is past is taken at once (it holds
//! nothing). The least
//! recently seen keys are thus forgotten first.
//!
//! Keys are hashed with a per-process random SipHash key ([`RandomState`]), so a client
//! cannot choose keys that pile up in one shard's probe sequence; two keys share a state
//! only if their 64-bit hashes collide. Limits are per instance.
//!
//! Why not `governor`: its keyed store (a `DashMap`, sharded locks as here) grows with every
//! key it sees until `retain_recent` is called from a background task, so a flood of
//! distinct keys grows memory between sweeps and each new key allocates; bounding it
//! would need the same table as this one around its per-key state, which is one `u64`.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Uri;
use lb_core::config::RateLimitConfig;
use lb_core::metrics;
use lb_core::name::HostPattern;

use crate::request::fields::View;
use crate::request::key;
use lb_core::name::IpText;

/// Shards per table (fewer when `max_keys` is smaller).
pub const SHARDS: usize = 64;

/// A route's rate limit: its settings, its table and its refusal counter.
pub struct RateLimit {
    config: RateLimitConfig,
    label: String,
    table: Table,
    hasher: RandomState,
    epoch: Instant,
    interval: u64,
    tolerance: u64,
    limited: Arc<AtomicU64>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("route", &self.label)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// The limit of a route labelled `label`; its counter is `limited` (carried over a
    /// reload so `lb_rate_limited_total` never goes back).
    pub fn new(config: RateLimitConfig, label: String, limited: Arc<AtomicU64>) -> RateLimit {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // Validation keeps `count` at most one per nanosecond of `per`: never zero.
        let interval = nanos(config.interval()).max(1);
        let tolerance = interval.saturating_mul(u64::from(config.burst.get() - 1));
        RateLimit {
            table: Table::new(config.max_keys.get()),
            config,
            label,
            hasher: RandomState::new(),
            epoch: Instant::now(),
            interval,
            tolerance,
            limited,
        }
    }

    /// The settings.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The `route` label of `lb_rate_limited_total`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Requests refused so far.
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// The refusal counter, to carry over a reload.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.limited.clone()
    }

    /// Keys tracked now (at most `max_keys`).
    pub fn keys(&self) -> usize {
        self.table.len()
    }

    /// Admits or refuses one request of `key` now; a refusal says how long to wait.
    pub fn check(&self, key: &[u8]) -> Result<(), Duration> {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.check_at(h.finish(), now).map_err(|wait| {
            self.limited.fetch_add(1, Ordering::Relaxed);
            Duration::from_nanos(wait)
        })
    }

    /// The request-path check, once a request's route is known: `Ok` when the request's
    /// key is within the limit, else the `Retry-After` to answer `429 rate-limited` with.
    /// `client` gives the client's address, asked only for `client-ip` keys (and missing
    /// header, cookie or parameter keys).
    pub fn admit(
        &self,
        uri: &Uri,
        view: View<'_>,
        host: &str,
        client: impl FnOnce() -> IpAddr,
    ) -> Result<(), u64> {
        let ip;
        let key = match key::extract(&self.config.key, uri, view, host) {
            Some(k) => k,
            None => {
                ip = IpText::new(client());
                ip.as_bytes()
            }
        };
        self.check(key).map_err(retry_after)
    }

    /// [`check`](Self::check) of a hashed key at `now` (nanoseconds since the epoch).
    fn check_at(&self, hash: u64, now: u64) -> Result<(), u64> {
        self.table.update(hash, now, |tat| {
            let tat = tat.max(now);
            let ahead = tat - now;
            if ahead > self.tolerance {
                Err(ahead - self.tolerance)
            } else {
                Ok(tat.saturating_add(self.interval))
            }
        })
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The `route` label of a route (metrics and the stats page): its host pattern and path
/// prefix (`api.example.com/v1`, `*.example.com`, `*/static`).
pub fn label(host: &HostPattern, path_prefix: Option<&str>) -> String {
    format!("{host}{}", path_prefix.unwrap_or_default())
}

/// Renders `lb_rate_limited_total{route}` for every limited route.
pub fn render<'a>(out: &mut String, limits: impl Iterator<Item = &'a RateLimit>) {
    metrics::header(
        out,
        "lb_rate_limited_total",
        "counter",
        "Requests refused with 429 by a route's rate_limit, by route (host pattern and path prefix).",
    );
    for l in limits {
        metrics::sample(
            out,
            "lb_rate_limited_total",
            &[("route", l.label())],
            l.limited() as f64,
        );
    }
}

/// Keys are SipHash values already: the index uses them as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One key's place: its hash, its `tat`, and whether it came back since it was inserted
/// or the hand last passed.
#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    tat: u64,
    seen: bool,
}

/// At most `cap` keys, each in a fixed slot found through `index`.
struct Shard {
    index: HashMap<u64, u32, BuildHasherDefault<Identity>>,
    slots: Vec<Slot>,
    cap: usize,
    hand: usize,
}

/// Shards aligned apart so two cores locking neighbours do not share a cache line.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

struct Table {
    shards: Box<[Padded]>,
}

impl Table {
    /// A table of `max_keys` (at least 1) entries, allocated now.
    fn new(max_keys: usize) -> Table {
        let max_keys = max_keys.max(1);
        let n = SHARDS.min(max_keys);
        let shards = (0..n)
            .map(|i| {
                // The shares add up to max_keys exactly.
                let cap = max_keys / n + usize::from(i < max_keys % n);
                Padded(Mutex::new(Shard {
                    // Twice the entries: with deletions the index then always rehashes
                    // in place (at most half full) instead of growing.
                    index: HashMap::with_capacity_and_hasher(2 * cap, Default::default()),
                    slots: Vec::with_capacity(cap),
                    cap,
                    hand: 0,
                }))
            })
            .collect();
        Table { shards }
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard> {
        // The high half picks the shard (the index uses the whole hash).
        let i = ((hash >> 32) * self.shards.len() as u64) >> 32;
        let m = &self.shards[i as usize].0;
        // Nothing panics while a shard is held; a poisoned one is still consistent.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the key's `tat` (`now` for a new key) and stores what it returns.
    fn update(
        &self,
        hash: u64,
        now: u64,
        f: impl FnOnce(u64) -> Result<u64, u64>,
    ) -> Result<(), u64> {
        let mut shard = self.shard(hash);
        // A key earns its second chance by coming back: one seen once (a scan of many
        // keys) goes first.
        let (i, again) = match shard.index.get(&hash) {
            Some(&i) => (i as usize, true),
            None => (shard.insert(hash, now), false),
        };
        let slot = &mut shard.slots[i];
        slot.seen |= again;
        slot.tat = f(slot.tat)?;
        Ok(())
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(|p| p.into_inner()).slots.len())
            .sum()
    }
}

impl Shard {
    /// A slot for a new key, taking a forgotten key's when full.
    fn insert(&mut self, hash: u64, now: u64) -> usize {
        let fresh = Slot {
            hash,
            tat: now,
            seen: false,
        };
        let i = if self.slots.len() < self.cap {
            // Within the capacity reserved at creation: no reallocation.
            self.slots.push(fresh);
            self.slots.len() - 1
        } else {
            let i = self.victim(now);
            let old = std::mem::replace(&mut self.slots[i], fresh);
            self.index.remove(&old.hash);
            i
        };
        // `cap` is at most max_keys / shards, far below u32::MAX.
        self.index.insert(hash, i as u32);
        i
    }

    /// The CLOCK hand's choice: the first entry that holds nothing (`tat` past) or was not
    /// seen again since it came or the hand last passed; seen ones are spared once. Ends
    /// within two turns.
    fn victim(&mut self, now: u64) -> usize {
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.cap;
            let s = &mut self.slots[i];
            if !s.seen || s.tat <= now {
                return i;
            }
            s.seen = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_core::config::KeySpec;
    use std::num::{NonZeroU32, NonZeroUsize};

    const SEC: u64 = 1_000_000_000;

    fn limit(count: u32, per_secs: u64, burst: u32, max_keys: usize) -> RateLimit {
        RateLimit::new(
            RateLimitConfig {
                key: KeySpec::ClientIp,
                count: NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN),
                per: Duration::from_secs(per_secs),
                burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
                max_keys: NonZeroUsize::new(max_keys).unwrap_or(NonZeroUsize::MIN),
            },
            "t".into(),
            Arc::default(),
        )
    }

    #[test]
    fn burst_then_rate() {
        let l = limit(10, 1, 5, 100);
        for _ in 0..5 {
            assert_eq!(l.check_at(1, 0), Ok(()));
        }
        // The sixth at once waits one interval (100 ms).
        assert_eq!(l.check_at(1, 0), Err(SEC / 10));
        // Another key is not affected.
        assert_eq!(l.check_at(2, 0), Ok(()));
        // One interval later, one more.
        assert_eq!(l.check_at(1, SEC / 10), Ok(()));
        assert!(l.check_at(1, SEC / 10).is_err());
        // Over 10 s of steady asking, 5 + 100 are admitted.
        let mut admitted = 0;
        let mut t = 2 * SEC;
        let l = limit(10, 1, 5, 100);
        while t <= 12 * SEC {
            if l.check_at(7, t).is_ok() {
                admitted += 1;
            }
            t += SEC / 1000;
        }
        assert_eq!(admitted, 5 + 100);
    }

    #[test]
    fn per_minute_and_retry_after() {
        let l = limit(6, 60, 1, 10);
        assert_eq!(l.check_at(1, 0), Ok(()));
        let wait = l.check_at(1, SEC).err();
        assert_eq!(wait, Some(9 * SEC));
        assert_eq!(retry_after(Duration::from_nanos(9 * SEC)), 9);
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after(Duration::ZERO), 1);
    }

    #[test]
    fn a_million_keys_stay_within_max_keys() {
        let max = 1000;
        let l = limit(1, 1, 1, max);
        let mut peak = 0;
        for k in 0..1_000_000u64 {
            // Every key is refused on its second request, so every entry holds state.
            let h = k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            assert_eq!(l.check_at(h, k), Ok(()));
            if k % 10_000 == 0 {
                peak = peak.max(l.keys());
            }
        }
        assert!(peak <= max, "{peak}");
        assert_eq!(l.keys(), max);
        // A recent key is still remembered: refused.
        let last = 999_999u64.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        assert!(l.check_at(last, 1_000_000).is_err());
    }

    #[test]
    fn recently_seen_keys_survive_a_flood() {
        // 100 keys per shard; 100000 new ones are about 1500 per shard.
        let l = limit(1, 3600, 1, 6400);
        let hot = 42u64 << 32;
        assert_eq!(l.check_at(hot, 0), Ok(()));
        for k in 0..100_000u64 {
            // The hot key keeps asking (and is refused) while new keys pour in.
            assert!(l.check_at(hot, k).is_err(), "hot key forgotten at {k}");
            let _ = l.check_at(k.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, k);
        }
    }

    #[test]
    fn small_tables() {
        for max in [1, 2, 63, 64, 65, 1000] {
            let l = limit(1, 1, 1, max);
            for k in 0..10_000u64 {
                let _ = l.check_at(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), 0);
            }
            assert_eq!(l.keys(), max);
        }
    }
}
