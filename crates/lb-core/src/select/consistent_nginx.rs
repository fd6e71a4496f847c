//! `consistent-nginx`: the ring of nginx's `hash $key consistent`, point for point, so lb
//! and nginx instances send every key to the same backend during a migration.
//!
//! # Algorithm (nginx's `ngx_http_upstream_hash_module.c`)
//! `ngx_http_upstream_init_chash` splits each server's address text (the `server` line as
//! written: `127.0.0.1:8080`, `[::1]:8080`, `cache1.example:11211`) at its last `:` into
//! host and port (a `unix:` path is all host, no port), and takes the CRC-32 (IEEE, as
//! `ngx_crc32_long`) of `HOST \0 PORT` as the server's base hash. It then puts
//! `160 × weight` points on a 32-bit ring: point `j` is the CRC-32 of `HOST \0 PORT`
//! followed by point `j - 1`'s hash as 4 little-endian bytes (0 for the first point) —
//! Cache::Memcached::Fast's scheme. Points are sorted by hash and equal hashes collapse to
//! the first (glibc's `qsort` is a stable merge sort, so the server listed first keeps a
//! shared point; we sort by `(hash, node index)` to the same effect).
//!
//! `ngx_http_upstream_find_chash_point` takes the CRC-32 of the evaluated key and finds
//! the first point whose hash is at or above it, wrapping past the last point to the first;
//! `ngx_http_upstream_get_chash_peer` tries that point's server and, when it cannot be used,
//! the following points' servers: the preference order is the ring's successors, each
//! backend once.
//!
//! The address text is the backend's `id` (by default its address, `ip:port` or
//! `[v6]:port`, which is how nginx prints and hashes `server 127.0.0.1:8080`). A backend
//! that nginx names differently (`server cache1.example:11211`, or without a port) needs
//! `id` set to exactly that text. [`vnodes`](super::Params::vnodes) does not apply: nginx
//! always uses 160 points per unit of weight, and neither are weights divided by their gcd.
//! nginx sends an empty key to round-robin instead; here it hashes like any other key
//! (CRC-32 of nothing is 0: the first point).
//!
//! # Hashes
//! [`StrategyKind::ConsistentNginx`](super::StrategyKind) changes both hashes a pool feeds
//! its table: a [`Node::id_hash`] is [`nginx_id_hash`] (the CRC-32 of `HOST \0 PORT`,
//! from which the points continue) and a [`PickInput::key_hash`] is [`nginx_key_hash`]
//! (the key's CRC-32), both in the low 32 bits.
//!
//! # Cost
//! O(log P) per pick (a binary search over P = 160 × total weight points, 8 bytes each);
//! build O(P log P). Removing a backend moves exactly its keys; adding one takes over the
//! arcs in front of its points. The spread is that of 160 CRC-32 points per unit of weight
//! (a few percent over the mean for a handful of backends): use `consistent` when there is
//! no nginx to agree with.

use super::walk::{SlotTable, SlotWalk};
use super::{Loads, Node, Params, PickInput, Select};

/// Ring points per unit of weight, fixed in nginx (`peer->weight * 160`).
pub const NGINX_POINTS_PER_WEIGHT: u32 = 160;

/// The base hash of a backend for `consistent-nginx`: the CRC-32 of `HOST \0 PORT`, where
/// `id` is split at its last `:` (all host after a `unix:` prefix, no port when there is no
/// `:`), exactly as nginx splits a server's name.
pub fn nginx_id_hash(id: &str) -> u64 {
    let b = id.as_bytes();
    let (host, port): (&[u8], &[u8]) = if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"unix:") {
        (&b[5..], &[])
    } else {
        match b.iter().rposition(|&c| c == b':') {
            Some(i) => (&b[..i], &b[i + 1..]),
            None => (b, &[]),
        }
    };
    let mut h = crc32fast::Hasher::new();
    h.update(host);
    h.update(&[0]);
    h.update(port);
    u64::from(h.finalize())
}

/// The key hash of `consistent-nginx`: the CRC-32 of the key's bytes (`ngx_crc32_long`).
#[inline]
pub fn nginx_key_hash(key: &[u8]) -> u64 {
    u64::from(crc32fast::hash(key))
}

/// The `points` ring points of a backend whose [`nginx_id_hash`] is `base`, in the order
/// nginx generates them (each continues the CRC of `HOST \0 PORT` with the previous point).
pub fn nginx_points(base: u32, points: u32) -> impl Iterator<Item = u32> {
    let mut prev = 0u32;
    (0..points).map(move |_| {
        let mut h = crc32fast::Hasher::new_with_initial(base);
        h.update(&prev.to_le_bytes());
        prev = h.finalize();
        prev
    })
}

