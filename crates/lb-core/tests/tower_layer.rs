//! The tower layer against real HTTP/1.1 servers on loopback: each request goes to the
//! backend the pool picks, outcomes reach passive health, leases end with the call.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response, StatusCode};
use lb_core::tower::{Layer, PoolLayer, PoolServiceError, Routed, Service};
use lb_core::{Backend, Outcome, OutlierSettings, Pool, PoolSettings, StrategyKind};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// An HTTP/1.1 server answering `status` with its own address as the body; with `gate`,
/// each answer waits for a notification first.
async fn server(status: u16, gate: Option<Arc<Notify>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let gate = gate.clone();
            let svc = hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                let gate = gate.clone();
                async move {
                    if let Some(g) = gate {
                        g.notified().await;
                    }
                    let mut resp = Response::new(Full::new(Bytes::from(addr.to_string())));
                    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(resp)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, svc));
        }
    });
    addr
}

/// A loopback port nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// The inner service: `GET /` on the chosen backend, answering `(status, body)`.
#[derive(Clone)]
struct Get;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<Routed<String>> for Get {
    type Response = (u16, String);
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(u16, String), BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Routed<String>) -> Self::Future {
        let addr = req.backend.addr();
        let path = format!("/{}", req.request);
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            let req = Request::get(path)
                .header("host", addr.to_string())
                .body(Empty::<Bytes>::new())?;
            let resp = send.send_request(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok((status, String::from_utf8(body.to_vec())?))
        })
    }
}

fn pool(strategy: StrategyKind, addrs: &[SocketAddr], outlier: OutlierSettings) -> Arc<Pool> {
    let settings = {
        let mut s = PoolSettings::with_strategy(strategy);
        s.outlier = outlier;
        s
    };
    let backends = addrs.iter().map(|a| Backend::new(*a)).collect();
    Arc::new(Pool::new("web", settings, backends).unwrap())
}

fn key(k: &String) -> &[u8] {
    k.as_bytes()
}

#[tokio::test]
async fn each_key_reaches_the_backend_the_pool_prefers() {
    let mut addrs = Vec::new();
    for _ in 0..3 {
        addrs.push(server(200, None).await);
    }
    let pool = pool(StrategyKind::Maglev, &addrs, OutlierSettings::default());
    let mut svc = PoolLayer::new(pool.clone(), key).layer(Get);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..30 {
        let k = format!("user:{i}");
        let want = pool
            .snapshot()
            .route(k.as_bytes())
            .unwrap()
            .backend()
            .addr();
        let (status, body) = svc.call(k).await.unwrap();
        assert_eq!((status, body), (200, want.to_string()));
        seen.insert(want);
    }
    assert_eq!(seen.len(), 3, "30 keys spread over the 3 backends");
    assert_eq!(pool.active(), 0, "every lease was released");
    for m in pool.snapshot().members() {
        assert_eq!(m.state().failures(), 0);
        assert!(m.state().requests() > 0);
    }
}

#[tokio::test]
async fn a_refusing_backend_is_reported_and_its_keys_fall_back() {
    let up = server(200, None).await;
    let down = closed_port().await;
    let outlier = {
        let mut s = OutlierSettings::default();
        s.consecutive_errors = 1;
        s.base_ejection = Duration::from_secs(60);
        s.max_ejected = 0.5;
        s
    };
    let pool = pool(StrategyKind::Consistent, &[up, down], outlier);
    let mut svc = PoolLayer::new(pool.clone(), key).layer(Get);
    // A key the ring places on the refusing backend.
    let k = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| {
            pool.snapshot()
                .route(k.as_bytes())
                .unwrap()
                .backend()
                .addr()
                == down
        })
        .unwrap();
    let err = svc.call(k.clone()).await.unwrap_err();
    assert!(matches!(err, PoolServiceError::Inner(_)), "{err:?}");
    let snap = pool.snapshot();
    assert_eq!(snap.member(down).unwrap().state().failures(), 1);
    assert_eq!(snap.member(down).unwrap().state().ejections(), 1);
    // Ejected: the same key now goes to the next backend in its preference order.
    let (status, body) = svc.call(k).await.unwrap();
    assert_eq!((status, body), (200, up.to_string()));
    assert_eq!(pool.active(), 0);
}

#[tokio::test]
async fn a_classifier_counts_5xx_as_failures() {
    let bad = server(503, None).await;
    let pool = pool(StrategyKind::RoundRobin, &[bad], OutlierSettings::default());
    let classify = |r: &Result<(u16, String), BoxError>| match r {
        Ok((s, _)) if *s < 500 => Outcome::Success,
        _ => Outcome::Failure,
    };
    let mut strict = PoolLayer::without_key(pool.clone())
        .classify(classify)
        .layer(Get);
    let (status, _) = strict.call("x".to_owned()).await.unwrap();
    assert_eq!(status, 503);
    let state = pool.snapshot().members()[0].state().clone();
    assert_eq!(state.failures(), 1);
    // The default classifier only counts errors: a 503 answer is a success for it.
    let mut lenient = PoolLayer::without_key(pool.clone()).layer(Get);
    lenient.call("x".to_owned()).await.unwrap();
    assert_eq!(state.failures(), 1);
}

#[tokio::test]
async fn the_lease_lasts_the_call_and_cancellation_reports_nothing() {
    let gate = Arc::new(Notify::new());
    let slow = server(200, Some(gate.clone())).await;
    let pool = pool(StrategyKind::LeastConn, &[slow], OutlierSettings::default());
    let mut svc = PoolLayer::without_key(pool.clone()).layer(Get);
    let call = tokio::spawn(svc.call("a".to_owned()));
    tokio::time::timeout(Duration::from_secs(5), async {
        while pool.active() != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the request is active while it runs");
    gate.notify_one();
    let (status, _) = call.await.unwrap().unwrap();
    assert_eq!((status, pool.active()), (200, 0));

    // A caller that gives up mid-call releases the lease without blaming the backend.
    let mut pending = Box::pin(svc.call("b".to_owned()));
    let gave_up = tokio::time::timeout(Duration::from_millis(100), &mut pending).await;
    assert!(gave_up.is_err(), "the gated server has not answered");
    assert_eq!(pool.active(), 1);
    drop(pending);
    assert_eq!(pool.active(), 0);
    assert_eq!(pool.snapshot().members()[0].state().failures(), 0);
}

#[tokio::test]
async fn no_usable_backend_is_an_error_naming_the_pool() {
    let addr = server(200, None).await;
    let pool = pool(StrategyKind::Maglev, &[addr], OutlierSettings::default());
    pool.snapshot().members()[0].state().set_healthy(false);
    let mut svc = PoolLayer::new(pool.clone(), key).layer(Get);
    let err = svc.call("k".to_owned()).await.unwrap_err();
    assert_eq!(err.to_string(), "no usable backend in pool web");
}
