//! Telling HTTP/1 from the HTTP/2 preface on a connection's first bytes: the HTTP/1
//! engine ([`h1`](crate::client::h1)) parses a head only once the bytes cannot be the
//! preface, reads more while they still could be (too few to tell), and hands the
//! connection to hyper's HTTP/2 server once the whole preface is there.

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
