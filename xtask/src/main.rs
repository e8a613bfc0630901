//! Project tasks, run as `cargo xtask TASK`.
//!
//! - `bench [--quick] [--json] [FILTER]`: builds and runs the benchmark table (release).

use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  bench [--quick] [--json] [FILTER]   run Theater's benchmarks (release build) and print
                                      each figure beside a baseline measured in the same run";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("bench") => bench(args.collect()),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn bench(args: Vec<String>) -> anyhow::Result<ExitCode> {
    let status = cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "theater-bench",
            "--",
        ])
        .args(&args)
        .status()
        .context("running cargo")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
