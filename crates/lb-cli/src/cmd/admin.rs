//! The admin API commands: `lb pools`, `lb pool`, `lb backend`, `lb route`.

use std::process::ExitCode;

use serde_json::Value;

use super::{BackendCmd, Cmd};
use crate::admin::{AdminClient, AdminError};

pub(super) fn admin_command(cmd: Cmd) -> ExitCode {
    let args = match &cmd {
        Cmd::Pools { admin }
        | Cmd::Pool { admin, .. }
        | Cmd::Backend { admin, .. }
        | Cmd::Route { admin, .. } => admin.clone(),
        // Only the admin commands come here.
        Cmd::Check { .. } | Cmd::Hash { .. } | Cmd::Ring { .. } => return ExitCode::from(2),
    };
    let client = match AdminClient::with_cacert(&args.admin, args.token, args.cacert.as_deref()) {
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
                render(json, &v, crate::output::pools)
            }
            Cmd::Pool { name, .. } => {
                let v = client.pool(&name).await?;
                render(json, &v, crate::output::pool)
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
