//! Shared machinery of the strategies that walk a precomputed slot list (modulo,
//! round-robin, the consistent ring, the Maglev table).
//!
//! A [`SlotTable`] is a list of node indices in which a node may occur many times (ring
//! points, table entries, sequence turns). [`SlotWalk`] walks it from a start position,
//! wrapping around, and yields each node the first time it is met, so the preference order
//! is "the following slots, distinct nodes", every node exactly once.
//!
//! Deduplication never allocates: node indices below [`Seen::INLINE`] are tracked in the
//! walk's inline bitset; for larger indices (pools of more than 1024 backends) the table
//! keeps, built off the request path, the sorted positions at which each such node occurs,
//! and a node is fresh exactly when its first occurrence at or after the walk's start
//! (circularly) is the current position — a binary search instead of a re-walk. Nodes that
//! never occur in the slots (possible in a Maglev table with extreme weights) are yielded
//! last, in index order, so the "every index exactly once" contract always holds.

use super::Seen;

/// A slot entry: a node index stored narrow (`u16` for small tables, `u32`).
pub trait Slot: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// The node index.
    fn node(self) -> usize;
}

impl Slot for u16 {
    #[inline]
    fn node(self) -> usize {
        usize::from(self)
    }
}

impl Slot for u32 {
    #[inline]
    fn node(self) -> usize {
        self as usize
    }
}

/// A slot list plus what a walk needs to deduplicate without allocating.
#[derive(Debug, Clone)]
pub(crate) struct SlotTable<T> {
    slots: Box<[T]>,
    nodes: usize,
    /// For node `Seen::INLINE + k`: its positions are `positions[starts[k]..starts[k + 1]]`.
    starts: Box<[u32]>,
    positions: Box<[u32]>,
    /// Nodes that occur nowhere in `slots`, ascending.
    absent: Box<[u32]>,
}

impl<T: Slot> SlotTable<T> {
    /// Wraps `slots` (every entry `< nodes`) for `nodes` distinct nodes.
    pub(crate) fn new(slots: Vec<T>, nodes: usize) -> SlotTable<T> {
        let mut count = vec![0u32; nodes];
        for s in &slots {
            if let Some(c) = count.get_mut(s.node()) {
                *c += 1;
            }
        }
        let absent = (0..nodes)
            .filter(|&i| count[i] == 0)
            .map(|i| i as u32)
            .collect();
        let (starts, positions) = if nodes > Seen::INLINE {
            let big = nodes - Seen::INLINE;
            let mut starts = vec![0u32; big + 1];
            for k in 0..big {
                starts[k + 1] = starts[k] + count[Seen::INLINE + k];
            }
            let mut fill = starts.clone();
            let mut positions = vec![0u32; starts[big] as usize];
            for (p, s) in slots.iter().enumerate() {
                let n = s.node();
                if n >= Seen::INLINE && n < nodes {
                    let f = &mut fill[n - Seen::INLINE];
                    positions[*f as usize] = p as u32;
                    *f += 1;
                }
            }
            (starts.into(), positions.into())
        } else {
            (Box::default(), Box::default())
        };
        SlotTable {
            slots: slots.into(),
            nodes,
            starts,
            positions,
            absent,
        }
    }

    /// The slots.
    #[inline]
    pub(crate) fn slots(&self) -> &[T] {
        &self.slots
    }

    /// Number of slots.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Number of distinct nodes the walk yields.
    #[inline]
    pub(crate) fn nodes(&self) -> usize {
        self.nodes
    }

    /// A walk from slot `start` (must be `< len()`, or 0 for an empty table).
    #[inline]
    pub(crate) fn walk(&self, start: usize) -> SlotWalk<'_, T> {
        SlotWalk {
            table: self,
            start,
            pos: start,
            steps: 0,
            yielded: 0,
            absent_next: 0,
            seen: Seen::default(),
        }
    }

    /// The first position at or after `start`, circularly, where big node `node` occurs.
    fn first_from(&self, node: usize, start: usize) -> Option<usize> {
        let k = node.checked_sub(Seen::INLINE)?;
        let lo = *self.starts.get(k)? as usize;
        let hi = *self.starts.get(k + 1)? as usize;
        let list = self.positions.get(lo..hi)?;
        let at = list.partition_point(|&p| (p as usize) < start);
        list.get(at).or_else(|| list.first()).map(|&p| p as usize)
    }
}

