//! A pure, incremental, zero-copy parser for the TLS ClientHello.
//!
//! lb-sni routes TLS connections it does not terminate, so the only thing it reads from the
//! client is the first flight: the ClientHello, from which it takes the server name (SNI)
//! and the ALPN list. Everything it read is then replayed, byte for byte, to the backend.
//!
//! # What is parsed
//!
//! The bytes are TLS records (RFC 8446 §5.1), each a 5-byte header and a payload:
//!
//! ```text
//! record     content_type u8 (0x16 handshake) | legacy_record_version u16 (0x03xx) |
//!            length u16 (1..=16384) | payload[length]
//! handshake  msg_type u8 (1 = ClientHello) | length u24 | body[length]
//! body       legacy_version u16 | random[32] | session_id<0..32> (u8 length) |
//!            cipher_suites<2..2^16-2> (u16 length, even) | compression_methods<1..2^8-1> |
//!            [ extensions<..2^16-1> (u16 length) ]      absent only in old TLS 1.2 hellos
//! extension  type u16 | length u16 | data[length]
//! SNI (0)    server_name_list<1..2^16-1> (u16) of { name_type u8 | name<1..2^16-1> (u16) },
//!            name_type 0 = host_name (RFC 6066 §3)
//! ALPN (16)  protocol_name_list<2..2^16-1> (u16) of protocol_name<1..2^8-1> (RFC 7301)
//! ```
//!
//! The handshake message is the concatenation of the payloads of consecutive handshake
//! records: a client may split its ClientHello over several records (rare, but legal, and a
//! way to hide the name from naive parsers). Every length field is checked against its
//! container (record, handshake message, session id, cipher suites, compression methods,
//! extensions block, each extension, server name list and entries, ALPN list and entries),
//! a record must not carry bytes past the end of the ClientHello, there may be at most one
//! `server_name` and one ALPN extension, and at most one `host_name` entry. The host name must
//! be hostname-shaped ASCII (letters, digits, `-`, `.`, `_`); full DNS validity and
//! normalisation are the router's job.
//!
//! # The incremental contract
//!
//! [`parse_client_hello`] takes *everything read so far* from the start of the connection
//! and either answers or says [`HelloError::Incomplete`]: call it again with more bytes
//! appended. It keeps no state between calls, so the caller owns a single buffer, capped at
//! [`MAX_HELLO_BYTES`]: a hello that would need more is [`HelloError::Oversized`], reported
//! as soon as a length field reveals it. Malformed input is reported as early as the bytes
//! allow (a first byte that is not `0x16` is [`HelloError::NotTls`] right away), and a
//! strict prefix of a valid hello is always `Incomplete`, never another error and never a
//! (wrong) answer. Conversely, once the parser gives any answer other than `Incomplete`,
//! appending bytes never changes it. Bytes after the hello (there should be none before the server answers)
//! are ignored; [`Hello::consumed`] says where it ended.
//!
//! # Zero copy
//!
//! When the ClientHello fits in the first record (the common case: every client seen in
//! practice), [`Hello`] borrows the caller's buffer and nothing is allocated. When it spans
//! several records the payloads are concatenated into one owned buffer (at most
//! [`MAX_HELLO_BYTES`]), the only allocation the parser makes; [`Hello::is_borrowed`] tells
//! which. Either way [`Hello::sni`] and [`Hello::alpn`] borrow from the `Hello`.
//!
//! ```
//! use lb_sni::hello::{parse_client_hello, HelloError};
//!
//! let bytes = include_bytes!(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/tests/data/client-hello/openssl-sni-alpn.bin"
//! ));
//! // A prefix asks for more.
//! assert!(matches!(parse_client_hello(&bytes[..100]), Err(HelloError::Incomplete { .. })));
//! // The whole hello answers, borrowing from `bytes`.
//! let hello = parse_client_hello(bytes)?;
//! assert_eq!(hello.sni(), Some("app1.test"));
//! assert!(hello.alpn().eq([&b"h2"[..], b"http/1.1"]));
//! assert_eq!(hello.consumed(), bytes.len());
//! # Ok::<(), HelloError>(())
//! ```

mod body;
mod reader;

use std::borrow::Cow;
use std::ops::Range;

use body::parse_handshake;

/// Largest payload of one TLS record (2^14 bytes).
pub const MAX_RECORD_PAYLOAD: usize = 16_384;

/// Size of a TLS record header: content type, version, length.
pub const RECORD_HEADER_LEN: usize = 5;

/// The most bytes lb-sni buffers for a ClientHello: one full record with its header
/// (16 KiB + 5). A hello that needs more, over however many records, is
/// [`HelloError::Oversized`].
pub const MAX_HELLO_BYTES: usize = MAX_RECORD_PAYLOAD + RECORD_HEADER_LEN;

