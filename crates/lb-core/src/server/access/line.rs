//! Formatting one access-log line: straight into bytes, without `core::fmt` on the common
//! path (an IPv4 address, numbers, the time), into a buffer each thread reuses.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS`: the part of `time` that changes once a second.
const STAMP: usize = 19;

/// What a thread keeps between lines: the buffer a line is built in (handed back after
/// the line is queued) and the time of day of the last line, formatted.
pub(super) struct Scratch {
    buf: Vec<u8>,
    secs: u64,
    stamp: [u8; STAMP],
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch { buf: Vec::new(), secs: u64::MAX, stamp: [0; STAMP] })
    };
}

/// A line's buffer: the thread's own when it has one to lend (else a new one).
fn take_buf() -> Vec<u8> {
    let buf = SCRATCH
        .try_with(|s| s.try_borrow_mut().map(|mut s| std::mem::take(&mut s.buf)))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    if buf.capacity() == 0 {
        Vec::with_capacity(256)
    } else {
        buf
    }
}

/// Gives a line's buffer back to the thread for its next line.
fn give_back(mut buf: Vec<u8>) {
    if buf.capacity() > 64 * 1024 {
        return; // one huge line: do not keep its memory
    }
    buf.clear();
    let _ = SCRATCH.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if s.buf.capacity() == 0 {
                s.buf = buf;
            }
        }
    });
}

/// Appends `now` as `YYYY-MM-DDTHH:MM:SS.mmmZ`: the seconds formatted once a second per
/// thread (as the `Date` header is), the milliseconds each time.
fn push_time(out: &mut Vec<u8>, now: SystemTime) {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let cached = SCRATCH
        .try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            if s.secs != secs {
                let text = crate::admin::rfc3339(now);
                // `…:SSZ`; other lengths (years past 9999) are not cached.
                let stamp = text.as_bytes().strip_suffix(b"Z")?;
                s.stamp = stamp.try_into().ok()?;
                s.secs = secs;
            }
            out.extend_from_slice(&s.stamp);
            Some(())
        })
        .ok()
        .flatten();
    if cached.is_none() {
        out.extend_from_slice(crate::admin::rfc3339(now).trim_end_matches('Z').as_bytes());
    }
    let ms = d.subsec_millis();
    out.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