/// Walks a [`SlotTable`] from a start slot, wrapping, yielding each node once; then the
/// nodes absent from the slots.
#[derive(Debug, Clone)]
pub struct SlotWalk<'a, T> {
    table: &'a SlotTable<T>,
    start: usize,
    pos: usize,
    steps: usize,
    yielded: usize,
    absent_next: usize,
    seen: Seen,
}

impl<T> SlotWalk<'_, T> {
    /// Slots stepped over so far (round-robin advances its cursor by these).
    #[inline]
    pub fn steps(&self) -> usize {
        self.steps
    }
}

impl<T: Slot> Iterator for SlotWalk<'_, T> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        let t = self.table;
        let len = t.slots.len();
        let present = t.nodes - t.absent.len();
        while self.yielded < present && self.steps < len {
            let p = self.pos;
            let node = t.slots[p].node();
            self.pos = if p + 1 == len { 0 } else { p + 1 };
            self.steps += 1;
            let fresh = match self.seen.insert(node) {
                Some(f) => f,
                None => t.first_from(node, self.start) == Some(p),
            };
            if fresh {
                self.yielded += 1;
                return Some(node);
            }
        }
        let a = *t.absent.get(self.absent_next)?;
        self.absent_next += 1;
        Some(a as usize)
    }
}

/// `x` scaled into `0..n` (Lemire's multiply-shift: uniform for a uniform `x`, no division).
#[inline]
pub(crate) fn fastrange(x: u64, n: u64) -> u64 {
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

/// Greatest common divisor of the weights (1 for an empty list).
pub(crate) fn weight_gcd(weights: impl IntoIterator<Item = u32>) -> u32 {
    fn gcd(mut a: u32, mut b: u32) -> u32 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    weights.into_iter().fold(0, gcd).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_once(mut it: impl Iterator<Item = usize>, n: usize) {
        let mut seen = vec![false; n];
        for i in it.by_ref() {
            assert!(!seen[i], "{i} twice");
            seen[i] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn walk_yields_each_node_once_including_big_and_absent() {
        // 2000 nodes, node 7 and node 1500 absent, others repeated in a scrambled order.
        let n = 2000;
        let mut slots = Vec::new();
        for r in 0..3u64 {
            for i in 0..n as u64 {
                let node = (crate::hash::mix64(i ^ (r << 40)) % n as u64) as u32;
                if node != 7 && node != 1500 {
                    slots.push(node);
                }
            }
        }
        for i in 0..n as u32 {
            if i != 7 && i != 1500 {
                slots.push(i);
            }
        }
        let t = SlotTable::new(slots, n);
        for start in [0, 1, 999, t.len() - 1] {
            let order: Vec<usize> = t.walk(start).collect();
            assert_eq!(order.len(), n);
            assert_eq!(&order[n - 2..], &[7, 1500]);
            all_once(order.into_iter(), n);
        }
    }

    #[test]
    fn empty_table_yields_absent_nodes() {
        let t = SlotTable::<u16>::new(Vec::new(), 3);
        assert_eq!(t.walk(0).collect::<Vec<_>>(), vec![0, 1, 2]);
        let t = SlotTable::<u16>::new(Vec::new(), 0);
        assert_eq!(t.walk(0).next(), None);
    }

    #[test]
    fn gcd_and_fastrange() {
        assert_eq!(weight_gcd([4, 6, 8]), 2);
        assert_eq!(weight_gcd([]), 1);
        assert_eq!(fastrange(u64::MAX, 10), 9);
        assert_eq!(fastrange(0, 10), 0);
    }
}
