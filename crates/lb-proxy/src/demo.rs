//! `lb-proxy --demo`: three demo backends, a proxy in front of them, and what to curl.

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lb_core::config::{Binary, Config};
use tokio::net::TcpListener;

/// Starts a demo backend that answers every request with its name, method and path.
pub async fn backend(name: String) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let name = name.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = format!("{name} answered {} {}\n", req.method(), req.uri());
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            body,
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The demo's config text for three backends, listening on `listen`, admin on `admin`.
pub fn config_text(b: &[SocketAddr; 3], listen: &str, admin: &str) -> String {
    format!(
        r#"
[admin]
listen = "{admin}"

[[listener]]
listen = "{listen}"

[pool.rr]
strategy = "round-robin"
backends = ["{0}", "{1}", "{2}"]
[pool.rr.health]
kind = "tcp"
interval = "1s"

[pool.docs]
strategy = "consistent"
key = "path-regex:^/documents/([^/?]+)"
backends = ["{0}", "{1}", "{2}"]

[[route]]
host = "rr.localhost"
pool = "rr"

[[route]]
host = "docs.localhost"
pool = "docs"

[[route]]
host = "*"
resolver = "directory"

[resolver.directory]
kind = "static"
map = {{ "tenant-1.localhost" = "{0}", "tenant-2.localhost" = "{1}" }}
"#,
        b[0], b[1], b[2]
    )
}

/// Builds the demo config (backends must be running).
pub fn config(b: &[SocketAddr; 3], listen: &str, admin: &str) -> Result<Config, String> {
    Config::parse(
        &config_text(b, listen, admin),
        Path::new("<demo>"),
        Binary::Proxy,
    )
    .map_err(|e| e.to_string())
}

/// What to try, printed once the demo is up.
pub fn instructions(listen: SocketAddr, admin: SocketAddr) -> String {
    let p = listen.port();
    format!(
        "lb-proxy demo: proxy on http://{listen}, admin on http://{admin}\n\
         \n\
         round-robin over three backends:\n  for i in 1 2 3; do curl -s -H 'Host: rr.localhost' http://{listen}/; done\n\
         consistent hashing on the document id (same id, same backend):\n  curl -s -H 'Host: docs.localhost' http://{listen}/documents/42; curl -s -H 'Host: docs.localhost' http://{listen}/documents/42\n\
         directory routing by host (tenant-3 is unknown: 404):\n  curl -s -H 'Host: tenant-1.localhost' http://{listen}/; curl -si -H 'Host: tenant-3.localhost' http://127.0.0.1:{p}/ | head -1\n\
         admin API:\n  curl -s http://{admin}/api/v1/pools\n  curl -s 'http://{admin}/api/v1/route?pool=docs&key=42'\n  curl -s -X POST http://{admin}/api/v1/pools/rr/backends/$(curl -s http://{admin}/api/v1/pools/rr | sed 's/.*\"addr\":\"\\([^\"]*\\)\".*/\\1/')/drain\n\
         stats page: http://{admin}/\n\
         \n\
         Ctrl-C stops the demo.\n"
    )
}

/// `lb-proxy --demo`: starts three demo backends and a proxy in front of them on
/// 127.0.0.1:8080 (admin on 127.0.0.1:9091), prints what to try, and serves until
/// SIGTERM/SIGINT.
pub fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    lb_core::server::logging::init();
    let rt = match lb_core::server::runtime(0) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lb-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mut b = [SocketAddr::from(([127, 0, 0, 1], 0)); 3];
    for (i, slot) in b.iter_mut().enumerate() {
        *slot = backend(format!("backend-{}", i + 1))
            .await
            .map_err(|e| e.to_string())?;
    }
    let config = config(&b, "127.0.0.1:8080", "127.0.0.1:9091")?;
    let signals =
        lb_core::server::Signals::new().map_err(|e| format!("cannot handle signals: {e}"))?;
    let app = crate::app::start(config).await.map_err(|e| e.to_string())?;
    if let Some(l) = app.listen_addrs().first() {
        println!("{}", instructions(*l, app.admin_addr()));
    }
    lb_core::server::main::serve(app, None, Binary::Proxy, None, None, signals).await
}
