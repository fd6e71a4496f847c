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
use hyper::body::Body;
use hyper::header::{self, HeaderMap};
use hyper::{Response, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client::io::ClientIo;
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
    let head_request = asked.head_request;
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let no_body = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    // What the body says of itself: nothing left, or an exact size.
    let ended = body.is_end_stream();
    let exact = if ended {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    let mut framing = None;
    let mut date = false;
    let mut connection = false;
    if let Some(raw) = body.raw_fields() {
        // The backend's fields from their bytes; none of them is hop-by-hop.
        raw.write(out);
        date = raw.has_date;
        if raw.has_length {
            // Its value is what the body reads to (a 204 or 304 with a length has a map).
            framing = Some(Framing::Length(exact.unwrap_or(0)));
        }
    }
    for (name, value) in headers {
        match *name {
            header::CONTENT_LENGTH => {
                if framing.is_some() {
                    continue;
                }
                if ended && !head_request && value.as_bytes() != b"0" {
                    // A length with no body to send: hyper leaves the field out too.
                    continue;
                }
                let Some(n) = decimal_length(value.as_bytes()) else {
                    continue;
                };
                framing = Some(Framing::Length(n));
            }
            header::TRANSFER_ENCODING => {
                if framing.is_some() || head_request || no_body || asked.http10 {
                    continue;
                }
                framing = Some(Framing::Chunked);
                if !value.as_bytes().ends_with(b"chunked") {
                    out.extend_from_slice(b"transfer-encoding: ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b", chunked\r\n");
                    continue;
                }
            }
            header::CONNECTION => {
                connection = true;
                if value.as_bytes().eq_ignore_ascii_case(b"close") {
                    asked.close = true;
                }
            }
            header::DATE => date = true,
            _ => {}
        }
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let framing = match framing {
        Some(f) => f,
        None if no_body => Framing::Length(0),
        None => match exact {
            Some(n) => {
                if !(head_request && n == 0) {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Framing::Length(n)
            }
            None if head_request => Framing::Length(0),
            // HTTP/1.0 has no chunked coding: the body runs to the connection's end.
            None if asked.http10 => {
                asked.close = true;
                Framing::Close
            }
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
        },
    };
    if !connection {
        if asked.close {
            out.extend_from_slice(b"connection: close\r\n");
        } else if asked.http10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    if !date {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(if head_request || no_body {
        Framing::Length(0)
    } else {
        framing
    })
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
    let mut sent_trailers = false;
    loop {
        // Take a frame that is ready; if none is, send what is pending, then wait.
        let next = match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
            Poll::Ready(next) => next,
            Poll::Pending => {
                if !out.is_empty() {
                    if io.write_all(&out).await.is_err() {
                        return false;
                    }
                    out.clear();
                }
                if io.flush().await.is_err() {
                    return false;
                }
                poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let data = match next {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    // Trailers: sent when declared and accepted (see `Trailers`).
                    if let (Framing::Chunked, Ok(map)) = (framing, frame.into_trailers()) {
                        out.extend_from_slice(b"0\r\n");
                        for (name, value) in &map {
                            if trailers.allows(name.as_str()) {
                                write_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
                            }
                        }
                        out.extend_from_slice(b"\r\n");
                        sent_trailers = true;
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
        if data.is_empty() || sent_trailers {
            continue;
        }
        match framing {
            Framing::Length(_) => {
                if data.len() as u64 > left {
                    tracing::debug!("response body longer than its length: connection closed");
                    let _ = write_out(io, &out, &[]).await;
                    return false;
                }
                left -= data.len() as u64;
            }
            Framing::Chunked => {
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{:x}\r\n", data.len());
            }
            Framing::Close => {}
        }
        if data.len() <= COALESCE {
            out.extend_from_slice(&data);
            if framing == Framing::Chunked {
                out.extend_from_slice(b"\r\n");
            }
            // Small frames that keep coming (a fast backend's small chunks) are gathered
            // up to a bound, then written: the backend waits on the client, not on memory.
            if out.len() >= COALESCE && left != 0 {
                if write_out(io, &out, &[]).await.is_err() {
                    return false;
                }
                out.clear();
            }
        } else {
            if write_out(io, &out, &data).await.is_err() {
                return false;
            }
            out.clear();
            if framing == Framing::Chunked {
                // The chunk's CRLF goes out with whatever follows it.
                out.extend_from_slice(b"\r\n");
            }
        }
        if left == 0 {
            break;
        }
    }
    match framing {
        Framing::Chunked if !sent_trailers => out.extend_from_slice(b"0\r\n\r\n"),
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
