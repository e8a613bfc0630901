//! `cargo xtask bench`: Theater's benchmark table.
//!
//! Every row measures one of Theater's hot paths and, in the same run and interleaved with
//! it, a baseline doing the same essential work without Theater (raw SHA-256 over the same
//! bytes, a bare write+fsync loop, ...). The ratio is what to watch: absolute figures move
//! with the machine, ratios much less.
//!
//! Usage: `theater-bench [--quick] [--json] [FILTER]`; `theater-bench soak [...]` drives a
//! host at full load for a while instead (see `soak.rs`).

mod actors;
mod audit;
mod chain;
mod cluster;
mod core;
mod db;
mod files;
mod harness;
mod http;
mod http_client;
mod msg;
mod soak;
mod state;
mod tools;
mod wasm;

use harness::{Report, Settings};

fn main() -> anyhow::Result<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("soak") {
        return soak::main(&args[1..]);
    }
    let mut settings = Settings::default();
    let mut json = false;
    let mut filter = None;
    for arg in args {
        match arg.as_str() {
            "--quick" => settings.samples = 3,
            "--json" => json = true,
            "-h" | "--help" => {
                println!("usage: theater-bench [--quick] [--json] [FILTER]");
                println!("runs every benchmark whose name contains FILTER (all by default)");
                println!("theater-bench soak --help: a host at full load for a while");
                return Ok(std::process::ExitCode::SUCCESS);
            }
            other if other.starts_with('-') => anyhow::bail!("unknown option {other}"),
            other => filter = Some(other.to_string()),
        }
    }
    let mut report = Report::new(settings, filter);
    chain::run(&mut report)?;
    audit::run(&mut report)?;
    core::run(&mut report)?;
    msg::run(&mut report)?;
    wasm::run(&mut report)?;
    http::run(&mut report)?;
    http_client::run(&mut report)?;
    state::run(&mut report)?;
    db::run(&mut report)?;
    files::run(&mut report)?;
    tools::run(&mut report)?;
    actors::run(&mut report)?;
    cluster::run(&mut report)?;
    if json {
        println!("{}", report.to_json());
    } else {
        report.print();
    }
    Ok(std::process::ExitCode::SUCCESS)
}
