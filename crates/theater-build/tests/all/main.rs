//! theater-build's tests: the toolchain set-up against stand-in `rustc`, `rustup` and
//! `apt-get` programs that record what they are asked, and reading guest projects.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

mod guests;
mod toolchain;
