//! HTTP/2 from clients (h2c prior knowledge, or ALPN h2) through hyper's server. Each
//! request holds an [`InFlight`](crate::client::io::InFlight) guard until its response
//! is out, so the connection layer knows when the connection is idle.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::client::ctx::Drain;
use crate::client::io::{ClientIo, Tracked};
use crate::proxy::{self, conn::ConnInfo};
use crate::request::body::InBody;
use crate::state::Runtime;

/// hyper's HTTP/2 server for a connection the HTTP/1 engine found speaking it.
pub(crate) async fn serve(
    mut io: ClientIo,
    info: ConnInfo,
    rt: Arc<ArcSwap<Runtime>>,
    builder: Arc<http2::Builder<TokioExecutor>>,
    mut drain: Drain,
) {
    let client = info.client;
    let shared = io.streams();
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let guard = shared.enter();
        let rt = rt.load_full();
        // A copy and, only behind trusted proxies, one reference count.
        let info = info.clone();
        async move {
            let resp = proxy::handle(rt, info, req.map(|b| Some(InBody::H2(b))), None).await;
            // hyper encodes from the header map: the fields kept as bytes go into it.
            let (mut parts, body) = resp.into_parts();
            if let Some(raw) = body.raw_fields() {
                raw.append_to(&mut parts.headers);
            }
            let resp = hyper::Response::from_parts(parts, body);
            Ok::<_, std::convert::Infallible>(resp.map(|b| Tracked::new(b, guard)))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = drain.wait() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(client = %client, error = %e, "client connection ended");
    }
}