/// `00` to `99`, two digits a pair.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `v` in decimal (two digits a step; one or two digits without a copy).
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    if v < 100 {
        let i = v as usize * 2;
        out.extend_from_slice(&[PAIRS[i], PAIRS[i + 1]]);
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        digits[i] = PAIRS[pair];
        digits[i + 1] = PAIRS[pair + 1];
    }
    if v >= 10 {
        i -= 2;
        digits[i] = PAIRS[v as usize * 2];
        digits[i + 1] = PAIRS[v as usize * 2 + 1];
    } else {
        i -= 1;
        digits[i] = b'0' + v as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

/// The bytes that make a text value quoted: controls, space, `"`, `=`, `\\`, DEL.
const QUOTED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b <= b' ' as usize {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'=' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t
};

/// Appends `a` as `ip:port` (`[ip]:port` for IPv6), as its `Display` does.
fn push_addr(out: &mut Vec<u8>, a: SocketAddr) {
    match a {
        SocketAddr::V4(a) => {
            for (i, o) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(o));
            }
            out.push(b':');
            push_u64(out, u64::from(a.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// One access-log line being built: fields in the order they are added.
pub struct Line {
    pub(super) buf: Vec<u8>,
    pub(super) json: bool,
    empty: bool,
}

impl Line {
    /// A line stamped with `now` (`time`, RFC 3339 UTC, milliseconds).
    pub(super) fn new(json: bool, now: SystemTime) -> Line {
        let mut l = Line {
            buf: take_buf(),
            json,
            empty: true,
        };
        if json {
            l.buf.push(b'{');
        }
        l.key("time");
        if json {
            l.buf.push(b'"');
        }
        push_time(&mut l.buf, now);
        if json {
            l.buf.push(b'"');
        }
        l
    }

    /// The finished line, newline included.
    pub(super) fn end(&mut self) -> &[u8] {
        if self.json {
            self.buf.push(b'}');
        }
        self.buf.push(b'\n');
        &self.buf
    }

    /// Gives the buffer back to the thread.
    pub(super) fn recycle(self) {
        give_back(self.buf);
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.buf.push(if self.json { b',' } else { b' ' });
        }
        self.empty = false;
        if self.json {
            self.buf.push(b'"');
            self.buf.extend_from_slice(key.as_bytes());
            self.buf.extend_from_slice(b"\":");
        } else {
            self.buf.extend_from_slice(key.as_bytes());
            self.buf.push(b'=');
        }
    }

    /// A string field (quoted and escaped as JSON needs it; in text, quoted only when it
    /// holds spaces, quotes, `=` or control characters, and empty when empty).
    pub fn str(&mut self, key: &str, value: &str) -> &mut Line {
        self.key(key);
        let plain = !value.bytes().any(|b| QUOTED[usize::from(b)]);
        if !self.json && plain {
            self.buf.extend_from_slice(value.as_bytes());
        } else {
            quote(&mut self.buf, value);
        }
        self
    }

    /// A number field.
    pub fn num(&mut self, key: &str, value: u64) -> &mut Line {
        self.key(key);
        push_u64(&mut self.buf, value);
        self
    }

    /// An address field; empty (`""` in JSON) when there is none.
    pub fn addr(&mut self, key: &str, value: Option<SocketAddr>) -> &mut Line {
        self.key(key);
        if self.json {
            self.buf.push(b'"');
        }
        if let Some(a) = value {
            push_addr(&mut self.buf, a);
        }
        if self.json {
            self.buf.push(b'"');
        }
        self
    }
}

/// `value` as a JSON string literal. Only ASCII is escaped, so the bytes of other UTF-8
/// characters are copied as they are.
fn quote(buf: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.push(b'"');
    for &b in value.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b if b < 0x20 || b == 0x7f => buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
            b => buf.push(b),
        }
    }
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, SocketAddrV6};
    use std::time::Duration;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).expect("utf-8")
    }

    #[test]
    fn numbers_addresses_and_times_match_display() {
        for n in [0, 7, 10, 99, 100, 101, 999, 1000, 65535, 1234567, u64::MAX] {
            assert_eq!(text(|b| push_u64(b, n)), n.to_string());
        }
        let addrs: [SocketAddr; 4] = [
            "127.0.0.1:80".parse().expect("v4"),
            "255.255.255.255:65535".parse().expect("v4"),
            "0.0.0.0:0".parse().expect("v4"),
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 8080, 0, 3)),
        ];
        for a in addrs {
            assert_eq!(text(|b| push_addr(b, a)), a.to_string());
        }
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_042);
        assert_eq!(text(|b| push_time(b, t)), "2026-11-18T11:06:40.042Z");
        // The cached seconds, then a new second, on the same thread.
        let t2 = t + Duration::from_millis(999);
        assert_eq!(text(|b| push_time(b, t2)), "2026-11-18T11:06:41.041Z");
        assert_eq!(text(|b| push_time(b, t)), "2026-11-18T11:06:40.042Z");
    }

    #[test]
    fn text_values_are_quoted_for_spaces_quotes_equals_and_controls() {
        for b in 0..=255u8 {
            let want = b <= b' ' || b == b'"' || b == b'=' || b == b'\\' || b == 0x7f;
            assert_eq!(QUOTED[usize::from(b)], want, "byte {b}");
        }
    }

    #[test]
    fn quoting_escapes_as_json_does() {
        let s = "a\"b\\c\nd\re\tf\u{1}\u{7f} é ✓";
        let q = text(|b| quote(b, s));
        let back: String = serde_json::from_str(&q).expect("a JSON string");
        assert_eq!(back, s);
        assert!(q.contains("\\u0001") && q.contains("\\u007f"), "{q}");
    }
}
