//! `lb hash`: offline analysis of a hashing strategy of lb-core.
//!
//! [`analyse`] places `keys` synthetic keys (`key-0`, `key-1`, ...) on `n` synthetic
//! backends (ids `backend-0` ...) with lb-core's own tables and hash seed, so the figures are
//! those of a running pool: the load per backend against its weight share, the keys that
//! move when backends are added (`backend-n` ...) or the last ones removed, and the cost of
//! one pick. [`Analysis::report`] prints the report lines (`spread max/mean: 1.031`,
//! `moved: 0.0912 (ideal 0.0909)`, `pick: 23 ns`); [`svg`](crate::svg) draws the chart.

use std::time::Instant;

use lb_core::select::{NoLoads, Node, Params, PickInput, StrategyKind, Table};

/// What to analyse.
#[derive(Clone, Debug)]
pub struct HashArgs {
    /// The strategy (must hash keys).
    pub strategy: String,
    /// Backends before the change.
    pub backends: usize,
    /// Weights of those backends (empty: all 1).
    pub weights: Vec<u32>,
    /// Synthetic keys placed.
    pub keys: usize,
    /// Backends added (weight 1 each).
    pub add: Option<usize>,
    /// Backends removed (the last ones).
    pub remove: Option<usize>,
    /// Ring points per unit of weight.
    pub vnodes: u32,
    /// Measure the pick cost (a million picks; off in tests that only want placement).
    pub time_picks: bool,
}

/// A membership change and where the keys went.
#[derive(Clone, Debug, PartialEq)]
pub struct Moved {
    /// `add` or `remove`.
    pub what: &'static str,
    /// How many backends were added or removed.
    pub count: usize,
    /// Share of keys whose backend changed.
    pub fraction: f64,
    /// The least share that must move (the weight share that arrived or left).
    pub ideal: f64,
    /// Keys per backend after the change (all backends that exist after it).
    pub after: Vec<usize>,
    /// Of those, keys that were elsewhere before.
    pub arrived: Vec<usize>,
}

/// The result of one analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// The strategy.
    pub strategy: StrategyKind,
    /// Keys placed.
    pub keys: usize,
    /// Weight per backend before the change.
    pub weights: Vec<u32>,
    /// Keys per backend before the change.
    pub load: Vec<usize>,
    /// The change, if any.
    pub moved: Option<Moved>,
    /// Mean cost of one pick, ns (`None` when not measured).
    pub pick_ns: Option<f64>,
}

impl Analysis {
    /// Keys a backend should get from its weight share.
    pub fn expected(&self, i: usize) -> f64 {
        let total: u64 = self.weights.iter().map(|&w| u64::from(w)).sum();
        let w = self.weights.get(i).copied().unwrap_or(0);
        if total == 0 {
            0.0
        } else {
            self.keys as f64 * f64::from(w) / total as f64
        }
    }

    /// Highest load relative to its weight share (1.0 is perfect).
    pub fn spread(&self) -> f64 {
        (0..self.load.len())
            .filter(|&i| self.expected(i) > 0.0)
            .map(|i| self.load[i] as f64 / self.expected(i))
            .fold(0.0, f64::max)
    }

    /// Standard deviation of load/expected.
    pub fn stddev(&self) -> f64 {
        let ratios: Vec<f64> = (0..self.load.len())
            .filter(|&i| self.expected(i) > 0.0)
            .map(|i| self.load[i] as f64 / self.expected(i))
            .collect();
        if ratios.is_empty() {
            return 0.0;
        }
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        (ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / ratios.len() as f64).sqrt()
    }

    /// The report lines: spread, moved keys and the cost of a pick, one per line.
    pub fn report(&self) -> String {
        let n = self.load.len();
        let mean = self.keys as f64 / n as f64;
        let min = self.load.iter().copied().min().unwrap_or(0);
        let max = self.load.iter().copied().max().unwrap_or(0);
        let mut out = format!(
            "backends: {n}  keys: {}  strategy: {}\n",
            self.keys, self.strategy
        );
        out.push_str(&format!("load min/mean/max: {min} / {mean:.1} / {max}\n"));
        out.push_str(&format!("spread max/mean: {:.3}\n", self.spread()));
        out.push_str(&format!("stddev/mean: {:.4}\n", self.stddev()));
        if let Some(m) = &self.moved {
            out.push_str(&format!(
                "moved: {:.4} (ideal {:.4})\n",
                m.fraction, m.ideal
            ));
        }
        if let Some(ns) = self.pick_ns {
            out.push_str(&format!("pick: {ns:.0} ns\n"));
        }
        out
    }
}

fn nodes(kind: StrategyKind, weights: &[u32]) -> Vec<Node> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Node {
            id_hash: kind.hash_id(&format!("backend-{i}")),
            weight: w,
        })
        .collect()
}

fn placement(kind: StrategyKind, table: &Table, keys: usize) -> Vec<usize> {
    (0..keys)
        .map(|k| {
            let input = PickInput {
                key_hash: kind.hash_key(format!("key-{k}").as_bytes()),
                random: 0,
            };
            table
                .candidates(input, &NoLoads)
                .next()
                .unwrap_or(usize::MAX)
        })
        .collect()
}

fn counts(placed: &[usize], n: usize) -> Vec<usize> {
    let mut load = vec![0usize; n];
    for &b in placed {
        if let Some(l) = load.get_mut(b) {
            *l += 1;
        }
    }
    load
}

