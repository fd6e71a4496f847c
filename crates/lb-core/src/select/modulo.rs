//! `modulo`: `hash(key) mod n` — kept as the documented bad example.
//!
//! Placement is deterministic and perfectly even for equal weights, but adding or removing
//! one of `n` backends moves about `(n-1)/n` of all keys (a test shows it), which empties
//! every backend's cache at once. Weights are honoured by repeating a node `weight` times
//! in the slot list. The fallback order is the following slots, distinct nodes.
//!
//! Cost: O(1) per pick (one division); build O(total weight).

use super::walk::{SlotTable, SlotWalk};
use super::{Loads, Node, Params, PickInput, Select};

/// The modulo table: one slot per unit of weight, in node order.
#[derive(Debug, Clone)]
pub struct Modulo {
    slots: SlotTable<u32>,
}

impl Select for Modulo {
    type Iter<'a, L: Loads + ?Sized + 'a> = SlotWalk<'a, u32>;

    fn build(nodes: &[Node], _params: &Params) -> Self {
        let mut slots = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            for _ in 0..n.weight.max(1) {
                slots.push(i as u32);
            }
        }
        Modulo {
            slots: SlotTable::new(slots, nodes.len()),
        }
    }

    fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        input: PickInput,
        _loads: &'a L,
    ) -> SlotWalk<'a, u32> {
        let len = self.slots.len();
        let start = if len == 0 {
            0
        } else {
            (input.key_hash % len as u64) as usize
        };
        self.slots.walk(start)
    }
}
