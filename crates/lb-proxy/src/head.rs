//! Where HTTP/1.1 request heads start and end in the client's byte stream.
//!
//! [`Tracker`] follows the framing of a client connection byte by byte, as hyper will
//! parse it, without buffering or allocating: between messages (`Idle`), inside a request
//! head (`Head`), inside a request body (`Body`: a `Content-Length` count or the chunked
//! framing, decoded by the codec's [`Chunked`]), or no longer HTTP/1 framing
//! (`Opaque`: the HTTP/2 preface, an upgraded connection, or framing hyper rejects anyway).
//!
//! A chunked body whose framing the codec refuses (a bad chunk size, a missing CRLF,
//! more data than its size) ends the tracking there, and [`Tracker::body_broken`] says
//! at which byte: the connection layer delivers nothing from there on to hyper (whose
//! decoder may be laxer), so the request's body fails and is answered `400`.
//!
//! While it scans a head it enforces, before hyper sees the bytes:
//! - the head size: more than `max_head` bytes since the previous message ended (blank
//!   lines included, as hyper buffers them) → `431 header-too-large`;
//! - the header count: more than [`MAX_HEADERS`] header lines (hyper's own limit) → 431;
//! - request smuggling: `Content-Length` and `Transfer-Encoding` in the same head → 400.
//!   hyper would drop the length and read the body as chunked; we refuse the request.
//!
//! Header names are matched case-insensitively at line starts. Value bytes are skipped
//! a line at a time, and body bytes a run at a time, so the per-request cost is the
//! header names plus one search for each line end.
//!
//! The connection layer ([`crate::conn`]) uses [`Tracker::phase`] to choose its timer:
//! `idle_timeout` between requests, `header_timeout` from the first byte of a head.

use lb_core::metrics::Reason;

use crate::http1::{Chunked, Event};

/// hyper's limit on header lines in one request head (more → 431).
pub const MAX_HEADERS: u32 = 100;

/// The HTTP/2 connection preface's first line (h2c with prior knowledge).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
const CL: &[u8] = b"content-length";
const TE: &[u8] = b"transfer-encoding";

/// Where the connection is in its byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Between messages: no byte of the next head yet (blank lines do not count).
    Idle,
    /// Inside a request head.
    Head,
    /// Inside a request body.
    Body,
    /// Not HTTP/1 framing any more (HTTP/2, an upgrade, or framing hyper rejects).
    Opaque,
}

/// A request head the proxy refuses; bytes before `at` (in the slice given to
/// [`Tracker::feed`]) may still be delivered, the byte at `at` and later may not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Index of the first byte that must not reach hyper.
    pub at: usize,
    /// `HeaderTooLarge` (431) or `BadRequest` (400, smuggling).
    pub reason: Reason,
}

/// Which header the current line names, once its `:` was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    /// Still reading the name.
    Name,
    /// The request line, or a header whose value does not matter.
    Skip,
    /// `Content-Length`: leading whitespace, then digits.
    Length,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Head,
    Length(u64),
    Chunked(Chunked),
    Opaque,
}

/// The framing tracker of one client connection. Plain data, no allocation.
#[derive(Clone, Debug)]
pub struct Tracker {
    max_head: u64,
    state: State,
    /// Heads completed so far (wrapping), so a caller sees a new head start even when
    /// the previous one ended in the same read.
    heads: u32,
    /// Bytes since the previous message ended (blank lines included).
    head_len: u64,
    /// Bytes of the current line, without CR.
    line_len: u32,
    /// Complete lines of the current head (the request line is the first).
    lines: u32,
    /// The line so far is one CR (so an LF now ends the head).
    cr_only: bool,
    /// Name candidates still matching on this line: bit 0 content-length, bit 1 transfer-encoding.
    cand: u8,
    value: Value,
    seen_cl: bool,
    seen_te: bool,
    /// The first `Content-Length` value; `None` until digits were read, or when invalid.
    length: Option<u64>,
    length_digits: bool,
    length_bad: bool,
    /// Bytes of the HTTP/2 preface matched at the start of the connection; `u8::MAX` once
    /// it cannot match any more.
    preface: u8,
    /// HTTP/2 or upgraded: not HTTP/1 at all any more (not merely framing hyper rejects).
    other_protocol: bool,
    /// Where, in the bytes last fed, a chunked body's framing broke.
    broken: Option<usize>,
}

