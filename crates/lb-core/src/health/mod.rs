//! PLACEHOLDER: health state machine, checkers and monitor are being implemented.
