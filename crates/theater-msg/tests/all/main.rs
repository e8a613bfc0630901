//! Integration tests of theater-msg with native actors.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

mod links;
mod relay;
mod transport;
mod wasm;
