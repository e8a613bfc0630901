//! Integration tests of the timers capability.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]
mod wasm;
