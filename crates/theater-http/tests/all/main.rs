//! Integration tests of theater-http: real HTTP over loopback, real wasm components.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

mod files;
mod limits;
mod notes;
mod rest;
mod routing;
mod support;
mod ws;
