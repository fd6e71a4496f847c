//! `modulo`: `hash(key) mod n` — kept as the documented bad example.
//!
//! Placement is deterministic and perfectly even for equal weights, but adding or removing
//! one of `n` backends moves about `(n-1)/n` of all keys (a test shows it), which empties
//! every backend's cache at once. Weights are honoured by repeating a node `weight` times
//! in the slot list. The fallback order is the following slots, distinct nodes.

use super::{Loads, Node, Params, PickInput, Seen, Select};

/// The modulo table: one slot per unit of weight, in node order.
#[derive(Debug, Clone)]
pub struct Modulo {
    slots: Box<[u32]>,
    nodes: usize,
}

impl Select for Modulo {
    type Iter<'a, L: Loads + ?Sized + 'a> = SlotWalk<'a>;

    fn build(nodes: &[Node], _params: &Params) -> Self {
        let mut slots = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            for _ in 0..n.weight {
                slots.push(i as u32);
            }
        }
        Modulo {
            slots: slots.into(),
            nodes: nodes.len(),
        }
    }

    fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        input: PickInput,
        _loads: &'a L,
    ) -> SlotWalk<'a> {
        let start = if self.slots.is_empty() {
            0
        } else {
            (input.key_hash % self.slots.len() as u64) as usize
        };
        SlotWalk::new(&self.slots, start, self.nodes)
    }
}

/// Walks a slot list from `start`, wrapping, yielding each node once.
#[derive(Debug, Clone)]
pub struct SlotWalk<'a> {
    slots: &'a [u32],
    pos: usize,
    steps: usize,
    nodes: usize,
    yielded: usize,
    seen: Seen,
}

impl<'a> SlotWalk<'a> {
    /// A walk over `slots` starting at `start`, for `nodes` distinct nodes.
    pub fn new(slots: &'a [u32], start: usize, nodes: usize) -> Self {
        SlotWalk {
            slots,
            pos: start,
            steps: 0,
            nodes,
            yielded: 0,
            seen: Seen::default(),
        }
    }

    /// True when `node` occurs in the slots already walked (used past the inline set).
    fn walked(&self, node: u32) -> bool {
        let len = self.slots.len();
        let start = (self.pos + len - self.steps % len) % len;
        (0..self.steps - 1).any(|k| self.slots[(start + k) % len] == node)
    }
}

impl Iterator for SlotWalk<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let len = self.slots.len();
        while self.yielded < self.nodes && self.steps < len {
            let node = self.slots[self.pos];
            self.pos = (self.pos + 1) % len;
            self.steps += 1;
            let fresh = match self.seen.insert(node as usize) {
                Some(f) => f,
                None => !self.walked(node),
            };
            if fresh {
                self.yielded += 1;
                return Some(node as usize);
            }
        }
        None
    }
}