const CONTENT_TYPE_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_HEADER_LEN: usize = 4;
const SSLV2_CLIENT_HELLO: u8 = 1;

/// Why [`parse_client_hello`] gave no [`Hello`].
///
/// [`Incomplete`](HelloError::Incomplete) is the expected "read more" outcome; every other
/// variant is final for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The bytes so far are a valid beginning: read more and call again.
    #[error("incomplete ClientHello{}", fmt_needed(.needed))]
    Incomplete {
        /// A lower bound on how many more bytes the hello needs: reading fewer cannot
        /// complete it (a malformed hello may be reported sooner). This parser always knows
        /// one (at least the rest of the current record or record header), so it gives
        /// `Some(n)` with `n >= 1`; `None` is kept for "unknown".
        needed: Option<usize>,
    },
    /// The first bytes are not a TLS handshake record (first byte not `0x16`, or a record
    /// version whose major byte is not 3): plain HTTP, SSH, garbage.
    #[error("not a TLS handshake")]
    NotTls,
    /// An SSLv2-style ClientHello (2-byte length header with the high bit set, message
    /// type 1): no SNI is possible, and no modern server accepts it.
    #[error("SSLv2-style ClientHello is not supported")]
    SslV2,
    /// The first handshake message is not a ClientHello.
    #[error("first handshake message is type {msg_type}, not a ClientHello")]
    NotClientHello {
        /// The handshake message type found.
        msg_type: u8,
    },
    /// A length or field that does not fit its container, or a bad value.
    #[error("malformed ClientHello: {what}")]
    Malformed {
        /// What was wrong, for logs.
        what: &'static str,
    },
    /// A well-framed `server_name` whose host name no DNS name can be: empty, or with a
    /// byte outside letters, digits, `-`, `.` and `_` (NUL, space, non-ASCII). The router
    /// answers it like an unknown name (`unrecognized_name`).
    #[error("invalid SNI host name: {what}")]
    BadServerName {
        /// What was wrong, for logs.
        what: &'static str,
    },
    /// The hello would need more than [`MAX_HELLO_BYTES`] bytes of buffer.
    #[error(
        "ClientHello needs at least {at_least} bytes, more than the {MAX_HELLO_BYTES}-byte cap"
    )]
    Oversized {
        /// The smallest buffer the hello would need, as far as its length fields tell.
        at_least: usize,
    },
}

impl HelloError {
    /// True for [`HelloError::Incomplete`]: the caller should read more and try again.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, HelloError::Incomplete { .. })
    }
}

fn fmt_needed(needed: &Option<usize>) -> String {
    match needed {
        Some(n) => format!(": need at least {n} more bytes"),
        None => String::new(),
    }
}

fn incomplete(needed: usize) -> HelloError {
    HelloError::Incomplete {
        needed: Some(needed),
    }
}

fn malformed(what: &'static str) -> HelloError {
    HelloError::Malformed { what }
}

/// A parsed ClientHello: what the router needs, borrowed from the input when possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The whole handshake message (4-byte header and body).
    handshake: Cow<'a, [u8]>,
    /// Where the host_name is in `handshake`.
    sni: Option<Range<usize>>,
    /// Where the ALPN protocol_name_list contents (after its u16 length) are in `handshake`.
    alpn: Option<Range<usize>>,
    legacy_version: u16,
    record_version: u16,
    records: usize,
    consumed: usize,
}

impl<'a> Hello<'a> {
    /// The `host_name` from the `server_name` extension, exactly as sent (case preserved,
    /// no trailing-dot removal); `None` when the hello has no `server_name` extension or no
    /// `host_name` entry in it. Not an error: the router decides (a `host = "*"` route takes
    /// hellos without SNI). Guaranteed non-empty ASCII of letters, digits, `-`, `.`, `_`.
    pub fn sni(&self) -> Option<&str> {
        let bytes = self.handshake.get(self.sni.clone()?)?;
        // Validated as ASCII by `check_host_name` during parsing, so this is always Ok.
        std::str::from_utf8(bytes).ok()
    }

