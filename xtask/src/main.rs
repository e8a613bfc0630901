//! Project tasks, run as `cargo xtask TASK`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  build-examples                      build every actor under examples/ into a component at
                                      target/examples/<name>.wasm
                                      (installs the wasm32 target first if it is missing)
  demo                                build the examples, then run `theater demo` on the wasm counter
  bench [--quick] [--json] [FILTER]   run Theater's benchmarks (release build) and print
                                      each figure beside a baseline measured in the same run
  soak [--duration 10m] [...]         drive a `theater run` host (the todo example, default
                                      settings) at full load; print throughput, latency
                                      percentiles, resident memory, disk and errors over
                                      time (`cargo xtask soak --help` for the options)";

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
            build_examples()?;
            Ok(ExitCode::SUCCESS)
        }
        Some("demo") => {
            build_examples()?;
            cargo_run(
                &["run", "--quiet", "--package", "theater", "--", "demo"],
                args.collect(),
            )
        }
        Some(task @ ("bench" | "soak")) => {
            build_examples()?;
            // The cluster rows kill and start real hosts: the binary beside theater-bench.
            if !cargo_ok(
                &[
                    "build",
                    "--release",
                    "--quiet",
                    "--package",
                    "theater",
                    "--bin",
                    "theater",
                ],
                Vec::new(),
            )? {
                bail!("building the theater binary for the benchmarks failed");
            }
            let mut rest: Vec<String> = args.collect();
            if task == "soak" {
                rest.insert(0, "soak".into());
            }
            cargo_run(
                &[
                    "run",
                    "--release",
                    "--quiet",
                    "--package",
                    "theater-bench",
                    "--",
                ],
                rest,
            )
        }
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

/// Every example actor into `target/examples/<name>.wasm`, by `theater build` (which sets the
/// wasm32 toolchain up first when it is missing). The guests get a target directory of their
/// own: another profile, and on Debian's route another rustc.
fn build_examples() -> anyhow::Result<()> {
    let ok = cargo_ok(
        &[
            "run",
            "--quiet",
            "--package",
            "theater",
            "--",
            "build",
            "examples",
        ],
        [
            "--out-dir",
            "target/examples",
            "--target-dir",
            "target/guests",
            "--locked",
        ]
        .map(String::from)
        .to_vec(),
    )?;
    anyhow::ensure!(ok, "building the examples failed");
    Ok(())
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // Not xtask's own package variables (`cargo run -p xtask` set them): some build scripts
    // (ring's) track them, and would build again what `cargo test` builds without them.
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref())
        {
            cargo.env_remove(&key);
        }
    }
    cargo
}

fn cargo_ok(base: &[&str], extra: Vec<String>) -> anyhow::Result<bool> {
    let status = cargo()
        .current_dir(root())
        .args(base)
        .args(&extra)
        .status()
        .context("running cargo")?;
    Ok(status.success())
}

fn cargo_run(base: &[&str], extra: Vec<String>) -> anyhow::Result<ExitCode> {
    Ok(if cargo_ok(base, extra)? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
