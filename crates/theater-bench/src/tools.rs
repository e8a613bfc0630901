//! Chain-tool rows: what `theater chain verify` and `theater chain replay` and the console's
//! search do, on a chain of 1,000,000 entries written by the wasm counter. Verify is measured against raw SHA-256 over
//! the same bytes on one thread (the chain's log file, read into memory); replay against the
//! same inputs handled live by the runtime on an in-memory chain.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use theater_chain::{ChainId, ChainStore, Durability, FileStore, MemoryStore};
use theater_core::{ActorInput, ActorRuntime, RuntimeConfig, replay_to};
use theater_test_support::example_component;
use theater_wasm::{Limits, WasmConfig, WasmHost};

use crate::harness::{Better, Report, Row, Target, median};

const ENTRIES: u64 = 1_000_000;

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let verify_name = "theater chain verify, 1,000,000-entry chain";
    let replay_name = "theater chain replay, 1,000,000-entry chain (wasm counter)";
    let search_name = "console search scan, 1,000,000-entry chain (no match: every entry read)";
    if !report.wants(verify_name) && !report.wants(replay_name) && !report.wants(search_name) {
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
        report.push(Row {
            name: verify_name.into(),
            unit: "B/s",
            ours: bytes as f64 / median(&mut ours).as_secs_f64(),
            baseline_name: "read + raw SHA-256 of chain.log, one thread".into(),
            baseline: bytes as f64 / median(&mut base).as_secs_f64(),
            better: Better::Higher,
            // Entries hash independently: verification uses every core (2 here).
            target: Some(Target::Ratio(1.6)),
        });
    }
    if report.wants(search_name) {
        // Both sides read the same open chain: opening it (a walk of the log, kept between
        // requests by the console) is not measured. The baseline: each record read, decoded,
        // and the text looked for in its input and output, with nothing else (no hash check,
        // no paging).
        let store = FileStore::open_read_only(&chain_dir)?;
        let bare = || -> anyhow::Result<Duration> {
            let t = Instant::now();
            let (mut hits, mut undecodable) = (0u64, 0u64);
            store.for_each_record(0, &mut |rec| {
                let Ok(entry) = rec.entry() else {
                    undecodable += 1;
                    return Ok(());
                };
                if let theater_chain::Event::Input { input, output } = entry.event()
                    && (input.json.to_string().contains("no such text")
                        || output.json.to_string().contains("no such text"))
                {
                    hits += 1;
                }
                Ok(())
            })?;
            anyhow::ensure!(
                hits == 0 && undecodable == 0,
                "the baseline found {hits}, {undecodable} undecodable"
            );
            Ok(t.elapsed())
        };
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..samples.min(5) {
            let t = Instant::now();
            let (found, scanned) = theater::search_store(&store, "no such text")?;
            anyhow::ensure!(
                found.is_empty() && scanned == ENTRIES,
                "search read {scanned}"
            );
            ours.push(t.elapsed());
            base.push(bare()?);
        }
        report.push(Row {
            name: search_name.into(),
            unit: "entries/s",
            ours: ENTRIES as f64 / median(&mut ours).as_secs_f64(),
            baseline_name: "one pass: read, decode, look in input and output".into(),
            baseline: ENTRIES as f64 / median(&mut base).as_secs_f64(),
            better: Better::Higher,
            // The search also checks every record's hash.
            target: Some(Target::Ratio(0.7)),
        });
    }
    if report.wants(replay_name) {
        // Replay runs every input again in wasm: fewer samples. The baseline is the same
        // inputs handled live by the same wasm actor on an in-memory chain (fewer of them:
        // the chain is held in memory), per entry.
        const LIVE: u64 = 200_000;
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
            ours.push(t.elapsed() / ENTRIES as u32);
            let live = rt.block_on(async {
                let actor = host.actor(&component, &id, Value::Null, Limits::default());
                let chain = MemoryStore::new(id.clone());
                let mut runtime =
                    ActorRuntime::start(actor, Box::new(chain), RuntimeConfig::default()).await?;
                let t = Instant::now();
                for _ in 0..LIVE {
                    runtime
                        .handle(ActorInput::request(json!({"add": 1})), vec![])
                        .await?;
                }
                runtime.commit()?;
                anyhow::Ok(t.elapsed())
            })?;
            base.push(live / LIVE as u32);
        }
        report.push(Row {
            name: replay_name.into(),
            unit: "s",
            ours: median(&mut ours).as_secs_f64(),
            baseline_name: "the same inputs, live runtime, memory chain".into(),
            baseline: median(&mut base).as_secs_f64(),
            better: Better::Lower,
            target: Some(Target::Ratio(1.0)),
        });
    }
    Ok(())
}
