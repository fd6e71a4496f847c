//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a balancer writes first on
//! a connection to tell the next hop who the client really is.
//!
//! Both directions are here, as pure functions over bytes:
//! - [`Header::encode`] writes a v1 (text) or v2 (binary) header for a TCP connection from
//!   `src` to `dst` into a fixed buffer, without allocating.
//! - [`parse`] reads one from the start of a connection, incrementally: give it everything
//!   read so far; [`ParseError::Incomplete`] means "read more". It never reads past the
//!   header ([`Parsed::consumed`]), so the bytes after it are the client's own.
//!
//! ```text
//! v1  "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n"   (at most 107 bytes)
//!     "PROXY UNKNOWN\r\n"                                   (addresses not known)
//! v2  sig[12] = \r\n\r\n\0\r\nQUIT\n | ver_cmd u8 (0x21 PROXY, 0x20 LOCAL) |
//!     fam u8 (0x11 TCP/IPv4, 0x21 TCP/IPv6, 0x00 unspecified) | len u16 | addresses | TLVs
//! ```
//!
//! A v2 `LOCAL` command, an unspecified family, a v1 `UNKNOWN` and UDP or UNIX addresses
//! all parse to a [`Parsed`] without addresses: the connection is the balancer's own (a
//! health check) and the peer address stands. TLVs are skipped.
//!
//! ```
//! use lb_core::proxy_protocol::{parse, Header, Version};
//!
//! let src = "192.0.2.1:51000".parse().unwrap();
//! let dst = "198.51.100.2:443".parse().unwrap();
//! for version in [Version::V1, Version::V2] {
//!     let header = Header { version, src, dst }.encode();
//!     let mut wire = header.as_bytes().to_vec();
//!     wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
//!     let parsed = parse(&wire).unwrap();
//!     assert_eq!((parsed.src, parsed.dst), (Some(src), Some(dst)));
//!     assert_eq!(&wire[parsed.consumed..], b"GET / HTTP/1.1\r\n");
//!     assert!(parse(&header.as_bytes()[..10]).unwrap_err().is_incomplete());
//! }
//! ```

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12-byte signature that starts every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v1 header, CRLF included (the specification's bound).
pub const V1_MAX: usize = 107;

/// The longest v2 header [`parse`] accepts: 16 bytes, addresses and TLVs. Larger ones (the
/// format allows 64 KiB of TLVs) are [`ParseError::TooLong`].
pub const V2_MAX: usize = 16 + 2048;

/// The longest header [`Header::encode`] writes (a v1 header for two IPv6 addresses).
pub const ENCODED_MAX: usize = V1_MAX;

/// PROXY protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// Text.
    V1,
    /// Binary.
    V2,
}

/// A header to send: the client (`src`) and the address it connected to (`dst`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Which format.
    pub version: Version,
    /// The client's address.
    pub src: SocketAddr,
    /// The address the client connected to (the balancer's listener).
    pub dst: SocketAddr,
}

/// An encoded header, on the stack.
#[derive(Clone, Copy)]
pub struct Encoded {
    buf: [u8; ENCODED_MAX],
    len: usize,
}

impl Encoded {
    /// The header bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoded({:?})", self.as_bytes())
    }
}

struct Cursor<'a> {
    buf: &'a mut [u8; ENCODED_MAX],
    len: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        // Callers write at most ENCODED_MAX bytes in all (v1: 107 by the spec's arithmetic;
        // v2: 16 + 36); `min` keeps an arithmetic slip from panicking.
        let n = bytes.len().min(ENCODED_MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }
}

impl std::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.put(s.as_bytes());
        Ok(())
    }
}

/// An IPv4-mapped IPv6 address as IPv4, so a dual-stack listener still sends TCP4.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

impl Header {
    /// Encodes the header. When `src` and `dst` are of different families (after unmapping
    /// IPv4-mapped IPv6), both are sent as IPv6 (v4 mapped).
    pub fn encode(&self) -> Encoded {
        let (mut src, mut dst) = (canonical(self.src), canonical(self.dst));
        if src.is_ipv4() != dst.is_ipv4() {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
                IpAddr::V6(_) => a,
            };
            src = v6(src);
            dst = v6(dst);
        }
        let mut buf = [0u8; ENCODED_MAX];
        let mut c = Cursor {
            buf: &mut buf,
            len: 0,
        };
        match self.version {
            Version::V1 => {
                let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
                // Writing to a Cursor cannot fail.
                let _ = write!(
                    c,
                    "PROXY {fam} {} {} {} {}\r\n",
                    src.ip(),
                    dst.ip(),
                    src.port(),
                    dst.port()
                );
            }
            Version::V2 => {
                c.put(&V2_SIGNATURE);
                match (src.ip(), dst.ip()) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        c.put(&[0x21, 0x11]);
                        c.put(&12u16.to_be_bytes());
                        c.put(&s.octets());
                        c.put(&d.octets());
                    }
                    (s, d) => {
                        let v6 = |ip: IpAddr| match ip {
                            IpAddr::V6(a) => a,
                            IpAddr::V4(a) => a.to_ipv6_mapped(),
                        };
                        c.put(&[0x21, 0x21]);
                        c.put(&36u16.to_be_bytes());
                        c.put(&v6(s).octets());
                        c.put(&v6(d).octets());
                    }
                }
                c.put(&src.port().to_be_bytes());
                c.put(&dst.port().to_be_bytes());
            }
        }
        let len = c.len;
        Encoded { buf, len }
    }
}

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Which format it was.
    pub version: Version,
    /// The client's address; `None` for LOCAL / UNKNOWN / non-TCP headers.
    pub src: Option<SocketAddr>,
    /// The address the client connected to; `None` as for `src`.
    pub dst: Option<SocketAddr>,
    /// Header length: the client's own bytes start here.
    pub consumed: usize,
}

