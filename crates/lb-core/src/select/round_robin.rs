//! `round-robin`: smooth weighted round-robin, nginx's algorithm, precomputed.
//!
//! # Algorithm
//! nginx's smooth weighted round-robin keeps a `current` value per backend; on every pick
//! each `current` grows by its weight, the largest wins (the first in order on a tie) and
//! loses the total weight. For weights 5, 1, 1 that gives `a a b a c a a` — the heavy
//! backend's turns are spread out instead of coming in a burst of five.
//!
//! The sequence depends only on the weights and repeats every `sum(weights)` picks, so it
//! is computed once at build time (weights reduced by their gcd first: scaling every
//! weight by the same factor only repeats the same sequence) and stored as a slot list. A
//! pick is then one `fetch_add(1, Relaxed)` on the table's cursor and one array read.
//!
//! The build does not simulate all `n` counters per turn: backends of equal weight always
//! take their turns in index order (their counters differ only by multiples of the total),
//! so each distinct weight is one rotating queue and a turn compares at most 256 queue
//! heads — O(sum(weights) × distinct weights), exact (a test compares it with the naive
//! simulation).
//!
//! # Order after the first choice
//! The following entries of the sequence, distinct backends. When the caller goes past the
//! first candidate (it was down, draining or full), the cursor is advanced by the extra
//! entries consumed, so the next request continues *after* the turn that was taken: a
//! down backend's turns are spread over the others in sequence order instead of all landing
//! on its successor.
//!
//! # Cost and when to use it
//! O(1) per pick, no allocation; memory one `u32` per sequence entry (at most 256 per
//! backend). The cursor is the only shared write (one cache line bounced between cores).
//! Use it for backends of similar capacity and similar request cost; prefer `least-conn`
//! when request costs vary, and a hashing strategy when a key should stick to a backend.
//! A new table (any membership change) starts at the beginning of its sequence.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::walk::{weight_gcd, SlotTable, SlotWalk};
use super::{Loads, Node, Params, PickInput, Select};

/// The precomputed smooth weighted round-robin sequence and its cursor.
#[derive(Debug)]
pub struct RoundRobin {
    seq: SlotTable<u32>,
    cursor: AtomicUsize,
}

impl RoundRobin {
    /// The precomputed sequence (one cycle).
    pub fn sequence(&self) -> &[u32] {
        self.seq.slots()
    }
}

/// nginx's smooth weighted round-robin sequence for `weights` (each ≥ 1), one full cycle.
pub(crate) fn smooth_sequence(weights: &[u32]) -> Vec<u32> {
    let g = weight_gcd(weights.iter().copied());
    let w: Vec<u64> = weights.iter().map(|&x| u64::from(x / g)).collect();
    let total: u64 = w.iter().sum();
    // One queue per distinct weight, members in index order.
    let mut groups: Vec<(u64, Vec<u32>, u64)> = Vec::new();
    let mut by_weight = std::collections::BTreeMap::new();
    for (i, &wi) in w.iter().enumerate() {
        by_weight.entry(wi).or_insert_with(Vec::new).push(i as u32);
    }
    for (wi, members) in by_weight {
        groups.push((wi, members, 0));
    }
    let mut seq = Vec::with_capacity(total as usize);
    for t in 1..=total {
        let mut best: Option<(i128, u32, usize)> = None;
        for (gi, (wi, members, picks)) in groups.iter().enumerate() {
            let size = members.len() as u64;
            let node = members[(*picks % size) as usize];
            let value =
                i128::from(t) * i128::from(*wi) - i128::from(total) * i128::from(*picks / size);
            let better = match best {
                None => true,
                Some((bv, bn, _)) => value > bv || (value == bv && node < bn),
            };
            if better {
                best = Some((value, node, gi));
            }
        }
        if let Some((_, node, gi)) = best {
            groups[gi].2 += 1;
            seq.push(node);
        }
    }
    seq
}

impl Select for RoundRobin {
    type Iter<'a, L: Loads + ?Sized + 'a> = RoundRobinIter<'a>;

    fn build(nodes: &[Node], _params: &Params) -> Self {
        let weights: Vec<u32> = nodes.iter().map(|n| n.weight.max(1)).collect();
        RoundRobin {
            seq: SlotTable::new(smooth_sequence(&weights), nodes.len()),
            cursor: AtomicUsize::new(0),
        }
    }

    fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        _input: PickInput,
        _loads: &'a L,
    ) -> RoundRobinIter<'a> {
        let len = self.seq.len();
        let start = if len == 0 {
            0
        } else {
            self.cursor.fetch_add(1, Ordering::Relaxed) % len
        };
        RoundRobinIter {
            walk: self.seq.walk(start),
            cursor: &self.cursor,
            first: true,
        }
    }
}

/// Round-robin preference order: the sequence from the cursor, distinct backends.
#[derive(Debug)]
pub struct RoundRobinIter<'a> {
    walk: SlotWalk<'a, u32>,
    cursor: &'a AtomicUsize,
    first: bool,
}

impl Iterator for RoundRobinIter<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.first {
            self.first = false;
            return self.walk.next();
        }
        let before = self.walk.steps();
        let next = self.walk.next();
        let used = self.walk.steps() - before;
        if used > 0 {
            // The turns consumed here are skipped by the next request.
            self.cursor.fetch_add(used, Ordering::Relaxed);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// nginx's loop, literally.
    fn naive(weights: &[u32]) -> Vec<u32> {
        let g = weight_gcd(weights.iter().copied());
        let w: Vec<i64> = weights.iter().map(|&x| i64::from(x / g)).collect();
        let total: i64 = w.iter().sum();
        let mut current = vec![0i64; w.len()];
        let mut out = Vec::new();
        for _ in 0..total {
            let mut best = 0;
            for i in 0..w.len() {
                current[i] += w[i];
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            out.push(best as u32);
        }
        out
    }

    #[test]
    fn nginx_pattern_5_1_1() {
        assert_eq!(smooth_sequence(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_sequence(&[10, 2, 2]), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    proptest! {
        #[test]
        fn grouped_build_equals_naive(weights in proptest::collection::vec(1u32..=12, 1..20)) {
            prop_assert_eq!(smooth_sequence(&weights), naive(&weights));
        }
    }
}
