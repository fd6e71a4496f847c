//! `consistent` (and `consistent-bounded`): a ketama-style hash ring with weighted virtual
//! nodes.
//!
//! Consistent hashing is Karger et al., "Consistent Hashing and Random Trees: Distributed
//! Caching Protocols for Relieving Hot Spots on the World Wide Web" (STOC 1997); *Ketama*
//! (Richard Jones, last.fm, 2007, the ring of libmemcached and most memcached clients)
//! made 160 points per server the common layout, and 160 is the default `vnodes` here.
//! The points are placed by our own hash (below), so placement is not byte-compatible
//! with a ketama client's.
//!
//! # Algorithm
//! Every backend puts `weight × vnodes` points on a 64-bit ring (weights first divided by
//! their gcd, so a pool of equal weights has `vnodes` points per backend whatever the
//! weight value). Point `r` of a backend is `mix64(id_hash ^ mix64(r))` — derived from the
//! backend's id hash ([`hash_id`](crate::hash::hash_id), fixed seed) only, so every process
//! builds the same ring, and a backend's points do not depend on the other backends. A key
//! goes to the owner of the first point at or after `hash_key(key)`, wrapping past the top.
//!
//! Adding a backend takes over only the arcs in front of its own points (about `1/(n+1)` of
//! the keys, all taken from the others); removing one hands its arcs to the following
//! points: exactly its own keys move. Spread: a backend's share has a relative standard
//! deviation of about `1/√(points)`, ≈ 8 % at the default 160 vnodes: with 10 equal
//! backends the busiest one carries on average 1.12 × the mean (only 31 of 100 random id
//! sets stay within 1.10; a unit test measures it). More vnodes narrow it — 1000 give
//! ≈ 3 % and 1.05 × — at the cost of memory and build time; `maglev` and `rendezvous`
//! reach ≈ 1.01 ×. Should the total exceed 2²⁰ points (≈ 16 MiB with the directory),
//! every backend's count is scaled down proportionally (keeping at least one point).
//!
//! The lookup is exact but avoids a cold binary search over the whole ring: a directory
//! indexed by the top bits of the hash (about one bucket per point) gives the few points
//! that can hold the answer.
//!
//! # Order after the first choice
//! The owners of the following points on the ring, each backend once. Skipping a backend
//! therefore moves only its keys (to their next distinct owner), and they come back when
//! it does. `consistent-bounded` walks the same order and skips backends over their load
//! cap (see [`pool`](crate::pool)): Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing
//! with Bounded Loads" (SODA 2018, arXiv:1608.01350).
//!
//! # Cost and when to use it
//! O(1) expected per pick (a directory read and a short scan), 12 bytes per point plus a
//! 4-byte directory slot per point; build O(P log P) for P points. Use it for cache
//! affinity (a key keeps its backend across membership changes) when per-key load is even;
//! `maglev` is faster with a flatter spread but moves a few extra keys on changes,
//! `rendezvous` needs no table but costs O(n) per pick.

use super::walk::{weight_gcd, SlotTable, SlotWalk};
use super::{Loads, Node, Params, PickInput, Select};
use crate::hash::mix64;

/// Ring points at most; beyond, per-backend counts are scaled down.
const MAX_POINTS: u64 = 1 << 20;

/// The ring: sorted points, their owners, and a directory over the points.
#[derive(Debug, Clone)]
pub struct Consistent {
    points: Box<[u64]>,
    owners: SlotTable<u32>,
    /// `dir[k]` = first point whose top bits are `>= k`; `dir.len() = 2^bits + 1`.
    dir: Box<[u32]>,
    shift: u32,
}

/// The ring point `replica` of a backend with this id hash.
#[inline]
pub(crate) fn vnode_point(id_hash: u64, replica: u64) -> u64 {
    mix64(id_hash ^ mix64(replica))
}

impl Consistent {
    /// Number of points on the ring.
    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// Ring index of the first point at or after `key_hash` (0 after the last point).
    #[inline]
    fn locate(&self, key_hash: u64) -> usize {
        let k = (key_hash >> self.shift) as usize;
        let (Some(&lo), Some(&hi)) = (self.dir.get(k), self.dir.get(k + 1)) else {
            return 0;
        };
        let (lo, hi) = (lo as usize, hi as usize);
        let mut i = lo;
        while i < hi && self.points[i] < key_hash {
            i += 1;
        }
        if i == self.points.len() {
            0
        } else {
            i
        }
    }
}

impl Select for Consistent {
    type Iter<'a, L: Loads + ?Sized + 'a> = SlotWalk<'a, u32>;

