//! `least-conn`: the power of two random choices over active requests per weight.
//!
//! # Algorithm
//! Finding the globally least-loaded backend needs a scan (or a shared heap and a lock)
//! on every request, and every balancer instance with the same stale view herds onto the
//! same backend. Mitzenmacher's *power of two choices* ("The Power of Two Choices in
//! Randomized Load Balancing", 2001) instead draws two backends at random and takes the
//! less loaded one: the maximum load drops exponentially compared with one random choice,
//! at the cost of two reads. Here both draws are weighted ([`Random`](super::Random)'s
//! alias table) and distinct when there are at least two backends (a draw that repeats
//! the first is retried twice, then the second is uniform among the others), and "load"
//! is `active / weight`, compared exactly as `active_a × weight_b` vs
//! `active_b × weight_a`. On a tie the first draw wins, so an idle pool is weighted random.
//!
//! # Order after the first choice
//! The other of the two draws, then every remaining backend in index order from a random
//! start.
//!
//! # Cost and when to use it
//! O(1) per pick: two draws and two relaxed atomic loads, no allocation, no shared writes.
//! Use it when request costs vary (long polls, uploads, slow queries) so that a backend
//! stuck with slow requests gets fewer new ones; this is tower's `p2c` balancer's choice.
//! It is not key-stable: use a hashing strategy for cache affinity.

use super::random::{Sweep, WeightedDraw};
use super::walk::fastrange;
use super::{Loads, Node, Params, PickInput, Select};
use crate::hash::mix64;

/// The least-conn table: weighted draws; loads are read at pick time.
#[derive(Debug, Clone)]
pub struct LeastConn {
    draw: WeightedDraw,
}

impl Select for LeastConn {
    type Iter<'a, L: Loads + ?Sized + 'a> = LeastConnIter;

    fn build(nodes: &[Node], _params: &Params) -> Self {
        LeastConn {
            draw: WeightedDraw::build(nodes),
        }
    }

    fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        input: PickInput,
        loads: &'a L,
    ) -> LeastConnIter {
        let d = &self.draw;
        let n = d.len();
        let mut r = input.random;
        let start = fastrange(mix64(r ^ 0x1ea5_7c00_1ea5_7c00), n as u64) as usize;
        let mut sweep = Sweep::new(n, start);
        if n == 0 {
            return LeastConnIter { sweep, next: 0 };
        }
        let a = d.sample(r);
        let mut b = a;
        for _ in 0..3 {
            r = mix64(r);
            b = d.sample(r);
            if b != a {
                break;
            }
        }
        if b == a && n > 1 {
            b = (a + 1 + fastrange(mix64(r), n as u64 - 1) as usize) % n;
        }
        // Lower active/weight first; the first draw wins ties.
        let la = u128::from(loads.active(a)) * u128::from(d.weight(b));
        let lb = u128::from(loads.active(b)) * u128::from(d.weight(a));
        let (first, second) = if lb < la { (b, a) } else { (a, b) };
        sweep.give(first);
        sweep.give(second);
        LeastConnIter { sweep, next: 0 }
    }
}

/// Least-conn preference order: the better of two, the other, then a sweep.
#[derive(Debug, Clone)]
pub struct LeastConnIter {
    sweep: Sweep,
    next: usize,
}

impl Iterator for LeastConnIter {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if let Some(&i) = self.sweep.picked().get(self.next) {
            self.next += 1;
            return Some(i as usize);
        }
        self.sweep.next_rest()
    }
}