impl Tracker {
    /// A tracker for a new connection; heads over `max_head` bytes are refused.
    pub fn new(max_head: usize) -> Tracker {
        Tracker {
            max_head: max_head as u64,
            state: State::Idle,
            heads: 0,
            head_len: 0,
            line_len: 0,
            cr_only: false,
            lines: 0,
            cand: 0,
            value: Value::Skip,
            seen_cl: false,
            seen_te: false,
            length: None,
            length_digits: false,
            length_bad: false,
            preface: 0,
            other_protocol: false,
            broken: None,
        }
    }

    /// The index, in the bytes last given to [`Tracker::feed`], of the first byte of a
    /// chunked body the codec refuses (the tracker is then `Opaque`); taken once.
    pub fn body_broken(&mut self) -> Option<usize> {
        self.broken.take()
    }

    /// Where the stream is now.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle => Phase::Idle,
            State::Head => Phase::Head,
            State::Length(_) | State::Chunked(_) => Phase::Body,
            State::Opaque => Phase::Opaque,
        }
    }

    /// Heads completed so far (wrapping).
    pub fn heads(&self) -> u32 {
        self.heads
    }

    /// Stops tracking: the connection was upgraded (101, CONNECT) or is HTTP/2.
    pub fn set_opaque(&mut self) {
        self.state = State::Opaque;
        self.other_protocol = true;
    }

    /// True once the stream is HTTP/2 or upgraded; false while it is HTTP/1, including
    /// after framing hyper rejects.
    pub fn other_protocol(&self) -> bool {
        self.other_protocol
    }

    /// Follows `buf`, the next bytes read from the client. On a violation the tracker
    /// stays where it was; the caller answers and closes.
    pub fn feed(&mut self, buf: &[u8]) -> Result<(), Violation> {
        let mut i = 0;
        while i < buf.len() {
            match self.state {
                State::Opaque => return Ok(()),
                State::Length(left) => {
                    let k = (buf.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    i += k;
                    let left = left - k as u64;
                    self.state = if left == 0 {
                        State::Idle
                    } else {
                        State::Length(left)
                    };
                }
                State::Chunked(mut c) => {
                    let (n, event) = c.decode(&buf[i..]);
                    i += n;
                    self.state = match event {
                        Event::End => State::Idle,
                        Event::Error(_) => {
                            self.broken = Some(i);
                            State::Opaque
                        }
                        _ => State::Chunked(c),
                    };
                }
                State::Idle => {
                    if matches!(buf[i], b'\r' | b'\n') {
                        // Blank lines before a request are skipped by hyper, but buffered.
                        self.head_len += 1;
                        if self.head_len > self.max_head {
                            return Err(Violation {
                                at: i,
                                reason: Reason::HeaderTooLarge,
                            });
                        }
                        i += 1;
                    } else {
                        self.start_head();
                    }
                }
                State::Head => i = self.head(buf, i)?,
            }
        }
        Ok(())
    }

    fn start_head(&mut self) {
        self.state = State::Head;
        self.line_len = 0;
        self.cr_only = false;
        self.lines = 0;
        self.cand = 0;
        self.value = Value::Skip;
        self.seen_cl = false;
        self.seen_te = false;
        self.length = None;
        self.length_digits = false;
        self.length_bad = false;
    }

    /// Scans head bytes from `buf[i]`; returns the index after the last byte consumed
    /// (the head's end, or the end of `buf`).
    fn head(&mut self, buf: &[u8], mut i: usize) -> Result<usize, Violation> {
        while i < buf.len() {
            // A header line that starts here and ends in `buf`: in one step.
            if self.value == Value::Name && self.line_len == 0 {
                if let Some(n) = memchr::memchr(b'\n', &buf[i..]) {
                    i = self.whole_line(buf, i, n)?;
                    if self.state != State::Head {
                        return Ok(i);
                    }
                    continue;
                }
            }
            let b = buf[i];
            // Skip value bytes (and the request line once the preface is decided) up to
            // the line end in one search.
            if self.value == Value::Skip && b != b'\n' && self.preface == u8::MAX {
                let run = memchr::memchr(b'\n', &buf[i..]).unwrap_or(buf.len() - i);
                let allowed = self.max_head.saturating_sub(self.head_len);
                if run as u64 > allowed {
                    return Err(self.too_large(i + allowed as usize));
                }
                self.head_len += run as u64;
                self.cr_only = self.line_len == 0 && run == 1 && b == b'\r';
                self.line_len = self.line_len.saturating_add(run as u32);
                i += run;
                continue;
            }
            self.head_len += 1;
            if self.head_len > self.max_head {
                return Err(self.too_large(i));
            }
            if b == b'\n' {
                if self.line_len == 0 || (self.line_len == 1 && self.cr_only) {
                    self.end_head();
                    return Ok(i + 1);
                }
                self.end_line(i)?;
            } else {
                self.cr_only = self.line_len == 0 && b == b'\r';
                if self.lines == 0 {
                    self.preface_byte(b);
                } else {
                    match self.value {
                        Value::Name if b == b':' => self.name_end(i)?,
                        Value::Name => self.name_byte(b),
                        Value::Length => self.length_byte(b),
                        Value::Skip => {}
                    }
                }
                self.line_len = self.line_len.saturating_add(1);
            }
            i += 1;
        }
        Ok(i)
    }

    fn too_large(&self, at: usize) -> Violation {
        Violation {
            at,
            reason: Reason::HeaderTooLarge,
        }
    }

    /// A header line ended (at `buf[at]`, its LF): count it; the next one starts.
    fn end_line(&mut self, at: usize) -> Result<(), Violation> {
        self.lines += 1;
        if self.lines > MAX_HEADERS + 1 {
            return Err(self.too_large(at));
        }
        if self.lines == 1 && usize::from(self.preface) != H2_PREFACE.len() {
            // The request line ended without being the preface.
            self.preface = u8::MAX;
        }
        self.line_len = 0;
        self.cr_only = false;
        self.cand = 0b11;
        self.value = Value::Name;
        Ok(())
    }

    /// The same as the byte-by-byte path for a header line `buf[i..i + n]` followed by
    /// its LF, in one step; returns the index after the LF.
    fn whole_line(&mut self, buf: &[u8], i: usize, n: usize) -> Result<usize, Violation> {
        let line = &buf[i..i + n];
        // The byte-by-byte path reports the first byte over the size limit, unless a
        // refusal at an earlier byte of the line comes first.
        let size_at = (self.head_len + n as u64 + 1 > self.max_head)
            .then(|| i + (self.max_head - self.head_len) as usize);
        if n == 0 || (n == 1 && line[0] == b'\r') {
            if let Some(at) = size_at {
                return Err(self.too_large(at));
            }
            self.head_len += n as u64 + 1;
            self.end_head();
            return Ok(i + n + 1);
        }
        let name = |name: &[u8]| {
            line.len() > name.len()
                && line[name.len()] == b':'
                && line[..name.len()].eq_ignore_ascii_case(name)
        };
        let mut smuggle_at = None;
        let mut first_length = false;
        if name(CL) {
            first_length = !self.seen_cl;
            self.seen_cl = true;
            if self.seen_te {
                smuggle_at = Some(i + CL.len());
            }
        } else if name(TE) {
            self.seen_te = true;
            if self.seen_cl {
                smuggle_at = Some(i + TE.len());
            }
        }
        match (size_at, smuggle_at) {
            (Some(s), Some(m)) if m < s => {
                return Err(Violation {
                    at: m,
                    reason: Reason::BadRequest,
                })
            }
            (Some(s), _) => return Err(self.too_large(s)),
            (None, Some(m)) => {
                return Err(Violation {
                    at: m,
                    reason: Reason::BadRequest,
                })
            }
            (None, None) => {}
        }
        if first_length {
            self.value = Value::Length;
            for &b in &line[CL.len() + 1..] {
                self.length_byte(b);
                if self.value != Value::Length {
                    break;
                }
            }
        }
        self.head_len += n as u64 + 1;
        self.end_line(i + n)?;
        Ok(i + n + 1)
    }

    fn preface_byte(&mut self, b: u8) {
        if b == b'\r' {
            // The request line's CR: the preface is decided at its LF.
            return;
        }
        let p = usize::from(self.preface);
        if self.preface != u8::MAX && self.heads == 0 && H2_PREFACE.get(p) == Some(&b) {
            self.preface += 1;
        } else {
            self.preface = u8::MAX;
        }
    }

    fn name_byte(&mut self, b: u8) {
        let pos = self.line_len as usize;
        let lb = b.to_ascii_lowercase();
        if CL.get(pos) != Some(&lb) {
            self.cand &= !0b01;
        }
        if TE.get(pos) != Some(&lb) {
            self.cand &= !0b10;
        }
        if self.cand == 0 {
            self.value = Value::Skip;
        }
    }

    fn name_end(&mut self, at: usize) -> Result<(), Violation> {
        let len = self.line_len as usize;
        self.value = Value::Skip;
        if self.cand & 0b01 != 0 && len == CL.len() {
            if !self.seen_cl {
                self.value = Value::Length;
            }
            self.seen_cl = true;
        } else if self.cand & 0b10 != 0 && len == TE.len() {
            self.seen_te = true;
        }
        if self.seen_cl && self.seen_te {
            return Err(Violation {
                at,
                reason: Reason::BadRequest,
            });
        }
        Ok(())
    }

    fn length_byte(&mut self, b: u8) {
        match b {
            b'0'..=b'9' if !self.length_bad => {
                let d = u64::from(b - b'0');
                match self
                    .length
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(d))
                {
                    Some(n) => self.length = Some(n),
                    None => self.length_bad = true,
                }
                self.length_digits = true;
            }
            b' ' | b'\t' if !self.length_digits => {}
            // After the digits (`5, 5` or trailing whitespace): hyper checks the rest.
            _ => {
                if !self.length_digits {
                    self.length_bad = true;
                }
                self.value = Value::Skip;
            }
        }
    }

    fn end_head(&mut self) {
        self.heads = self.heads.wrapping_add(1);
        self.head_len = 0;
        self.line_len = 0;
        self.cr_only = false;
        self.cand = 0;
        self.value = Value::Skip;
        if self.heads == 1 && usize::from(self.preface) == H2_PREFACE.len() {
            self.set_opaque();
            return;
        }
        self.preface = u8::MAX;
        self.state = if self.seen_te {
            State::Chunked(Chunked::new())
        } else if self.seen_cl {
            match self.length {
                _ if self.length_bad => State::Opaque,
                Some(0) => State::Idle,
                Some(n) => State::Length(n),
                // hyper refuses an empty length and closes.
                None => State::Opaque,
            }
        } else {
            State::Idle
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `bytes` in pieces cut at `cuts`; a violation's `at` is made absolute.
    fn feed_split(t: &mut Tracker, bytes: &[u8], cuts: &[usize]) -> Result<(), Violation> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        points.dedup();
        for w in points.windows(2) {
            t.feed(&bytes[w[0]..w[1]]).map_err(|v| Violation {
                at: w[0] + v.at,
                ..v
            })?;
        }
        Ok(())
    }

    #[test]
    fn get_then_idle() {
        let mut t = Tracker::new(1024);
        t.feed(b"GET / HTTP/1.1\r\nHost: a\r\n").expect("ok");
        assert_eq!(t.phase(), Phase::Head);
        t.feed(b"\r\n").expect("ok");
        assert_eq!((t.phase(), t.heads()), (Phase::Idle, 1));
    }

    #[test]
    fn content_length_body_then_next_head() {
        let mut t = Tracker::new(1024);
        t.feed(b"POST / HTTP/1.1\r\ncontent-LENGTH:  5 \r\n\r\nhel")
            .expect("ok");
        assert_eq!(t.phase(), Phase::Body);
        t.feed(b"loGET").expect("ok");
        assert_eq!((t.phase(), t.heads()), (Phase::Head, 1));
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let mut t = Tracker::new(1024);
        t.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .expect("ok");
        t.feed(b"A ;x=1\r\n0123456789\r\n0\r\nX-T: 1\r\n")
            .expect("ok");
        assert_eq!(t.phase(), Phase::Body);
        t.feed(b"\r\n").expect("ok");
        assert_eq!(t.phase(), Phase::Idle);
    }

    #[test]
    fn broken_framing_stops_tracking() {
        for bad in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            let mut t = Tracker::new(1024);
            t.feed(bad).expect("hyper refuses these itself");
            assert_eq!(
                t.phase(),
                Phase::Opaque,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn h2_preface_is_opaque_and_pri_later_is_not() {
        let mut t = Tracker::new(1024);
        t.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00")
            .expect("ok");
        assert_eq!(t.phase(), Phase::Opaque);
        let mut t = Tracker::new(1024);
        t.feed(b"GET / HTTP/1.1\r\n\r\nPRI * HTTP/2.0\r\n\r\n")
            .expect("ok");
        assert_eq!((t.phase(), t.heads()), (Phase::Idle, 2));
    }

    #[test]
    fn smuggling_is_refused_at_the_second_name() {
        let req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        let colon = req.iter().rposition(|&b| b == b':').expect("colon");
        let v = Tracker::new(1024).feed(req).expect_err("refused");
        assert_eq!(
            v,
            Violation {
                at: colon,
                reason: Reason::BadRequest
            }
        );
    }

    #[test]
    fn size_limit_counts_blank_lines_and_is_exact() {
        let head = b"\r\nGET / HTTP/1.1\r\n\r\n";
        let mut t = Tracker::new(head.len());
        t.feed(head).expect("at the limit");
        let v = Tracker::new(head.len() - 1).feed(head).expect_err("over");
        assert_eq!(
            v,
            Violation {
                at: head.len() - 1,
                reason: Reason::HeaderTooLarge
            }
        );
    }

    /// One request as bytes: a head with random headers (never CL or TE unless framed),
    /// and no body, a `Content-Length` body or a chunked body with extensions/trailers.
    fn request() -> impl Strategy<Value = Vec<u8>> {
        let header = ("[a-zA-Z][a-zA-Z0-9-]{0,20}", "[ -~]{0,40}").prop_filter_map(
            "not a framing header",
            |(n, v)| {
                let l = n.to_ascii_lowercase();
                (l != "content-length" && l != "transfer-encoding")
                    .then(|| format!("{n}: {}\r\n", v.trim()))
            },
        );
        let body = prop_oneof![
            Just(None),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| Some((false, b, vec![]))),
            (
                proptest::collection::vec(any::<u8>(), 0..300),
                proptest::collection::vec(1usize..64, 0..6)
            )
                .prop_map(|(b, sizes)| Some((true, b, sizes))),
        ];
        (
            proptest::collection::vec(header, 0..8),
            body,
            any::<bool>(),
            "[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]",
        )
            .prop_map(|(headers, body, trailer, cl_name)| {
                let mut out = b"POST /x?y=1 HTTP/1.1\r\n".to_vec();
                for h in &headers {
                    out.extend_from_slice(h.as_bytes());
                }
                match body {
                    None => out.extend_from_slice(b"\r\n"),
                    Some((false, b, _)) => {
                        out.extend_from_slice(format!("{cl_name}: {}\r\n\r\n", b.len()).as_bytes());
                        out.extend_from_slice(&b);
                    }
                    Some((true, b, sizes)) => {
                        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                        let mut rest = &b[..];
                        let mut i = 0;
                        while !rest.is_empty() {
                            let k = sizes.get(i).copied().unwrap_or(rest.len()).min(rest.len());
                            let ext = if i % 2 == 0 { "" } else { ";a=b" };
                            out.extend_from_slice(format!("{k:x}{ext}\r\n").as_bytes());
                            out.extend_from_slice(&rest[..k]);
                            out.extend_from_slice(b"\r\n");
                            rest = &rest[k..];
                            i += 1;
                        }
                        out.extend_from_slice(b"0\r\n");
                        if trailer {
                            out.extend_from_slice(b"X-Sum: 1\r\n");
                        }
                        out.extend_from_slice(b"\r\n");
                    }
                }
                out
            })
    }

    proptest! {
        /// Valid pipelined requests, cut anywhere: every head is found, none refused, and
        /// the tracker ends where it would with the bytes in one piece.
        #[test]
        fn valid_requests_split_anywhere(
            reqs in proptest::collection::vec(request(), 1..5),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let bytes = reqs.concat();
            let mut whole = Tracker::new(65536);
            whole.feed(&bytes).expect("valid");
            let mut split = Tracker::new(65536);
            feed_split(&mut split, &bytes, &cuts).expect("valid");
            prop_assert_eq!(split.heads(), reqs.len() as u32);
            prop_assert_eq!(split.phase(), Phase::Idle);
            prop_assert_eq!(format!("{whole:?}"), format!("{split:?}"));
        }

        /// Both framing headers in one head, any case and order, cut anywhere: refused
        /// at the second name's colon, after any valid requests before it.
        #[test]
        fn smuggling_refused_anywhere(
            before in proptest::collection::vec(request(), 0..3),
            te_first in any::<bool>(),
            cl in "[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]",
            te in "[Tt][Rr][Aa][Nn][Ss][Ff][Ee][Rr]-[Ee][Nn][Cc][Oo][Dd][Ii][Nn][Gg]",
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let (first, second) = if te_first {
                (format!("{te}: chunked\r\n"), format!("X-A: b\r\n{cl}: 5\r\n"))
            } else {
                (format!("{cl}: 5\r\n"), format!("X-A: b\r\n{te}: chunked\r\n"))
            };
            let prefix = before.concat();
            let bad = format!("POST / HTTP/1.1\r\nHost: a\r\n{first}{second}\r\n0\r\n\r\n");
            let colon = prefix.len() + first.len() + "POST / HTTP/1.1\r\nHost: a\r\n".len()
                + second.rfind(':').expect("colon");
            let bytes = [prefix, bad.into_bytes()].concat();
            let v = feed_split(&mut Tracker::new(65536), &bytes, &cuts).expect_err("refused");
            prop_assert_eq!(v, Violation { at: colon, reason: Reason::BadRequest });
        }

        /// A head of `len` bytes passes a limit of `max` exactly when `len <= max`.
        #[test]
        fn size_limit_is_exact(pad in 0usize..3000, max in 20usize..3000, cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
            let head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(pad));
            let r = feed_split(&mut Tracker::new(max), head.as_bytes(), &cuts);
            if head.len() <= max {
                prop_assert!(r.is_ok());
            } else {
                prop_assert_eq!(r, Err(Violation { at: max, reason: Reason::HeaderTooLarge }));
            }
        }

        /// Arbitrary bytes never panic, and a refusal points inside the bytes fed.
        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8),
            max in 1usize..512,
        ) {
            let mut t = Tracker::new(max);
            for c in &chunks {
                if let Err(v) = t.feed(c) {
                    prop_assert!(v.at < c.len());
                    break;
                }
            }
        }
    }
}
