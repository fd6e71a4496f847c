//! A bounds-checked cursor: the only way the body parser touches bytes.

use super::{malformed, HelloError};

/// A bounds-checked cursor over `buf[pos..end]`. Positions are absolute in `buf`, so a
/// sub-reader's offsets index the whole message. Every read that would pass `end` fails
/// with `Malformed { what }`, naming the field that overran its container.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pub(super) pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    pub(super) fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(super) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if n > self.remaining() {
            return Err(malformed(what));
        }
        let out = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or(malformed(what))?;
        self.pos += n;
        Ok(out)
    }

    pub(super) fn skip(&mut self, n: usize, what: &'static str) -> Result<(), HelloError> {
        self.bytes(n, what).map(|_| ())
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        match self.bytes(1, what)? {
            [b] => Ok(*b),
            _ => Err(malformed(what)),
        }
    }

    pub(super) fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        match self.bytes(2, what)? {
            [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
            _ => Err(malformed(what)),
        }
    }

    /// The next `n` bytes as their own reader (same absolute positions); skips them here.
    pub(super) fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, HelloError> {
        let start = self.pos;
        self.skip(n, what)?;
        Ok(Reader {
            buf: self.buf,
            pos: start,
            end: self.pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_big_endian_and_stops_at_its_end() {
        let data = [1, 2, 3, 4, 5, 6];
        let mut r = Reader::new(&data);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(r.u16("b"), Ok(0x0203));
        let mut sub = r.sub(2, "c").expect("2 of 3 remaining bytes");
        assert_eq!(r.remaining(), 1);
        assert_eq!(sub.pos, 3);
        assert_eq!(sub.u16("d"), Ok(0x0405));
        assert_eq!(sub.u8("past sub"), Err(malformed("past sub")));
        assert_eq!(r.u16("past end"), Err(malformed("past end")));
        assert_eq!(r.u8("last"), Ok(6));
        assert!(r.is_empty());
        assert_eq!(r.bytes(usize::MAX, "huge"), Err(malformed("huge")));
    }
}
