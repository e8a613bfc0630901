//! `theater key`, `theater audit prove|verify|consistency` and `theater witness`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Subcommand;
use theater_audit::{Bundle, HostLog, Key, Signed, Witness, WitnessRefusal};
use theater_chain::{ChainId, ChainStore, FileStore};

use crate::audit::{AUDIT_DIR, CHECKPOINT, KEY};
use crate::exit;

/// `theater audit ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Write an offline proof that ACTOR's entry SEQ is in the host's latest checkpoint
    /// (works while the host runs).
    Prove {
        /// The actor.
        actor: String,
        /// The entry's seq.
        seq: u64,
        /// Where to write the bundle (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Include the entry itself, so its content is checked too.
        #[arg(long)]
        entry: bool,
    },
    /// Check a bundle with no host: exit 0 if it verifies, 1 if not.
    Verify {
        /// The bundle (JSON, from `theater audit prove`).
        bundle: PathBuf,
        /// The host's verifier key (`theater key` prints it).
        #[arg(long)]
        key: String,
        /// A witness's verifier key (repeatable).
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// How many of the witnesses must have cosigned (default: all named).
        #[arg(long)]
        quorum: Option<usize>,
        /// The actor's chain (a copy of its directory): it must verify and hold the bundle's
        /// entry at its seq, so its history up to there is the one the host committed to.
        #[arg(long)]
        chain: Option<PathBuf>,
        /// With --chain: replay it up to the entry with this manifest's component, showing
        /// the actor's code produces that history.
        #[arg(long, requires = "chain")]
        manifest: Option<PathBuf>,
    },
    /// Check that checkpoint NEW extends checkpoint OLD (files holding signed checkpoints):
    /// exit 0 if so, 1 for a split view (two histories). Checkpoints of different sizes are
    /// checked with a proof from this data directory's log.
    Consistency {
        /// The older checkpoint.
        old: PathBuf,
        /// The newer one.
        new: PathBuf,
        /// The host's verifier key: both checkpoints must be signed by it.
        #[arg(long)]
        key: Option<String>,
    },
}

fn audit_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(AUDIT_DIR)
}

/// The file of retired verifier keys, one per line.
const RETIRED: &str = "retired-keys";

