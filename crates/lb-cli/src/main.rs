//! `lb`: the admin client, offline tools and the RESP ring server. Argument parsing and
//! wiring only; the behaviour lives in the `lb_cli` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use lb_cli::admin::{AdminClient, AdminError};
use lb_cli::hash::{analyse, HashArgs};
use lb_cli::serve::ServeOptions;
use lb_core::config::{Binary, Config};
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "lb",
    version,
    about = "lb load balancer: admin client, hash tools, RESP ring server"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where the admin API is; taken by the admin commands (anywhere after their name).
#[derive(Args, Clone)]
struct AdminArgs {
    /// The admin API of lb-proxy or lb-sni.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:9091",
        env = "LB_ADMIN"
    )]
    admin: String,
    /// Bearer token of the admin API.
    #[arg(long, global = true, env = "LB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
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
enum BackendCmd {
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
enum RingCmd {
    /// Serve the ring over RESP (GET key → backend address).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:6390")]
        listen: String,
        /// Hashing strategy (with --backends).
        #[arg(long)]
        strategy: Option<String>,
        /// ip:port[=weight],... (with --strategy).
        #[arg(long)]
        backends: Option<String>,
        /// Ring points per unit of weight (consistent).
        #[arg(long)]
        vnodes: Option<u32>,
        /// Take the strategy, backends and health checks of a pool of this lb-proxy/lb-sni config.
        #[arg(long, conflicts_with_all = ["strategy", "backends", "vnodes"])]
        config: Option<PathBuf>,
        /// The pool of --config (needed when it has several).
        #[arg(long, requires = "config")]
        pool: Option<String>,
        /// Health checks of the nodes: none, tcp, http or http:/path.
        #[arg(long)]
        health: Option<String>,
        /// Time between probes, e.g. 2s.
        #[arg(long)]
        health_interval: Option<String>,
        /// Bound on one probe, e.g. 1s.
        #[arg(long)]
        health_timeout: Option<String>,
        /// Successes in a row to go up.
        #[arg(long)]
        rise: Option<u32>,
        /// Failures in a row to go down.
        #[arg(long)]
        fall: Option<u32>,
        /// Close a client silent for this long (0s: never).
        #[arg(long, default_value = "300s")]
        idle_timeout: String,
        /// Clients served at once.
        #[arg(long, default_value_t = 10_000)]
        max_connections: usize,
        /// Worker threads (1: a single-threaded event loop, like redis-server; 0: one per core).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { binary, config } => check(&binary, &config),
        Cmd::Hash {
            strategy,
            backends,
            weights,
            keys,
            add,
            remove,
            vnodes,
            svg,
        } => hash(
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
                    strategy,
                    backends,
                    vnodes,
                    config,
                    pool,
                    health,
                    health_interval,
                    health_timeout,
                    rise,
                    fall,
                    idle_timeout,
                    max_connections,
                    threads,
                },
        } => ring_serve(
            &listen,
            threads,
            ServeOptions {
                strategy,
                backends,
                vnodes,
                config,
                pool,
                health,
                health_interval,
                health_timeout,
                rise,
                fall,
                idle_timeout: Some(idle_timeout),
                max_connections: Some(max_connections),
            },
        ),
        cmd @ (Cmd::Pools { .. } | Cmd::Pool { .. } | Cmd::Backend { .. } | Cmd::Route { .. }) => {
            admin_command(cmd)
        }
    }
}

fn admin_command(cmd: Cmd) -> ExitCode {
    let args = match &cmd {
        Cmd::Pools { admin }
        | Cmd::Pool { admin, .. }
        | Cmd::Backend { admin, .. }
        | Cmd::Route { admin, .. } => admin.clone(),
        // Only the admin commands come here.
        Cmd::Check { .. } | Cmd::Hash { .. } | Cmd::Ring { .. } => return ExitCode::from(2),
    };
    let client = match AdminClient::new(&args.admin, args.token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lb: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match lb_core::rt::runtime(1) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = args.json;
    let result: Result<String, AdminError> = rt.block_on(async {
        Ok(match cmd {
            Cmd::Pools { .. } => {
                let v = client.pools().await?;
                render(json, &v, lb_cli::output::pools)
            }
            Cmd::Pool { name, .. } => {
                let v = client.pool(&name).await?;
                render(json, &v, lb_cli::output::pool)
            }
            Cmd::Route { pool, key, .. } => {
                let v = client.route(&pool, &key).await?;
                render(json, &v, |v| {
                    format!("{}\n", v.get("backend").and_then(Value::as_str).unwrap_or("-"))
                })
            }
            Cmd::Backend { action, .. } => match action {
                BackendCmd::Add {
                    pool,
                    addr,
                    weight,
                    id,
                    backup,
                } => {
                    let v = client
                        .add_backend(&pool, &addr, weight, id.as_deref(), backup)
                        .await?;
                    render(json, &v, |_| {
                        format!("added {addr} to pool {pool} (weight {})\n", weight.unwrap_or(1))
                    })
                }
                BackendCmd::Remove { pool, addr } => {
                    let v = client.remove_backend(&pool, &addr).await?;
                    render(json, &v, |_| format!("removed {addr} from pool {pool}\n"))
                }
                BackendCmd::Drain {
                    pool,
                    addr,
                    weight: Some(w),
                } => {
                    let v = client.patch_backend(&pool, &addr, Some(w), Some("up")).await?;
                    render(json, &v, |_| {
                        format!("{addr} in pool {pool}: weight {w}, taking traffic\n")
                    })
                }
                BackendCmd::Drain {
                    pool,
                    addr,
                    weight: None,
                } => {
                    let v = client.drain_backend(&pool, &addr).await?;
                    render(json, &v, |_| {
                        format!("draining {addr} in pool {pool}: no new traffic, in-flight work finishes\n")
                    })
                }
            },
            // Handled in main.
            Cmd::Check { .. } | Cmd::Hash { .. } | Cmd::Ring { .. } => String::new(),
        })
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lb: {e}");
            ExitCode::FAILURE
        }
    }
}

fn render(json: bool, v: &Value, table: impl FnOnce(&Value) -> String) -> String {
    if json {
        let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
        s.push('\n');
        s
    } else {
        table(v)
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

fn hash(args: HashArgs, svg: Option<PathBuf>) -> ExitCode {
    let a = match analyse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lb hash: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", a.report());
    if let Some(path) = svg {
        if let Err(e) = std::fs::write(&path, lb_cli::svg::svg(&a)) {
            eprintln!("lb hash: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("svg: {}", path.display());
    }
    ExitCode::SUCCESS
}

fn ring_serve(listen: &str, threads: usize, opts: ServeOptions) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let prepared = match lb_cli::serve::prepare(&opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lb ring serve: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match lb_core::rt::runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lb ring serve: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        // `run` prints `lb ring listening on ADDR` once the pool is ready.
        lb_cli::serve::run(prepared, listener, shutdown()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb ring serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("lb ring stopping");
}
