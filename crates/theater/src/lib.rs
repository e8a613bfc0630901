//! `theater`: the Theater host, as a library and as the `theater` binary.
//!
//! The binary's commands:
//!
//! - `theater run MANIFEST...`: run actors with their interfaces, chains in a data directory,
//!   a management API on loopback; `theater ps | spawn | state | send | stop | restart |
//!   events | shutdown` talk to it.
//! - `theater chain ...`: offline tools over stored chains.
//! - `theater console [PATH...]`: the web console, of the running host or over stored chains.
//! - `theater new NAME` / `theater build [DIR]`: write a Rust actor, build it into a component.
//! - `theater demo`: a wasm actor on the embedded defaults, its chain verified and replayed.

//!
//! The library is [`Host`]: what `theater run` runs, for programs (and benchmarks) that
//! embed a host: actors from manifests, `spawn`, families activated on demand.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use std::path::{Path, PathBuf};
//!
//! // The rooms family: every `room-NAME` is created by its first message.
//! let host = theater::Host::start(&[PathBuf::from("examples/rooms/rooms.toml")], Path::new("theater-data")).await?;
//! let room = host.registry().resolve("room-lobby").await?;
//! room.call(theater_core::ActorInput::request(serde_json::json!({"read": {}}))).await?;
//! host.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod admin;
mod audit;
mod audit_cmd;
mod build_cmd;
mod capabilities;
mod chain_cmd;
mod children;
mod client;
mod cluster;
mod console;
mod demo;
mod graph;
mod host;
mod metrics;
mod new_cmd;
mod progress;
mod render;
mod replay_cmd;
mod run_cmd;
mod secret_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use audit::{AuditOptions, WitnessTarget};
pub use cluster::ClusterOptions;
pub use console::{search_chain, search_store};
pub use host::{FamilyStatus, Host, HostOptions};

