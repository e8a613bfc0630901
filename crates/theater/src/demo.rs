//! `theater demo`: a real wasm actor on the embedded defaults (the counter example), its
//! chain on disk, verified, replayed bit for bit, tampered with and recovered.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;
use theater_chain::{ChainStore, Durability, FileStore};
use theater_core::{ActorConfig, ActorInput, CallError, replay, spawn};
use theater_wasm::{Manifest, WasmConfig, WasmHost};

/// The manifest used when none is given: the counter example of this source tree.
pub(crate) fn default_manifest() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/counter/counter.toml");
    std::fs::canonicalize(&path).unwrap_or(path)
}

pub(crate) fn run(manifest: Option<PathBuf>, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(demo(manifest.unwrap_or_else(default_manifest), dir))
}

async fn demo(manifest: PathBuf, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let tmp;
    let root = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let m = Manifest::load(&manifest)?;
    let chain_dir = root.join(m.name.as_str());
    println!(
        "Theater demo: the wasm actor {:?} from {}",
        m.name.as_str(),
        manifest.display()
    );
    println!("chain in {}", chain_dir.display());
    println!();

    // Every capability linked (a component importing one loads; ungranted, its calls answer
    // so), none granted.
    let capabilities = crate::capabilities::all(&theater_msg::Registry::new());
    let host = WasmHost::new(
        WasmConfig::default()
            .pooling(Some(16))
            .capabilities(capabilities),
    )?;
    let t = Instant::now();
    let component = host.load_file(&m.component)?;
    println!(
        "1. Compiled {} ({}) in {:.0?}.",
        m.component.display(),
        component.hash().short(),
        t.elapsed()
    );
    let factory = {
        let (host, component, m) = (host.clone(), component.clone(), m.clone());
        move || host.actor(&component, &m.name, m.init.clone(), m.limits)
    };
    let chain = FileStore::create(
        &chain_dir,
        m.name.clone(),
        Durability::Group { max_batch: 64 },
    )?;
    let actor = spawn(factory.clone(), Box::new(chain), ActorConfig::default()).await?;
    println!("   Sending it inputs; each answer comes once its entry is durable:");
    for input in [
        json!({"add": 3}),
        json!({"add": 4}),
        json!({"sub": 1}),
        json!({"get": true}),
    ] {
        match actor.call(ActorInput::request(input.clone())).await {
            Ok(out) => println!(
                "   {input} -> {} (seq {})",
                out.output.to_payload().json,
                out.seq
            ),
            Err(CallError::Failed { seq, error, .. }) => {
                println!("   {input} -> failed, recorded at seq {seq}, state unchanged: {error}")
            }
            Err(e) => bail!("the actor stopped: {e}"),
        }
    }
    let (state, _) = actor.state().await?;
    println!("   state {state}");
    actor.stop().await?;
    drop(actor);

    let chain = FileStore::open_read_only(&chain_dir)?;
    println!();
    println!("2. The chain on disk:");
    for e in chain.entries(0) {
        let e = e?;
        println!(
            "   {}",
            crate::render::entry_line(&e, &chain.hash_at(e.seq())?)
        );
    }
    println!("   {}", chain.verify()?);
    let report = replay(&mut factory(), &chain).await?;
    println!(
        "   replayed in a fresh instance: {} entries re-run, every state hash matches (state {})",
        report.entries,
        report.state.value()
    );
    drop(chain);

    let log = chain_dir.join("chain.log");
    let original = std::fs::read(&log)?;
    let Some(pos) = original.windows(7).position(|w| w == b"\"add\":4") else {
        bail!("the demo could not find the entry to tamper with");
    };
    let mut tampered = original.clone();
    tampered[pos + 6] = b'5';
    std::fs::write(&log, &tampered)?;
    println!();
    println!("3. Someone edits the log, turning {{\"add\":4}} into {{\"add\":5}}...");
    let chain = FileStore::open_read_only(&chain_dir)?;
    match chain.verify() {
        Ok(report) => bail!("tampering went undetected: {report}"),
        Err(e) => println!("   verify refuses it: {e}"),
    }
    drop(chain);

    std::fs::write(&log, &original[..original.len() - 20])?;
    println!();
    println!("4. The original log again, cut as if the machine crashed mid-write...");
    let chain = FileStore::open(&chain_dir, Durability::EveryEntry)?;
    if let Some(r) = chain.recovery() {
        println!(
            "   on open the torn record ({} bytes at byte offset {}) is cut: it was never acknowledged",
            r.bytes_cut, r.cut_at
        );
    }
    println!("   {}", chain.verify()?);
    println!();
    println!("Verify stored chains with: theater chain verify DIR...");
    Ok(ExitCode::SUCCESS)
}