/// Why [`parse`] gave no header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A valid beginning: read more and call again.
    #[error("incomplete PROXY header")]
    Incomplete,
    /// The bytes do not start with a PROXY v1 or v2 header.
    #[error("no PROXY protocol header")]
    NotProxy,
    /// A PROXY header that breaks the format.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    /// Longer than [`V1_MAX`] (v1) or [`V2_MAX`] (v2).
    #[error("PROXY header too long")]
    TooLong,
}

impl ParseError {
    /// True for [`ParseError::Incomplete`].
    pub fn is_incomplete(&self) -> bool {
        matches!(self, ParseError::Incomplete)
    }
}

const V1_PREFIX: &[u8] = b"PROXY ";

/// Parses a PROXY v1 or v2 header at the start of `buf` (everything read so far).
pub fn parse(buf: &[u8]) -> Result<Parsed, ParseError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        if n < V2_SIGNATURE.len() {
            return Err(ParseError::Incomplete);
        }
        return parse_v2(buf);
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        if n < V1_PREFIX.len() {
            return Err(ParseError::Incomplete);
        }
        return parse_v1(buf);
    }
    Err(ParseError::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ParseError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    // The line ends at its first CR or LF, whatever follows: so an answer, once given,
    // does not change as more bytes arrive (a bare LF is an error at once, not only when
    // no CR comes later).
    let Some(cr) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(ParseError::TooLong)
        } else {
            Err(ParseError::Incomplete)
        };
    };
    if window[cr] == b'\n' {
        return Err(ParseError::Malformed("line ends without CR"));
    }
    if cr + 2 > V1_MAX {
        // A CR in the last byte allowed: its LF would be one byte too many.
        return Err(ParseError::TooLong);
    }
    match buf.get(cr + 1) {
        None => return Err(ParseError::Incomplete),
        Some(b'\n') => {}
        Some(_) => return Err(ParseError::Malformed("CR not followed by LF")),
    }
    let consumed = cr + 2;
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..cr])
        .map_err(|_| ParseError::Malformed("not ASCII"))?;
    let mut parts = line.split(' ');
    let fam = parts.next().unwrap_or("");
    if fam == "UNKNOWN" {
        return Ok(Parsed {
            version: Version::V1,
            src: None,
            dst: None,
            consumed,
        });
    }
    let v4 = match fam {
        "TCP4" => true,
        "TCP6" => false,
        _ => return Err(ParseError::Malformed("family is not TCP4, TCP6 or UNKNOWN")),
    };
    let ip = |s: Option<&str>| -> Result<IpAddr, ParseError> {
        let s = s.ok_or(ParseError::Malformed("missing field"))?;
        let ip: IpAddr = if v4 {
            s.parse::<Ipv4Addr>().map(IpAddr::V4)
        } else {
            s.parse::<Ipv6Addr>().map(IpAddr::V6)
        }
        .map_err(|_| ParseError::Malformed("bad address"))?;
        Ok(ip)
    };
    let port = |s: Option<&str>| -> Result<u16, ParseError> {
        let s = s.ok_or(ParseError::Malformed("missing field"))?;
        // No sign, no leading zeros (the spec's form), at most 5 digits.
        if s.is_empty() || s.len() > 5 || (s.len() > 1 && s.starts_with('0')) {
            return Err(ParseError::Malformed("bad port"));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::Malformed("bad port"));
        }
        s.parse().map_err(|_| ParseError::Malformed("bad port"))
    };
    let (sip, dip) = (ip(parts.next())?, ip(parts.next())?);
    let (sp, dp) = (port(parts.next())?, port(parts.next())?);
    if parts.next().is_some() {
        return Err(ParseError::Malformed("extra fields"));
    }
    Ok(Parsed {
        version: Version::V1,
        src: Some(SocketAddr::new(sip, sp)),
        dst: Some(SocketAddr::new(dip, dp)),
        consumed,
    })
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ParseError> {
    if buf.len() < 16 {
        return Err(ParseError::Incomplete);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ParseError::Malformed("version is not 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ParseError::Malformed("unknown command")),
    };
    let fam = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let consumed = 16 + len;
    if consumed > V2_MAX {
        return Err(ParseError::TooLong);
    }
    if buf.len() < consumed {
        return Err(ParseError::Incomplete);
    }
    let body = &buf[16..consumed];
    let none = Parsed {
        version: Version::V2,
        src: None,
        dst: None,
        consumed,
    };
    let (src, dst) = match fam {
        0x11 => {
            if body.len() < 12 {
                return Err(ParseError::Malformed(
                    "IPv4 addresses longer than the header",
                ));
            }
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[o],
                    body[o + 1],
                    body[o + 2],
                    body[o + 3],
                ))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            (
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            )
        }
        0x21 => {
            if body.len() < 36 {
                return Err(ParseError::Malformed(
                    "IPv6 addresses longer than the header",
                ));
            }
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&body[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            (
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            )
        }
        // Unspecified, UDP, UNIX: valid, but no TCP addresses to use.
        0x00 | 0x12 | 0x22 | 0x31 | 0x32 => return Ok(none),
        _ => return Err(ParseError::Malformed("unknown address family")),
    };
    if local {
        return Ok(none);
    }
    Ok(Parsed {
        version: Version::V2,
        src: Some(src),
        dst: Some(dst),
        consumed,
    })
}

