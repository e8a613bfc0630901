//! `theater demo`: a guided tour of the hash chain on a small counter actor.
//!
//! Until the actor runtime lands, the "actor" is a few lines of Rust here; the chain, its
//! storage, verification and damage detection are the real `theater-chain`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use theater_chain::{ChainId, ChainStore, Durability, FileStore, Hash, NewEntry, Payload};

/// The counter's transition: `{"add": n}` adds n; anything else fails.
fn counter(state: &Value, input: &Value) -> Result<Value, String> {
    let count = state["count"].as_i64().unwrap_or(0);
    match input["add"].as_i64() {
        Some(n) => Ok(json!({ "count": count + n })),
        None => Err(format!("unsupported input {input}")),
    }
}

pub(crate) fn run(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let tmp;
    let root = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let chain_dir = root.join("counter");
    println!(
        "Theater chain demo: a counter actor, its hash chain in {}",
        chain_dir.display()
    );
    println!();

    // 1. Run the actor, recording every transition.
    let mut chain = FileStore::create(&chain_dir, ChainId::new("counter")?, Durability::EveryEntry)
        .with_context(|| format!("creating a chain in {}", chain_dir.display()))?;
    let mut state = json!({ "count": 0 });
    let _ = chain.append(NewEntry::init(
        Payload::json(state.clone()),
        Hash::of_json(&state),
    ))?;
    for input in [
        json!({"add": 3}),
        json!({"add": 4}),
        json!({"reset": true}),
        json!({"add": -2}),
    ] {
        let entry = match counter(&state, &input) {
            Ok(next) => {
                state = next;
                NewEntry::input(
                    Payload::json(input),
                    Payload::json(state.clone()),
                    Hash::of_json(&state),
                )
            }
            Err(error) => NewEntry::failed(Payload::json(input), error, Hash::of_json(&state)),
        };
        let _ = chain.append(entry)?;
    }
    println!("1. The actor handled 4 inputs (one failed, leaving the state unchanged).");
    println!("   Each entry names its parent's hash; every entry is fsynced before it counts:");
    for e in chain.entries(0) {
        let e = e?;
        println!(
            "   {}",
            crate::render::entry_line(&e, &chain.hash_at(e.seq())?)
        );
    }
    println!(
        "   final state {state}, state hash {}",
        Hash::of_json(&state).short()
    );
    drop(chain);

    // 2. Reopen and verify.
    let chain = FileStore::open(&chain_dir, Durability::EveryEntry)?;
    println!();
    println!("2. Reopened from disk and verified: {}", chain.verify()?);
    drop(chain);

    // 3. Tamper with one byte of a stored entry.
    let log = chain_dir.join("chain.log");
    let original = std::fs::read(&log)?;
    let mut tampered = original.clone();
    let Some(pos) = find(&original, b"\"add\":4") else {
        bail!("the demo could not find the entry to tamper with");
    };
    tampered[pos + 6] = b'5';
    std::fs::write(&log, &tampered)?;
    println!();
    println!(
        "3. Someone edits the log on disk, turning {{\"add\":4}} into {{\"add\":5}} (byte {})...",
        pos + 6
    );
    let chain = FileStore::open(&chain_dir, Durability::EveryEntry)?;
    match chain.verify() {
        Ok(report) => bail!("tampering went undetected: {report}"),
        Err(e) => println!("   verify refuses it: {e}"),
    }
    drop(chain);

    // 4. A crash mid-write: the last record is cut in half.
    std::fs::write(&log, &original[..original.len() - 20])?;
    println!();
    println!(
        "4. The original log again, cut as if the machine crashed while writing the last entry..."
    );
    let chain = FileStore::open(&chain_dir, Durability::EveryEntry)?;
    if let Some(r) = chain.recovery() {
        println!(
            "   on open, the torn record ({} bytes at byte offset {}) is cut: it was never acknowledged",
            r.bytes_cut, r.cut_at
        );
    }
    println!("   {}", chain.verify()?);
    println!();
    println!("Verify any stored chain with: theater chain verify DIR");
    Ok(ExitCode::SUCCESS)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
