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
pub(crate) const MAX_SIZE_LINE: u32 = 4096;
/// The longest trailer section (its field lines, not the final CRLF) accepted.
pub(crate) const MAX_TRAILERS: u32 = 64 * 1024;

/// Where the decoder is; the numbers it needs are in [`Chunked`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The first hex digit of a chunk size.
    Start,
    /// More hex digits (the value so far in `size`).
    Size,
    /// Whitespace after the size, before `;` or CR.
    SizeWs,
    /// Inside the extensions.
    Ext,
    /// The LF of the size line.
    SizeLf,
    /// Data bytes of a chunk (`size` left).
    Data,
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
    /// Refused (`error` says why): stays refused.
    Failed,
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

/// A chunked body's decoder. `Copy` and 16 bytes: one per body being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunked {
    /// The chunk size read so far, or the data left of a chunk.
    size: u64,
    /// Bytes of the current size line, or of the trailer section.
    line: u32,
    phase: Phase,
    /// Why, once `Failed`.
    error: ChunkError,
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
            size: 0,
            line: 0,
            phase: Phase::Start,
            error: ChunkError::Size,
        }
    }

    /// True once the body was read to its end.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Bytes of data left in the current chunk (0 outside one).
    pub fn data_left(&self) -> u64 {
        match self.phase {
            Phase::Data => self.size,
            _ => 0,
        }
    }

    /// Decodes from the front of `input`: how many bytes were used, and what they were
    /// (see [`Event`]). Data is never mixed with framing in one answer, so the caller
    /// takes `input[..used]` as data on [`Event::Data`].
    pub fn decode(&mut self, input: &[u8]) -> (usize, Event) {
        match self.phase {
            Phase::Done => return (0, Event::End),
            Phase::Failed => return (0, Event::Error(self.error)),
            Phase::Data => {
                if input.is_empty() {
                    return (0, Event::NeedMore);
                }
                let k = usize::try_from(self.size).map_or(input.len(), |l| l.min(input.len()));
                self.size -= k as u64;
                if self.size == 0 {
                    self.phase = Phase::DataCr;
                }
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
                self.phase = Phase::Failed;
                self.error = e;
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
            match self.phase {
                Phase::Done => return (i + 1, Event::End),
                Phase::Data => return (i + 1, Event::Framing),
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
        match self.phase {
            Phase::TrailerStart => b != b'\r',
            Phase::Trailer | Phase::TrailerLf => true,
            _ => false,
        }
    }

    /// One byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        use Phase::*;
        let sizing = matches!(self.phase, Start | Size | SizeWs | Ext | SizeLf);
        if sizing || self.is_trailer(b) {
            self.line += 1;
            let max = if sizing { MAX_SIZE_LINE } else { MAX_TRAILERS };
            if self.line > max {
                return Err(ChunkError::TooLong);
            }
        }
        self.phase = match (self.phase, b) {
            (Start, _) => {
                self.size = hex(b).ok_or(ChunkError::Size)?;
                Size
            }
            (Size, _) if hex(b).is_some() => {
                // At most 15 significant digits: a chunk under 2^60 bytes.
                if self.size >= 1 << 56 {
                    return Err(ChunkError::SizeTooLarge);
                }
                self.size = self.size << 4 | hex(b).unwrap_or(0);
                Size
            }
            (Size | SizeWs, b' ' | b'\t') => SizeWs,
            (Size | SizeWs, b';') => Ext,
            (Size | SizeWs | Ext, b'\r') => SizeLf,
            (Size | SizeWs | Ext, b'\n') => return Err(ChunkError::LineEnd),
            (Size | SizeWs, _) => return Err(ChunkError::Size),
            (Ext, _) if is_text(b) => Ext,
            (Ext, _) => return Err(ChunkError::Control),
            (SizeLf, b'\n') => {
                self.line = 0;
                if self.size == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (SizeLf, _) => return Err(ChunkError::LineEnd),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Start,
            (DataCr | DataLf, _) => return Err(ChunkError::DataEnd),
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart, b' ' | b'\t') => return Err(ChunkError::Trailer),
            (Trailer, b'\r') => TrailerLf,
            (TrailerStart | Trailer, b'\n') => return Err(ChunkError::LineEnd),
            (TrailerStart | Trailer, _) if is_text(b) => Trailer,
            (TrailerStart | Trailer, _) => return Err(ChunkError::Control),
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            (TrailerLf | EndLf, _) => return Err(ChunkError::LineEnd),
            // `decode` handles these without stepping.
            (Data | Done | Failed, _) => self.phase,
        };
        Ok(())
    }
}
