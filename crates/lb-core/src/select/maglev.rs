//! `maglev`: Google's Maglev lookup table, O(1) per pick.
//!
//! # Algorithm
//! Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer" (NSDI
//! 2016), §3.4. The table has `M` entries, `M` prime. Every backend derives from its id
//! hash an `offset = mix64(id ^ K₁) mod M` and a `skip = mix64(id ^ K₂) mod (M−1) + 1`,
//! hence a permutation of the entries `(offset + j × skip) mod M`. Backends then take
//! turns, each claiming the next still-empty entry of its own permutation, until the
//! table is full. A key goes to `table[k]` where `k` is its hash scaled into `0..M` (a
//! multiply-shift instead of a division).
//!
//! `M` is the smallest prime at or above `max(maglev_min_table, 100 × n)`, that bound
//! capped at 65537 × 8: with at least 100 entries per backend, each backend's share is
//! within about 1 % of its ideal. Weights: per round a backend adds its weight to a credit
//! and takes a turn each time the credit reaches the largest weight (the heaviest backends
//! take a turn every round), so entry counts are proportional to weights. Entries are
//! `u16` when there are at most 65536 backends (half the cache footprint), else `u32`.
//!
//! Everything derives from the id hashes ([`hash_id`](crate::hash::hash_id), fixed seed)
//! and the node order, so every process builds the same table. Maglev trades a little
//! disruption for its flat spread: removing a backend refills its entries from the
//! others' permutations, but the turn order shifts, so a few keys of *other* backends move
//! as well (measured: 0.2–0.3 % of all keys at 10 backends, on top of the ideal 1/n).
//!
//! # Order after the first choice
//! The following table entries, each backend once; backends that own no entry (only
//! possible with extreme weight ratios) come last. Skipping a backend moves only its keys.
//!
//! # Cost and when to use it
//! O(1) per pick: one table read (the table is 2 bytes per entry: 128 KiB for 65537
//! entries). Build O(M log M), on membership changes only. Use it for large pools and
//! the hottest paths; prefer `consistent` when changes must move no other key at all.

use super::walk::{fastrange, SlotTable, SlotWalk};
use super::{Loads, Node, Params, PickInput, Select};
use crate::hash::mix64;

/// The table size bound's cap (before rounding up to a prime).
const MAX_TABLE: u64 = 65_537 * 8;
const OFFSET_KEY: u64 = 0x6d61_676c_6576_3031; // "maglev01"
const SKIP_KEY: u64 = 0x6d61_676c_6576_3032; // "maglev02"

/// The Maglev lookup table.
#[derive(Debug, Clone)]
pub struct Maglev {
    entries: Entries,
}

#[derive(Debug, Clone)]
enum Entries {
    Narrow(SlotTable<u16>),
    Wide(SlotTable<u32>),
}

fn is_prime(m: u64) -> bool {
    m >= 2
        && (2..).take_while(|d| d * d <= m).all(|d| {
            let rest = m % d;
            rest > 0
        })
}

/// The table size for `nodes` backends.
pub(crate) fn table_size(nodes: usize, params: &Params) -> u64 {
    let mut m = u64::from(params.maglev_min_table)
        .max(100 * nodes as u64)
        .clamp(2, MAX_TABLE);
    while !is_prime(m) {
        m += 1;
    }
    m
}

/// Fills the table: entry → node index.
fn populate(nodes: &[Node], m: u64) -> Vec<u32> {
    const EMPTY: u32 = u32::MAX;
    let mut table = vec![EMPTY; m as usize];
    if nodes.is_empty() {
        return table;
    }
    let weights: Vec<u64> = nodes.iter().map(|n| u64::from(n.weight.max(1))).collect();
    let wmax = weights.iter().copied().max().unwrap_or(1);
    let skip: Vec<u64> = nodes
        .iter()
        .map(|n| mix64(n.id_hash ^ SKIP_KEY) % (m - 1) + 1)
        .collect();
    let mut pos: Vec<u64> = nodes
        .iter()
        .map(|n| mix64(n.id_hash ^ OFFSET_KEY) % m)
        .collect();
    let mut credit = vec![0u64; nodes.len()];
    let mut filled = 0u64;
    loop {
        for i in 0..nodes.len() {
            credit[i] += weights[i];
            if credit[i] < wmax {
                continue;
            }
            credit[i] -= wmax;
            // Every permutation visits every entry, so a free one is found within m steps.
            loop {
                let c = pos[i] as usize;
                pos[i] += skip[i];
                if pos[i] >= m {
                    pos[i] -= m;
                }
                if table[c] == EMPTY {
                    table[c] = i as u32;
                    filled += 1;
                    break;
                }
            }
            if filled == m {
                return table;
            }
        }
    }
}

