//! Selection strategies: from a key (or none) to backends in preference order.
//!
//! Every strategy implements [`Select`]: it is *built* once per membership change, off the
//! request path, from the placement [`Node`]s (a stable id hash and a weight per backend),
//! and then answers [`Select::candidates`]: an iterator over node indices in preference
//! order. The iterator yields every node exactly once, so a caller skips down, draining or
//! full backends and retries on the next one deterministically; it never allocates.
//!
//! | strategy | first choice | order after the first | key-stable |
//! |---|---|---|---|
//! | [`RoundRobin`] | smooth weighted round-robin (nginx's sequence) | the following entries of the sequence (skipped turns are consumed) | no |
//! | [`Random`] | weighted random | more weighted draws, then the rest from a random start | no |
//! | [`LeastConn`] | fewer active requests per weight of two weighted random choices | the other choice, then the rest from a random start | no |
//! | [`Modulo`] | `hash(key) mod n` | `(hash + i) mod n` | yes, but most keys move on any change |
//! | [`Consistent`] | first ring point at or after `hash(key)` | the ring's successors, distinct backends | yes |
//! | [`Rendezvous`] | highest weighted score `-w / ln(h(key, id))` | the runners-up by score | yes |
//! | [`Maglev`] | `table[hash(key) scaled to 0..M]` | the next distinct table entries | yes |
//! | [`Consistent`] with `bound` | like `consistent`, skipping backends over their load cap | ring successors | load-dependent |
//! | [`ConsistentNginx`] | nginx's `hash $key consistent`: first CRC-32 point at or after `crc32(key)` | the ring's successors, distinct backends | yes |
//!
//! Because the fallback order depends only on the key and the membership, skipping an
//! unavailable backend moves only that backend's keys, and they come back when it does.
//! Each strategy's module ([`consistent`], [`maglev`], [`rendezvous`], ...) explains its
//! algorithm, what moves on a change, its cost and when to use it.
//!
//! ## What moves when a backend leaves
//! A *down* backend (health, drain, ejection) changes no table: its keys take their next
//! choice in the order above and come back when it does. A *removed* backend changes the
//! membership, and the table is rebuilt:
//!
//! - [`Consistent`] (Karger et al., "Consistent Hashing and Random Trees", STOC 1997, laid
//!   out as the *Ketama* ring of libmemcached: 160 points per backend): exactly the
//!   removed backend's keys move, each to the next point's owner. Adding a backend takes
//!   about `1/(n+1)` of the keys, only from the others.
//! - [`Rendezvous`] (Thaler and Ravishankar, "Using Name-Based Mappings to Increase Hit
//!   Rates", IEEE/ACM ToN 1998): exactly the removed backend's keys move, each to its
//!   runner-up; the spread is as even as the hash, but a pick costs O(n).
//! - [`Maglev`] (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//!   Balancer", NSDI 2016): the removed backend's keys move, plus a few tenths of a
//!   percent of the others' (the table is refilled in turns); in exchange a pick is one
//!   table read and the spread is within about 1 %.
//! - `consistent-bounded` (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with
//!   Bounded Loads", SODA 2018, arXiv:1608.01350): the ring of [`Consistent`], but a
//!   backend above `bound ×` its fair share of the requests in flight is skipped, so a hot
//!   key spills over to the next backend on the ring instead of overloading one.
//! - [`Modulo`]: about `(n-1)/n` of all keys move. Kept as the counter-example.
//!
//! ```
//! use lb_core::hash::{hash_id, hash_key};
//! use lb_core::select::{Node, NoLoads, Params, PickInput, StrategyKind, Table};
//!
//! /// The id each key is placed on, for a list of backend ids.
//! fn place(kind: StrategyKind, ids: &[&str], keys: &[String]) -> Vec<String> {
//!     let nodes: Vec<Node> = ids.iter().map(|id| Node { id_hash: hash_id(id), weight: 1 }).collect();
//!     let table = Table::build(kind, &nodes, &Params::default());
//!     keys.iter()
//!         .map(|k| {
//!             let input = PickInput { key_hash: hash_key(k.as_bytes()), random: 0 };
//!             ids[table.candidates(input, &NoLoads).next().unwrap()].to_string()
//!         })
//!         .collect()
//! }
//!
//! let keys: Vec<String> = (0..10_000).map(|i| format!("key:{i}")).collect();
//! let before = ["a", "b", "c", "d", "e"];
//! let after = ["a", "b", "d", "e"]; // "c" leaves
//! for kind in [StrategyKind::Consistent, StrategyKind::Rendezvous, StrategyKind::Maglev, StrategyKind::Modulo] {
//!     let (old, new) = (place(kind, &before, &keys), place(kind, &after, &keys));
//!     let moved = old.iter().zip(&new).filter(|(o, n)| o != n).count();
//!     let others = old.iter().zip(&new).filter(|(o, n)| o != n && *o != "c").count();
//!     match kind {
//!         // Exactly c's keys (about a fifth) move, and nothing else.
//!         StrategyKind::Consistent | StrategyKind::Rendezvous => assert_eq!(others, 0),
//!         // c's keys, plus a few of the others'.
//!         StrategyKind::Maglev => assert!(others * 100 < keys.len()),
//!         // Most keys move.
//!         _ => assert!(moved * 2 > keys.len()),
//!     }
//! }
//! ```
//!
//! Costs per pick: O(1) for all but [`Rendezvous`] (O(n)) and [`ConsistentNginx`]
//! (O(log points)); no strategy allocates or locks
//! on a pick (round-robin's cursor is one relaxed `fetch_add`). Every hash derives from
//! [`hash`](crate::hash)'s fixed seed and fixed `mix64` constants documented in each
//! module, so placement is identical across processes and restarts; `consistent-nginx`
//! alone hashes with nginx's CRC-32 instead ([`StrategyKind::hash_key`],
//! [`StrategyKind::hash_id`]). Node indices below
//! [`Seen::INLINE`] are deduplicated in an inline bitset; for larger pools the tables keep
//! a per-node position index (see `walk.rs`), so pools of any size work without allocating.
//!
//! ```
//! use lb_core::hash::{hash_id, hash_key};
//! use lb_core::select::{Node, NoLoads, Params, PickInput, StrategyKind, Table};
//!
//! let nodes: Vec<Node> = ["a:80", "b:80", "c:80"]
//!     .iter()
//!     .map(|id| Node { id_hash: hash_id(id), weight: 1 })
//!     .collect();
//! let table = Table::build(StrategyKind::Maglev, &nodes, &Params::default());
//! let input = PickInput { key_hash: hash_key(b"user:42"), random: 0 };
//! let order: Vec<usize> = table.candidates(input, &NoLoads).collect();
//! // Every backend once, in preference order; the same order in every process.
//! assert_eq!(order.len(), 3);
//! assert_eq!(order, table.candidates(input, &NoLoads).collect::<Vec<_>>());
//! ```