/// `theater key [--rotate]`: the host's verifier key, for auditors; with `rotate`, a new one
/// in place of the old (kept, and listed as retired).
pub(crate) fn key(data_dir: &Path, rotate: bool) -> anyhow::Result<ExitCode> {
    let dir = audit_dir(data_dir);
    let path = dir.join(KEY);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no audit key at {} (a host run with --audit, or an [audit] table, makes one)",
            path.display()
        )
    })?;
    let key = Key::from_skey(&text).with_context(|| path.display().to_string())?;
    if rotate {
        if data_dir.join("admin.addr").exists() {
            anyhow::bail!(
                "a host is running on {} (it signs with the key it read): stop it, then rotate (if none runs, {} is left from a crash: remove it)",
                data_dir.display(),
                data_dir.join("admin.addr").display()
            );
        }
        let id = key.vkey().split('+').nth(1).unwrap_or("old").to_string();
        let kept = dir.join(format!("{KEY}.{id}"));
        std::fs::rename(&path, &kept)
            .with_context(|| format!("keeping the old key as {}", kept.display()))?;
        let mut retired = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(RETIRED))?;
        std::io::Write::write_all(&mut retired, format!("{}\n", key.vkey()).as_bytes())?;
        retired.sync_all()?;
        let new = Key::load_or_create(&path, key.name())?;
        println!("{}", new.vkey());
        eprintln!(
            "the new key signs from the next checkpoint on; {} (kept in {}) still verifies the ones before",
            key.vkey(),
            dir.join(RETIRED).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", key.vkey());
    if let Ok(old) = std::fs::read_to_string(dir.join(RETIRED)) {
        for line in old.lines().filter(|l| !l.is_empty()) {
            eprintln!("retired (verifies older checkpoints): {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(data_dir: &Path, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Prove {
            actor,
            seq,
            output,
            entry,
        } => prove(data_dir, &actor, seq, output.as_deref(), entry),
        AuditCommand::Verify {
            bundle,
            key,
            witnesses,
            quorum,
            chain,
            manifest,
        } => {
            let text = std::fs::read_to_string(&bundle)
                .with_context(|| format!("cannot read {}", bundle.display()))?;
            let parsed: Bundle = match serde_json::from_str(&text) {
                Ok(b) => b,
                Err(e) => {
                    println!("NOT VERIFIED: {} is not a bundle: {e}", bundle.display());
                    return Ok(ExitCode::from(exit::INVALID));
                }
            };
            let quorum = quorum.unwrap_or(witnesses.len());
            match parsed.verify(&key, &witnesses, quorum) {
                Ok(v) => {
                    println!(
                        "verified: {} seq {} (entry {}) is leaf {} of {}'s checkpoint of size {}{}",
                        parsed.actor,
                        parsed.seq,
                        parsed.entry_hash.short(),
                        parsed.index,
                        v.origin,
                        v.size,
                        if v.witnesses.is_empty() {
                            String::new()
                        } else {
                            format!(", cosigned by {}", v.witnesses.join(", "))
                        }
                    );
                    if let Some(e) = v.entry {
                        println!("the entry is included and matches: {}", e.event().kind());
                    }
                    match chain {
                        Some(dir) => check_chain(&parsed, &dir, manifest.as_deref()),
                        None => Ok(ExitCode::SUCCESS),
                    }
                }
                // A key that cannot be used is a command that could not run, not a verdict.
                Err(e @ theater_audit::AuditError::Key(_)) => Err(e.into()),
                Err(e) => {
                    println!("NOT VERIFIED: {e}");
                    Ok(ExitCode::from(exit::INVALID))
                }
            }
        }
        AuditCommand::Consistency { old, new, key } => consistency(data_dir, &old, &new, key),
    }
}

/// The chain in `dir` verifies and holds the bundle's entry; with `manifest`, it replays
/// up to it bit for bit.
fn check_chain(bundle: &Bundle, dir: &Path, manifest: Option<&Path>) -> anyhow::Result<ExitCode> {
    let chain = FileStore::open_read_only(dir)
        .with_context(|| format!("cannot read the chain in {}", dir.display()))?;
    let fail = |why: String| {
        println!("NOT VERIFIED: the chain in {}: {why}", dir.display());
        Ok(ExitCode::from(exit::INVALID))
    };
    if chain.id() != &bundle.actor {
        return fail(format!(
            "it is {}'s, the bundle {}'s",
            chain.id(),
            bundle.actor
        ));
    }
    if let Err(e) = chain.verify() {
        return fail(e.to_string());
    }
    match chain.hash_at(bundle.seq) {
        Ok(h) if h == bundle.entry_hash => {}
        Ok(h) => {
            return fail(format!(
                "seq {} is entry {}, the bundle's is {}",
                bundle.seq,
                h.short(),
                bundle.entry_hash.short()
            ));
        }
        Err(e) => return fail(e.to_string()),
    }
    println!(
        "the chain in {} verifies from seq {} and holds that entry: its history up to seq {} is the one the host committed to",
        dir.display(),
        chain.start(),
        bundle.seq
    );
    let Some(manifest) = manifest else {
        return Ok(ExitCode::SUCCESS);
    };
    match crate::replay_cmd::replay_with(manifest, &chain, Some(dir), bundle.seq, &mut |_, _| {})? {
        Ok(report) => {
            println!(
                "replayed {} entries (from seq {}) to seq {} bit for bit with {}: the actor's code produces it",
                report.entries,
                report.from,
                bundle.seq,
                manifest.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => fail(format!("replay: {e}")),
    }
}

fn prove(
    data_dir: &Path,
    actor: &str,
    seq: u64,
    output: Option<&Path>,
    with_entry: bool,
) -> anyhow::Result<ExitCode> {
    let dir = audit_dir(data_dir);
    let note = std::fs::read_to_string(dir.join(CHECKPOINT)).with_context(|| {
        format!(
            "no checkpoint in {} yet (the host signs one every 10 s or 10,000 entries, and at shutdown)",
            dir.display()
        )
    })?;
    let log = HostLog::open_read_only(dir.join("log"))?;
    let id = ChainId::new(actor).map_err(|e| anyhow::anyhow!("{e}"))?;
    let index = log
        .find(&id, seq)?
        .with_context(|| format!("{actor} seq {seq} is not in the audit log"))?;
    let entry = if with_entry {
        let chain = FileStore::open_read_only(data_dir.join("chains").join(actor))
            .with_context(|| format!("opening the chain of {actor}"))?;
        Some(
            chain
                .get(seq)
                .with_context(|| format!("{actor} seq {seq}"))?,
        )
    } else {
        None
    };
    let bundle = Bundle::prove(&log, index, &note, entry.as_ref()).map_err(|e| {
        anyhow::anyhow!(
            "{e} (the entry may be newer than the latest checkpoint: try again after the next)"
        )
    })?;
    let json = serde_json::to_string_pretty(&bundle)? + "\n";
    match output {
        Some(path) => {
            std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{json}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn read_checkpoint(path: &Path) -> anyhow::Result<(String, String, Signed)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (origin, signed) =
        theater_audit::parse_checkpoint(&text).with_context(|| path.display().to_string())?;
    Ok((text, origin, signed))
}

fn consistency(
    data_dir: &Path,
    old: &Path,
    new: &Path,
    key: Option<String>,
) -> anyhow::Result<ExitCode> {
    let (old_text, a_origin, a) = read_checkpoint(old)?;
    let (new_text, b_origin, b) = read_checkpoint(new)?;
    match &key {
        Some(key) => {
            theater_audit::verifier(key)?;
            for (path, text) in [(old, &old_text), (new, &new_text)] {
                if let Err(e) = theater_audit::check_signed(text, key) {
                    println!(
                        "NOT VERIFIED: {} is not signed by that key: {e}",
                        path.display()
                    );
                    return Ok(ExitCode::from(exit::INVALID));
                }
            }
        }
        None => eprintln!("(no --key: the checkpoints' signatures are not checked)"),
    }
    if a_origin != b_origin {
        anyhow::bail!("the checkpoints are of two logs: {a_origin:?} and {b_origin:?}");
    }
    if let Some(split) = theater_audit::split_view(&old_text, &new_text)? {
        println!("SPLIT VIEW: {split}");
        return Ok(ExitCode::from(exit::INVALID));
    }
    let (first, second) = if a.size <= b.size { (a, b) } else { (b, a) };
    let proof = if first.size == second.size {
        // One size, one root (split_view said so): no log needed.
        Vec::new()
    } else {
        let log = HostLog::open_read_only(audit_dir(data_dir).join("log"))
            .context("checkpoints of two sizes need the host log for a consistency proof")?;
        log.prove_consistency(first.size, second.size)?
    };
    match theater_audit::consistent(first, second, &proof) {
        Ok(()) => {
            println!(
                "consistent: the checkpoint of size {} extends that of size {}",
                second.size, first.size
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!(
                "SPLIT VIEW: the checkpoints of sizes {} and {} are not one history ({e})",
                first.size, second.size
            );
            Ok(ExitCode::from(exit::INVALID))
        }
    }
}

/// `theater witness`: a C2SP tlog-witness over HTTP (`POST /add-checkpoint`), for the logs
/// whose verifier keys are `logs`; its key and state under `dir`.
pub(crate) fn witness(
    listen: SocketAddr,
    dir: &Path,
    name: &str,
    logs: &[String],
) -> anyhow::Result<ExitCode> {
    let key = Key::load_or_create(&dir.join("witness.key"), name)?;
    let witness = Witness::new(key, logs, dir.join("state"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        println!("witness {} on http://{addr}", witness.vkey());
        std::fs::write(dir.join("witness.addr"), addr.to_string())?;
        std::fs::write(dir.join("witness.vkey"), witness.vkey())?;
        let witness = Arc::new(Mutex::new(witness));
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => accepted?,
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            };
            let witness = Arc::clone(&witness);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let witness = Arc::clone(&witness);
                    async move { Ok::<_, std::convert::Infallible>(answer(&witness, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

type Response = hyper::Response<http_body_util::Full<bytes::Bytes>>;

fn respond(status: u16, content_type: &str, body: String) -> Response {
    let mut res = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *res.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        res.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    res
}

async fn answer(witness: &Mutex<Witness>, req: hyper::Request<hyper::body::Incoming>) -> Response {
    use http_body_util::BodyExt;
    if req.method() != hyper::Method::POST || req.uri().path() != "/add-checkpoint" {
        return respond(404, "text/plain", "POST /add-checkpoint only\n".into());
    }
    let body = match http_body_util::Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return respond(400, "text/plain", format!("reading the body: {e}\n")),
    };
    let Some((old, proof, note)) = parse_add_checkpoint(&body) else {
        return respond(
            400,
            "text/plain",
            "expected `old N`, the proof's base64 lines, a blank line, then the signed checkpoint\n"
                .into(),
        );
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let result = witness
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .add_checkpoint(old, &proof, note, now);
    match result {
        Ok(line) => respond(200, "text/plain", line),
        Err(WitnessRefusal::Conflict { known, .. }) => {
            respond(409, "text/x.tlog.size", format!("{known}\n"))
        }
        Err(e @ WitnessRefusal::Inconsistent { .. }) => {
            tracing::warn!("witness: refused a checkpoint: {e}");
            respond(422, "text/plain", format!("{e}\n"))
        }
        Err(e @ WitnessRefusal::Rejected(_)) => respond(403, "text/plain", format!("{e}\n")),
        Err(e) => respond(500, "text/plain", format!("{e}\n")),
    }
}

/// `old N\n`, base64 hashes one per line, a blank line, the note.
fn parse_add_checkpoint(body: &[u8]) -> Option<(u64, Vec<theater_audit::TreeHash>, &[u8])> {
    let split = body.windows(2).position(|w| w == b"\n\n")?;
    let head = std::str::from_utf8(&body[..split]).ok()?;
    let note = &body[split + 2..];
    let mut lines = head.lines();
    let old = lines.next()?.strip_prefix("old ")?.parse().ok()?;
    let mut proof = Vec::new();
    for l in lines {
        let b = STANDARD.decode(l).ok()?;
        proof.push(theater_audit::TreeHash(<[u8; 32]>::try_from(b).ok()?));
    }
    Some((old, proof, note))
}
