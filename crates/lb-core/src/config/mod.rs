//! PLACEHOLDER: the config model is being implemented.
