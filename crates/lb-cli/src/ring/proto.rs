//! The request side of RESP as a server sees it: commands, parsed in place.
//!
//! Clients send a command as an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
//! or, typed by a person, as an inline line (`GET k\r\n`). [`parse_command`] finds one
//! whole command at the start of a buffer and records its arguments as byte ranges into
//! that buffer, so a command costs no allocation once the range vector has grown. It is a
//! pure function: `Ok(Parsed::Command { used })` — a command, `used` bytes long;
//! `Ok(Parsed::Incomplete { need })` — a valid beginning, do not parse again before the
//! buffer holds `need` bytes; `Err(_)` — garbage, answer the error and close.
//!
//! Every length is bounded by [`Limits`] before anything is buffered for it.
//! lb-core's [`resp`](lb_core::resp) codec parses *any* frame into owned values (what the
//! RESP resolver reads); this parser reads only what a server accepts and borrows.

use std::ops::Range;

/// Bounds on what one command may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most arguments in one command (the command name included).
    pub max_args: usize,
    /// Longest argument, bytes.
    pub max_arg_len: usize,
    /// Longest whole command on the wire, bytes (also the longest inline line).
    pub max_command_len: usize,
}

impl Limits {
    /// 10 000 arguments, 64 KiB per argument, 4 MiB per command.
    pub const DEFAULT: Limits = Limits {
        max_args: 10_000,
        max_arg_len: 64 << 10,
        max_command_len: 4 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// What [`parse_command`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole command of `used` bytes; its arguments are in the range vector (empty for
    /// a blank inline line, which gets no reply).
    Command {
        /// Bytes taken from the buffer.
        used: usize,
    },
    /// Not yet whole: wait until the buffer holds at least `need` bytes.
    Incomplete {
        /// The least buffer length worth parsing again.
        need: usize,
    },
}

/// Why the bytes can never be a command (the reply is `-ERR Protocol error: <this>`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// `*` not followed by a valid count.
    #[error("invalid multibulk length")]
    BadCount,
    /// More arguments than [`Limits::max_args`].
    #[error("too many arguments ({got} > {max})")]
    TooManyArgs {
        /// Declared count.
        got: u64,
        /// The limit.
        max: usize,
    },
    /// An argument that is not a `$` bulk string.
    #[error("expected '$', got '{}'", char::from(*.0))]
    ExpectedBulk(u8),
    /// `$` not followed by a valid length.
    #[error("invalid bulk length")]
    BadLength,
    /// An argument longer than [`Limits::max_arg_len`].
    #[error("argument of {got} bytes exceeds the limit of {max}")]
    ArgTooLong {
        /// Declared length.
        got: u64,
        /// The limit.
        max: usize,
    },
    /// A bulk payload not followed by CRLF, or a length line not ended by CRLF.
    #[error("expected CRLF")]
    BadTerminator,
    /// A command (or inline line) longer than [`Limits::max_command_len`].
    #[error("command longer than {0} bytes")]
    TooLong(usize),
    /// An inline line with an unbalanced quote.
    #[error("unbalanced quotes in request")]
    Quotes,
}

/// Parses one command at the start of `buf`, its arguments into `args`.
pub fn parse_command(
    buf: &[u8],
    args: &mut Vec<Range<usize>>,
    limits: &Limits,
) -> Result<Parsed, ProtoError> {
    args.clear();
    match buf.first() {
        None => Ok(Parsed::Incomplete { need: 1 }),
        Some(b'*') => multibulk(buf, args, limits),
        Some(_) => inline(buf, args, limits),
    }
}

/// A decimal line starting at `pos` (after the type byte): the value and the position
/// after its CRLF; `Ok(None)` when the CRLF is not there yet.
fn number(buf: &[u8], pos: usize, bad: ProtoError) -> Result<Option<(i64, usize)>, ProtoError> {
    // 20 digits and a sign hold any i64; longer is garbage.
    let window = &buf[pos..buf.len().min(pos + 22)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if window.len() >= 22 || window.contains(&b'\n') {
            Err(bad)
        } else {
            Ok(None)
        };
    };
    let digits = &window[..cr];
    let n = std::str::from_utf8(digits)
        .ok()
        .filter(|s| !s.is_empty() && !s.starts_with('+'))
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(bad)?;
    match buf.get(pos + cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((n, pos + cr + 2))),
        Some(_) => Err(ProtoError::BadTerminator),
    }
}

