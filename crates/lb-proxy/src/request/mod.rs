//! A request as the proxy reads it: its fields kept in the head's bytes ([`fields`]) or
//! as a header map ([`headers`]), the key a hashing strategy takes from it ([`key`]),
//! the sticky cookie ([`cookie`]), and its body ([`body`]) — from an HTTP/2 stream, or
//! read off the HTTP/1 connection and handed over through a [`pipe`]. Byte strings that
//! live as long as a request are cut from one buffer per thread ([`slab`]).

pub(crate) mod body;
pub(crate) mod cookie;
pub(crate) mod fields;
pub(crate) mod headers;
pub(crate) mod key;
pub(crate) mod pipe;
pub(crate) mod slab;