    fn build(nodes: &[Node], params: &Params) -> Self {
        let g = weight_gcd(nodes.iter().map(|n| n.weight.max(1)));
        let vnodes = u64::from(params.vnodes.max(1));
        let mut counts: Vec<u64> = nodes
            .iter()
            .map(|n| u64::from(n.weight.max(1) / g) * vnodes)
            .collect();
        let total: u64 = counts.iter().sum();
        if total > MAX_POINTS {
            for c in &mut counts {
                *c = (*c * MAX_POINTS / total).max(1);
            }
        }
        let mut ring: Vec<(u64, u32)> = Vec::with_capacity(counts.iter().sum::<u64>() as usize);
        for (i, (n, &c)) in nodes.iter().zip(&counts).enumerate() {
            ring.extend((0..c).map(|r| (vnode_point(n.id_hash, r), i as u32)));
        }
        ring.sort_unstable();
        let points: Box<[u64]> = ring.iter().map(|p| p.0).collect();
        let owners = SlotTable::new(ring.iter().map(|p| p.1).collect(), nodes.len());
        // About one directory bucket per point (at least 2 buckets, at most 2^22).
        let bits = (usize::BITS - points.len().max(2).leading_zeros() - 1).clamp(1, 22);
        let shift = 64 - bits;
        let buckets = 1usize << bits;
        let mut dir = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for k in 0..=buckets {
            while i < points.len() && ((points[i] >> shift) as usize) < k {
                i += 1;
            }
            dir.push(i as u32);
        }
        Consistent {
            points,
            owners,
            dir: dir.into(),
            shift,
        }
    }

    #[inline]
    fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        input: PickInput,
        _loads: &'a L,
    ) -> SlotWalk<'a, u32> {
        self.owners.walk(self.locate(input.key_hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(n: usize, vnodes: u32) -> Consistent {
        let nodes: Vec<Node> = (0..n as u64)
            .map(|i| Node {
                id_hash: mix64(i),
                weight: 1,
            })
            .collect();
        Consistent::build(
            &nodes,
            &Params {
                vnodes,
                ..Params::default()
            },
        )
    }

    proptest! {
        /// The directory lookup equals a plain binary search on the sorted points.
        #[test]
        fn locate_equals_binary_search(n in 1usize..40, vnodes in 1u32..50, keys in proptest::collection::vec(any::<u64>(), 50)) {
            let c = ring(n, vnodes);
            for k in keys.into_iter().chain([0, u64::MAX, c.points[0], c.points[c.points.len() - 1]]) {
                let want = c.points.partition_point(|&p| p < k) % c.points.len();
                prop_assert_eq!(c.locate(k), want);
            }
        }
    }

    #[test]
    fn points_scale_with_weight_over_gcd() {
        let nodes = [
            Node {
                id_hash: 1,
                weight: 4,
            },
            Node {
                id_hash: 2,
                weight: 8,
            },
        ];
        let c = Consistent::build(
            &nodes,
            &Params {
                vnodes: 10,
                ..Params::default()
            },
        );
        assert_eq!(c.points(), 30);
        let equal = [
            Node {
                id_hash: 1,
                weight: 200,
            },
            Node {
                id_hash: 2,
                weight: 200,
            },
        ];
        assert_eq!(Consistent::build(&equal, &Params::default()).points(), 320);
    }

    /// Exact shares (arc lengths) of 10 equal backends, averaged over 100 id sets: the
    /// busiest backend's share over the mean, at the default and at 1000 vnodes.
    #[test]
    fn ring_spread_follows_one_over_sqrt_points() {
        for (vnodes, low, high) in [(160, 1.08, 1.16), (1000, 1.02, 1.07)] {
            let mut sum = 0.0;
            let mut within_10 = 0;
            for set in 0..100u64 {
                let nodes: Vec<Node> = (0..10)
                    .map(|i| Node {
                        id_hash: mix64(set << 32 | i),
                        weight: 1,
                    })
                    .collect();
                let c = Consistent::build(
                    &nodes,
                    &Params {
                        vnodes,
                        ..Params::default()
                    },
                );
                let mut share = [0.0f64; 10];
                let last = c.points[c.points.len() - 1];
                for (i, &p) in c.points.iter().enumerate() {
                    let prev = if i == 0 { last } else { c.points[i - 1] };
                    share[c.owners.slots()[i] as usize] +=
                        p.wrapping_sub(prev) as f64 / 2f64.powi(64);
                }
                let ratio = share.iter().copied().fold(0.0, f64::max) * 10.0;
                sum += ratio;
                if ratio <= 1.10 {
                    within_10 += 1;
                }
            }
            let mean = sum / 100.0;
            println!("{vnodes} vnodes: mean max/mean {mean:.3}, {within_10}/100 sets within 1.10");
            assert!(
                mean > low && mean < high,
                "{vnodes} vnodes: mean max/mean {mean}"
            );
        }
    }

    #[test]
    fn empty_ring_yields_nothing() {
        let c = Consistent::build(&[], &Params::default());
        assert_eq!(
            c.candidates(PickInput::default(), &super::super::NoLoads)
                .next(),
            None
        );
    }
}
