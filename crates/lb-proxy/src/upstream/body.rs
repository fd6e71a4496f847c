//! A backend's response body: read by our HTTP/1.1 client, or an HTTP/2 stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::h1::{H1Body, RawFields};
use crate::error::BodyError;

/// A backend's response body: read by our HTTP/1.1 client, or hyper's HTTP/2 stream.
pub enum UpstreamBody {
    /// From an HTTP/1.1 connection (which goes back to its pool at the end).
    H1(H1Body),
    /// From an HTTP/2 stream.
    H2(Incoming),
}

impl UpstreamBody {
    /// The backend's fields as they came (HTTP/1.1 heads that fit, see [`RawFields`]);
    /// they are then not in the response's header map.
    pub fn raw_fields(&self) -> Option<&RawFields> {
        match self {
            UpstreamBody::H1(b) => b.raw_fields(),
            UpstreamBody::H2(_) => None,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::from),
            UpstreamBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::H1(b) => b.is_end_stream(),
            UpstreamBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::H1(b) => b.size_hint(),
            UpstreamBody::H2(b) => b.size_hint(),
        }
    }
}
