//! The `lb` command line: its clap definitions ([`Cli`]) and [`run`], which dispatches to
//! the library's modules. `main.rs` only parses and calls [`run`].
// The doc comments of the argument types are clap's help text, where `[ipv6]:port` is text,
// not a doc link.
#![allow(rustdoc::broken_intra_doc_links)]

mod admin;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::hash::HashArgs;
use crate::serve::ServeOptions;

/// The `lb` command line.
#[derive(Parser)]
#[command(
    name = "lb",
    version,
    about = "lb load balancer: admin client, hash tools, RESP ring server",
    after_help = "Examples:\n  lb pools --admin http://127.0.0.1:9091\n  \
                  lb backend drain web 10.0.0.5:8080\n  lb check --binary lb-proxy lb.toml\n  \
                  lb hash --strategy maglev --backends 10 --add 1\n  \
                  lb ring serve --backends 10.0.0.1:6379,10.0.0.2:6379"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Where the admin API is; taken by the admin commands (anywhere after their name).
#[derive(Args, Clone)]
pub struct AdminArgs {
    /// The admin API of lb-proxy or lb-sni.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:9091",
        env = "LB_ADMIN"
    )]
    pub admin: String,
    /// Bearer token of the admin API.
    #[arg(long, global = true, env = "LB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) that signed an https admin API's certificate; default: the
    /// system roots.
    #[arg(long, global = true, value_name = "FILE", env = "LB_CACERT")]
    pub cacert: Option<std::path::PathBuf>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// List the pools and their backends' states.
    Pools {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show one pool and its backends.
    Pool {
        /// The pool's name.
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Add, remove or drain a backend.
    Backend {
        #[command(subcommand)]
        action: BackendCmd,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Where a key goes: the backend the pool picks for an already-extracted key.
    Route {
        /// The pool's name.
        pool: String,
        /// The key (what the pool's `key` setting extracts from a request).
        key: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
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
        /// modulo, consistent, rendezvous, maglev, consistent-bounded or consistent-nginx.
        #[arg(long)]
        strategy: String,
        /// Number of backends.
        #[arg(long)]
        backends: usize,
        /// Weights of the backends, one per backend (default all 1), e.g. 1,1,2.
        #[arg(long, value_delimiter = ',')]
        weights: Vec<u32>,
        /// Number of keys.
        #[arg(long, default_value_t = 100_000)]
        keys: usize,
        /// Add this many backends and report the keys that move.
        #[arg(long, conflicts_with = "remove")]
        add: Option<usize>,
        /// Remove this many backends (the last ones) and report the keys that move.
        #[arg(long)]
        remove: Option<usize>,
        /// Ring points per unit of weight (`consistent`).
        #[arg(long, default_value_t = 160)]
        vnodes: u32,
        /// Also write an SVG chart (load per backend, keys moved) to this file.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// A ring of backends answered over the Redis protocol.
    Ring {
        #[command(subcommand)]
        action: RingCmd,
    },
}

#[derive(Subcommand)]
pub enum BackendCmd {
    /// Add a backend to a pool.
    Add {
        /// The pool.
        pool: String,
        /// ip:port or [ipv6]:port.
        addr: String,
        /// Weight 0-256 (0 drains).
        #[arg(long)]
        weight: Option<u32>,
        /// Placement identity (default: the address).
        #[arg(long)]
        id: Option<String>,
        /// Only used when no other backend is up.
        #[arg(long)]
        backup: bool,
    },
    /// Remove a backend; its in-flight work finishes.
    Remove {
        /// The pool.
        pool: String,
        /// ip:port or [ipv6]:port.
        addr: String,
    },
    /// Drain a backend: no new traffic, in-flight work finishes. With --weight, set the
    /// weight instead (and take it out of draining).
    Drain {
        /// The pool.
        pool: String,
        /// ip:port or [ipv6]:port.
        addr: String,
        /// Set this weight (0-256) and mark the backend up again instead of draining it.
        #[arg(long)]
        weight: Option<u32>,
    },
}

#[derive(Subcommand)]
pub enum RingCmd {
    /// Serve the ring over RESP (GET key → backend address).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:6390")]
        listen: String,
        #[command(flatten)]
        options: ServeOptions,
        /// Worker threads (1: a single-threaded event loop, like redis-server; 0: one per core).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// Runs the command `cli` names; the exit code is the process's.
pub fn run(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::Check { binary, config } => tools::check(&binary, &config),
        Cmd::Hash {
            strategy,
            backends,
            weights,
            keys,
            add,
            remove,
            vnodes,
            svg,
        } => tools::hash(
            HashArgs {
                strategy,
                backends,
                weights,
                keys,
                add,
                remove,
                vnodes,
                time_picks: true,
            },
            svg,
        ),
        Cmd::Ring {
            action:
                RingCmd::Serve {
                    listen,
                    options,
                    threads,
                },
        } => tools::ring_serve(&listen, threads, options),
        cmd @ (Cmd::Pools { .. } | Cmd::Pool { .. } | Cmd::Backend { .. } | Cmd::Route { .. }) => {
            admin::admin_command(cmd)
        }
    }
}