fn multibulk(
    buf: &[u8],
    args: &mut Vec<Range<usize>>,
    limits: &Limits,
) -> Result<Parsed, ProtoError> {
    let incomplete = |need: usize| {
        if need > limits.max_command_len {
            Err(ProtoError::TooLong(limits.max_command_len))
        } else {
            Ok(Parsed::Incomplete { need })
        }
    };
    let Some((count, mut pos)) = number(buf, 1, ProtoError::BadCount)? else {
        return incomplete(buf.len() + 1);
    };
    if count <= 0 {
        // `*0` and `*-1` are empty commands: Redis skips them silently.
        return Ok(Parsed::Command { used: pos });
    }
    if count as u64 > limits.max_args as u64 {
        return Err(ProtoError::TooManyArgs {
            got: count as u64,
            max: limits.max_args,
        });
    }
    for _ in 0..count {
        match buf.get(pos) {
            None => return incomplete(pos + 1),
            Some(b'$') => {}
            Some(&other) => return Err(ProtoError::ExpectedBulk(other)),
        }
        let Some((len, start)) = number(buf, pos + 1, ProtoError::BadLength)? else {
            return incomplete(buf.len() + 1);
        };
        if len < 0 {
            return Err(ProtoError::BadLength);
        }
        if len as u64 > limits.max_arg_len as u64 {
            return Err(ProtoError::ArgTooLong {
                got: len as u64,
                max: limits.max_arg_len,
            });
        }
        let end = start + len as usize;
        if buf.len() < end + 2 {
            // A byte already present where the CR belongs must be the CR.
            if buf.len() == end + 1 && buf[end] != b'\r' {
                return Err(ProtoError::BadTerminator);
            }
            return incomplete(end + 2);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtoError::BadTerminator);
        }
        args.push(start..end);
        pos = end + 2;
        if pos > limits.max_command_len {
            return Err(ProtoError::TooLong(limits.max_command_len));
        }
    }
    Ok(Parsed::Command { used: pos })
}

/// An inline command: words split on spaces and tabs, with `"..."` and `'...'` quoting
/// (no escapes inside; what `redis-cli` users and `nc` need).
fn inline(buf: &[u8], args: &mut Vec<Range<usize>>, limits: &Limits) -> Result<Parsed, ProtoError> {
    let max = limits.max_command_len.min(64 << 10);
    let Some(nl) = buf.iter().take(max + 1).position(|&b| b == b'\n') else {
        return if buf.len() > max {
            Err(ProtoError::TooLong(max))
        } else {
            Ok(Parsed::Incomplete {
                need: buf.len() + 1,
            })
        };
    };
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let mut i = 0;
    while i < line_end {
        let b = buf[i];
        if b == b' ' || b == b'\t' {
            i += 1;
            continue;
        }
        if b == b'"' || b == b'\'' {
            let close = buf[i + 1..line_end]
                .iter()
                .position(|&c| c == b)
                .ok_or(ProtoError::Quotes)?;
            args.push(i + 1..i + 1 + close);
            i += close + 2;
        } else {
            let len = buf[i..line_end]
                .iter()
                .position(|&c| c == b' ' || c == b'\t')
                .unwrap_or(line_end - i);
            args.push(i..i + len);
            i += len;
        }
        if args.len() > limits.max_args {
            return Err(ProtoError::TooManyArgs {
                got: args.len() as u64,
                max: limits.max_args,
            });
        }
    }
    Ok(Parsed::Command { used: nl + 1 })
}