pub mod consistent;
mod consistent_nginx;
pub mod least_conn;
pub mod maglev;
pub mod modulo;
pub mod random;
pub mod rendezvous;
pub mod round_robin;
mod walk;

pub use consistent::Consistent;
pub use consistent_nginx::{
    nginx_id_hash, nginx_key_hash, nginx_points, ConsistentNginx, NGINX_POINTS_PER_WEIGHT,
};
pub use least_conn::LeastConn;
pub use maglev::Maglev;
pub use modulo::Modulo;
pub use random::Random;
pub use rendezvous::Rendezvous;
pub use round_robin::RoundRobin;

use std::fmt;
use std::str::FromStr;

/// One backend as a strategy sees it: its placement identity and weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    /// [`StrategyKind::hash_id`] of the backend's id (`hash::hash_id(id)` for every
    /// strategy but `consistent-nginx`): placement follows the id, not the address.
    pub id_hash: u64,
    /// Weight, 1..=256. Weight-0 (draining) backends are never passed to a build.
    pub weight: u32,
}

/// Per-pick input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PickInput {
    /// [`StrategyKind::hash_key`] of the key (`hash::hash_key(key)` for every strategy but
    /// `consistent-nginx`); ignored by round-robin, random and least-conn.
    pub key_hash: u64,
    /// A random word; used by random and least-conn (tests pass a fixed value).
    pub random: u64,
}

/// Live load per node index, read by load-aware strategies (least-conn).
pub trait Loads {
    /// Active requests or connections on node `index`.
    fn active(&self, index: usize) -> u64;
}

/// No load information (every node idle): for offline tools and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLoads;

impl Loads for NoLoads {
    fn active(&self, _index: usize) -> u64 {
        0
    }
}

impl Loads for [u64] {
    fn active(&self, index: usize) -> u64 {
        self.get(index).copied().unwrap_or(0)
    }
}

/// Build-time parameters of the strategies.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Params {
    /// Ring points per unit of weight (`consistent`, `consistent-bounded`). Default 160.
    /// `consistent-nginx` always uses nginx's 160.
    pub vnodes: u32,
    /// Maglev table size lower bound; the table is the next prime at or above
    /// `max(minimum_table, 100 × total nodes)`, capped at 65537 × 8. Default 65537.
    pub maglev_min_table: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            vnodes: 160,
            maglev_min_table: 65_537,
        }
    }
}

impl Params {
    /// These parameters with `vnodes` ring points per unit of weight.
    pub fn with_vnodes(mut self, vnodes: u32) -> Params {
        self.vnodes = vnodes;
        self
    }