    /// The ALPN protocols offered, in the client's order; empty when there is no ALPN
    /// extension (a present ALPN extension always holds at least one non-empty name).
    pub fn alpn(&self) -> Alpn<'_> {
        let list = self
            .alpn
            .clone()
            .and_then(|range| self.handshake.get(range))
            .unwrap_or(&[]);
        Alpn { rest: list }
    }

    /// `legacy_version` from the ClientHello body: `0x0303` for TLS 1.2 and 1.3 clients
    /// (TLS 1.3 is announced in the `supported_versions` extension, not here).
    pub fn legacy_version(&self) -> u16 {
        self.legacy_version
    }

    /// The version field of the first record header (commonly `0x0301`).
    pub fn record_version(&self) -> u16 {
        self.record_version
    }

    /// How many bytes of the input the hello occupied: all its records, headers included.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// How many TLS records carried the ClientHello (1 in the common case).
    pub fn records(&self) -> usize {
        self.records
    }

    /// True when the `Hello` borrows the input (single record); false when the handshake was
    /// reassembled from several records into an owned buffer.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.handshake, Cow::Borrowed(_))
    }

    /// The complete ClientHello handshake message (4-byte handshake header and body), e.g.
    /// for fingerprinting.
    pub fn handshake(&self) -> &[u8] {
        &self.handshake
    }

    /// Copy whatever is borrowed, to keep the `Hello` beyond the input buffer.
    pub fn into_owned(self) -> Hello<'static> {
        Hello {
            handshake: Cow::Owned(self.handshake.into_owned()),
            sni: self.sni,
            alpn: self.alpn,
            legacy_version: self.legacy_version,
            record_version: self.record_version,
            records: self.records,
            consumed: self.consumed,
        }
    }
}

/// Iterator over the ALPN protocol names of a [`Hello`], each a non-empty byte string
/// (e.g. `b"h2"`, `b"http/1.1"`).
#[derive(Debug, Clone)]
pub struct Alpn<'h> {
    rest: &'h [u8],
}

impl<'h> Alpn<'h> {
    /// True when the client offered `protocol`.
    pub fn contains(&self, protocol: &[u8]) -> bool {
        self.clone().any(|p| p == protocol)
    }
}

impl<'h> Iterator for Alpn<'h> {
    type Item = &'h [u8];

    fn next(&mut self) -> Option<&'h [u8]> {
        let (&len, tail) = self.rest.split_first()?;
        let len = usize::from(len);
        // The list was validated during parsing; on any surprise just stop.
        let (Some(name), Some(rest)) = (tail.get(..len), tail.get(len..)) else {
            self.rest = &[];
            return None;
        };
        self.rest = rest;
        Some(name)
    }
}

/// Parse a ClientHello from the bytes read so far (see the [module docs](self) for the
/// layout and the incremental contract).
///
/// Returns the [`Hello`] once it is complete, [`HelloError::Incomplete`] while it is a valid
/// prefix, and another [`HelloError`] as soon as the bytes cannot be a ClientHello lb-sni
/// accepts. Never panics; allocates only when the hello spans several records.
pub fn parse_client_hello(buf: &[u8]) -> Result<Hello<'_>, HelloError> {
    sniff(buf)?;
    let framing = scan_records(buf)?;
    let handshake: Cow<'_, [u8]> = if framing.records == 1 {
        let end = RECORD_HEADER_LEN + framing.handshake_len;
        Cow::Borrowed(
            buf.get(RECORD_HEADER_LEN..end)
                .ok_or(malformed("record walk out of step"))?,
        )
    } else {
        Cow::Owned(reassemble(buf, &framing)?)
    };
    let body = parse_handshake(&handshake)?;
    Ok(Hello {
        handshake,
        sni: body.sni,
        alpn: body.alpn,
        legacy_version: body.legacy_version,
        record_version: framing.record_version,
        records: framing.records,
        consumed: framing.consumed,
    })
}

/// Decide from the first bytes whether this can be TLS at all.
fn sniff(buf: &[u8]) -> Result<(), HelloError> {
    let Some(&first) = buf.first() else {
        return Err(incomplete(RECORD_HEADER_LEN));
    };
    if first == CONTENT_TYPE_HANDSHAKE {
        return match buf.get(1) {
            Some(&major) if major != 3 => Err(HelloError::NotTls),
            _ => Ok(()),
        };
    }
    // SSLv2 record: 2-byte header with the high bit set, then msg_type 1 = CLIENT-HELLO.
    if first & 0x80 != 0 {
        return match buf.get(2) {
            None => Err(incomplete(3 - buf.len())),
            Some(&SSLV2_CLIENT_HELLO) => Err(HelloError::SslV2),
            Some(_) => Err(HelloError::NotTls),
        };
    }
    Err(HelloError::NotTls)
}

/// Where the ClientHello's records are, once they are all in the buffer.
#[derive(Debug)]
struct Framing {
    records: usize,
    /// Input bytes up to the end of the last record carrying the hello.
    consumed: usize,
    /// Length of the handshake message, its 4-byte header included.
    handshake_len: usize,
    record_version: u16,
}

