//! The ClientHello body: fixed fields, the extensions block, `server_name` and ALPN.
//!
//! Runs only on a complete handshake message, so a field that overruns its container is
//! `Malformed`, never `Incomplete`. Results are ranges into the message, so the caller can
//! hold them next to a borrowed or an owned copy of it.

use std::ops::Range;

use super::reader::Reader;
use super::{malformed, HelloError, HANDSHAKE_HEADER_LEN};

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const NAME_TYPE_HOST_NAME: u8 = 0;

/// What the handshake body yields, as ranges into the handshake message.
pub(super) struct Body {
    pub(super) legacy_version: u16,
    pub(super) sni: Option<Range<usize>>,
    pub(super) alpn: Option<Range<usize>>,
}

/// Parse a complete ClientHello handshake message (header included, already checked).
pub(super) fn parse_handshake(message: &[u8]) -> Result<Body, HelloError> {
    let mut r = Reader::new(message);
    r.skip(HANDSHAKE_HEADER_LEN, "handshake header")?;
    let legacy_version = r.u16("legacy_version past the handshake")?;
    r.skip(32, "random past the handshake")?;
    let session_id = usize::from(r.u8("session_id length past the handshake")?);
    if session_id > 32 {
        return Err(malformed("session_id longer than 32 bytes"));
    }
    r.skip(session_id, "session_id past the handshake")?;
    let suites = usize::from(r.u16("cipher_suites length past the handshake")?);
    if suites == 0 || suites % 2 != 0 {
        return Err(malformed("cipher_suites length is zero or odd"));
    }
    r.skip(suites, "cipher_suites past the handshake")?;
    let compression = usize::from(r.u8("compression_methods length past the handshake")?);
    if compression == 0 {
        return Err(malformed("no compression method"));
    }
    r.skip(compression, "compression_methods past the handshake")?;
    let mut body = Body {
        legacy_version,
        sni: None,
        alpn: None,
    };
    if r.is_empty() {
        return Ok(body); // a TLS 1.2 hello may omit the extensions block entirely
    }
    let len = usize::from(r.u16("extensions length past the handshake")?);
    let mut extensions = r.sub(len, "extensions past the handshake")?;
    if !r.is_empty() {
        return Err(malformed("bytes after the extensions block"));
    }
    let (mut seen_sni, mut seen_alpn) = (false, false);
    while !extensions.is_empty() {
        let kind = extensions.u16("extension type past the extensions block")?;
        let len = usize::from(extensions.u16("extension length past the extensions block")?);
        let data = extensions.sub(len, "extension data past the extensions block")?;
        match kind {
            EXT_SERVER_NAME if seen_sni => return Err(malformed("two server_name extensions")),
            EXT_SERVER_NAME => {
                seen_sni = true;
                body.sni = parse_server_name(data)?;
            }
            EXT_ALPN if seen_alpn => return Err(malformed("two ALPN extensions")),
            EXT_ALPN => {
                seen_alpn = true;
                body.alpn = Some(parse_alpn(data)?);
            }
            _ => {}
        }
    }
    Ok(body)
}

/// The `server_name` extension: the range of its `host_name`, if it has one.
fn parse_server_name(mut data: Reader<'_>) -> Result<Option<Range<usize>>, HelloError> {
    let len = usize::from(data.u16("server_name list length past the extension")?);
    if len != data.remaining() {
        return Err(malformed(
            "server_name list length does not match the extension",
        ));
    }
    if len == 0 {
        return Err(malformed("empty server_name list"));
    }
    let mut host = None;
    while !data.is_empty() {
        let name_type = data.u8("server_name entry type past the list")?;
        let len = usize::from(data.u16("server_name entry length past the list")?);
        let start = data.pos;
        let name = data.bytes(len, "server_name entry past the list")?;
        if name_type != NAME_TYPE_HOST_NAME {
            continue; // RFC 6066 leaves room for other name types; none is defined
        }
        if host.is_some() {
            return Err(malformed("two host_name entries in server_name"));
        }
        check_host_name(name)?;
        host = Some(start..start + len);
    }
    Ok(host)
}

/// A host name lb-sni is willing to carry to the router: non-empty, and only the bytes a
/// DNS name (or its punycode form) can hold. No NUL, no space, no control or non-ASCII.
fn check_host_name(name: &[u8]) -> Result<(), HelloError> {
    if name.is_empty() {
        return Err(HelloError::BadServerName {
            what: "empty host_name",
        });
    }
    let ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if !name.iter().all(ok) {
        return Err(HelloError::BadServerName {
            what: "host_name has bytes no host name can hold",
        });
    }
    Ok(())
}

/// The ALPN extension: the range of its protocol_name_list contents.
fn parse_alpn(mut data: Reader<'_>) -> Result<Range<usize>, HelloError> {
    let len = usize::from(data.u16("ALPN list length past the extension")?);
    if len != data.remaining() {
        return Err(malformed("ALPN list length does not match the extension"));
    }
    if len == 0 {
        return Err(malformed("empty ALPN list"));
    }
    let start = data.pos;
    while !data.is_empty() {
        let len = usize::from(data.u8("ALPN protocol length past the list")?);
        if len == 0 {
            return Err(malformed("empty ALPN protocol name"));
        }
        data.skip(len, "ALPN protocol past the list")?;
    }
    Ok(start..data.pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_checked() {
        assert!(check_host_name(b"Tenant-42.example_x.COM").is_ok());
        for bad in [&b""[..], b"a\0b", b"a b", b"caf\xc3\xa9", b"a/b", b"a:443"] {
            assert!(check_host_name(bad).is_err(), "{bad:?}");
        }
    }
}
