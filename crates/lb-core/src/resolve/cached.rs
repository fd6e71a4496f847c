//! PLACEHOLDER: being implemented.
/// PLACEHOLDER.
#[derive(Debug, Default)]
pub struct Cached;
/// PLACEHOLDER.
#[derive(Debug, Default)]
pub struct CacheSettings;
/// PLACEHOLDER.
#[derive(Debug, Default)]
pub struct Lookup;
