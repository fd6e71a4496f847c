//! `lb`: offline tools over lb-core (config checks, hash-strategy analysis).
//!
//! The admin client (`lb pools`, `lb backend ...`) and the RESP ring server are not
//! written yet; see the README's "Not yet".

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use lb_core::config::{Binary, Config};
use lb_core::hash::hash_key;
use lb_core::select::{NoLoads, Node, Params, PickInput, StrategyKind, Table};

#[derive(Parser)]
#[command(name = "lb", about = "lb load balancer tools")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a config with the same code and messages as `--check`.
    Check {
        /// lb-proxy or lb-sni.
        #[arg(long)]
        binary: String,
        /// The config file.
        config: PathBuf,
    },
    /// Offline analysis of a hashing strategy: load spread, keys moved, pick cost.
    Hash {
        /// modulo, consistent, rendezvous, maglev or consistent-bounded.
        #[arg(long)]
        strategy: String,
        /// Number of backends.
        #[arg(long)]
        backends: usize,
        /// Number of keys.
        #[arg(long, default_value_t = 100_000)]
        keys: usize,
        /// Add this many backends and report the keys that move.
        #[arg(long, conflicts_with = "remove")]
        add: Option<usize>,
        /// Remove this many backends and report the keys that move.
        #[arg(long)]
        remove: Option<usize>,
        /// Ring points per unit of weight (`consistent`).
        #[arg(long, default_value_t = 160)]
        vnodes: u32,
    },
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Check { binary, config } => check(&binary, &config),
        Cmd::Hash {
            strategy,
            backends,
            keys,
            add,
            remove,
            vnodes,
        } => match hash(&strategy, backends, keys, add, remove, vnodes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lb hash: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn check(binary: &str, path: &std::path::Path) -> ExitCode {
    let bin: Binary = match binary {
        "lb-proxy" => Binary::Proxy,
        "lb-sni" => Binary::Sni,
        other => {
            eprintln!("lb check: --binary {other:?}: expected lb-proxy or lb-sni");
            return ExitCode::from(2);
        }
    };
    match Config::load(path, bin) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| Node {
            id_hash: lb_core::hash::hash_id(&format!("backend-{i}")),
            weight: 1,
        })
        .collect()
}

fn placement(table: &Table, keys: usize) -> Vec<usize> {
    (0..keys)
        .map(|k| {
            let input = PickInput {
                key_hash: hash_key(format!("key-{k}").as_bytes()),
                random: 0,
            };
            table
                .candidates(input, &NoLoads)
                .next()
                .unwrap_or(usize::MAX)
        })
        .collect()
}

fn hash(
    strategy: &str,
    n: usize,
    keys: usize,
    add: Option<usize>,
    remove: Option<usize>,
    vnodes: u32,
) -> Result<(), String> {
    let kind: StrategyKind = strategy.parse().map_err(|e| format!("{e}"))?;
    if !kind.uses_key() {
        return Err(format!("{kind} does not hash keys, so there is no placement to analyse: use modulo, consistent, rendezvous, maglev or consistent-bounded"));
    }
    if n == 0 || keys == 0 {
        return Err("--backends and --keys must be at least 1".into());
    }
    let params = Params {
        vnodes: vnodes.max(1),
        ..Params::default()
    };
    let all = nodes(n + add.unwrap_or(0));
    let table = Table::build(kind, &all[..n], &params);
    let before = placement(&table, keys);
    let mut load = vec![0usize; n];
    for &b in &before {
        if let Some(l) = load.get_mut(b) {
            *l += 1;
        }
    }
    let mean = keys as f64 / n as f64;
    let max = load.iter().copied().max().unwrap_or(0);
    let min = load.iter().copied().min().unwrap_or(0);
    let var = load.iter().map(|&l| (l as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    println!("backends: {n}  keys: {keys}  strategy: {kind}");
    println!("load min/mean/max: {min} / {mean:.1} / {max}");
    println!("spread max/mean: {:.3}", max as f64 / mean);
    println!("stddev/mean: {:.4}", var.sqrt() / mean);
    let change = match (add, remove) {
        (Some(m), _) => Some((
            &all[..n + m],
            n as f64 / (n + m) as f64,
            m as f64 / (n + m) as f64,
        )),
        (_, Some(m)) if m >= n => {
            return Err(format!("--remove {m} would leave no backend of {n}"))
        }
        (_, Some(m)) => Some((&all[..n - m], 1.0, m as f64 / n as f64)),
        _ => None,
    };
    if let Some((after_nodes, _, ideal)) = change {
        let after = placement(&Table::build(kind, after_nodes, &params), keys);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        println!(
            "moved: {:.4} (ideal {ideal:.4})",
            moved as f64 / keys as f64
        );
    }
    let rounds = 1_000_000u64;
    let start = Instant::now();
    for k in 0..rounds {
        let input = PickInput {
            key_hash: hash_key(&k.to_le_bytes()),
            random: 0,
        };
        std::hint::black_box(table.candidates(input, &NoLoads).next());
    }
    let ns = start.elapsed().as_nanos() as f64 / rounds as f64;
    println!("pick: {ns:.0} ns");
    Ok(())
}
