//! A response written to an HTTP/1 client, following hyper's rules for a server:
//! `Content-Length` as given, else the body's exact size, else `Transfer-Encoding:
//! chunked` (HTTP/1.0: the body runs to the connection's end); no body for `HEAD`, 204
//! and 304; a `Date` field when the response has none; trailers the response declares
//! when the client accepts them (`TE: trailers`). The head and a small first body frame
//! go out in one write. When the client asked to close, the listener drains, or the
//! request's body was left unread, the response says `connection: close`. A body that
//! fails or ends short of its length ends the connection (truncated, never padded).

use std::future::poll_fn;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use hyper::header::{self, HeaderMap};
use hyper::{Response, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client::io::ClientIo;
use crate::error::BodyError;
use crate::http1::fields::decimal_length;
use crate::response::RespBody;
use crate::upstream::h1::RawFields;

/// Body bytes up to this size are copied behind the head (or the chunk line before them)
/// and go out in one write; larger frames are written from where they are.
const COALESCE: usize = 16 * 1024;

/// How a response body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Exactly this many bytes (none for `HEAD`, 204, 304).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and a body of unknown length).
    Close,
}

/// A response encoded for the wire.
pub(crate) struct Encoded {
    /// The status line and fields.
    pub(crate) head: Vec<u8>,
    /// The body to send after the head, and its framing (none for `HEAD`, 204, 304 and
    /// empty bodies, which are dropped here).
    pub(crate) body: Option<(RespBody, Framing, Trailers)>,
    /// The connection closes after this response.
    pub(crate) last: bool,
}

/// The trailers a response may send: the names its `Trailer` field declares, when the
/// client accepts trailers (`TE: trailers`) and the body is chunked (as hyper's server).
#[derive(Default)]
pub(crate) struct Trailers(Option<Bytes>);

impl Trailers {
    fn allows(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|declared| {
            declared
                .split(|&b| b == b',')
                .any(|n| n.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
        })
    }
}

/// What the client side says of the request a response answers.
#[derive(Clone, Copy)]
pub(crate) struct Asked {
    pub(crate) head_request: bool,
    /// The connection closes after this response.
    pub(crate) close: bool,
    pub(crate) http10: bool,
    /// The client accepts trailers.
    pub(crate) trailers: bool,
}

