//! Telling HTTP/1 from an HTTP/2 preface without growing hyper's read buffer.
//!
//! [`front`](crate::front) looks at a connection's first bytes: when they could still be
//! the h2c preface (including too few bytes to tell), the connection goes to hyper-util's
//! `auto` server, which tells HTTP/2 apart itself.
//!
//! `auto` reads up to 24 bytes to look for the preface and hands them to hyper's HTTP/1
//! parser as a separate first read. hyper then finds an incomplete head in its 8 KiB
//! read buffer and, to make room for the next full read, regrows it to 16 KiB, which the
//! connection then keeps for its whole life. So when `front` hands over an HTTP/1
//! connection, [`ClientIo::unread`](crate::conn::ClientIo::unread) answers that probe with
//! an empty read when the bytes put back cannot start the preface: `auto` picks HTTP/1
//! with nothing to replay, and hyper's first read gets the head whole.

use crate::http1::{h2c_preface, Status};

/// True when `first` (non-empty) cannot be the beginning of the HTTP/2 preface.
pub(crate) fn cannot_be_h2(first: &[u8]) -> bool {
    h2c_preface(first) == Status::Complete(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::H2_PREFACE;

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
