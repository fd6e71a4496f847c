//! A pure, incremental RESP2/RESP3 codec (the Redis serialization protocol).
//!
//! [`parse`] looks at the bytes read so far and answers one of three things:
//! `Ok(Some((frame, used)))` — a whole frame, and how many bytes it took; `Ok(None)` — a
//! valid beginning, read more (every prefix of a valid frame gets this, never an error);
//! or `Err(_)` — the bytes can never become a valid frame, so the connection should be
//! closed. There is no state between calls: a caller appends to its buffer, calls
//! [`parse`] again from the start of the buffer, and drains `used` bytes after a frame.
//!
//! ## Bounds
//! A peer controls every length on the wire, so [`Limits`] caps each of them: a bulk
//! string's length, an aggregate's element count, nesting depth, and the length of a
//! line (simple string, error, number). A declared length above its limit is an error at
//! once, before any data arrives. Memory is never reserved from a declared length alone:
//! an aggregate pre-allocates at most what the bytes already read could fill, so a
//! hostile `*1000000000\r\n` costs nothing. Re-parsing from the start after each read is
//! linear in the buffered bytes, and the buffer is bounded by the limits.
//!
//! ## Types
//! RESP2: simple string `+`, error `-`, integer `:`, bulk string `$` (and nil `$-1`),
//! array `*` (and nil `*-1`). RESP3: null `_`, boolean `#`, double `,`, big number `(`,
//! bulk error `!`, verbatim string `=`, map `%`, set `~`, push `>`. Attributes (`|`) and
//! streamed aggregates (`?` lengths) are rejected as [`RespError::Unsupported`].
//!
//! ## Encoding
//! [`encode_command`] writes a command as an array of bulk strings (what clients send);
//! [`Frame::encode`] writes any frame. RESP3-only frames must only be sent to a peer that
//! negotiated RESP3 (`HELLO 3`); a RESP2 peer expects [`Frame::Bulk`]`(None)` for nil.
//!
//! ```
//! use lb_core::resp::{encode_command, parse, Frame};
//!
//! let mut out = Vec::new();
//! encode_command(&[b"GET", b"tenant-a"], &mut out);
//! assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$8\r\ntenant-a\r\n");
//!
//! let reply = b"$14\r\n127.0.0.1:9001\r\n";
//! assert_eq!(parse(&reply[..7]), Ok(None)); // incomplete: read more
//! let (frame, used) = parse(reply).unwrap().unwrap();
//! assert_eq!(frame, Frame::Bulk(Some(b"127.0.0.1:9001".to_vec())));
//! assert_eq!(used, reply.len());
//! ```

use std::fmt::Write as _;

/// One RESP value.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// `+OK`: a short status line (no CR or LF inside).
    Simple(String),
    /// `-ERR message`: an error reply (no CR or LF inside).
    Error(String),
    /// `:42`: a signed 64-bit integer.
    Integer(i64),
    /// `$3\r\nfoo` (binary safe); `None` is RESP2 nil, `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...`; `None` is RESP2 nil array, `*-1`.
    Array(Option<Vec<Frame>>),
    /// RESP3 `_`: null.
    Null,
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,3.14` (also `inf`, `-inf`, `nan`).
    Double(f64),
    /// RESP3 `(` big number: an optional `-` and decimal digits, kept as text.
    BigNumber(String),
    /// RESP3 `!`: a binary-safe error.
    BulkError(Vec<u8>),
    /// RESP3 `=`: a string with a three-byte format such as `txt` or `mkd`.
    Verbatim {
        /// The format, e.g. `*b"txt"`.
        format: [u8; 3],
        /// The text after `format:`.
        data: Vec<u8>,
    },
    /// RESP3 `%`: key/value pairs, in wire order.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~`: an unordered collection, in wire order.
    Set(Vec<Frame>),
    /// RESP3 `>`: out-of-band data (pub/sub messages, invalidations).
    Push(Vec<Frame>),
}