/// Encodes `resp`'s head (see the module docs for the rules).
pub(crate) fn encode_response(resp: Response<RespBody>, asked: Asked) -> Encoded {
    let (parts, body) = resp.into_parts();
    // The status line, `date`, `content-length` and `connection` fit in 128 bytes.
    let raw = body.raw_fields().map_or(0, RawFields::bytes_len);
    let mut head = Vec::with_capacity(128 + raw + parts.headers.len() * 48);
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        // The tunnel follows (`RespBody::take_switch`): the fields as they are.
        head.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
        for (name, value) in &parts.headers {
            write_field(&mut head, name.as_str().as_bytes(), value.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        return Encoded {
            head,
            body: None,
            last: false,
        };
    }
    let mut asked = asked;
    match encode_head(&mut head, parts.status, &parts.headers, &body, &mut asked) {
        Some(Framing::Length(0)) => Encoded {
            head,
            body: None,
            last: asked.close,
        },
        Some(framing) => {
            let trailers = if asked.trailers && framing == Framing::Chunked {
                let declared = match body.raw_fields() {
                    Some(raw) => raw.value(b"trailer").map(Bytes::copy_from_slice),
                    None => parts
                        .headers
                        .get(header::TRAILER)
                        .map(|v| Bytes::copy_from_slice(v.as_bytes())),
                };
                Trailers(declared)
            } else {
                Trailers::default()
            };
            Encoded {
                head,
                body: Some((body, framing, trailers)),
                last: asked.close || framing == Framing::Close,
            }
        }
        // hyper answers a 1xx from the service, which it cannot send, with a 500.
        None => Encoded {
            head: b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                .to_vec(),
            body: None,
            last: true,
        },
    }
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Encodes the status line and fields of a response (see the module docs for the rules);
/// `None` for a 1xx status, which is not sent. A `Connection: close` among the fields,
/// or a body that runs to the connection's end, sets `asked.close`.
fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &RespBody,
    asked: &mut Asked,
) -> Option<Framing> {
    if status.is_informational() {
        return None;
    }
    status_line(out, status);
    let no_body = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    // What the body says of itself: nothing left, or an exact size.
    let ended = body.is_end_stream();
    let exact = if ended {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    let mut seen = Seen::default();
    if let Some(raw) = body.raw_fields() {
        // The backend's fields from their bytes; none of them is hop-by-hop.
        raw.write(out);
        seen.date = raw.has_date;
        if raw.has_length {
            // Its value is what the body reads to (a 204 or 304 with a length has a map).
            seen.framing = Some(Framing::Length(exact.unwrap_or(0)));
        }
    }
    let omit_te = asked.head_request || no_body || asked.http10;
    map_fields(
        out,
        headers,
        &mut seen,
        ended && !asked.head_request,
        omit_te,
    );
    if seen.close {
        asked.close = true;
    }
    let framing = match seen.framing {
        Some(f) => f,
        None if no_body => Framing::Length(0),
        None => body_framing(out, exact, asked),
    };
    if !seen.connection {
        if asked.close {
            out.extend_from_slice(b"connection: close\r\n");
        } else if asked.http10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    if !seen.date {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(if asked.head_request || no_body {
        Framing::Length(0)
    } else {
        framing
    })
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// What the response's own fields said.
#[derive(Default)]
struct Seen {
    framing: Option<Framing>,
    date: bool,
    connection: bool,
    /// `Connection: close`.
    close: bool,
}

/// Writes the fields of the response's map. `no_length`: a `Content-Length` other than
/// `0` is left out (no body will be sent, as hyper does); `omit_te`: no chunked coding
/// (`HEAD`, 204, 304, an HTTP/1.0 client).
fn map_fields(
    out: &mut Vec<u8>,
    headers: &HeaderMap,
    seen: &mut Seen,
    no_length: bool,
    omit_te: bool,
) {
    for (name, value) in headers {
        match *name {
            header::CONTENT_LENGTH => {
                if seen.framing.is_some() || (no_length && value.as_bytes() != b"0") {
                    continue;
                }
                let Some(n) = decimal_length(value.as_bytes()) else {
                    continue;
                };
                seen.framing = Some(Framing::Length(n));
            }
            header::TRANSFER_ENCODING => {
                if seen.framing.is_some() || omit_te {
                    continue;
                }
                seen.framing = Some(Framing::Chunked);
                if !value.as_bytes().ends_with(b"chunked") {
                    out.extend_from_slice(b"transfer-encoding: ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b", chunked\r\n");
                    continue;
                }
            }
            header::CONNECTION => {
                seen.connection = true;
                seen.close |= value.as_bytes().eq_ignore_ascii_case(b"close");
            }
            header::DATE => seen.date = true,
            _ => {}
        }
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// The framing of a body whose fields named none: its exact size as `Content-Length`,
/// else chunked (HTTP/1.0: until the connection closes, which sets `asked.close`).
fn body_framing(out: &mut Vec<u8>, exact: Option<u64>, asked: &mut Asked) -> Framing {
    match exact {
        Some(n) => {
            if !(asked.head_request && n == 0) {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Framing::Length(n)
        }
        None if asked.head_request => Framing::Length(0),
        // HTTP/1.0 has no chunked coding: the body runs to the connection's end.
        None if asked.http10 => {
            asked.close = true;
            Framing::Close
        }
        None => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Framing::Chunked
        }
    }
}

/// Writes the head in `out` and the body after it; true when the body was sent whole.
/// `last`: the connection closes after it (see [`write_last`]).
pub(crate) async fn send_body(
    io: &mut ClientIo,
    mut out: Vec<u8>,
    mut body: Pin<&mut RespBody>,
    framing: Framing,
    trailers: Trailers,
    last: bool,
) -> bool {
    let mut left = match framing {
        Framing::Length(n) => n,
        Framing::Chunked | Framing::Close => u64::MAX,
    };
    let mut ended = false;
    loop {
        let Some(next) = next_frame(io, &mut out, body.as_mut()).await else {
            return false;
        };
        let data = match next {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    // Trailers end a chunked body (sent when declared and accepted).
                    if let (Framing::Chunked, Ok(map)) = (framing, frame.into_trailers()) {
                        last_chunk(&mut out, &map, &trailers);
                        ended = true;
                    }
                    continue;
                }
            },
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed: connection closed");
                let _ = write_out(io, &out, &[]).await;
                return false;
            }
            None => break,
        };
        if data.is_empty() || ended {
            continue;
        }
        if !frame_prefix(&mut out, data.len(), framing, &mut left) {
            tracing::debug!("response body longer than its length: connection closed");
            let _ = write_out(io, &out, &[]).await;
            return false;
        }
        if !push(io, &mut out, data, framing, left).await {
            return false;
        }
        if left == 0 {
            break;
        }
    }
    match framing {
        Framing::Chunked if !ended => out.extend_from_slice(b"0\r\n\r\n"),
        Framing::Length(_) if left != 0 => {
            tracing::debug!(
                missing = left,
                "response body shorter than its length: connection closed"
            );
            let _ = write_out(io, &out, &[]).await;
            return false;
        }
        _ => {}
    }
    if last {
        return write_last(io, &out).await.is_ok();
    }
    write_out(io, &out, &[]).await.is_ok()
}

/// The body's next frame: one that is ready, or, when none is, what is pending in `out`
/// is sent first and then the frame waited for. `None` when writing failed.
async fn next_frame(
    io: &mut ClientIo,
    out: &mut Vec<u8>,
    mut body: Pin<&mut RespBody>,
) -> Option<Option<Result<Frame<Bytes>, BodyError>>> {
    if let Poll::Ready(next) = poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
        return Some(next);
    }
    if !out.is_empty() {
        io.write_all(out).await.ok()?;
        out.clear();
    }
    io.flush().await.ok()?;
    Some(poll_fn(|cx| body.as_mut().poll_frame(cx)).await)
}

/// The last chunk and the trailer section: the fields `trailers` allows.
fn last_chunk(out: &mut Vec<u8>, map: &HeaderMap, trailers: &Trailers) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in map {
        if trailers.allows(name.as_str()) {
            write_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Accounts a data frame of `len` bytes: its chunk-size line, or its share of the
/// length left. False when it is longer than the length left.
fn frame_prefix(out: &mut Vec<u8>, len: usize, framing: Framing, left: &mut u64) -> bool {
    match framing {
        Framing::Length(_) => {
            if len as u64 > *left {
                return false;
            }
            *left -= len as u64;
        }
        Framing::Chunked => {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{len:x}\r\n");
        }
        Framing::Close => {}
    }
    true
}

/// Sends `data` after what is pending in `out`: small frames are gathered in `out` up
/// to [`COALESCE`] bytes, larger ones written from where they are. False when writing
/// failed.
async fn push(
    io: &mut ClientIo,
    out: &mut Vec<u8>,
    data: Bytes,
    framing: Framing,
    left: u64,
) -> bool {
    if data.len() <= COALESCE {
        out.extend_from_slice(&data);
        if framing == Framing::Chunked {
            out.extend_from_slice(b"\r\n");
        }
        // Small frames that keep coming (a fast backend's small chunks) are gathered up
        // to a bound, then written: the backend waits on the client, not on memory.
        if out.len() >= COALESCE && left != 0 {
            if write_out(io, out, &[]).await.is_err() {
                return false;
            }
            out.clear();
        }
        return true;
    }
    if write_out(io, out, &data).await.is_err() {
        return false;
    }
    out.clear();
    if framing == Framing::Chunked {
        // The chunk's CRLF goes out with whatever follows it.
        out.extend_from_slice(b"\r\n");
    }
    true
}

/// Writes `buf`, the last bytes of a connection that closes after them, and sends the
/// FIN with them where it can (see [`ClientIo::poll_write_last`]).
pub(crate) async fn write_last(io: &mut ClientIo, buf: &[u8]) -> io::Result<()> {
    let mut rest = buf;
    while !rest.is_empty() {
        let n = poll_fn(|cx| io.poll_write_last(cx, rest)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        rest = &rest[n..];
    }
    io.end_last()
}

/// Writes `a` then `b`, in one vectored write where the stream takes one.
async fn write_out(io: &mut ClientIo, a: &[u8], b: &[u8]) -> io::Result<()> {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() || !b.is_empty() {
        let n = poll_fn(|cx| {
            if a.is_empty() {
                return Pin::new(&mut *io).poll_write(cx, b);
            }
            if b.is_empty() || !io.is_write_vectored() {
                return Pin::new(&mut *io).poll_write(cx, a);
            }
            Pin::new(&mut *io).poll_write_vectored(cx, &[io::IoSlice::new(a), io::IoSlice::new(b)])
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}

/// The `Date` value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// `Sun, 06 Nov 1994 08:49:37 GMT`.
    const LEN: usize = 29;

    thread_local! {
        static CACHED: RefCell<(u64, [u8; LEN])> = const { RefCell::new((u64::MAX, [0; LEN])) };
    }

    /// Appends the current date in IMF-fixdate form.
    pub(crate) fn extend(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs {
                let text = httpdate::fmt_http_date(now);
                if text.len() != LEN {
                    // Years past 9999 only.
                    out.extend_from_slice(text.as_bytes());
                    return;
                }
                c.1.copy_from_slice(text.as_bytes());
                c.0 = secs;
            }
            out.extend_from_slice(&c.1);
        });
    }
}
