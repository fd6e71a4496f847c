//! Directory routing: a static resolver, and an HTTP directory served by the test
//! (single-flight, negative caching, stale-if-error).

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[tokio::test]
async fn static_resolver_routes_known_names_and_404s_unknown() {
    let a = Backend::start("tenant-a").await;
    let b = Backend::start("tenant-b").await;
    let p = proxy(&format!(
        "[[route]]\nhost = \"*\"\nresolver = \"dir\"\n\
         [resolver.dir]\nkind = \"static\"\nmap = {{ \"a.test\" = \"{}\", \"b.test\" = \"{}\" }}\n",
        a.addr, b.addr
    ))
    .await;
    assert_eq!(get(p.addr, "a.test", "/").await.text(), "tenant-a");
    assert_eq!(get(p.addr, "B.Test.", "/").await.text(), "tenant-b");
    let r = get(p.addr, "c.test", "/").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-lb-error"), "unknown-host");
}

/// A directory: `/backend/{name}` answers the mapped endpoint after 100 ms, else 404.
struct Directory {
    addr: SocketAddr,
    calls: Arc<Mutex<HashMap<String, usize>>>,
    task: JoinHandle<()>,
}

impl Directory {
    async fn start(map: HashMap<String, SocketAddr>) -> Directory {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let calls = Arc::new(Mutex::new(HashMap::new()));
        let (c, map) = (calls.clone(), Arc::new(map));
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                let (c, map) = (c.clone(), map.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (c, map) = (c.clone(), map.clone());
                        async move {
                            let name = req.uri().path().trim_start_matches("/backend/").to_owned();
                            *c.lock().expect("lock").entry(name.clone()).or_insert(0) += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            let r = match map.get(&name) {
                                Some(ep) => {
                                    Response::new(full(format!("{{\"endpoint\":\"{ep}\"}}")))
                                }
                                None => {
                                    let mut r = Response::new(full("not found"));
                                    *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                                    r
                                }
                            };
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Directory { addr, calls, task }
    }

    fn calls(&self, name: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn http_dir_proxy(dir: SocketAddr, ttl: &str) -> Proxy {
    proxy(&format!(
        "[[route]]\nhost = \"*\"\nresolver = \"dir\"\n\
         [resolver.dir]\nkind = \"http\"\nurl = \"http://{dir}/backend/{{name}}\"\n\
         ttl = \"{ttl}\"\nnegative_ttl = \"5s\"\nstale_ttl = \"5m\"\ntimeout = \"1s\"\n"
    ))
    .await
}

#[tokio::test]
async fn http_directory_single_flight_for_concurrent_first_requests() {
    let be = Backend::start("app").await;
    let dir = Directory::start(HashMap::from([("app.test".to_owned(), be.addr)])).await;
    let p = http_dir_proxy(dir.addr, "30s").await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let addr = p.addr;
        tasks.push(tokio::spawn(
            async move { get(addr, "app.test", "/").await },
        ));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!((r.status, r.text()), (200, "app".to_owned()));
    }
    assert_eq!(
        dir.calls("app.test"),
        1,
        "one directory call for 50 requests"
    );
    assert_eq!(be.count(), 50);
    // Cached afterwards.
    assert_eq!(get(p.addr, "app.test", "/").await.status, 200);
    assert_eq!(dir.calls("app.test"), 1);
}

#[tokio::test]
async fn http_directory_negative_answers_are_cached() {
    let dir = Directory::start(HashMap::new()).await;
    let p = http_dir_proxy(dir.addr, "30s").await;
    for _ in 0..3 {
        let r = get(p.addr, "ghost.test", "/").await;
        assert_eq!(r.status, 404);
        assert_eq!(r.header("x-lb-error"), "unknown-host");
    }
    assert_eq!(dir.calls("ghost.test"), 1, "not found is cached");
    // An invalid name is never sent to the directory.
    let r = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: bad_name!.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&r), 400, "{r}");
    assert_eq!(dir.calls.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn http_directory_stale_answer_served_while_directory_is_down() {
    let be = Backend::start("app").await;
    let dir = Directory::start(HashMap::from([("app.test".to_owned(), be.addr)])).await;
    let p = http_dir_proxy(dir.addr, "200ms").await;
    assert_eq!(get(p.addr, "app.test", "/").await.status, 200);
    dir.task.abort();
    // Wait until the fresh entry expired and the directory is unreachable.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..3 {
        let r = get(p.addr, "app.test", "/").await;
        assert_eq!((r.status, r.text()), (200, "app".to_owned()));
    }
    assert_eq!(be.count(), 4);
    // A name never seen has no stale answer: the directory failure shows.
    let r = get(p.addr, "new.test", "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-lb-error"), "directory-unavailable");
}