/// Size bounds applied while parsing; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string, bulk error or verbatim string, in bytes.
    pub max_bulk_len: usize,
    /// Most elements in one array, set or push; most pairs in one map.
    pub max_array_len: usize,
    /// Deepest nesting of aggregates (a flat array is depth 1).
    pub max_depth: usize,
    /// Longest line (simple string, error, number), in bytes, without the CRLF.
    pub max_line_len: usize,
}

impl Limits {
    /// The defaults: 16 MiB bulk strings, 1 Mi elements, depth 32, 64 KiB lines.
    pub const DEFAULT: Limits = Limits {
        max_bulk_len: 16 << 20,
        max_array_len: 1 << 20,
        max_depth: 32,
        max_line_len: 64 << 10,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Why bytes can never become a valid frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// The first byte of a frame is not a RESP type.
    #[error("unknown RESP type byte 0x{0:02x}")]
    UnknownType(u8),
    /// A RESP3 feature this codec does not implement (attributes, streamed aggregates).
    #[error("unsupported RESP feature: {0}")]
    Unsupported(&'static str),
    /// A CR not followed by LF, or a bulk payload not followed by CRLF.
    #[error("malformed line terminator")]
    BadTerminator,
    /// A line longer than [`Limits::max_line_len`].
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    /// An integer, length, boolean, double or big number that does not parse.
    #[error("invalid {0}")]
    InvalidNumber(&'static str),
    /// A negative length other than the RESP2 nil `-1`.
    #[error("invalid length {0}")]
    InvalidLength(i64),
    /// A bulk string longer than [`Limits::max_bulk_len`].
    #[error("bulk length {len} exceeds the limit {max}")]
    BulkTooLong {
        /// Declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An aggregate with more elements than [`Limits::max_array_len`].
    #[error("aggregate length {len} exceeds the limit {max}")]
    ArrayTooLong {
        /// Declared element count.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Aggregates nested deeper than [`Limits::max_depth`].
    #[error("aggregates nested deeper than {0}")]
    TooDeep(usize),
    /// A simple string, error or big number that is not UTF-8.
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    /// A verbatim string without its `xxx:` format prefix.
    #[error("verbatim string without a format prefix")]
    BadVerbatim,
}

/// Parses one frame from the start of `buf` with [`Limits::DEFAULT`].
///
/// `Ok(None)` means incomplete: read more and call again with the longer buffer.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, RespError> {
    parse_with(buf, &Limits::DEFAULT)
}

/// Parses one frame from the start of `buf` with the given limits.
pub fn parse_with(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, RespError> {
    let mut p = Parser {
        buf,
        pos: 0,
        limits,
    };
    Ok(p.frame(0)?.map(|f| (f, p.pos)))
}

/// A cursor over the buffered bytes; `Ok(None)` anywhere means "incomplete".
struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

/// Shorthand: propagate "incomplete" (`None`) as well as errors.
macro_rules! need {
    ($e:expr) => {
        match $e? {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

impl<'a> Parser<'a> {
    fn frame(&mut self, depth: usize) -> Result<Option<Frame>, RespError> {
        let Some(&ty) = self.buf.get(self.pos) else {
            return Ok(None);
        };
        if !b"+-:$*_#,(!=%~>|".contains(&ty) {
            return Err(RespError::UnknownType(ty));
        }
        self.pos += 1;
        let frame = match ty {
            b'+' => Frame::Simple(utf8(need!(self.line()))?),
            b'-' => Frame::Error(utf8(need!(self.line()))?),
            b':' => Frame::Integer(int(need!(self.line()), "integer")?),
            b'$' => Frame::Bulk(need!(self.bulk(true))),
            b'!' => Frame::BulkError(need!(self.bulk(false)).unwrap_or_default()),
            b'=' => {
                // `bulk(false)` never yields the nil form.
                let data = need!(self.bulk(false)).unwrap_or_default();
                if data.len() < 4 || data[3] != b':' {
                    return Err(RespError::BadVerbatim);
                }
                Frame::Verbatim {
                    format: [data[0], data[1], data[2]],
                    data: data[4..].to_vec(),
                }
            }
            b'_' => {
                if !need!(self.line()).is_empty() {
                    return Err(RespError::InvalidNumber("null"));
                }
                Frame::Null
            }
            b'#' => match need!(self.line()) {
                b"t" => Frame::Boolean(true),
                b"f" => Frame::Boolean(false),
                _ => return Err(RespError::InvalidNumber("boolean")),
            },
            b',' => Frame::Double(double(need!(self.line()))?),
            b'(' => Frame::BigNumber(big_number(need!(self.line()))?),
            b'*' => match need!(self.aggregate_len(true, depth)) {
                None => Frame::Array(None),
                Some(n) => Frame::Array(Some(need!(self.elements(n, depth)))),
            },
            b'~' | b'>' => {
                let n = need!(self.aggregate_len(false, depth)).unwrap_or(0);
                let items = need!(self.elements(n, depth));
                if ty == b'~' {
                    Frame::Set(items)
                } else {
                    Frame::Push(items)
                }
            }
            b'%' => {
                let n = need!(self.aggregate_len(false, depth)).unwrap_or(0);
                let mut pairs = Vec::with_capacity(self.prealloc(n, 6));
                for _ in 0..n {
                    let k = need!(self.frame(depth + 1));
                    let v = need!(self.frame(depth + 1));
                    pairs.push((k, v));
                }
                Frame::Map(pairs)
            }
            // `|` attributes; every other byte was rejected above.
            _ => return Err(RespError::Unsupported("attributes")),
        };
        Ok(Some(frame))
    }

    /// The bytes up to the next CRLF (consumed), bounded by `max_line_len`.
    fn line(&mut self) -> Result<Option<&'a [u8]>, RespError> {
        let rest = &self.buf[self.pos..];
        let max = self.limits.max_line_len;
        match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            Some(i) if i > max => Err(RespError::LineTooLong(max)),
            Some(i) if rest[i] == b'\n' => Err(RespError::BadTerminator),
            Some(i) => match rest.get(i + 1) {
                None => Ok(None),
                Some(b'\n') => {
                    self.pos += i + 2;
                    Ok(Some(&rest[..i]))
                }
                Some(_) => Err(RespError::BadTerminator),
            },
            None if rest.len() > max => Err(RespError::LineTooLong(max)),
            None => Ok(None),
        }
    }

    /// A length line: `Some(None)` is the nil `-1` (only where `nil_ok`).
    fn count(&mut self, nil_ok: bool) -> Result<Option<Option<usize>>, RespError> {
        let line = need!(self.line());
        if line.first() == Some(&b'?') {
            return Err(RespError::Unsupported("streamed aggregates"));
        }
        let n = int(line, "length")?;
        match usize::try_from(n) {
            Ok(n) => Ok(Some(Some(n))),
            Err(_) if n == -1 && nil_ok => Ok(Some(None)),
            Err(_) => Err(RespError::InvalidLength(n)),
        }
    }

    /// A bulk payload after its type byte: length line, bytes, CRLF.
    fn bulk(&mut self, nil_ok: bool) -> Result<Option<Option<Vec<u8>>>, RespError> {
        let Some(len) = need!(self.count(nil_ok)) else {
            return Ok(Some(None));
        };
        let max = self.limits.max_bulk_len;
        if len > max {
            return Err(RespError::BulkTooLong { len, max });
        }
        let rest = &self.buf[self.pos..];
        if rest.len() < len + 2 {
            // Bytes already present must still be a valid beginning.
            if rest.len() == len + 1 && rest[len] != b'\r' {
                return Err(RespError::BadTerminator);
            }
            return Ok(None);
        }
        if &rest[len..len + 2] != b"\r\n" {
            return Err(RespError::BadTerminator);
        }
        self.pos += len + 2;
        Ok(Some(Some(rest[..len].to_vec())))
    }

    /// An aggregate's element count, checked against the count and depth limits.
    fn aggregate_len(
        &mut self,
        nil_ok: bool,
        depth: usize,
    ) -> Result<Option<Option<usize>>, RespError> {
        if depth + 1 > self.limits.max_depth {
            return Err(RespError::TooDeep(self.limits.max_depth));
        }
        let n = need!(self.count(nil_ok));
        let max = self.limits.max_array_len;
        match n {
            Some(len) if len > max => Err(RespError::ArrayTooLong { len, max }),
            _ => Ok(Some(n)),
        }
    }

    /// `n` frames of an array, set or push.
    fn elements(&mut self, n: usize, depth: usize) -> Result<Option<Vec<Frame>>, RespError> {
        let mut items = Vec::with_capacity(self.prealloc(n, 3));
        for _ in 0..n {
            items.push(need!(self.frame(depth + 1)));
        }
        Ok(Some(items))
    }

    /// Capacity to reserve for `n` elements of at least `min_bytes` wire bytes each: never
    /// more than the buffered bytes could hold, so declared lengths cost nothing up front.
    fn prealloc(&self, n: usize, min_bytes: usize) -> usize {
        n.min((self.buf.len() - self.pos) / min_bytes)
    }
}

fn utf8(line: &[u8]) -> Result<String, RespError> {
    String::from_utf8(line.to_vec()).map_err(|_| RespError::InvalidUtf8)
}

fn int(line: &[u8], what: &'static str) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .filter(|s| !s.starts_with('+'))
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(RespError::InvalidNumber(what))
}

fn double(line: &[u8]) -> Result<f64, RespError> {
    let s = std::str::from_utf8(line).map_err(|_| RespError::InvalidNumber("double"))?;
    match s {
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        "nan" | "-nan" => Ok(f64::NAN),
        // Rust's parser also takes "infinity" and "NaN"; RESP spells those as above only.
        _ if s
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            Err(RespError::InvalidNumber("double"))
        }
        _ => s.parse().map_err(|_| RespError::InvalidNumber("double")),
    }
}

fn big_number(line: &[u8]) -> Result<String, RespError> {
    let digits = line.strip_prefix(b"-").unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RespError::InvalidNumber("big number"));
    }
    utf8(line)
}

/// Writes a command as a RESP array of bulk strings, e.g. `GET key`.
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    header(out, b'*', args.len());
    for arg in args {
        bulk(out, b'$', arg);
    }
}

fn header(out: &mut Vec<u8>, ty: u8, n: usize) {
    out.push(ty);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, ty: u8, data: &[u8]) {
    header(out, ty, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, ty: u8, text: &str) {
    out.push(ty);
    // CR/LF cannot be sent inside a line; replace them rather than corrupt the stream.
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

impl Frame {
    /// Appends the wire form of this frame to `out`.
    ///
    /// A CR or LF inside [`Frame::Simple`] or [`Frame::Error`] cannot be represented and
    /// is written as a space; [`Frame::BigNumber`] is written as given.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Simple(s) => line(out, b'+', s),
            Frame::Error(s) => line(out, b'-', s),
            Frame::Integer(n) => line(out, b':', &n.to_string()),
            Frame::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Frame::Bulk(Some(data)) => bulk(out, b'$', data),
            Frame::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Frame::Array(Some(items)) => items_of(out, b'*', items),
            Frame::Null => out.extend_from_slice(b"_\r\n"),
            Frame::Boolean(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Frame::Double(d) => {
                let mut text = String::new();
                if d.is_nan() {
                    text.push_str("nan");
                } else if d.is_infinite() {
                    text.push_str(if *d > 0.0 { "inf" } else { "-inf" });
                } else {
                    // `{:?}` is the shortest text that parses back to the same f64.
                    let _ = write!(text, "{d:?}");
                }
                line(out, b',', &text);
            }
            Frame::BigNumber(s) => line(out, b'(', s),
            Frame::BulkError(data) => bulk(out, b'!', data),
            Frame::Verbatim { format, data } => {
                header(out, b'=', data.len() + 4);
                out.extend_from_slice(format);
                out.push(b':');
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Map(pairs) => {
                header(out, b'%', pairs.len());
                for (k, v) in pairs {
                    k.encode(out);
                    v.encode(out);
                }
            }
            Frame::Set(items) => items_of(out, b'~', items),
            Frame::Push(items) => items_of(out, b'>', items),
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn items_of(out: &mut Vec<u8>, ty: u8, items: &[Frame]) {
    header(out, ty, items.len());
    for item in items {
        item.encode(out);
    }
}

#[cfg(test)]
mod tests;
