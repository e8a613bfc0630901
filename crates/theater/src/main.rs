//! `theater`: the Theater host binary.
//!
//! Today it offers the chain tools (`theater chain verify`, `theater chain log`) and a demo
//! that runs a wasm actor and shows its chain (`theater demo`).

mod chain_cmd;
mod demo;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Theater: WebAssembly actors whose every state change is recorded in a verifiable hash chain.
#[derive(Debug, Parser)]
#[command(name = "theater", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a wasm actor, then verify, replay, tamper with and recover its chain.
    Demo {
        /// The actor's manifest (default: examples/counter/counter.toml of this source tree).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Keep the chain in this directory (default: a temporary one, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Work with stored chains offline.
    #[command(subcommand)]
    Chain(chain_cmd::ChainCommand),
}

/// Exit codes scripts can rely on.
pub(crate) mod exit {
    /// A chain failed verification (damage, broken link, unresolved reference).
    pub(crate) const INVALID: u8 = 1;
    /// The command could not run (bad arguments, unreadable files).
    pub(crate) const ERROR: u8 = 2;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { manifest, dir } => demo::run(manifest, dir),
        Command::Chain(cmd) => chain_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
