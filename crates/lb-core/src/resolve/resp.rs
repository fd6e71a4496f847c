//! PLACEHOLDER: being implemented.
/// PLACEHOLDER.
#[derive(Debug, Default)]
pub struct RespResolver;