    /// These parameters with a Maglev table of at least `entries` entries.
    pub fn with_maglev_min_table(mut self, entries: u32) -> Params {
        self.maglev_min_table = entries;
        self
    }
}

/// The selection contract every strategy implements.
pub trait Select: Send + Sync + Sized {
    /// The preference-order iterator.
    type Iter<'a, L: Loads + ?Sized + 'a>: Iterator<Item = usize>
    where
        Self: 'a;

    /// Builds the lookup structure. `nodes` may be empty (then `candidates` yields nothing).
    fn build(nodes: &[Node], params: &Params) -> Self;

    /// Node indices in preference order: each index in `0..nodes.len()` exactly once.
    fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        input: PickInput,
        loads: &'a L,
    ) -> Self::Iter<'a, L>;
}

/// Strategy names of the config (`strategy = "..."`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrategyKind {
    /// `round-robin`: smooth weighted round-robin.
    RoundRobin,
    /// `random`: weighted random.
    Random,
    /// `least-conn`: power of two random choices over active counts.
    LeastConn,
    /// `modulo`: `hash(key) mod n`. The documented bad example: most keys move on any change.
    Modulo,
    /// `consistent`: ketama-style ring with weighted virtual nodes.
    Consistent,
    /// `rendezvous`: weighted highest-random-weight. O(n) per pick.
    Rendezvous,
    /// `maglev`: Maglev lookup table, O(1) per pick.
    Maglev,
    /// `consistent-bounded`: consistent hashing with bounded loads.
    ConsistentBounded,
    /// `consistent-nginx`: nginx's `hash $key consistent` ring, placement for placement.
    ConsistentNginx,
}

impl StrategyKind {
    /// Every strategy, in documentation order.
    pub const ALL: [StrategyKind; 9] = [
        StrategyKind::RoundRobin,
        StrategyKind::Random,
        StrategyKind::LeastConn,
        StrategyKind::Modulo,
        StrategyKind::Consistent,
        StrategyKind::Rendezvous,
        StrategyKind::Maglev,
        StrategyKind::ConsistentBounded,
        StrategyKind::ConsistentNginx,
    ];

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::RoundRobin => "round-robin",
            StrategyKind::Random => "random",
            StrategyKind::LeastConn => "least-conn",
            StrategyKind::Modulo => "modulo",
            StrategyKind::Consistent => "consistent",
            StrategyKind::Rendezvous => "rendezvous",
            StrategyKind::Maglev => "maglev",
            StrategyKind::ConsistentBounded => "consistent-bounded",
            StrategyKind::ConsistentNginx => "consistent-nginx",
        }
    }

    /// The key hash this strategy places by: CRC-32 of the key for `consistent-nginx`
    /// (as nginx), [`hash_key`](crate::hash::hash_key) for the others.
    #[inline]
    pub fn hash_key(self, key: &[u8]) -> u64 {
        match self {
            StrategyKind::ConsistentNginx => nginx_key_hash(key),
            _ => crate::hash::hash_key(key),
        }
    }

    /// A backend's [`Node::id_hash`] for this strategy: [`nginx_id_hash`] for
    /// `consistent-nginx`, [`hash_id`](crate::hash::hash_id) for the others.
    pub fn hash_id(self, id: &str) -> u64 {
        match self {
            StrategyKind::ConsistentNginx => nginx_id_hash(id),
            _ => crate::hash::hash_id(id),
        }
    }

    /// True for strategies whose placement depends only on key and membership.
    pub fn is_deterministic(self) -> bool {
        matches!(
            self,
            StrategyKind::Modulo
                | StrategyKind::Consistent
                | StrategyKind::Rendezvous
                | StrategyKind::Maglev
                | StrategyKind::ConsistentNginx
        )
    }

    /// True for strategies that hash a key (including `consistent-bounded`).
    pub fn uses_key(self) -> bool {
        self.is_deterministic() || self == StrategyKind::ConsistentBounded
    }

    /// True where slow start applies (round-robin, random, least-conn).
    pub fn supports_slow_start(self) -> bool {
        !self.uses_key()
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown strategy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy {0:?}: expected one of round-robin, random, least-conn, modulo, consistent, rendezvous, maglev, consistent-bounded, consistent-nginx")]
pub struct UnknownStrategy(pub String);

impl FromStr for StrategyKind {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StrategyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownStrategy(s.to_owned()))
    }
}

/// A built strategy of any kind: static dispatch over the tables.
#[derive(Debug)]
pub enum Table {
    /// See [`RoundRobin`].
    RoundRobin(RoundRobin),
    /// See [`Random`].
    Random(Random),
    /// See [`LeastConn`].
    LeastConn(LeastConn),
    /// See [`Modulo`].
    Modulo(Modulo),
    /// See [`Consistent`] (also used by `consistent-bounded`).
    Consistent(Consistent),
    /// See [`Rendezvous`].
    Rendezvous(Rendezvous),
    /// See [`Maglev`].
    Maglev(Maglev),
    /// See [`ConsistentNginx`].
    ConsistentNginx(ConsistentNginx),
}

