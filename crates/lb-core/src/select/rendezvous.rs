//! `rendezvous`: weighted highest-random-weight (HRW) hashing.
//!
//! # Algorithm
//! Thaler and Ravishankar's rendezvous hashing ("Using Name-Based Mappings to Increase Hit
//! Rates", 1998): every (key, backend) pair gets a pseudo-random score and the key goes
//! to the backend with the highest one. The weighted form (Schindelhauer and Schomaker,
//! "Weighted Distributed Hash Tables", 2005) scores `-w / ln(u)` with
//! `u = (h + ½) / 2⁵² ∈ (0, 1)` from `h = mix64(key_hash ^ id_hash) >> 12`: backend `i`
//! then wins with probability exactly `w_i / Σw`. When every weight is equal the score is
//! monotone in `h`, so the pick compares the 64-bit hashes directly and computes no
//! logarithm at all. Ties (practically impossible) go to the lower index.
//!
//! A score depends only on the key and that backend's id, so removing a backend moves
//! exactly its keys (each to its runner-up) and adding one moves only the keys it now
//! wins — the ideal `1/(n+1)`. No table to build, nothing to tune; the spread is as even
//! as the key hashes (no vnode variance).
//!
//! # Order after the first choice
//! The runners-up by descending score. The iterator allocates nothing: each `next()`
//! rescans all backends for the best score below the previous one.
//!
//! # Cost and when to use it
//! **O(n) per pick** (one `mix64`, plus an `ln` when weights differ, per backend), O(n)
//! again per further candidate. Build is O(n) and memory 12 bytes per backend. Use it for
//! small pools (tens of backends), when minimal disruption must be exact, or when a table
//! per pool is too much memory; use `maglev` or `consistent` for large pools.

use super::{Loads, Node, Params, PickInput, Select};
use crate::hash::mix64;

/// The rendezvous table: id hashes and weights.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    ids: Box<[u64]>,
    weights: Box<[f64]>,
    /// Every weight equal: compare raw hashes.
    uniform: bool,
}

/// The raw 64-bit score hash of `key_hash` against a backend id hash.
#[inline]
pub(crate) fn score_hash(key_hash: u64, id_hash: u64) -> u64 {
    mix64(key_hash ^ id_hash)
}

/// The weighted score `-w / ln(u)` for a score hash.
#[inline]
pub(crate) fn weighted_score(hash: u64, weight: f64) -> f64 {
    // 52 bits so that `k + ½` is exact: u ∈ [2⁻⁵³, 1 − 2⁻⁵³], never 0 or 1.
    let u = ((hash >> 12) as f64 + 0.5) * (1.0 / (1u64 << 52) as f64);
    -weight / u.ln()
}

impl Rendezvous {
    #[inline]
    fn score(&self, key_hash: u64, i: usize) -> Score {
        let h = score_hash(key_hash, self.ids[i]);
        if self.uniform {
            Score::Hash(h)
        } else {
            Score::Weighted(weighted_score(h, self.weights[i]))
        }
    }
}

/// A comparable score (one kind per table).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
enum Score {
    Hash(u64),
    Weighted(f64),
}

impl Select for Rendezvous {
    type Iter<'a, L: Loads + ?Sized + 'a> = RendezvousIter<'a>;

    fn build(nodes: &[Node], _params: &Params) -> Self {
        let uniform = nodes
            .windows(2)
            .all(|w| w[0].weight.max(1) == w[1].weight.max(1));
        Rendezvous {
            ids: nodes.iter().map(|n| n.id_hash).collect(),
            weights: nodes.iter().map(|n| f64::from(n.weight.max(1))).collect(),
            uniform,
        }
    }

    fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        input: PickInput,
        _loads: &'a L,
    ) -> RendezvousIter<'a> {
        RendezvousIter {
            table: self,
            key_hash: input.key_hash,
            prev: None,
            left: self.ids.len(),
        }
    }
}

/// Rendezvous preference order: descending score, lazily.
#[derive(Debug, Clone)]
pub struct RendezvousIter<'a> {
    table: &'a Rendezvous,
    key_hash: u64,
    /// The last yielded (score, index).
    prev: Option<(Score, usize)>,
    left: usize,
}

impl Iterator for RendezvousIter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let t = self.table;
        let mut best: Option<(Score, usize)> = None;
        for i in 0..t.ids.len() {
            let s = t.score(self.key_hash, i);
            // Order: score descending, then index ascending. Keep only those after `prev`.
            if let Some((ps, pi)) = self.prev {
                if s > ps || (s == ps && i <= pi) {
                    continue;
                }
            }
            // Scanning in index order, an equal score never replaces the best.
            if !matches!(best, Some((bs, _)) if s <= bs) {
                best = Some((s, i));
            }
        }
        let (s, i) = best?;
        self.prev = Some((s, i));
        self.left -= 1;
        Some(i)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_score_is_positive_and_monotone() {
        let lo = weighted_score(0, 1.0);
        let hi = weighted_score(u64::MAX, 1.0);
        assert!(lo > 0.0 && hi > lo && hi.is_finite());
        assert!(weighted_score(1 << 40, 2.0) > weighted_score(1 << 40, 1.0));
    }

    #[test]
    fn equal_scores_go_by_index() {
        // Two backends with the same id hash score the same: order by index.
        let nodes = [
            Node {
                id_hash: 9,
                weight: 1,
            },
            Node {
                id_hash: 9,
                weight: 1,
            },
            Node {
                id_hash: 9,
                weight: 2,
            },
        ];
        let t = Rendezvous::build(&nodes[..2], &Params::default());
        let order: Vec<usize> = t
            .candidates(PickInput::default(), &super::super::NoLoads)
            .collect();
        assert_eq!(order, vec![0, 1]);
        let t = Rendezvous::build(&nodes, &Params::default());
        let order: Vec<usize> = t
            .candidates(PickInput::default(), &super::super::NoLoads)
            .collect();
        assert_eq!(order, vec![2, 0, 1]);
    }
}
