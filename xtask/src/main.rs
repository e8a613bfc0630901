//! Project tasks, run as `cargo xtask TASK`.

mod examples;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  build-examples                      build every actor under examples/ into a component at
                                      target/examples/<name>.wasm
  build-guest DIR                     build the actor crate at DIR (e.g. made by `theater new`)
                                      into DIR/target/theater/<name>.wasm
  demo                                build the examples, then run `theater demo` on the wasm counter
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
        Some("build-examples") => {
            examples::build(&root())?;
            Ok(ExitCode::SUCCESS)
        }
        Some("build-guest") => {
            let dir = args
                .next()
                .context("build-guest needs the directory of the actor crate")?;
            examples::build_one(&root(), &PathBuf::from(dir))?;
            Ok(ExitCode::SUCCESS)
        }
        Some("demo") => {
            examples::build(&root())?;
            cargo_run(
                &["run", "--quiet", "--package", "theater", "--", "demo"],
                args.collect(),
            )
        }
        Some("bench") => {
            examples::build(&root())?;
            cargo_run(
                &[
                    "run",
                    "--release",
                    "--quiet",
                    "--package",
                    "theater-bench",
                    "--",
                ],
                args.collect(),
            )
        }
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn cargo_run(base: &[&str], extra: Vec<String>) -> anyhow::Result<ExitCode> {
    let status = cargo()
        .current_dir(root())
        .args(base)
        .args(&extra)
        .status()
        .context("running cargo")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
