//! Embedding lb-core: a pool with consistent hashing in another service.

use lb_core::{Backend, Pool, PoolSettings, StrategyKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backends = vec![
        Backend::new("127.0.0.1:7001".parse()?),
        Backend::new("127.0.0.1:7002".parse()?).with_weight(2)?,
    ];
    let pool = Pool::new(
        "cache",
        PoolSettings::with_strategy(StrategyKind::Consistent),
        backends,
    )?;
    let snap = pool.snapshot();
    for key in ["user:1", "user:2", "user:3"] {
        if let Some(lease) = snap.select(key.as_bytes()).next() {
            println!("{key} -> {}", lease.addr());
        }
    }
    Ok(())
}
