//! `theater chain replay | state | diff`: rebuild an actor's states from its chain.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use theater_chain::{ChainError, ChainStore, FileStore};
use theater_core::{ReplayError, ReplayReport, replay_to, replay_to_nearest};
use theater_msg::Registry;
use theater_wasm::{Manifest, WasmActor, WasmConfig, WasmHost};

use crate::exit;

/// The actor a manifest describes, set up for replay: every capability answered from the
/// recording, without the outside world. A secret the guest held is read again from the
/// manifest's sources, its version checked with the key of the data directory `chain_dir`
/// is in (`<data-dir>/chains/NAME`), when that key is at hand. Entries that another
/// component handled (the chain's init or an upgrade names it) replay on that component,
/// read from the data directory's store (`<data-dir>/components`).
pub(crate) fn actor_for(
    manifest: &Manifest,
    chain_dir: Option<&Path>,
) -> anyhow::Result<WasmActor> {
    let chain_dir = chain_dir.and_then(|d| std::fs::canonicalize(d).ok());
    let data_dir = chain_dir
        .as_deref()
        .and_then(Path::parent)
        .and_then(Path::parent);
    let capabilities = crate::capabilities::all(&Registry::new()).with(
        data_dir.map_or_else(theater_secrets::Secrets::default, |d| {
            theater_secrets::Secrets::with_key_in(d)
        }),
    );
    capabilities.check(manifest)?;
    let mut config = WasmConfig::default()
        .pooling(None)
        .capabilities(capabilities.clone());
    if let Some(d) = data_dir {
        config = config.components(theater_wasm::ComponentStore::in_data_dir(d), false);
    }
    let host = WasmHost::new(config)?;
    let component = host.load_file(&manifest.component)?;
    let actor = host.actor(
        &component,
        &manifest.name,
        manifest.init.clone(),
        manifest.limits,
    );
    Ok(actor.with_grants(capabilities.replay_grants(manifest)))
}

fn open(dir: &Path) -> anyhow::Result<FileStore> {
    FileStore::open_read_only(dir)
        .with_context(|| format!("cannot read the chain in {}", dir.display()))
}

/// Replays `chain` up to `to` with a progress bar; `on_entry` sees each state.
pub(crate) fn replay_with(
    manifest_path: &Path,
    chain: &FileStore,
    chain_dir: Option<&Path>,
    to: u64,
    on_entry: &mut (dyn FnMut(u64, &Value) + Send),
) -> anyhow::Result<Result<ReplayReport, ReplayError>> {
    let manifest = Manifest::load(manifest_path)?;
    let bar = crate::progress::bar(to + 1, &format!("replaying {}", chain.id()));
    let result = replay_manifest(manifest, chain, chain_dir, to, None, &mut |seq, state| {
        bar.set_position(seq + 1);
        on_entry(seq, state);
    });
    bar.finish_and_clear();
    result
}

/// Replays `chain` up to `to` on the actor `manifest` describes (a family's manifest
/// replays any of its members); `on_entry` sees each state. With `nearest = Some(n)`, from the
/// newest snapshot at or before `n` (its state seen first), else from the chain's start.
/// Blocks: it runs its own runtime.
pub(crate) fn replay_manifest(
    mut manifest: Manifest,
    chain: &FileStore,
    chain_dir: Option<&Path>,
    to: u64,
    nearest: Option<u64>,
    on_entry: &mut (dyn FnMut(u64, &Value) + Send),
) -> anyhow::Result<Result<ReplayReport, ReplayError>> {
    if let Some(f) = &manifest.family
        && f.covers(chain.id().as_str())
    {
        manifest = manifest
            .instance(chain.id().as_str(), None)
            .map_err(anyhow::Error::msg)?;
    }
    if manifest.name != *chain.id() {
        anyhow::bail!(
            "the manifest is for {:?} but the chain is {:?}",
            manifest.name.as_str(),
            chain.id().as_str()
        );
    }
    let mut actor = actor_for(&manifest, chain_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async {
        match nearest {
            Some(n) => replay_to_nearest(&mut actor, chain, to, n, on_entry).await,
            None => replay_to(&mut actor, chain, to, on_entry).await,
        }
    }))
}

fn last_seq(chain: &FileStore) -> anyhow::Result<u64> {
    chain
        .len()
        .checked_sub(1)
        .ok_or_else(|| anyhow::anyhow!("the chain is empty"))
}