/// Why [`read_header`] found no header.
#[cfg(feature = "runtime")]
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes are not a valid header.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The peer closed before a whole header.
    #[error("connection closed inside the PROXY header")]
    Eof,
    /// Reading failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one PROXY header off `stream` and not a byte more: what follows it stays in the
/// socket for whoever reads next (a TLS handshake, an HTTP parser). Peeks, then consumes
/// only header bytes, so a slow sender costs reads, never a busy loop. The caller bounds
/// the time it may take.
#[cfg(feature = "runtime")]
pub async fn read_header(stream: &mut tokio::net::TcpStream) -> Result<Parsed, ReadError> {
    use tokio::io::AsyncReadExt;
    let mut buf: Vec<u8> = Vec::new();
    let mut peeked = [0u8; 512];
    loop {
        let n = stream.peek(&mut peeked).await?;
        if n == 0 {
            return Err(ReadError::Eof);
        }
        let have = buf.len();
        buf.extend_from_slice(&peeked[..n]);
        match parse(&buf) {
            Ok(p) => {
                // `parse` never reads past the header: these bytes are all its own.
                buf.truncate(have);
                buf.resize(p.consumed, 0);
                stream.read_exact(&mut buf[have..]).await?;
                return Ok(p);
            }
            Err(ParseError::Incomplete) => {
                // Everything peeked belongs to the header: take it and wait for more.
                stream.read_exact(&mut buf[have..]).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_text_is_exact() {
        let h = Header {
            version: Version::V1,
            src: addr("192.0.2.1:51000"),
            dst: addr("198.51.100.2:443"),
        };
        assert_eq!(
            h.encode().as_bytes(),
            b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n"
        );
        let h6 = Header {
            version: Version::V1,
            src: addr("[2001:db8::1]:1"),
            dst: addr("[::1]:2"),
        };
        assert_eq!(
            h6.encode().as_bytes(),
            b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n"
        );
    }

    #[test]
    fn v2_bytes_are_exact() {
        let h = Header {
            version: Version::V2,
            src: addr("127.0.0.1:1000"),
            dst: addr("127.0.0.2:80"),
        };
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[
            0x21, 0x11, 0, 12, 127, 0, 0, 1, 127, 0, 0, 2, 0x03, 0xe8, 0, 80,
        ]);
        assert_eq!(h.encode().as_bytes(), &want[..]);
    }

    #[test]
    fn mixed_families_go_as_ipv6_and_mapped_v4_as_v4() {
        let h = Header {
            version: Version::V1,
            src: addr("[::ffff:10.0.0.1]:5"),
            dst: addr("10.0.0.2:6"),
        };
        assert_eq!(
            h.encode().as_bytes(),
            b"PROXY TCP4 10.0.0.1 10.0.0.2 5 6\r\n"
        );
        let h = Header {
            version: Version::V2,
            src: addr("10.0.0.1:5"),
            dst: addr("[2001:db8::2]:6"),
        };
        let p = parse(h.encode().as_bytes()).unwrap();
        assert_eq!(p.src, Some(addr("[::ffff:10.0.0.1]:5")));
        assert_eq!(p.dst, Some(addr("[2001:db8::2]:6")));
    }

    #[test]
    fn local_unknown_and_unspecified_have_no_addresses() {
        let p = parse(b"PROXY UNKNOWN\r\nrest").unwrap();
        assert_eq!((p.src, p.consumed), (None, 15));
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        let p = parse(&local).unwrap();
        assert_eq!((p.src, p.consumed), (None, 16));
    }

    #[test]
    fn bad_headers_are_named() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ParseError::NotProxy));
        assert_eq!(
            parse(b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n").unwrap_err(),
            ParseError::Malformed("family is not TCP4, TCP6 or UNKNOWN")
        );
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 1.2.3.4 99999 2\r\n"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n"),
            Err(ParseError::Malformed(_))
        ));
        assert_eq!(parse(&[b'A'; 0][..]), Err(ParseError::Incomplete));
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(200, b'1');
        assert_eq!(parse(&long), Err(ParseError::TooLong));
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&big), Err(ParseError::TooLong));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(matches!(parse(&short), Err(ParseError::Malformed(_))));
    }

    fn any_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(o, p)| SocketAddr::new(IpAddr::from(o), p)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(o, p)| SocketAddr::new(IpAddr::from(o), p)),
        ]
    }

    /// Found by the fuzz target (fuzz/regressions/proxy_protocol/v1-bare-lf-then-crlf): a
    /// bare LF in a v1 line was an error only while no CRLF followed it, so the answer
    /// changed as bytes arrived ("line ends without CR", then "bad port").
    /// Found by the fuzz target (fuzz/regressions/proxy_protocol/v1-header-of-108-bytes): a
    /// CR as the 107th byte, with its LF after it, was accepted as a 108-byte header.
    #[test]
    fn a_v1_header_is_at_most_107_bytes_with_its_crlf() {
        let line = |len: usize| {
            let mut l = b"PROXY UNKNOWN ".to_vec();
            l.resize(len - 2, b'x');
            l.extend_from_slice(b"\r\n");
            l
        };
        let longest = line(V1_MAX);
        assert_eq!(parse(&longest).map(|p| p.consumed), Ok(V1_MAX));
        let over = line(V1_MAX + 1);
        for end in V1_MAX..=over.len() {
            assert_eq!(
                parse(&over[..end]),
                Err(ParseError::TooLong),
                "first {end} bytes"
            );
        }
        assert_eq!(parse(&over[..V1_MAX - 1]), Err(ParseError::Incomplete));
    }

    #[test]
    fn a_bare_lf_ends_a_v1_line_whatever_follows() {
        let wire = b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443-\nGET / HTTP/1.1\r\n\r\n";
        let want = Err(ParseError::Malformed("line ends without CR"));
        for end in wire.iter().position(|&b| b == b'\n').unwrap() + 1..=wire.len() {
            assert_eq!(parse(&wire[..end]), want, "first {end} bytes");
        }
        let mut long = b"PROXY TCP4 1.2.3.4\n".to_vec();
        long.resize(V1_MAX + 10, b'A');
        assert_eq!(parse(&long), want);
    }

    proptest! {
        #[test]
        fn round_trip_and_every_prefix_is_incomplete(src in any_addr(), dst in any_addr(), v2 in any::<bool>(), tail in proptest::collection::vec(any::<u8>(), 0..32)) {
            let version = if v2 { Version::V2 } else { Version::V1 };
            let enc = Header { version, src, dst }.encode();
            let bytes = enc.as_bytes();
            prop_assert!(bytes.len() <= ENCODED_MAX);
            for i in 0..bytes.len() {
                prop_assert_eq!(parse(&bytes[..i]), Err(ParseError::Incomplete));
            }
            let mut wire = bytes.to_vec();
            wire.extend_from_slice(&tail);
            let p = parse(&wire).unwrap();
            prop_assert_eq!(p.consumed, bytes.len());
            let same = |a: SocketAddr, b: SocketAddr| canonical(a) == canonical(b)
                || match (a.ip(), b.ip()) {
                    (IpAddr::V4(x), IpAddr::V6(y)) | (IpAddr::V6(y), IpAddr::V4(x)) => y.to_ipv4_mapped() == Some(x) && a.port() == b.port(),
                    _ => false,
                };
            prop_assert!(same(p.src.unwrap(), src));
            prop_assert!(same(p.dst.unwrap(), dst));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(p) = parse(&bytes) {
                prop_assert!(p.consumed <= bytes.len());
            }
        }

        #[test]
        fn arbitrary_after_signature_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..128), v1 in any::<bool>()) {
            let mut b = if v1 { b"PROXY ".to_vec() } else { V2_SIGNATURE.to_vec() };
            b.extend_from_slice(&tail);
            if let Ok(p) = parse(&b) {
                prop_assert!(p.consumed <= b.len());
            }
        }
    }
}
