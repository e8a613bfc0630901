//! Integration tests that run the real `theater` binary.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

mod admin;
mod audit;
mod browser;
mod cli;
mod cluster;
mod console;
mod fixtures;
mod golden;
mod metrics;
mod readme;
mod run;
mod secrets;
mod spawn;
mod traces;
mod upgrade;
