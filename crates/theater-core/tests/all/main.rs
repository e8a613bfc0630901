//! Integration tests of theater-core, with the native actors of theater-test-support.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

mod changes;
mod concurrency;
mod effects;
mod props;
mod runtime;
mod sdk_io;
mod supervision;
mod upgrades;