impl Table {
    /// Builds the table for `kind` over `nodes`.
    pub fn build(kind: StrategyKind, nodes: &[Node], params: &Params) -> Table {
        match kind {
            StrategyKind::RoundRobin => Table::RoundRobin(RoundRobin::build(nodes, params)),
            StrategyKind::Random => Table::Random(Random::build(nodes, params)),
            StrategyKind::LeastConn => Table::LeastConn(LeastConn::build(nodes, params)),
            StrategyKind::Modulo => Table::Modulo(Modulo::build(nodes, params)),
            StrategyKind::Consistent | StrategyKind::ConsistentBounded => {
                Table::Consistent(Consistent::build(nodes, params))
            }
            StrategyKind::Rendezvous => Table::Rendezvous(Rendezvous::build(nodes, params)),
            StrategyKind::Maglev => Table::Maglev(Maglev::build(nodes, params)),
            StrategyKind::ConsistentNginx => {
                Table::ConsistentNginx(ConsistentNginx::build(nodes, params))
            }
        }
    }

    /// Node indices in preference order (see [`Select::candidates`]).
    pub fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        input: PickInput,
        loads: &'a L,
    ) -> Candidates<'a, L> {
        match self {
            Table::RoundRobin(t) => Candidates::RoundRobin(t.candidates(input, loads)),
            Table::Random(t) => Candidates::Random(t.candidates(input, loads)),
            Table::LeastConn(t) => Candidates::LeastConn(t.candidates(input, loads)),
            Table::Modulo(t) => Candidates::Modulo(t.candidates(input, loads)),
            Table::Consistent(t) => Candidates::Consistent(t.candidates(input, loads)),
            Table::Rendezvous(t) => Candidates::Rendezvous(t.candidates(input, loads)),
            Table::Maglev(t) => Candidates::Maglev(t.candidates(input, loads)),
            Table::ConsistentNginx(t) => Candidates::ConsistentNginx(t.candidates(input, loads)),
        }
    }
}

/// The preference-order iterator of a [`Table`].
pub enum Candidates<'a, L: Loads + ?Sized + 'a> {
    /// Round-robin order.
    RoundRobin(<RoundRobin as Select>::Iter<'a, L>),
    /// Random order.
    Random(<Random as Select>::Iter<'a, L>),
    /// Least-conn order.
    LeastConn(<LeastConn as Select>::Iter<'a, L>),
    /// Modulo order.
    Modulo(<Modulo as Select>::Iter<'a, L>),
    /// Ring order.
    Consistent(<Consistent as Select>::Iter<'a, L>),
    /// Score order.
    Rendezvous(<Rendezvous as Select>::Iter<'a, L>),
    /// Table order.
    Maglev(<Maglev as Select>::Iter<'a, L>),
    /// nginx's ring order.
    ConsistentNginx(<ConsistentNginx as Select>::Iter<'a, L>),
}

impl<'a, L: Loads + ?Sized + 'a> Iterator for Candidates<'a, L> {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        match self {
            Candidates::RoundRobin(i) => i.next(),
            Candidates::Random(i) => i.next(),
            Candidates::LeastConn(i) => i.next(),
            Candidates::Modulo(i) => i.next(),
            Candidates::Consistent(i) => i.next(),
            Candidates::Rendezvous(i) => i.next(),
            Candidates::Maglev(i) => i.next(),
            Candidates::ConsistentNginx(i) => i.next(),
        }
    }
}

/// A fixed-capacity "seen" set for iterators that walk a structure with repeats (ring
/// points, table entries): an inline bitset for the first 1024 node indices, so the common
/// case never allocates; larger indices fall back to the caller's own re-walk check.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    bits: [u64; 16],
    count: usize,
}

impl Seen {
    /// Indices below this are tracked inline.
    pub const INLINE: usize = 1024;

    /// Marks `i`; returns false if it was already marked. `None` when `i` is too large to
    /// track inline (the caller must decide by other means).
    #[inline]
    pub fn insert(&mut self, i: usize) -> Option<bool> {
        if i >= Self::INLINE {
            return None;
        }
        let (w, b) = (i / 64, i % 64);
        let fresh = self.bits[w] & (1 << b) == 0;
        self.bits[w] |= 1 << b;
        if fresh {
            self.count += 1;
        }
        Some(fresh)
    }

    /// How many distinct indices were marked inline.
    pub fn count(&self) -> usize {
        self.count
    }
}
