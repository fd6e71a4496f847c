//! Your own directory as a [`Resolver`]: tenants → endpoints in an in-memory table that
//! another task updates, wrapped in [`Cached`] (TTL, negative TTL, stale-if-error,
//! single-flight), and used to route requests by tenant name.
//!
//! The resolver answers `Found` with the tenant's endpoints or `NotFound` for a tenant
//! it does not know; it never fails here (an error would mean "could not ask": see the
//! [`Resolver`] contract). The cache calls it once per name per TTL.
//!
//! Run: `cargo run -p lb-examples --bin custom_resolver`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use lb_core::resolve::{BoxFuture, CacheSettings, Cached, Resolution, ResolveError, Resolver};
use lb_examples::demo::{self, named_backend, Error};

/// The user's directory: tenant name → endpoints, written by another task.
#[derive(Default)]
struct Tenants {
    table: RwLock<HashMap<String, Arc<[SocketAddr]>>>,
    /// Calls that reached the directory (cache misses).
    calls: AtomicU64,
}

impl Tenants {
    fn set(&self, tenant: &str, endpoints: &[SocketAddr]) {
        if let Ok(mut t) = self.table.write() {
            t.insert(tenant.to_owned(), endpoints.into());
        }
    }
}

impl Resolver for Tenants {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // A poisoned lock means a writer panicked: "could not ask", not "not found".
        let answer = match self.table.read() {
            Ok(t) => Ok(match t.get(name) {
                Some(eps) if !eps.is_empty() => Resolution::Found(eps.clone()),
                _ => Resolution::NotFound,
            }),
            Err(_) => Err(ResolveError::Unavailable("tenant table poisoned".into())),
        };
        // The table is in memory: the answer is ready at once. A directory behind the
        // network would `await` here, bounded by its own timeout.
        Box::pin(std::future::ready(answer))
    }
}

/// Routes one request for `tenant`: directory (through the cache) → first endpoint.
async fn route(cache: &Cached<Arc<Tenants>>, tenant: &str) -> Result<String, Error> {
    match cache.lookup(tenant).await.result? {
        Resolution::Found(eps) => {
            let (_, _, body) = demo::http(eps[0], "GET", tenant, "/", "").await?;
            Ok(body.split(' ').next().unwrap_or_default().to_owned())
        }
        Resolution::NotFound => Ok("not-found".to_owned()),
        // `Resolution` may grow (a directory answer naming a pool): say so rather than
        // guess.
        #[allow(unreachable_patterns)]
        other => Ok(format!("unsupported answer {other:?}")),
    }
}

const TTL: Duration = Duration::from_millis(300);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (one, _s1) = named_backend("backend-1").await?;
    let (two, _s2) = named_backend("backend-2").await?;
    let tenants = Arc::new(Tenants::default());
    tenants.set("tenant-1.example.com", &[one]);
    tenants.set("tenant-2.example.com", &[two]);

    let settings = CacheSettings::named("tenants").with_ttls(TTL, TTL);
    let cache = Cached::new(tenants.clone(), settings);

    for tenant in [
        "tenant-1.example.com",
        "tenant-2.example.com",
        "tenant-9.example.com",
    ] {
        println!("route {tenant} {}", route(&cache, tenant).await?);
    }

    // Another task moves tenant-1 to backend-2 (a migration).
    let writer = tenants.clone();
    tokio::spawn(async move { writer.set("tenant-1.example.com", &[two]) }).await?;
    println!("moved tenant-1.example.com backend-2");
    // Within the TTL the cache still answers the old endpoint, without asking.
    println!(
        "route tenant-1.example.com {} (cached)",
        route(&cache, "tenant-1.example.com").await?
    );
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    println!(
        "route tenant-1.example.com {} (after ttl)",
        route(&cache, "tenant-1.example.com").await?
    );
    println!("directory calls {}", tenants.calls.load(Ordering::Relaxed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract check a user runs against their own resolver.
    #[tokio::test]
    async fn tenants_keeps_the_resolver_contract() {
        let t = Tenants::default();
        t.set("a.example.com", &["127.0.0.1:1".parse().unwrap()]);
        lb_core::resolve::testing::check_resolver(
            &t,
            "a.example.com",
            "b.example.com",
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    }
}