/// Appends `n` in decimal without allocating.
pub fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        out.push(b'-');
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends a bulk string `$len\r\ndata\r\n`.
pub fn push_bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    push_int(out, data.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends an aggregate header such as `*3\r\n`.
pub fn push_header(out: &mut Vec<u8>, ty: u8, n: usize) {
    out.push(ty);
    push_int(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(buf: &[u8]) -> Result<(Vec<Vec<u8>>, usize), String> {
        let mut r = Vec::new();
        match parse_command(buf, &mut r, &Limits::DEFAULT) {
            Ok(Parsed::Command { used }) => {
                Ok((r.into_iter().map(|x| buf[x].to_vec()).collect(), used))
            }
            Ok(Parsed::Incomplete { need }) => Err(format!("incomplete {need}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn multibulk_and_inline() {
        let c = b"*2\r\n$3\r\nGET\r\n$5\r\nk e y\r\nrest";
        let (w, used) = words(c).unwrap();
        assert_eq!(w, [b"GET".to_vec(), b"k e y".to_vec()]);
        assert_eq!(used, c.len() - 4);
        let (w, used) = words(b"  get  \"a b\" 'c' d\r\n").unwrap();
        assert_eq!(
            w,
            [
                b"get".to_vec(),
                b"a b".to_vec(),
                b"c".to_vec(),
                b"d".to_vec()
            ]
        );
        assert_eq!(used, 20);
        assert_eq!(words(b"PING\n").unwrap(), (vec![b"PING".to_vec()], 5));
        assert_eq!(words(b"\r\n").unwrap(), (vec![], 2));
        assert_eq!(words(b"*0\r\n").unwrap(), (vec![], 4));
        // Binary-safe arguments: CR/LF inside a bulk.
        assert_eq!(
            words(b"*1\r\n$2\r\n\r\n\r\n").unwrap().0,
            [b"\r\n".to_vec()]
        );
    }

    #[test]
    fn incomplete_says_how_much_to_wait_for() {
        let c = b"*2\r\n$3\r\nGET\r\n$100\r\n";
        assert_eq!(words(c), Err(format!("incomplete {}", c.len() + 102)));
        assert_eq!(words(b"*2\r\n$3\r\nGE"), Err("incomplete 13".into()));
        assert_eq!(words(b"*2"), Err("incomplete 3".into()));
        assert_eq!(words(b"GET k"), Err("incomplete 6".into()));
    }

    #[test]
    fn garbage_is_an_error() {
        for (bad, msg) in [
            (&b"*x\r\n"[..], "invalid multibulk length"),
            (b"*1\r\n+OK\r\n", "expected '$', got '+'"),
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*1\r\n$3\r\nGETxx", "expected CRLF"),
            (b"*1\r\n$3\r\nGETx", "expected CRLF"),
            (b"*1\r\n$3\rx", "expected CRLF"),
            (b"*99999999999\r\n", "too many arguments"),
            (b"*1\r\n$99999999\r\n", "exceeds the limit"),
            (b"*123456789012345678901234\r\n", "invalid multibulk length"),
            (b"GET \"k\r\n", "unbalanced quotes"),
        ] {
            let e = words(bad).unwrap_err();
            assert!(e.contains(msg), "{bad:?}: {e}");
        }
        let long = vec![b'a'; 70_000];
        assert!(words(&long).unwrap_err().contains("longer than"));
    }

    #[test]
    fn total_size_is_bounded() {
        let limits = Limits {
            max_args: 100,
            max_arg_len: 100,
            max_command_len: 50,
        };
        let mut r = Vec::new();
        let c = b"*3\r\n$20\r\naaaaaaaaaaaaaaaaaaaa\r\n$20\r\naaaaaaaaaaaaaaaaaaaa\r\n$1\r\na\r\n";
        assert_eq!(
            parse_command(c, &mut r, &limits),
            Err(ProtoError::TooLong(50))
        );
        assert_eq!(
            parse_command(&c[..40], &mut r, &limits),
            Err(ProtoError::TooLong(50))
        );
    }

    #[test]
    fn ints() {
        for n in [0i64, 7, -1, 10, i64::MAX, i64::MIN] {
            let mut v = Vec::new();
            push_int(&mut v, n);
            assert_eq!(v, n.to_string().into_bytes());
        }
    }

    proptest::proptest! {
        // Any bytes: an answer, never a panic; a command never claims more than it has.
        #[test]
        fn never_panics(buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut r = Vec::new();
            if let Ok(Parsed::Command { used }) = parse_command(&buf, &mut r, &Limits::DEFAULT) {
                proptest::prop_assert!(used <= buf.len());
                for a in &r { proptest::prop_assert!(a.end <= used); }
            }
        }

        // Every prefix of a valid command is incomplete, and the whole parses back.
        #[test]
        fn prefixes_are_incomplete(args in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20), 1..6)) {
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let mut wire = Vec::new();
            lb_core::resp::encode_command(&refs, &mut wire);
            let mut r = Vec::new();
            for i in 0..wire.len() {
                let p = parse_command(&wire[..i], &mut r, &Limits::DEFAULT);
                proptest::prop_assert!(matches!(p, Ok(Parsed::Incomplete { need }) if need > i && need <= wire.len()), "{:?} at {}", p, i);
            }
            proptest::prop_assert_eq!(parse_command(&wire, &mut r, &Limits::DEFAULT), Ok(Parsed::Command { used: wire.len() }));
            let got: Vec<Vec<u8>> = r.iter().map(|x| wire[x.clone()].to_vec()).collect();
            proptest::prop_assert_eq!(got, args);
        }
    }
}