/// Walk the records until they hold the whole handshake message, checking each header and
/// the handshake header as soon as its bytes are there.
fn scan_records(buf: &[u8]) -> Result<Framing, HelloError> {
    let mut pos = 0; // start of the current record; never above MAX_HELLO_BYTES
    let mut records = 0;
    let mut before = 0; // handshake bytes carried by the previous records
    let mut header = [0u8; HANDSHAKE_HEADER_LEN];
    let mut header_have = 0;
    let mut handshake_len = None;
    let mut record_version = 0;
    loop {
        let Some([content_type, major, minor, len_hi, len_lo]) = array_at::<5>(buf, pos) else {
            if records > 0 {
                check_continuation(buf.get(pos..).unwrap_or(&[]))?;
            }
            return Err(incomplete(pos + RECORD_HEADER_LEN - buf.len()));
        };
        if records > 0 {
            check_continuation(&[content_type, major])?;
        } else {
            record_version = u16::from_be_bytes([major, minor]);
        }
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if len == 0 {
            return Err(malformed("empty handshake record"));
        }
        let start = pos + RECORD_HEADER_LEN;
        let end = start + len;
        if end > MAX_HELLO_BYTES {
            return Err(HelloError::Oversized { at_least: end });
        }
        let available = buf.get(start..end.min(buf.len())).unwrap_or(&[]);
        for &byte in available.iter().take(HANDSHAKE_HEADER_LEN - header_have) {
            if let Some(slot) = header.get_mut(header_have) {
                *slot = byte;
                header_have += 1;
            }
        }
        if header_have >= 1 && header[0] != HANDSHAKE_CLIENT_HELLO {
            return Err(HelloError::NotClientHello {
                msg_type: header[0],
            });
        }
        if header_have == HANDSHAKE_HEADER_LEN && handshake_len.is_none() {
            let body = u32::from_be_bytes([0, header[1], header[2], header[3]]);
            let total = HANDSHAKE_HEADER_LEN + usize::try_from(body).unwrap_or(usize::MAX);
            // Best case: the rest of the message is all in this record.
            let at_least = start.saturating_add(total.saturating_sub(before));
            if at_least > MAX_HELLO_BYTES {
                return Err(HelloError::Oversized { at_least });
            }
            handshake_len = Some(total);
        }
        if let Some(total) = handshake_len {
            if before + len > total {
                return Err(malformed("record carries bytes past the ClientHello"));
            }
        }
        if buf.len() < end {
            return Err(incomplete(end - buf.len()));
        }
        records += 1;
        before += len;
        pos = end;
        if handshake_len == Some(before) {
            return Ok(Framing {
                records,
                consumed: pos,
                handshake_len: before,
                record_version,
            });
        }
    }
}

/// Check the first bytes of a record that continues the ClientHello.
fn check_continuation(head: &[u8]) -> Result<(), HelloError> {
    match head {
        [] => Ok(()),
        [content_type, ..] if *content_type != CONTENT_TYPE_HANDSHAKE => {
            Err(malformed("non-handshake record inside the ClientHello"))
        }
        [_, major, ..] if *major != 3 => Err(malformed("record version is not 3.x")),
        _ => Ok(()),
    }
}

/// Concatenate the payloads of the records `scan_records` found.
fn reassemble(buf: &[u8], framing: &Framing) -> Result<Vec<u8>, HelloError> {
    let mut out = Vec::with_capacity(framing.handshake_len);
    let mut pos = 0;
    for _ in 0..framing.records {
        let [_, _, _, hi, lo] =
            array_at::<5>(buf, pos).ok_or(malformed("record walk out of step"))?;
        let start = pos + RECORD_HEADER_LEN;
        let end = start + usize::from(u16::from_be_bytes([hi, lo]));
        out.extend_from_slice(
            buf.get(start..end)
                .ok_or(malformed("record walk out of step"))?,
        );
        pos = end;
    }
    Ok(out)
}

/// `N` bytes at `at`, if there are that many.
fn array_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_decides_on_the_first_bytes() {
        assert_eq!(sniff(&[]), Err(incomplete(5)));
        assert_eq!(sniff(&[0x16]), Ok(()));
        assert_eq!(sniff(&[0x16, 0x03]), Ok(()));
        assert_eq!(sniff(&[0x16, 0x02]), Err(HelloError::NotTls));
        assert_eq!(sniff(b"GET"), Err(HelloError::NotTls));
        assert_eq!(sniff(&[0x80]), Err(incomplete(2)));
        assert_eq!(sniff(&[0x80, 0x2e, 0x01]), Err(HelloError::SslV2));
        assert_eq!(sniff(&[0x80, 0x2e, 0x02]), Err(HelloError::NotTls));
    }

    #[test]
    fn alpn_iterator_stops_on_a_short_entry() {
        let mut it = Alpn {
            rest: &[2, b'h', b'2', 5, b'x'],
        };
        assert_eq!(it.next(), Some(&b"h2"[..]));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            incomplete(3).to_string(),
            "incomplete ClientHello: need at least 3 more bytes"
        );
        assert_eq!(
            HelloError::Incomplete { needed: None }.to_string(),
            "incomplete ClientHello"
        );
        assert!(HelloError::Oversized { at_least: 20_000 }
            .to_string()
            .contains("16389"));
    }
}
