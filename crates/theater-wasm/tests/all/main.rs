//! Integration tests that load and run the real example components (built by
//! `cargo xtask build-examples` on first use).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

mod limits;
mod load;
mod manifest;
mod run;
mod state;
mod support;
