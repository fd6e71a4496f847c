//! Telling HTTP/1 from an HTTP/2 preface without growing hyper's read buffer.
//!
//! hyper-util's `auto` server reads up to 24 bytes to look for the h2c preface and hands
//! them to hyper's HTTP/1 parser as a separate first read. hyper then finds an incomplete
//! head in its 8 KiB read buffer and, to make room for the next full read, regrows it to
//! 16 KiB, which every keep-alive connection then keeps for its whole life.
//!
//! [`ClientIo`](crate::conn::ClientIo) answers that version probe with one read of up to
//! 4 KiB into a stash of its own: when those bytes cannot start the h2 preface, the probe
//! sees an empty read, `auto` picks HTTP/1 with nothing to replay, and hyper's first read
//! gets the stashed head whole into its 8 KiB buffer. Anything that could still be a
//! preface (including too few bytes to tell) is handed to the probe from the stash, so
//! h2c prior knowledge, timeouts and shutdown behave as with a plain read. A new
//! connection's head costs one read: neither a peek before it nor a second read.

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// True when `first` (non-empty) cannot be the beginning of the HTTP/2 preface.
pub fn cannot_be_h2(first: &[u8]) -> bool {
    let n = first.len().min(H2_PREFACE.len());
    n > 0 && first[..n] != H2_PREFACE[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_not_the_preface() {
        for req in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /x HTTP/1.1\r\n",
            b"PUT /",
            b"PATCH /",
            b"PRX",
            b"\r\n",
        ] {
            assert!(cannot_be_h2(req), "{:?}", String::from_utf8_lossy(req));
        }
    }

    #[test]
    fn preface_prefixes_and_empty_take_the_ordinary_path() {
        for n in 0..=H2_PREFACE.len() {
            assert!(!cannot_be_h2(&H2_PREFACE[..n]), "prefix of {n} bytes");
        }
        let mut more = H2_PREFACE.to_vec();
        more.extend_from_slice(b"\x00\x00\x12\x04");
        assert!(!cannot_be_h2(&more));
    }
}
