//! Shared helpers for the benchmarks (see `core.rs` and `load.sh`).
