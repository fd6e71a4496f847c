//! One pipelined RESP connection, driven by a single task.
//!
//! Callers send a [`Request`] (an encoded command and a oneshot for its reply) over a
//! bounded channel. The task appends the command to its write buffer and pushes the
//! oneshot onto a FIFO queue; Redis answers commands on one connection in order, so each
//! frame read completes the oldest waiting request. Writing, reading and taking new
//! requests run concurrently in one `select!`, so a large burst never stops the task
//! from reading replies. The task ends when every sender is gone (the resolver dropped
//! the connection) or on any IO or protocol error; either way every request still
//! waiting gets `Unavailable`.

use std::collections::VecDeque;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::resolve::ResolveError;
use crate::resp::{self, Frame, Limits};

/// A command and where its reply goes.
pub(super) struct Request {
    pub(super) cmd: Vec<u8>,
    pub(super) reply: oneshot::Sender<Result<Frame, ResolveError>>,
}

/// Reply size bounds: a directory answer is a short list of endpoints.
const LIMITS: Limits = Limits {
    max_bulk_len: 64 * 1024,
    max_array_len: 1024,
    max_depth: 4,
    max_line_len: 4096,
};

/// Commands buffered but not yet written before new requests wait.
const MAX_WRITE_BUF: usize = 256 * 1024;

/// Drives `stream` until the channel closes or the connection fails.
pub(super) async fn run(stream: TcpStream, mut rx: mpsc::Receiver<Request>, peer: String) {
    let (mut rd, mut wr) = stream.into_split();
    let mut pending: VecDeque<oneshot::Sender<Result<Frame, ResolveError>>> = VecDeque::new();
    let mut wbuf: Vec<u8> = Vec::new();
    let mut rbuf: Vec<u8> = Vec::with_capacity(4096);
    let reason = loop {
        tokio::select! {
            req = rx.recv(), if wbuf.len() < MAX_WRITE_BUF => match req {
                Some(req) => {
                    wbuf.extend_from_slice(&req.cmd);
                    pending.push_back(req.reply);
                }
                None => break "connection closed by the resolver".to_string(),
            },
            written = wr.write(&wbuf), if !wbuf.is_empty() => match written {
                Ok(0) => break format!("{peer}: connection closed while writing"),
                Ok(n) => { wbuf.drain(..n); }
                Err(e) => break format!("{peer}: write: {e}"),
            },
            read = rd.read_buf(&mut rbuf) => match read {
                Ok(0) => break format!("{peer}: connection closed"),
                Ok(_) => {
                    if let Err(e) = deliver(&mut rbuf, &mut pending) {
                        break format!("{peer}: {e}");
                    }
                }
                Err(e) => break format!("{peer}: read: {e}"),
            },
        }
    };
    tracing::debug!(%reason, pending = pending.len(), "RESP directory connection ended");
    for reply in pending {
        let _ = reply.send(Err(ResolveError::Unavailable(reason.clone())));
    }
    let _ = wr.shutdown().await;
}

/// Completes waiting requests with every whole frame in `rbuf`, in order.
fn deliver(
    rbuf: &mut Vec<u8>,
    pending: &mut VecDeque<oneshot::Sender<Result<Frame, ResolveError>>>,
) -> Result<(), String> {
    let mut used = 0;
    while let Some((frame, n)) =
        resp::parse_with(&rbuf[used..], &LIMITS).map_err(|e| format!("bad reply: {e}"))?
    {
        used += n;
        // A timed-out caller dropped its receiver; the reply is simply discarded.
        let reply = pending.pop_front().ok_or("reply with no request waiting")?;
        let _ = reply.send(Ok(frame));
    }
    rbuf.drain(..used);
    Ok(())
}
