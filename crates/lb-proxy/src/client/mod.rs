//! The client side: one connection, from the accepted stream to its end.
//!
//! The stream (plain TCP or TLS) is wrapped in a [`ClientIo`], which keeps
//! its timeouts, its canned answers and the facts about the connection; [`h1`] serves
//! HTTP/1.x on it, request after request, until the connection ends or its first bytes
//! turn out to be the HTTP/2 preface (h2c prior knowledge, or a client that chose h2 by
//! ALPN): then [`h2`] (hyper's HTTP/2 server) takes it.

use std::future::{poll_fn, Future};

pub(crate) mod ctx;
pub(crate) mod h1;
pub(crate) mod h2;
pub(crate) mod io;
pub(crate) mod parse;
pub(crate) mod pump;
pub(crate) mod sniff;
pub(crate) mod write;

use crate::client::ctx::{Drain, Ended};
use crate::client::io::ClientIo;

/// Serves HTTP/1.x and HTTP/2 on one client connection until it closes or the listener
/// drains. Not an `async fn`: an async block keeps its captures once, and the connection
/// uses them in place (an idle connection's memory is mostly this future). While it
/// waits for a request it holds the [`h1::Engine`] and one reference to it; the
/// answer's state and hyper's are boxed, made only when needed.
#[allow(clippy::manual_async_fn)] // see above
pub(crate) fn serve_connection(io: ClientIo, drain: Drain) -> impl Future<Output = ()> + Send {
    // Made before the block, which then keeps only it.
    let mut h1 = h1::Engine::new(io, drain);
    async move {
        loop {
            // Boxed (by `answer`): an idle connection (most of them, most of the time)
            // keeps no room for the answer's state (the response being written, the
            // request body's pump): one allocation per request, freed when it is
            // answered. (Made in one statement, so the request is not kept beside it
            // while it is answered.)
            let answering = match poll_fn(|cx| h1.poll_next_request(cx)).await {
                Ok(req) => h1.answer(req),
                Err(Ended::Closed) => return,
                Err(Ended::Handoff) => break,
            };
            if !answering.await {
                return;
            }
        }
        let (io, drain, preface) = h1.into_h2();
        Box::pin(h2::serve(io, preface, drain)).await;
    }
}

#[cfg(test)]
mod size {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use arc_swap::ArcSwap;
    use hyper::server::conn::http2;
    use hyper_util::rt::TokioExecutor;

    use crate::client::ctx::Listener;
    use crate::proxy::conn::ConnInfo;
    use crate::state::Runtime;
    use crate::stream::ClientStream;

    /// A connection's future is what every open connection holds (boxed once, see
    /// `server`): an idle keep-alive connection's memory is mostly this. A change that
    /// grows it much should be deliberate.
    #[tokio::test]
    async fn connection_future_size() {
        let rt = Runtime::for_tests();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (stream, peer) = listener.accept().await.expect("accept");
        let info = ConnInfo::for_tests(peer, addr);
        let (_stop, shutdown) = lb_core::server::Shutdown::new();
        let io = ClientIo::new(
            ClientStream::plain(stream),
            info,
            Duration::from_secs(1),
            rt.errors.clone(),
        );
        let listener = Listener::new(
            Arc::new(ArcSwap::from_pointee(rt)),
            http2::Builder::new(TokioExecutor::new()),
            shutdown,
        );
        let fut = serve_connection(io, Drain::new(listener));
        let size = std::mem::size_of_val(&fut);
        eprintln!(
            "connection future: {size} bytes (ClientIo {}, ConnInfo {}, Drain {}, sleep {})",
            std::mem::size_of::<ClientIo>(),
            std::mem::size_of::<ConnInfo>(),
            std::mem::size_of::<Drain>(),
            std::mem::size_of::<tokio::time::Sleep>(),
        );
        // 312 bytes in a debug build (920 before the drain list, the one-poll wait for a
        // head and the engine owning the stream; 2,952 before the answer was boxed).
        // 320 is the mimalloc size class it is allocated from: a future past it costs
        // the next class (384) in every connection.
        assert!(size <= 320, "the connection future grew to {size} bytes");
    }
}
