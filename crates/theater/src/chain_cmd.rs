//! `theater chain ...`: offline tools over stored chains.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use theater_chain::{ChainError, ChainStore, FileStore, check_refs};

use crate::exit;

#[derive(Debug, Subcommand)]
pub(crate) enum ChainCommand {
    /// Verify every hash and link of one or more chains, and the references between them.
    ///
    /// Exits 0 when everything verifies, 1 when anything does not, 2 when a chain cannot be read.
    Verify {
        /// Chain directories (each holding a chain.log).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Print a chain's entries.
    Log {
        /// The chain directory.
        dir: PathBuf,
        /// First seq to print.
        #[arg(long)]
        from: Option<u64>,
        /// Last seq to print.
        #[arg(long)]
        to: Option<u64>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: ChainCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ChainCommand::Verify { dirs } => verify(&dirs),
        ChainCommand::Log {
            dir,
            from,
            to,
            json,
        } => log(&dir, from, to, json),
    }
}

fn open(dir: &PathBuf) -> anyhow::Result<Result<FileStore, ChainError>> {
    match FileStore::open_read_only(dir) {
        Err(e @ ChainError::Corrupt(_)) => Ok(Err(e)),
        other => Ok(Ok(other.with_context(|| {
            format!("cannot read the chain in {}", dir.display())
        })?)),
    }
}

fn verify(dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut stores = Vec::new();
    let mut ok = true;
    for dir in dirs {
        let store = match open(dir)? {
            Ok(s) => s,
            Err(e) => {
                println!("FAILED {}: {e}", dir.display());
                ok = false;
                continue;
            }
        };
        if let Some(r) = store.recovery() {
            println!(
                "note {}: the last record is torn ({} bytes at byte offset {}), as a crash mid-write leaves it; it was never acknowledged and is ignored",
                dir.display(),
                r.bytes_cut,
                r.cut_at
            );
        }
        match store.verify() {
            Ok(report) => println!("ok {}: {report}", dir.display()),
            Err(e) => {
                println!("FAILED {}: {e}", dir.display());
                ok = false;
            }
        }
        stores.push(store);
    }
    let refs: Vec<&dyn ChainStore> = stores.iter().map(|s| s as &dyn ChainStore).collect();
    let broken = check_refs(&refs)?;
    for b in &broken {
        println!("FAILED reference: {b}");
    }
    let total_refs = broken.len();
    if total_refs == 0 && stores.len() > 1 {
        println!(
            "ok: every reference between the {} chains resolves",
            stores.len()
        );
    }
    Ok(if ok && broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::INVALID)
    })
}

fn log(dir: &PathBuf, from: Option<u64>, to: Option<u64>, json: bool) -> anyhow::Result<ExitCode> {
    let store = match open(dir)? {
        Ok(s) => s,
        Err(e) => {
            eprintln!("FAILED {}: {e}", dir.display());
            return Ok(ExitCode::from(exit::INVALID));
        }
    };
    let from = from.unwrap_or(store.start());
    let to = to.unwrap_or(u64::MAX);
    for entry in store.entries(from) {
        let entry = entry?;
        if entry.seq() > to {
            break;
        }
        let hash = store.hash_at(entry.seq())?;
        if json {
            println!("{}", crate::render::entry_json(&entry, &hash));
        } else {
            println!("{}", crate::render::entry_line(&entry, &hash));
        }
    }
    Ok(ExitCode::SUCCESS)
}
