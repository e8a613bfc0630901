//! `theater chain ...`: offline tools over stored chains.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use theater_chain::{ChainError, ChainStore, Durability, FileStore, RefProblem, check_refs};

use crate::exit;

#[derive(Debug, Subcommand)]
pub(crate) enum ChainCommand {
    /// Verify every hash and link of one or more chains, and the references between them.
    ///
    /// Exits 0 when everything verifies, 1 when anything does not, 2 when a chain cannot be read.
    ///
    /// With `--nats` and `--cluster`, the chains are read from the cluster's replicas (no
    /// host's files needed): name the actors, or give `--all`.
    Verify {
        /// Chain directories (each holding a chain.log); with `--nats`, actor names.
        #[arg(required_unless_present = "all")]
        dirs: Vec<PathBuf>,
        /// Read the chains from the replicas of a cluster on these NATS servers
        /// (comma-separated URLs).
        #[arg(long, requires = "cluster")]
        nats: Option<String>,
        /// The cluster's name (with `--nats`).
        #[arg(long, requires = "nats")]
        cluster: Option<String>,
        /// Every chain the cluster holds (with `--nats`).
        #[arg(long, requires = "nats")]
        all: bool,
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
        /// Only entries of this kind: init, input, failed, upgrade, or an input type (message,
        /// request, http_request, websocket_message, websocket_close).
        #[arg(long)]
        kind: Option<String>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-run a chain against its actor and check every output, host call and state hash.
    ///
    /// Exits 0 when the replay matches the recording bit for bit, 1 when it diverges (naming
    /// the seq and what differs), 2 when it cannot run.
    Replay {
        /// The chain directory.
        dir: PathBuf,
        /// The actor's manifest (its component and init parameters).
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Print the actor's state right after entry SEQ, rebuilt by replaying up to it.
    State {
        /// The chain directory.
        dir: PathBuf,
        /// The entry.
        #[arg(long)]
        at: u64,
        /// The actor's manifest.
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Show how the actor's state changed between entries A and B (paths added, removed,
    /// changed).
    Diff {
        /// The chain directory.
        dir: PathBuf,
        /// The earlier entry.
        a: u64,
        /// The later entry.
        b: u64,
        /// The actor's manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// The differences as one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Write a self-contained HTML page drawing chains and the message links between them;
    /// each entry shows its input, output, host calls and (with manifests) state when clicked.
    Graph {
        /// Chain directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Manifests of the chains' actors, to include each entry's state (matched by name).
        #[arg(long)]
        manifest: Vec<PathBuf>,
        /// The page to write.
        #[arg(long, short, default_value = "chain-graph.html")]
        output: PathBuf,
    },
    /// Drop a stopped actor's oldest entries, keeping at least N entries (and D days) behind
    /// its newest snapshot: the chain then starts at a snapshot and verifies from it. Never
    /// past the first entry linked to another chain (a message, a request, a child). The
    /// host must not be running the actor (the chain is locked).
    Prune {
        /// The chain directory.
        dir: PathBuf,
        /// Entries to keep behind the newest snapshot, at least.
        #[arg(long)]
        keep_entries: u64,
        /// Days to keep behind the newest snapshot, at least (by when snapshots were saved).
        #[arg(long)]
        keep_days: Option<u32>,
        /// Say what would be dropped, drop nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(crate) fn run(cmd: ChainCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ChainCommand::Verify {
            dirs,
            nats: Some(nats),
            cluster: Some(cluster),
            all,
        } => verify_replicas(&nats, &cluster, &dirs, all),
        ChainCommand::Verify { dirs, .. } => verify(&dirs),
        ChainCommand::Log {
            dir,
            from,
            to,
            kind,
            json,
        } => log(&dir, from, to, kind.as_deref(), json),
        ChainCommand::Replay { dir, manifest } => crate::replay_cmd::replay(&dir, &manifest),
        ChainCommand::State { dir, at, manifest } => {
            crate::replay_cmd::state_at(&dir, at, &manifest)
        }
        ChainCommand::Diff {
            dir,
            a,
            b,
            manifest,
            json,
        } => crate::replay_cmd::diff(&dir, a, b, &manifest, json),
        ChainCommand::Graph {
            dirs,
            manifest,
            output,
        } => crate::graph::write(&dirs, &manifest, &output),
        ChainCommand::Prune {
            dir,
            keep_entries,
            keep_days,
            dry_run,
        } => prune(
            &dir,
            &theater_core::Retention {
                keep_entries,
                keep_days,
            },
            dry_run,
        ),
    }
}

/// `theater chain prune`.
fn prune(dir: &Path, policy: &theater_core::Retention, dry_run: bool) -> anyhow::Result<ExitCode> {
    if policy.keep_days == Some(0) {
        anyhow::bail!("--keep-days must be at least 1 (leave it out to count entries only)");
    }
    let opened = if dry_run {
        FileStore::open_read_only(dir)
    } else {
        FileStore::open(dir, Durability::EveryEntry)
    };
    let mut chain = match opened {
        Ok(c) => c,
        Err(ChainError::Io { path, .. }) if path.ends_with("LOCK") => anyhow::bail!(
            "the chain in {} is locked: a host runs its actor; stop it first",
            dir.display()
        ),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot open the chain in {}", dir.display())));
        }
    };
    let linked = theater_core::retention::first_linked(&chain)?;
    let from = chain.start();
    match theater_core::prune_point(&chain, policy, linked, std::time::SystemTime::now()) {
        theater_core::PrunePoint::Nothing(why) => {
            println!("nothing to prune: {why}");
        }
        theater_core::PrunePoint::At(seq) if dry_run => {
            println!(
                "would drop entries {from} to {} ({} entries); the chain would start at seq {seq}, its snapshot",
                seq - 1,
                seq - from
            );
        }
        theater_core::PrunePoint::At(seq) => {
            chain.prune_before(seq)?;
            println!(
                "dropped entries {from} to {} ({} entries); the chain starts at seq {seq}, its snapshot",
                seq - 1,
                seq - from
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The kind `--kind` matches: the entry's kind, or its input's type.
pub(crate) fn matches_kind(entry: &theater_chain::Entry, kind: &str) -> bool {
    use theater_chain::Event;
    if entry.event().kind() == kind {
        return true;
    }
    match entry.event() {
        Event::Input { input, .. } | Event::Read { input, .. } | Event::Failed { input, .. } => {
            input.json["type"] == kind
        }
        _ => false,
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
        let bar = crate::progress::bar(store.len(), &format!("verifying {}", dir.display()));
        let verified = store.verify_with_progress(&mut |p| bar.set_position(p.entries));
        bar.finish_and_clear();
        match verified {
            Ok(report) => {
                let blob_calls =
                    crate::capabilities::all(&theater_msg::Registry::new()).blob_calls();
                let problems = theater_chain::blob::check_blobs(&store, &blob_calls)?;
                for p in &problems {
                    println!("FAILED {}: blob {p}", dir.display());
                }
                if !problems.is_empty() {
                    ok = false;
                    continue;
                }
                println!("ok {}: {report}", dir.display());
                // Only chains that verified are checked against each other: a damaged one
                // cannot be read entry by entry.
                stores.push(store);
            }
            Err(e) => {
                println!("FAILED {}: {e}", dir.display());
                ok = false;
            }
        }
    }
    let refs: Vec<&dyn ChainStore> = stores.iter().map(|s| s as &dyn ChainStore).collect();
    check_links(&refs, ok)
}

/// `theater chain verify --nats URL --cluster NAME [ACTOR...|--all]`: the chains as the
/// cluster's replicas hold them, each hash and link, then the links between them.
fn verify_replicas(
    nats: &str,
    cluster: &str,
    names: &[PathBuf],
    all: bool,
) -> anyhow::Result<ExitCode> {
    let host = format!("verify-{}", std::process::id());
    let config = theater_cluster::ClusterConfig::new(cluster, nats, host)?;
    let cluster = theater_cluster::Cluster::connect_existing(config)?;
    let mut names: Vec<String> = names
        .iter()
        .map(|n| n.to_string_lossy().to_string())
        .collect();
    if all {
        let c = cluster.clone();
        let listed = cluster.block(async move { c.actors().await })??;
        for n in listed {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        if names.is_empty() {
            println!("FAILED: the cluster holds no chain");
            return Ok(ExitCode::from(exit::INVALID));
        }
    }
    let mut ok = true;
    let mut stores = Vec::new();
    for name in &names {
        match cluster.read_chain_blocking(name) {
            Ok(replica) if replica.store.is_empty() => {
                println!("FAILED {name}: the cluster holds no chain of that name");
                ok = false;
            }
            Ok(replica) => {
                let report = replica.store.verify()?;
                let hosts: Vec<&str> = replica.hosts.iter().map(String::as_str).collect();
                println!(
                    "ok {name}: {report} (replica; written by {})",
                    hosts.join(", ")
                );
                stores.push(replica.store);
            }
            Err(e) => {
                println!("FAILED {name}: {e}");
                ok = false;
            }
        }
    }
    let refs: Vec<&dyn ChainStore> = stores.iter().map(|s| s as &dyn ChainStore).collect();
    check_links(&refs, ok)
}

/// The references and message links between `refs`; the exit code, given whether the
/// chains themselves verified (`ok`).
fn check_links(refs: &[&dyn ChainStore], ok: bool) -> anyhow::Result<ExitCode> {
    let stores = refs;
    // References resolve (check_refs), and each one that is a message or a request matches
    // the other side: what was sent is what was received, once; what was asked is what
    // was answered.
    // A reference to a chain not given cannot be checked here: noted, not failed.
    let (unchecked, broken): (Vec<_>, Vec<_>) = check_refs(refs)?
        .into_iter()
        .partition(|b| b.problem == RefProblem::UnknownChain);
    if !unchecked.is_empty() {
        println!(
            "note: {} references to chains not given were not checked (give those chains too)",
            unchecked.len()
        );
    }
    let links: Vec<_> = theater_msg::verify_links(refs)?
        .into_iter()
        .filter(|l| {
            !unchecked
                .iter()
                .any(|u| u.chain == l.chain && u.seq == l.seq && u.target.chain == l.other)
        })
        .collect();
    for b in &broken {
        println!("FAILED reference: {b}");
    }
    for l in links
        .iter()
        .filter(|l| !broken.iter().any(|b| b.chain == l.chain && b.seq == l.seq))
    {
        println!("FAILED link: {l}");
    }
    let failed_links = links.len();
    if failed_links == 0 && stores.len() > 1 {
        println!(
            "ok: every reference and message link between the {} chains holds",
            stores.len()
        );
    }
    Ok(if ok && broken.is_empty() && links.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::INVALID)
    })
}

fn log(
    dir: &PathBuf,
    from: Option<u64>,
    to: Option<u64>,
    kind: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
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
        if kind.is_some_and(|k| !matches_kind(&entry, k)) {
            continue;
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