impl Maglev {
    /// The table size `M`.
    pub fn len(&self) -> usize {
        match &self.entries {
            Entries::Narrow(t) => t.len(),
            Entries::Wide(t) => t.len(),
        }
    }

    /// True for an empty pool's table.
    pub fn is_empty(&self) -> bool {
        match &self.entries {
            Entries::Narrow(t) => t.nodes() == 0,
            Entries::Wide(t) => t.nodes() == 0,
        }
    }

    /// How many entries each node owns.
    pub fn entry_counts(&self) -> Vec<usize> {
        let (nodes, list): (usize, Vec<usize>) = match &self.entries {
            Entries::Narrow(t) => (
                t.nodes(),
                t.slots().iter().map(|&s| usize::from(s)).collect(),
            ),
            Entries::Wide(t) => (t.nodes(), t.slots().iter().map(|&s| s as usize).collect()),
        };
        let mut counts = vec![0; nodes];
        for s in list {
            counts[s] += 1;
        }
        counts
    }
}

impl Select for Maglev {
    type Iter<'a, L: Loads + ?Sized + 'a> = MaglevIter<'a>;

    fn build(nodes: &[Node], params: &Params) -> Self {
        let (m, table) = if nodes.is_empty() {
            (0, Vec::new())
        } else {
            let m = table_size(nodes.len(), params);
            (m, populate(nodes, m))
        };
        debug_assert_eq!(table.len() as u64, m);
        let entries = if nodes.len() <= usize::from(u16::MAX) + 1 {
            Entries::Narrow(SlotTable::new(
                table.into_iter().map(|e| e as u16).collect(),
                nodes.len(),
            ))
        } else {
            Entries::Wide(SlotTable::new(table, nodes.len()))
        };
        Maglev { entries }
    }

    #[inline]
    fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        input: PickInput,
        _loads: &'a L,
    ) -> MaglevIter<'a> {
        match &self.entries {
            Entries::Narrow(t) => {
                MaglevIter::Narrow(t.walk(fastrange(input.key_hash, t.len() as u64) as usize))
            }
            Entries::Wide(t) => {
                MaglevIter::Wide(t.walk(fastrange(input.key_hash, t.len() as u64) as usize))
            }
        }
    }
}

/// Maglev preference order: the following table entries, distinct backends.
#[derive(Debug, Clone)]
pub enum MaglevIter<'a> {
    /// Over `u16` entries.
    Narrow(SlotWalk<'a, u16>),
    /// Over `u32` entries.
    Wide(SlotWalk<'a, u32>),
}

impl Iterator for MaglevIter<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        match self {
            MaglevIter::Narrow(w) => w.next(),
            MaglevIter::Wide(w) => w.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sizes_are_prime_and_bounded() {
        let p = Params::default();
        assert_eq!(table_size(1, &p), 65_537);
        assert_eq!(table_size(1000, &p), 100_003);
        assert!(table_size(100_000, &p) >= MAX_TABLE);
        assert!(is_prime(table_size(100_000, &p)));
        assert_eq!(
            table_size(
                3,
                &Params {
                    maglev_min_table: 7,
                    ..p
                }
            ),
            307
        );
    }

    #[test]
    fn entries_follow_weights() {
        let nodes: Vec<Node> = (1..=4)
            .map(|w| Node {
                id_hash: mix64(w.into()),
                weight: w,
            })
            .collect();
        let t = Maglev::build(&nodes, &Params::default());
        let counts = t.entry_counts();
        let total: usize = counts.iter().sum();
        assert_eq!(total, t.len());
        for (i, c) in counts.iter().enumerate() {
            let ideal = t.len() as f64 * (i + 1) as f64 / 10.0;
            assert!((*c as f64 - ideal).abs() <= 2.0, "node {i}: {c} vs {ideal}");
        }
    }

    #[test]
    fn extreme_weights_leave_no_node_out_of_the_order() {
        // 1000 backends of weight 256 fill the first 256 rounds (M ≈ 110k < 256k entries)
        // before the 100 of weight 1 get a turn: those own no entry, yet every index is
        // yielded once (and indices past 1024 go through the position index).
        let mut nodes: Vec<Node> = (0..1000u64)
            .map(|i| Node {
                id_hash: mix64(i),
                weight: 256,
            })
            .collect();
        nodes.extend((1000..1100u64).map(|i| Node {
            id_hash: mix64(i),
            weight: 1,
        }));
        let t = Maglev::build(
            &nodes,
            &Params {
                maglev_min_table: 7,
                ..Params::default()
            },
        );
        assert_eq!(t.entry_counts().iter().filter(|&&c| c == 0).count(), 100);
        let mut seen = vec![false; nodes.len()];
        for i in t.candidates(
            PickInput {
                key_hash: 5,
                random: 0,
            },
            &super::super::NoLoads,
        ) {
            assert!(!seen[i]);
            seen[i] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
