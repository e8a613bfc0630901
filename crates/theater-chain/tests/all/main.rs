//! Integration tests of theater-chain: one binary, a module per topic.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

mod crash;
mod cross;
mod file_store;
mod props;
mod snapshots;
mod state;
mod support;