/// Runs the analysis; the error is a message for the operator.
pub fn analyse(a: &HashArgs) -> Result<Analysis, String> {
    let kind: StrategyKind = a.strategy.parse().map_err(|e| format!("{e}"))?;
    if !kind.uses_key() {
        return Err(format!("{kind} does not hash keys, so there is no placement to analyse: use modulo, consistent, rendezvous, maglev, consistent-bounded or consistent-nginx"));
    }
    let n = a.backends;
    if n == 0 || a.keys == 0 {
        return Err("--backends and --keys must be at least 1".into());
    }
    let weights: Vec<u32> = if a.weights.is_empty() {
        vec![1; n]
    } else if a.weights.len() == n {
        a.weights.clone()
    } else {
        return Err(format!(
            "--weights has {} values for {n} backends: give one per backend",
            a.weights.len()
        ));
    };
    if let Some(w) = weights.iter().find(|&&w| w == 0 || w > 256) {
        return Err(format!("weight {w} is out of range: 1-256"));
    }
    let params = Params::default().with_vnodes(a.vnodes.clamp(1, 1000));
    let table = Table::build(kind, &nodes(kind, &weights), &params);
    let before = placement(kind, &table, a.keys);
    let load = counts(&before, n);
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let change = match (a.add, a.remove) {
        (Some(_), Some(_)) => return Err("give --add or --remove, not both".into()),
        (Some(0), _) | (_, Some(0)) => return Err("--add and --remove take at least 1".into()),
        (Some(m), _) => {
            let mut w = weights.clone();
            w.extend(std::iter::repeat_n(1, m));
            Some(("add", m, w, m as f64 / (total + m as u64) as f64))
        }
        (_, Some(m)) if m >= n => {
            return Err(format!("--remove {m} would leave no backend of {n}"))
        }
        (_, Some(m)) => {
            let gone: u64 = weights[n - m..].iter().map(|&w| u64::from(w)).sum();
            Some((
                "remove",
                m,
                weights[..n - m].to_vec(),
                gone as f64 / total as f64,
            ))
        }
        _ => None,
    };
    let moved = change.map(|(what, count, after_w, ideal)| {
        let after = placement(
            kind,
            &Table::build(kind, &nodes(kind, &after_w), &params),
            a.keys,
        );
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let mut arrived = vec![0usize; after_w.len()];
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                if let Some(c) = arrived.get_mut(*a) {
                    *c += 1;
                }
            }
        }
        Moved {
            what,
            count,
            fraction: moved as f64 / a.keys as f64,
            ideal,
            after: counts(&after, after_w.len()),
            arrived,
        }
    });
    let pick_ns = a.time_picks.then(|| {
        let rounds = 1_000_000u64;
        let start = Instant::now();
        for k in 0..rounds {
            let input = PickInput {
                key_hash: kind.hash_key(&k.to_le_bytes()),
                random: 0,
            };
            std::hint::black_box(table.candidates(input, &NoLoads).next());
        }
        start.elapsed().as_nanos() as f64 / rounds as f64
    });
    Ok(Analysis {
        strategy: kind,
        keys: a.keys,
        weights,
        load,
        moved,
        pick_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(strategy: &str, n: usize) -> HashArgs {
        HashArgs {
            strategy: strategy.into(),
            backends: n,
            weights: vec![],
            keys: 20_000,
            add: None,
            remove: None,
            vnodes: 160,
            time_picks: false,
        }
    }

    #[test]
    fn weights_shift_load_and_ideal() {
        let mut a = args("maglev", 4);
        a.weights = vec![1, 1, 1, 3];
        a.remove = Some(1);
        let r = analyse(&a).unwrap();
        // The weight-3 backend holds about half of the keys.
        let share = r.load[3] as f64 / r.keys as f64;
        assert!((share - 0.5).abs() < 0.05, "{r:?}");
        let m = r.moved.as_ref().unwrap();
        assert!((m.ideal - 0.5).abs() < 1e-9);
        assert!(
            m.fraction >= m.ideal - 0.02 && m.fraction < m.ideal + 0.1,
            "{m:?}"
        );
        assert_eq!(m.after.iter().sum::<usize>(), r.keys);
        assert_eq!(
            m.arrived.iter().sum::<usize>() as f64 / r.keys as f64,
            m.fraction
        );
    }

    #[test]
    fn consistent_nginx_moves_exactly_the_removed_backends_keys() {
        let mut a = args("consistent-nginx", 5);
        a.weights = vec![1, 2, 1, 2, 1];
        a.remove = Some(1);
        let r = analyse(&a).unwrap();
        assert_eq!(r.strategy, StrategyKind::ConsistentNginx);
        let m = r.moved.as_ref().unwrap();
        // A ring: the keys that move are exactly the removed (last) backend's.
        assert_eq!(m.fraction, r.load[4] as f64 / r.keys as f64, "{m:?}");
        for (i, &arrived) in m.arrived.iter().enumerate() {
            assert_eq!(m.after[i], r.load[i] + arrived, "backend {i}: {m:?}");
        }
    }

    #[test]
    fn bad_arguments_are_messages() {
        let mut a = args("maglev", 3);
        a.weights = vec![1, 2];
        assert!(analyse(&a).unwrap_err().contains("one per backend"));
        a.weights = vec![1, 0, 1];
        assert!(analyse(&a).unwrap_err().contains("out of range"));
        let mut a = args("consistent", 3);
        a.add = Some(0);
        assert!(analyse(&a).is_err());
    }
}
