//! `random`: weighted random choice, O(1) per draw.
//!
//! # Algorithm
//! Walker's alias method (Vose's construction, in integers so the probabilities are
//! exact): every backend owns one bucket; a bucket holds a threshold and an alias. A draw
//! takes a uniform bucket `j` and a uniform `u` in `0..total weight`, and answers `j` when
//! `u` is below `j`'s threshold, else `j`'s alias. Each backend is drawn with probability
//! exactly `weight / total weight` (a test sums the buckets). The random word comes from
//! the caller ([`PickInput::random`]; the pool passes a per-thread generator), so tests
//! are reproducible.
//!
//! # Order after the first choice
//! Up to three more weighted draws (distinct from the ones already given; at most eight
//! draws in all), then every remaining backend in index order from a random start. A
//! backend that is down or full therefore sheds its requests to the others in proportion
//! to their weights, not to a fixed neighbour.
//!
//! # Cost and when to use it
//! O(1) per pick, no shared writes at all (unlike round-robin's cursor), no allocation;
//! two words per backend. Random spreads load evenly only on average — with few requests
//! in flight a backend can get a short burst. Use it where a shared cursor is unwanted
//! (many cores, many balancer instances); prefer `least-conn` when request costs vary.

use super::walk::fastrange;
use super::{Loads, Node, Params, PickInput, Select};
use crate::hash::mix64;

/// An alias table for weighted draws (shared with `least-conn`).
#[derive(Debug, Clone, Default)]
pub(crate) struct WeightedDraw {
    /// Per bucket: answer the bucket itself when `u < threshold`, else `alias`.
    threshold: Box<[u64]>,
    alias: Box<[u32]>,
    weights: Box<[u32]>,
    total: u64,
}

impl WeightedDraw {
    pub(crate) fn build(nodes: &[Node]) -> WeightedDraw {
        let n = nodes.len() as u64;
        let weights: Box<[u32]> = nodes.iter().map(|x| x.weight.max(1)).collect();
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        // Scaled masses: bucket capacity is `total`, node i brings `w_i × n`.
        let mut mass: Vec<u64> = weights.iter().map(|&w| u64::from(w) * n).collect();
        let mut threshold = vec![total; nodes.len()];
        let mut alias: Vec<u32> = (0..nodes.len() as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..nodes.len()).partition(|&i| mass[i] < total);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            threshold[s] = mass[s];
            alias[s] = l as u32;
            mass[l] -= total - mass[s];
            if mass[l] < total {
                large.pop();
                small.push(l);
            }
        }
        // Leftovers are full buckets (exact arithmetic leaves none short).
        WeightedDraw {
            threshold: threshold.into(),
            alias: alias.into(),
            weights,
            total,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.alias.len()
    }

    #[inline]
    pub(crate) fn weight(&self, i: usize) -> u32 {
        self.weights[i]
    }

    /// One weighted draw from the random word `r` (`len()` must be > 0).
    #[inline]
    pub(crate) fn sample(&self, r: u64) -> usize {
        let j = fastrange(r, self.alias.len() as u64) as usize;
        let u = fastrange(mix64(r), self.total);
        if u < self.threshold[j] {
            j
        } else {
            self.alias[j] as usize
        }
    }
}

/// Backends yielded from a short inline list, then the rest in index order from a start.
#[derive(Debug, Clone)]
pub(crate) struct Sweep {
    n: usize,
    picked: [u32; 4],
    len: u8,
    start: usize,
    step: usize,
}

impl Sweep {
    pub(crate) fn new(n: usize, start: usize) -> Sweep {
        Sweep {
            n,
            picked: [0; 4],
            len: 0,
            start,
            step: 0,
        }
    }

    #[inline]
    pub(crate) fn picked(&self) -> &[u32] {
        &self.picked[..usize::from(self.len)]
    }

    /// Records `i` as given; false when it already was or the list is full.
    #[inline]
    pub(crate) fn give(&mut self, i: usize) -> bool {
        if usize::from(self.len) == self.picked.len() || self.picked().contains(&(i as u32)) {
            return false;
        }
        self.picked[usize::from(self.len)] = i as u32;
        self.len += 1;
        true
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        usize::from(self.len) == self.picked.len() || usize::from(self.len) >= self.n
    }

    /// The next backend of the sweep not in the list.
    pub(crate) fn next_rest(&mut self) -> Option<usize> {
        while self.step < self.n {
            let mut i = self.start + self.step;
            if i >= self.n {
                i -= self.n;
            }
            self.step += 1;
            if !self.picked().contains(&(i as u32)) {
                return Some(i);
            }
        }
        None
    }
}

/// The weighted-random table.
#[derive(Debug, Clone)]
pub struct Random {
    draw: WeightedDraw,
}

impl Select for Random {
    type Iter<'a, L: Loads + ?Sized + 'a> = RandomIter<'a>;

    fn build(nodes: &[Node], _params: &Params) -> Self {
        Random {
            draw: WeightedDraw::build(nodes),
        }
    }

    fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        input: PickInput,
        _loads: &'a L,
    ) -> RandomIter<'a> {
        let n = self.draw.len();
        let start = fastrange(mix64(input.random ^ 0x5eed_5eed_5eed_5eed), n as u64) as usize;
        RandomIter {
            draw: &self.draw,
            rng: input.random,
            tries: 0,
            sweep: Sweep::new(n, start),
        }
    }
}

/// Random preference order: weighted draws, then a sweep.
#[derive(Debug, Clone)]
pub struct RandomIter<'a> {
    draw: &'a WeightedDraw,
    rng: u64,
    tries: u8,
    sweep: Sweep,
}

impl Iterator for RandomIter<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while !self.sweep.is_full() && self.tries < 8 {
            self.tries += 1;
            let r = self.rng;
            self.rng = mix64(r);
            let i = self.draw.sample(r);
            if self.sweep.give(i) {
                return Some(i);
            }
        }
        self.tries = u8::MAX;
        self.sweep.next_rest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alias table's probabilities, summed exactly: node i gets `w_i × n` of `total × n`.
    #[test]
    fn alias_table_is_exact() {
        for weights in [
            vec![1u32],
            vec![5, 1, 1],
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            vec![256, 1, 3, 256, 7],
        ] {
            let nodes: Vec<Node> = weights
                .iter()
                .map(|&w| Node {
                    id_hash: 0,
                    weight: w,
                })
                .collect();
            let d = WeightedDraw::build(&nodes);
            let n = weights.len() as u64;
            let mut mass = vec![0u64; weights.len()];
            for j in 0..weights.len() {
                mass[j] += d.threshold[j];
                mass[d.alias[j] as usize] += d.total - d.threshold[j];
            }
            for (i, &w) in weights.iter().enumerate() {
                assert_eq!(mass[i], u64::from(w) * n, "weights {weights:?} node {i}");
            }
        }
    }
}