pub(crate) fn replay(dir: &Path, manifest: &Path) -> anyhow::Result<ExitCode> {
    let chain = open(dir)?;
    let to = last_seq(&chain)?;
    match replay_with(manifest, &chain, Some(dir), to, &mut |_, _| {})? {
        Ok(report) => {
            println!(
                "ok {}: replayed {} entries (from seq {}) bit for bit; state {}",
                dir.display(),
                report.entries,
                report.from,
                report.state_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ReplayError::Chain(e @ ChainError::Corrupt(_))) => {
            println!("FAILED {}: {e}", dir.display());
            Ok(ExitCode::from(exit::INVALID))
        }
        Err(e @ ReplayError::Diverged(_)) => {
            println!("DIVERGED {}: {e}", dir.display());
            Ok(ExitCode::from(exit::INVALID))
        }
        Err(e) => Err(e.into()),
    }
}

fn state_after(dir: &Path, at: u64, manifest: &Path) -> anyhow::Result<Value> {
    let chain = open(dir)?;
    match replay_with(manifest, &chain, Some(dir), at, &mut |_, _| {})? {
        Ok(report) => Ok(report.state.into_value()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

pub(crate) fn state_at(dir: &Path, at: u64, manifest: &Path) -> anyhow::Result<ExitCode> {
    let state = state_after(dir, at, manifest)?;
    println!("{}", serde_json::to_string_pretty(&state)?);
    Ok(ExitCode::SUCCESS)
}

/// The differences between two JSON values, as (path, before, after); `null` before or after
/// means the path was added or removed.
pub(crate) fn json_diff(a: &Value, b: &Value) -> Vec<(String, Option<Value>, Option<Value>)> {
    fn walk(
        path: String,
        a: Option<&Value>,
        b: Option<&Value>,
        out: &mut Vec<(String, Option<Value>, Option<Value>)>,
    ) {
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    walk(
                        format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")),
                        x.get(k),
                        y.get(k),
                        out,
                    );
                }
            }
            (Some(Value::Array(x)), Some(Value::Array(y))) => {
                for i in 0..x.len().max(y.len()) {
                    walk(format!("{path}/{i}"), x.get(i), y.get(i), out);
                }
            }
            (x, y) if x == y => {}
            (x, y) => out.push((path, x.cloned(), y.cloned())),
        }
    }
    let mut out = Vec::new();
    walk(String::new(), Some(a), Some(b), &mut out);
    out
}

pub(crate) fn diff(
    dir: &Path,
    a: u64,
    b: u64,
    manifest: &Path,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let chain = open(dir)?;
    let (lo, hi) = (a.min(b), a.max(b));
    let mut at_lo = None;
    let report = match replay_with(manifest, &chain, Some(dir), hi, &mut |seq, state| {
        if seq == lo {
            at_lo = Some(state.clone());
        }
    })? {
        Ok(r) => r,
        Err(e) => anyhow::bail!("{e}"),
    };
    let before = at_lo.ok_or_else(|| {
        anyhow::anyhow!(
            "seq {lo} was not replayed (the chain starts at {})",
            chain.start()
        )
    })?;
    let (before, after) = if a <= b {
        (before, report.state.into_value())
    } else {
        (report.state.into_value(), before)
    };
    let changes = json_diff(&before, &after);
    if as_json {
        let v: Vec<Value> = changes
            .iter()
            .map(|(p, x, y)| json!({"path": if p.is_empty() { "/" } else { p }, "before": x, "after": y}))
            .collect();
        println!("{}", Value::Array(v));
    } else if changes.is_empty() {
        println!("no change in state between seq {a} and seq {b}");
    } else {
        for (path, x, y) in &changes {
            let path = if path.is_empty() { "/" } else { path };
            match (x, y) {
                (None, Some(y)) => println!("+ {path}: {y}"),
                (Some(x), None) => println!("- {path}: {x}"),
                (Some(x), Some(y)) => println!("~ {path}: {x} -> {y}"),
                (None, None) => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_name_paths() {
        let a = json!({"count": 1, "todos": {"1": {"done": false}}, "list": [1, 2]});
        let b =
            json!({"count": 2, "todos": {"1": {"done": true}, "2": {"done": false}}, "list": [1]});
        let d = json_diff(&a, &b);
        assert_eq!(
            d,
            vec![
                ("/count".into(), Some(json!(1)), Some(json!(2))),
                ("/list/1".into(), Some(json!(2)), None),
                (
                    "/todos/1/done".into(),
                    Some(json!(false)),
                    Some(json!(true))
                ),
                ("/todos/2".into(), None, Some(json!({"done": false}))),
            ]
        );
        assert!(json_diff(&a, &a).is_empty());
    }
}
