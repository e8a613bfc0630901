//! Integration tests of theater-chain: one binary, a module per topic.

mod crash;
mod cross;
mod file_store;
mod props;
mod snapshots;
mod support;