/// nginx's consistent-hash ring: sorted distinct points and their owners.
#[derive(Debug, Clone)]
pub struct ConsistentNginx {
    points: Box<[u32]>,
    owners: SlotTable<u32>,
}

impl ConsistentNginx {
    /// Number of distinct points on the ring.
    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// Ring index of the first point at or after `key_hash` (0 past the last point), as
    /// `ngx_http_upstream_find_chash_point` followed by nginx's `% points->number`.
    #[inline]
    fn locate(&self, key_hash: u32) -> usize {
        let i = self.points.partition_point(|&p| p < key_hash);
        if i == self.points.len() {
            0
        } else {
            i
        }
    }
}

impl Select for ConsistentNginx {
    type Iter<'a, L: Loads + ?Sized + 'a> = SlotWalk<'a, u32>;

    fn build(nodes: &[Node], _params: &Params) -> Self {
        let total: usize = nodes
            .iter()
            .map(|n| (n.weight.max(1) * NGINX_POINTS_PER_WEIGHT) as usize)
            .sum();
        let mut ring: Vec<(u32, u32)> = Vec::with_capacity(total);
        for (i, n) in nodes.iter().enumerate() {
            // The low 32 bits hold the CRC (see `nginx_id_hash`).
            let base = n.id_hash as u32;
            let count = n.weight.max(1) * NGINX_POINTS_PER_WEIGHT;
            ring.extend(nginx_points(base, count).map(|p| (p, i as u32)));
        }
        // By hash, then by node index: equal hashes keep the backend listed first.
        ring.sort_unstable();
        ring.dedup_by_key(|p| p.0);
        let points: Box<[u32]> = ring.iter().map(|p| p.0).collect();
        let owners = SlotTable::new(ring.iter().map(|p| p.1).collect(), nodes.len());
        ConsistentNginx { points, owners }
    }

    #[inline]
    fn candidates<'a, L: Loads + ?Sized>(
        &'a self,
        input: PickInput,
        _loads: &'a L,
    ) -> SlotWalk<'a, u32> {
        self.owners.walk(self.locate(input.key_hash as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::NoLoads;

    #[test]
    fn crc32_is_ieee() {
        // The standard check value of CRC-32/ISO-HDLC, which ngx_crc32_long computes.
        assert_eq!(nginx_key_hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(nginx_key_hash(b""), 0);
    }

    #[test]
    fn address_text_is_split_at_the_last_colon() {
        let crc = |b: &[u8]| u64::from(crc32fast::hash(b));
        assert_eq!(nginx_id_hash("127.0.0.1:8080"), crc(b"127.0.0.1\08080"));
        assert_eq!(nginx_id_hash("[::1]:8080"), crc(b"[::1]\08080"));
        assert_eq!(nginx_id_hash("cache1"), crc(b"cache1\0"));
        assert_eq!(nginx_id_hash("unix:/tmp/s.sock"), crc(b"/tmp/s.sock\0"));
    }

    #[test]
    fn points_chain_the_previous_hash() {
        let base = nginx_id_hash("10.0.0.1:80") as u32;
        let p: Vec<u32> = nginx_points(base, 3).collect();
        assert_eq!(p[0], crc32fast::hash(b"10.0.0.1\080\0\0\0\0"));
        let mut second = b"10.0.0.1\080".to_vec();
        second.extend_from_slice(&p[0].to_le_bytes());
        assert_eq!(p[1], crc32fast::hash(&second));
    }

    #[test]
    fn weights_give_160_points_each() {
        let nodes = [
            Node {
                id_hash: nginx_id_hash("127.0.0.1:1"),
                weight: 1,
            },
            Node {
                id_hash: nginx_id_hash("127.0.0.1:2"),
                weight: 2,
            },
        ];
        let c = ConsistentNginx::build(&nodes, &Params::default());
        assert_eq!(c.points(), 480);
        let first = c.points[0];
        let input = |h: u32| PickInput {
            key_hash: u64::from(h),
            random: 0,
        };
        // At or after: a key equal to a point maps to that point; past the top wraps.
        assert_eq!(c.locate(first), 0);
        assert_eq!(
            c.locate(u32::MAX),
            if c.points[479] == u32::MAX { 479 } else { 0 }
        );
        assert_eq!(c.candidates(input(first), &NoLoads).count(), 2);
    }

    #[test]
    fn empty_ring_yields_nothing() {
        let c = ConsistentNginx::build(&[], &Params::default());
        assert_eq!(c.candidates(PickInput::default(), &NoLoads).next(), None);
    }
}
