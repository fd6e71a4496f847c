//! lb-proxy as a library: the whole HTTP proxy (listeners, routing, retries, admin API,
//! reload, drain) built from code, with no TOML file, routing every host through a
//! directory of your own. The `lb-proxy` binary is a thin shell over the same calls: it
//! reads a file into a [`Config`] and calls [`app::start`].
//!
//! The config comes from [`Config::new`] and the section constructors, which give every
//! key the file's default; [`ResolverConfig::custom`] puts your [`Resolver`] where a file
//! would name an `http`, `resp` or `static` directory, and it is cached the same way.
//!
//! Run: `cargo run -p lb-examples --bin embedded_proxy`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lb_core::config::{
    AccessTarget, Binary, Config, ListenerConfig, ListenerProtocol, ResolverConfig, RouteConfig,
    RouteTarget,
};
use lb_core::resolve::{BoxFuture, Resolution, ResolveError, Resolver};
use lb_examples::demo::{self, named_backend, Error};
use lb_proxy::app;

/// The embedding service's own directory: tenant host → endpoints.
struct Tenants(HashMap<&'static str, Arc<[SocketAddr]>>);

impl Resolver for Tenants {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        let answer = match self.0.get(name) {
            Some(eps) => Resolution::Found(eps.clone()),
            None => Resolution::NotFound,
        };
        Box::pin(std::future::ready(Ok(answer)))
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (one, _s1) = named_backend("backend-1").await?;
    let (two, _s2) = named_backend("backend-2").await?;
    let tenants = Tenants(HashMap::from([
        ("tenant-1.example.com", Arc::from([one])),
        ("tenant-2.example.com", Arc::from([two])),
    ]));

    let mut config = Config::new(Binary::Proxy);
    config.admin.listen = "127.0.0.1:0".parse()?;
    // The example prints its own lines; the access log (stdout by default) stays off.
    config.log.access = AccessTarget::Off;
    config.listeners.push(ListenerConfig::new(
        "127.0.0.1:0".parse()?,
        ListenerProtocol::Http,
    ));
    config
        .resolvers
        .insert("tenants".into(), ResolverConfig::custom("tenants", tenants));
    config
        .routes
        .push(RouteConfig::new(RouteTarget::Resolver("tenants".into())));

    let proxy = app::start(config).await?;
    let at = *proxy.listen_addrs().first().ok_or("no listener")?;
    println!("proxy listening");

    for host in [
        "tenant-1.example.com",
        "tenant-2.example.com",
        "tenant-9.example.com",
    ] {
        let (status, _, body) = demo::http(at, "GET", host, "/hello", "").await?;
        let first_line = body.lines().next().unwrap_or_default();
        println!("{host} status={status} body={first_line}");
    }
    let (status, _, metrics) =
        demo::http(proxy.admin_addr(), "GET", "admin", "/metrics", "").await?;
    let lookups = metrics
        .lines()
        .filter(|l| l.starts_with("lb_resolver_lookups_total{resolver=\"tenants\""))
        .count();
    println!(
        "admin /metrics status={status} tenants lookup series={}",
        lookups.min(1)
    );
    proxy.shutdown(Duration::from_secs(1)).await;
    println!("proxy stopped");
    Ok(())
}
