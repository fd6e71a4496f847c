//! The chunked transfer coding (RFC 9112 §7.1) as a state machine over any split of its
//! bytes.
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size   = 1*HEXDIG
//! last-chunk   = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! ```
//!
//! [`Chunked::decode`] takes the next bytes and says how many it used and what they
//! were: chunk data, framing, trailer bytes, the body's end, or the first byte that
//! breaks the framing. It keeps a few integers of state, never buffers or allocates, and
//! answers the same for any split of the same bytes (the proptests in `tests.rs` feed every
//! split). Every line ends with CRLF: a bare CR or LF is refused, as it is where a
//! proxy and a backend could disagree. Extensions are skipped (bytes other than
//! controls); the trailer section's lines are handed to the caller as [`Event::Trailer`]
//! bytes, which a caller that relays trailers parses as a field block.

use super::ChunkError;

/// The longest chunk-size line (size, extensions, CRLF) accepted.
pub const MAX_SIZE_LINE: u32 = 4096;
/// The longest trailer section (its field lines, not the final CRLF) accepted.
pub const MAX_TRAILERS: u32 = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The first hex digit of a chunk size.
    Start,
    /// More hex digits (value so far).
    Size(u64),
    /// Whitespace after the size, before `;` or CR.
    SizeWs(u64),
    /// Inside the extensions.
    Ext(u64),
    /// The LF of the size line.
    SizeLf(u64),
    /// Data bytes left of a chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataCr,
    DataLf,
    /// The start of a trailer line (CR here ends the section).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// The LF of a trailer line.
    TrailerLf,
    /// The final LF.
    EndLf,
    /// Read to the end.
    Done,
    /// Refused: stays refused.
    Failed(ChunkError),
}

/// What the bytes [`Chunked::decode`] used were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Chunk data: all the bytes used (at least one).
    Data,
    /// Framing (sizes, extensions, CRLFs): call again with the rest.
    Framing,
    /// Bytes of the trailer section (field lines with their CRLFs), to keep or skip.
    Trailer,
    /// All bytes given were framing and the body is not over: read more.
    NeedMore,
    /// The body ended with the bytes used; what follows is the next message.
    End,
    /// The byte at the count used breaks the framing (and every later call says so).
    Error(ChunkError),
}

/// A chunked body's decoder. `Copy` and a few words: one per body being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunked {
    state: State,
    /// Bytes of the current size line, or of the trailer section.
    line: u32,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked::new()
    }
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Bytes allowed in an extension or a trailer line: HTAB, SP, visible ASCII and
/// obs-text (what a field value may hold).
fn is_text(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7f)
}

impl Chunked {
    /// A decoder at the start of a body.
    pub const fn new() -> Chunked {
        Chunked {
            state: State::Start,
            line: 0,
        }
    }

    /// True once the body was read to its end.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of data left in the current chunk (0 outside one).
    pub fn data_left(&self) -> u64 {
        match self.state {
            State::Data(n) => n,
            _ => 0,
        }
    }

    /// Decodes from the front of `input`: how many bytes were used, and what they were
    /// (see [`Event`]). Data is never mixed with framing in one answer, so the caller
    /// takes `input[..used]` as data on [`Event::Data`].
    pub fn decode(&mut self, input: &[u8]) -> (usize, Event) {
        match self.state {
            State::Done => return (0, Event::End),
            State::Failed(e) => return (0, Event::Error(e)),
            State::Data(left) => {
                if input.is_empty() {
                    return (0, Event::NeedMore);
                }
                let k = usize::try_from(left).map_or(input.len(), |l| l.min(input.len()));
                let rest = left - k as u64;
                self.state = if rest == 0 {
                    State::DataCr
                } else {
                    State::Data(rest)
                };
                return (k, Event::Data);
            }
            _ => {}
        }
        let Some(&first) = input.first() else {
            return (0, Event::NeedMore);
        };
        let trailer = self.is_trailer(first);
        for (i, &b) in input.iter().enumerate() {
            if i > 0 && self.is_trailer(b) != trailer {
                return (
                    i,
                    if trailer {
                        Event::Trailer
                    } else {
                        Event::Framing
                    },
                );
            }
            if let Err(e) = self.step(b) {
                self.state = State::Failed(e);
                // The bytes before it first (the next call reports the error), so that
                // every split of the input reports the same.
                if i > 0 {
                    return (
                        i,
                        if trailer {
                            Event::Trailer
                        } else {
                            Event::Framing
                        },
                    );
                }
                return (0, Event::Error(e));
            }
            match self.state {
                State::Done => return (i + 1, Event::End),
                State::Data(_) => return (i + 1, Event::Framing),
                _ => {}
            }
        }
        (
            input.len(),
            if trailer {
                Event::Trailer
            } else {
                Event::NeedMore
            },
        )
    }

    /// Whether `b`, the next byte, belongs to a trailer line (else it is framing).
    fn is_trailer(&self, b: u8) -> bool {
        match self.state {
            State::TrailerStart => b != b'\r',
            State::Trailer | State::TrailerLf => true,
            _ => false,
        }
    }

    /// One byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        let sizing = matches!(
            self.state,
            State::Start | State::Size(_) | State::SizeWs(_) | State::Ext(_) | State::SizeLf(_)
        );
        if sizing || self.is_trailer(b) {
            self.line += 1;
            let max = if sizing { MAX_SIZE_LINE } else { MAX_TRAILERS };
            if self.line > max {
                return Err(ChunkError::TooLong);
            }
        }
        self.state = match (self.state, b) {
            (State::Start, _) => State::Size(hex(b).ok_or(ChunkError::Size)?),
            (State::Size(n), _) if hex(b).is_some() => {
                // At most 15 significant digits: a chunk under 2^60 bytes.
                if n >= 1 << 56 {
                    return Err(ChunkError::SizeTooLarge);
                }
                State::Size(n << 4 | hex(b).unwrap_or(0))
            }
            (State::Size(n) | State::SizeWs(n), b' ' | b'\t') => State::SizeWs(n),
            (State::Size(n) | State::SizeWs(n), b';') => State::Ext(n),
            (State::Size(n) | State::SizeWs(n) | State::Ext(n), b'\r') => State::SizeLf(n),
            (State::Size(_) | State::SizeWs(_), b'\n') => return Err(ChunkError::LineEnd),
            (State::Size(_) | State::SizeWs(_), _) => return Err(ChunkError::Size),
            (State::Ext(_), b'\n') => return Err(ChunkError::LineEnd),
            (State::Ext(n), _) if is_text(b) => State::Ext(n),
            (State::Ext(_), _) => return Err(ChunkError::Control),
            (State::SizeLf(0), b'\n') => {
                self.line = 0;
                State::TrailerStart
            }
            (State::SizeLf(n), b'\n') => {
                self.line = 0;
                State::Data(n)
            }
            (State::SizeLf(_), _) => return Err(ChunkError::LineEnd),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Start,
            (State::DataCr | State::DataLf, _) => return Err(ChunkError::DataEnd),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart, b' ' | b'\t') => return Err(ChunkError::Trailer),
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::Trailer, b'\n') => return Err(ChunkError::LineEnd),
            (State::TrailerStart | State::Trailer, _) if is_text(b) => State::Trailer,
            (State::TrailerStart | State::Trailer, _) => return Err(ChunkError::Control),
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            (State::TrailerLf | State::EndLf, _) => return Err(ChunkError::LineEnd),
            // `decode` handles these without stepping.
            (State::Data(_) | State::Done | State::Failed(_), _) => self.state,
        };
        Ok(())
    }
}