/// Theater: WebAssembly actors whose every state change is recorded in a verifiable hash chain.
#[derive(Debug, Parser)]
#[command(name = "theater", version, about)]
struct Cli {
    /// The data directory of `theater run`: chains under `chains/`, the management API's
    /// address and token beside them. Client commands find the running host through it.
    #[arg(long, global = true, env = "THEATER_DATA_DIR", default_value = run_cmd::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the actors of one or more manifests until Ctrl-C, resuming their chains.
    Run {
        /// Actor manifests (TOML).
        #[arg(required_unless_present = "config")]
        manifests: Vec<PathBuf>,
        /// A host configuration file: `manifests = [...]`, a `[cluster]` table (`name`,
        /// `nats`, `host`, `shards`, `lease_ms`) for what the flags would say, `[secrets]`
        /// every actor may name, and `[databases.NAME]` PostgreSQL connections.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The management API's address (loopback; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        admin: std::net::SocketAddr,
        /// Keep an audit log: every entry a leaf of a Merkle tree, checkpoints of it signed
        /// with the host's key (`theater key`), proofs by `theater audit prove` (a host
        /// configuration's `[audit]` does the same, with witnesses).
        #[arg(long)]
        audit: bool,
        #[command(flatten)]
        cluster: run_cmd::ClusterArgs,
    },
    #[command(flatten)]
    Client(client::ClientCommand),
    /// Create a new Rust actor project, with the guest SDK in it; build it with `theater build`.
    New {
        /// The actor's name.
        name: String,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Depend on the theater-guest SDK at this path instead of writing this Theater's
        /// copy into the project (for work on the SDK itself).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build the Rust actor project in DIR into a component (target/theater/NAME.wasm),
    /// setting up the wasm32 toolchain first if it is missing.
    Build {
        /// The project's directory (default: the current one).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where the components go (default: DIR/target/theater).
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// cargo's target directory (default: $CARGO_TARGET_DIR, else DIR/target).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Require Cargo.lock to be up to date, as `cargo build --locked`.
        #[arg(long)]
        locked: bool,
    },
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
    /// The web console in a browser. Without paths: a one-time link to the console of the
    /// host running in the data directory (the link logs the browser in once, within a
    /// minute). With paths (a data directory, or chains' directories): serves the same pages
    /// over those chains, offline and read-only, until Ctrl-C.
    Console {
        /// Data directories (their `chains/*`) or chains' directories, for an offline console.
        paths: Vec<PathBuf>,
        /// Manifests that replay those chains (matched by actor name), for the state after
        /// an entry (offline).
        #[arg(long = "manifest")]
        manifests: Vec<PathBuf>,
        /// Where an offline console listens (loopback; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Secrets: list the ones declared, where they come from and who uses them (never a
    /// value).
    #[command(subcommand)]
    Secret(secret_cmd::SecretCommand),
    /// Print the host's audit verifier key (what auditors check checkpoints and bundles
    /// with); `theater run --audit` creates the key on its first run.
    Key {
        /// Retire the key for a new one (the host stopped): checkpoints signed before still
        /// verify with the old verifier key, kept in `<data-dir>/audit/retired-keys`.
        #[arg(long)]
        rotate: bool,
    },
    /// Proofs from the host's audit log: write one for an entry, check one offline, check
    /// two checkpoints are one history.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Run a witness (C2SP tlog-witness): it cosigns a log's checkpoints only when each
    /// extends the last it cosigned, so a host cannot show two histories.
    Witness {
        /// Where to listen (loopback; port 0 picks a free one, written to DIR/witness.addr).
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: std::net::SocketAddr,
        /// Its key and what it last cosigned per log.
        #[arg(long, default_value = "theater-witness")]
        dir: PathBuf,
        /// Its name (its key's, in its cosignatures).
        #[arg(long, default_value = "theater-witness")]
        name: String,
        /// The verifier key of a log it witnesses (`theater key` on that host; repeatable).
        #[arg(long = "log", required = true)]
        logs: Vec<String>,
    },
}

/// Exit codes scripts can rely on.
pub(crate) mod exit {
    /// A chain failed verification (damage, broken link, unresolved reference).
    pub(crate) const INVALID: u8 = 1;
    /// The command could not run (bad arguments, unreadable files).
    pub(crate) const ERROR: u8 = 2;
}

/// The `theater` command line: parses the arguments and runs the command.
pub fn cli() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            manifests,
            admin,
            audit,
            cluster,
            config,
        } => run_cmd::run(manifests, cli.data_dir, admin, cluster, config, audit),
        Command::Client(cmd) => client::run(cli.data_dir, cmd),
        Command::New { name, path, sdk } => new_cmd::run(&name, path, sdk),
        Command::Build {
            dir,
            out_dir,
            target_dir,
            locked,
        } => build_cmd::run(&dir, out_dir, target_dir, locked),
        Command::Demo { manifest, dir } => demo::run(manifest, dir),
        Command::Chain(cmd) => chain_cmd::run(cmd),
        Command::Console {
            paths,
            manifests,
            listen,
        } => {
            if paths.is_empty() && !manifests.is_empty() {
                Err(anyhow::anyhow!(
                    "--manifest is for an offline console: give the chains' paths too"
                ))
            } else if paths.is_empty() {
                console::url_of_running(&cli.data_dir).map(|url| {
                    println!("{url}");
                    eprintln!("(open it in a browser: it logs in once, within a minute)");
                    ExitCode::SUCCESS
                })
            } else {
                console::serve_offline(&paths, &manifests, listen)
            }
        }
        Command::Secret(cmd) => secret_cmd::run(cmd),
        Command::Key { rotate } => audit_cmd::key(&cli.data_dir, rotate),
        Command::Audit(cmd) => audit_cmd::run(&cli.data_dir, cmd),
        Command::Witness {
            listen,
            dir,
            name,
            logs,
        } => audit_cmd::witness(listen, &dir, &name, &logs),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
