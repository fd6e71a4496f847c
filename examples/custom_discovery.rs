//! A membership source of your own: a service registry (here an in-memory one that other
//! tasks update, standing in for Consul, etcd or your deploy tool) feeding a [`Pool`].
//!
//! The source is a task that follows the registry and publishes each answer as the pool's
//! whole membership with [`discovery::publish`] (built off the request path, swapped in as
//! one snapshot; an identical answer rebuilds nothing), plus a handle implementing
//! [`Source`] so the admin API and start-up can talk to it. A registry that fails never
//! empties the pool: the last good membership stays. Each instance's zone travels as
//! backend metadata, read on the request path with `lease.backend().meta("zone")`.
//!
//! Run: `cargo run -p lb-examples --bin custom_discovery`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lb_core::discovery::{self, BoxFuture, Source, SourceKind, SyncClock, WriteError};
use lb_core::{Backend, Change, Pool, PoolSettings, StrategyKind};
use lb_examples::demo::{named_backend, Error};
use tokio::sync::watch;

/// One instance as the registry lists it.
#[derive(Clone, Debug)]
struct Instance {
    id: &'static str,
    addr: SocketAddr,
    zone: &'static str,
}

/// What the registry says: the instances, or why it cannot say.
type Listing = Result<Vec<Instance>, String>;

/// The source: a task following the registry, and the handle that owns it.
struct RegistrySource {
    clock: Arc<SyncClock>,
    task: tokio::task::JoinHandle<()>,
}

impl RegistrySource {
    /// Starts following `registry` into `pool`.
    fn spawn(pool: Arc<Pool>, mut registry: watch::Receiver<Listing>) -> RegistrySource {
        let clock = Arc::new(SyncClock::default());
        let synced = clock.clone();
        // Hold the pool weakly: the task stops when the pool is gone.
        let pool = Arc::downgrade(&pool);
        let task = tokio::spawn(async move {
            loop {
                let listing = registry.borrow_and_update().clone();
                let Some(pool) = pool.upgrade() else { break };
                match listing {
                    Ok(instances) => {
                        let backends = instances
                            .iter()
                            .map(|i| {
                                Backend::new(i.addr)
                                    .with_id(i.id)
                                    .with_metadata("zone", i.zone)
                            })
                            .collect();
                        match discovery::publish(&pool, backends) {
                            Ok(_) => synced.mark(),
                            // A refused answer (duplicate address, ...) leaves the pool as
                            // it was: say why and wait for the next one.
                            Err(e) => eprintln!("registry answer refused: {e}"),
                        }
                    }
                    Err(e) => eprintln!("registry unavailable, keeping the last membership: {e}"),
                }
                drop(pool);
                if registry.changed().await.is_err() {
                    break; // the registry is gone
                }
            }
        });
        RegistrySource { clock, task }
    }
}

impl Source for RegistrySource {
    fn kind(&self) -> SourceKind {
        SourceKind::Custom("registry")
    }
    fn last_sync(&self) -> Option<SystemTime> {
        self.clock.get()
    }
    /// The registry owns membership: admin writes are refused (change it there).
    fn write<'a>(
        &'a self,
        _pool: &'a Pool,
        _change: Change,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(async { Err(WriteError::Conflict("the registry")) })
    }
    fn stop(&self) {
        self.task.abort();
    }
    fn ready(&self) -> BoxFuture<'_, ()> {
        self.clock.synced()
    }
}

impl Drop for RegistrySource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn members(pool: &Pool) -> String {
    let snap = pool.snapshot();
    let list: Vec<String> = snap
        .members()
        .iter()
        .map(|m| {
            format!(
                "{}@{}",
                m.backend().id(),
                m.backend().meta("zone").unwrap_or("?")
            )
        })
        .collect();
    list.join(",")
}

/// Waits until the pool publishes a change after `version`.
async fn changed_after(pool: &Pool, version: u64) -> Result<(), Error> {
    let mut rx = pool.subscribe();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| *v > version)).await??;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (a, _sa) = named_backend("backend-a").await?;
    let (b, _sb) = named_backend("backend-b").await?;
    let (c, _sc) = named_backend("backend-c").await?;
    let inst = |id, addr, zone| Instance { id, addr, zone };

    let (registry, listing) = watch::channel(Ok(vec![
        inst("backend-a", a, "eu"),
        inst("backend-b", b, "us"),
    ]));
    let pool = Arc::new(Pool::new(
        "api",
        PoolSettings::with_strategy(StrategyKind::Consistent),
        vec![],
    )?);
    let source: Arc<dyn Source> = Arc::new(RegistrySource::spawn(pool.clone(), listing));
    let late = discovery::wait_ready([source.clone()], Duration::from_secs(5)).await;
    println!(
        "ready={} source={}",
        late.is_empty(),
        source.kind().as_str()
    );
    println!("members {}", members(&pool));

    let snap = pool.snapshot();
    let lease = snap.select(b"order:17").next().ok_or("no backend")?;
    println!(
        "pick order:17 {} zone={}",
        lease.backend().id(),
        lease.backend().meta("zone").unwrap_or("?")
    );
    drop(lease);

    // A deploy: backend-c joins, backend-a leaves.
    let version = pool.snapshot().version();
    let _previous = registry.send_replace(Ok(vec![
        inst("backend-b", b, "us"),
        inst("backend-c", c, "eu"),
    ]));
    changed_after(&pool, version).await?;
    println!("members {}", members(&pool));

    let refused = source.write(&pool, Change::Add(Backend::new(a))).await;
    println!(
        "admin write: {}",
        refused
            .err()
            .map_or("accepted".to_owned(), |e| e.to_string())
    );

    // The registry fails: the pool keeps serving its last good membership.
    let _previous = registry.send_replace(Err("connection refused".into()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("registry down, members {}", members(&pool));
    source.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract check a user runs against their own source.
    #[tokio::test]
    async fn registry_source_keeps_the_source_contract() {
        let addrs: [SocketAddr; 2] = [
            "127.0.0.1:7001".parse().unwrap(),
            "127.0.0.1:7002".parse().unwrap(),
        ];
        let (_registry, listing) = watch::channel(Ok(vec![
            Instance {
                id: "x",
                addr: addrs[0],
                zone: "eu",
            },
            Instance {
                id: "y",
                addr: addrs[1],
                zone: "us",
            },
        ]));
        let pool = Arc::new(Pool::new("p", PoolSettings::default(), vec![]).unwrap());
        let source = RegistrySource::spawn(pool.clone(), listing);
        discovery::testing::check_source(&source, &pool, &addrs, Duration::from_secs(2))
            .await
            .unwrap();
    }
}
