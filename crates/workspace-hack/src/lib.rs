//! Feature unification for Theater's workspace: no code, only dependencies.
//!
//! `theater` and `xtask` depend on this crate so that `cargo xtask demo`, `cargo run -p
//! theater` and `cargo test --workspace` build every dependency with the same features, and
//! so build it once. See this crate's `Cargo.toml` for why, and `cargo test -p xtask` for the
//! check that keeps it true.
