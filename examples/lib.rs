//! Examples of embedding lb-core in another service: see `embed.rs`.
