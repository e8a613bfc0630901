//! Chain-tool rows: what `theater chain verify` and `theater chain replay` do, on a chain of
//! 1,000,000 entries written by the wasm counter, vs raw SHA-256 over the same bytes (the
//! chain's log file, read into memory).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use theater_chain::{ChainId, ChainStore, Durability, FileStore};
use theater_core::{ActorInput, ActorRuntime, RuntimeConfig, replay_to};
use theater_test_support::example_component;
use theater_wasm::{Limits, WasmConfig, WasmHost};

use crate::harness::{Better, Report, Row, median};

const ENTRIES: u64 = 1_000_000;

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let verify_name = "theater chain verify, 1,000,000-entry chain";
    let replay_name = "theater chain replay, 1,000,000-entry chain (wasm counter)";
    if !report.wants(verify_name) && !report.wants(replay_name) {
        return Ok(());
    }
    let rt = crate::harness::runtime()?;
    let dir = tempfile::tempdir()?;
    let chain_dir = dir.path().join("counter");
    let host = WasmHost::new(WasmConfig::default().pooling(Some(4)))?;
    let component = host.load_file(example_component("counter"))?;
    let id = ChainId::new("counter")?;
    let t = Instant::now();
    rt.block_on(async {
        let chain = FileStore::create(&chain_dir, id.clone(), Durability::None)?;
        let actor = host.actor(&component, &id, Value::Null, Limits::default());
        let mut runtime =
            ActorRuntime::start(actor, Box::new(chain), RuntimeConfig::default()).await?;
        for _ in 1..ENTRIES {
            runtime
                .handle(ActorInput::request(json!({"add": 1})), vec![])
                .await?;
        }
        runtime.commit()?;
        anyhow::Ok(())
    })?;
    eprintln!("  (wrote the {ENTRIES}-entry chain in {:.1?})", t.elapsed());
    let log = chain_dir.join("chain.log");
    let bytes = std::fs::metadata(&log)?.len();
    let raw = || -> anyhow::Result<Duration> {
        let t = Instant::now();
        let data = std::fs::read(&log)?;
        std::hint::black_box(Sha256::digest(&data));
        Ok(t.elapsed())
    };
    let samples = report.settings.samples;
    if report.wants(verify_name) {
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            let t = Instant::now();
            let store = FileStore::open_read_only(&chain_dir)?;
            let verified = store.verify()?;
            anyhow::ensure!(
                verified.entries == ENTRIES,
                "verify saw {}",
                verified.entries
            );
            ours.push(t.elapsed());
            base.push(raw()?);
        }
        push(report, verify_name, bytes, &mut ours, &mut base);
    }
    if report.wants(replay_name) {
        // Replay runs every input again in wasm: fewer samples.
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..samples.min(3) {
            let t = Instant::now();
            let store = FileStore::open_read_only(&chain_dir)?;
            let mut actor = host.actor(&component, &id, Value::Null, Limits::default());
            let report = rt.block_on(replay_to(&mut actor, &store, ENTRIES - 1, &mut |_, _| {}))?;
            anyhow::ensure!(
                report.state.value()["count"] == ENTRIES - 1,
                "replay lost inputs"
            );
            ours.push(t.elapsed());
            base.push(raw()?);
        }
        push(report, replay_name, bytes, &mut ours, &mut base);
    }
    Ok(())
}

fn push(report: &mut Report, name: &str, bytes: u64, ours: &mut [Duration], base: &mut [Duration]) {
    report.push(Row {
        name: name.into(),
        unit: "B/s",
        ours: bytes as f64 / median(ours).as_secs_f64(),
        baseline_name: "read + raw SHA-256 of chain.log".into(),
        baseline: bytes as f64 / median(base).as_secs_f64(),
        better: Better::Higher,
        target: None,
    });
}
