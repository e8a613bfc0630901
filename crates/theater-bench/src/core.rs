//! theater-core rows: inputs/s through the runtime vs calling the actor directly.

use std::time::{Duration, Instant};

use theater_chain::{ChainId, ChainStore, Durability, FileStore, MemoryStore};
use theater_core::{Actor, ActorConfig, ActorRuntime, HostCalls, RuntimeConfig, spawn};
use theater_test_support::{PaddedCounter, add};

use crate::harness::{Better, Report, Row, median};

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let rt = crate::harness::runtime()?;
    for (label, padding) in [("1 KiB", 1024), ("64 KiB", 64 * 1024)] {
        let name = format!("ActorRuntime inputs, {label} state (memory chain)");
        if report.wants(&name) {
            rt.block_on(runtime_vs_direct(report, name, padding))?;
        }
    }
    let name = "ActorRuntime inputs with metrics, 1 KiB state (memory chain)".to_string();
    if report.wants(&name) {
        rt.block_on(metrics_on_vs_off(report, name))?;
    }
    let name = "ActorHandle inputs, 1 KiB state (file, group commit)".to_string();
    if report.wants(&name) {
        rt.block_on(handle_group_commit(report, name))?;
    }
    Ok(())
}

/// The baseline: the same actor's `handle_input`, called in a loop, state threaded by hand.
async fn direct(padding: usize, n: u64) -> anyhow::Result<Duration> {
    let mut actor = PaddedCounter { padding };
    let mut state = actor.init(&mut HostCalls::live()).await?;
    let t = Instant::now();
    for _ in 0..n {
        let (_, next) = actor
            .handle_input(&add(1), &state, &mut HostCalls::live())
            .await?;
        state = next;
    }
    let took = t.elapsed();
    anyhow::ensure!(state["count"] == n, "direct run lost inputs");
    Ok(took)
}

fn chain_id() -> anyhow::Result<ChainId> {
    Ok(ChainId::new("bench")?)
}

async fn runtime_vs_direct(
    report: &mut Report,
    name: String,
    padding: usize,
) -> anyhow::Result<()> {
    let n: u64 = if padding > 4096 { 500 } else { 20_000 };
    let samples = report.settings.samples;
    let mut ours = Vec::new();
    let mut base = Vec::new();
    // Interleaved samples (the first pair is a warm-up), driven here as they are async.
    for i in 0..=samples {
        let chain = Box::new(MemoryStore::new(chain_id()?));
        let mut rt =
            ActorRuntime::start(PaddedCounter { padding }, chain, RuntimeConfig::default()).await?;
        let t = Instant::now();
        for _ in 0..n {
            rt.handle(add(1), vec![]).await?;
        }
        let a = t.elapsed();
        anyhow::ensure!(rt.state()["count"] == n, "runtime lost inputs");
        let b = direct(padding, n).await?;
        if i > 0 {
            ours.push(a);
            base.push(b);
        }
    }
    report.push(vs_direct(name, n, &mut ours, &mut base));
    Ok(())
}

/// The time `n` inputs take through a runtime of the 1 KiB-state counter on `chain`.
pub(crate) async fn timed_inputs(
    chain: Box<dyn ChainStore>,
    config: RuntimeConfig,
    n: u64,
) -> anyhow::Result<Duration> {
    let mut rt = ActorRuntime::start(PaddedCounter { padding: 1024 }, chain, config).await?;
    let t = Instant::now();
    for _ in 0..n {
        rt.handle(add(1), vec![]).await?;
    }
    let took = t.elapsed();
    anyhow::ensure!(rt.state()["count"] == n, "runtime lost inputs");
    Ok(took)
}

/// The same runtime counting into `ActorMetrics` (what every spawned actor does) vs not:
/// what metrics cost per input. Target: within 5%.
async fn metrics_on_vs_off(report: &mut Report, name: String) -> anyhow::Result<()> {
    let n: u64 = 20_000;
    let samples = report.settings.samples;
    let mut on = Vec::new();
    let mut off = Vec::new();
    let run = |metrics: bool| async move {
        let chain = Box::new(MemoryStore::new(chain_id()?));
        let config = if metrics {
            RuntimeConfig::default().metrics(Default::default())
        } else {
            RuntimeConfig::default()
        };
        timed_inputs(chain, config, n).await
    };
    for i in 0..=samples {
        let a = run(true).await?;
        let b = run(false).await?;
        if i > 0 {
            on.push(a);
            off.push(b);
        }
    }
    report.push(Row {
        name,
        unit: "inputs/s",
        ours: n as f64 / median(&mut on).as_secs_f64(),
        baseline_name: "the same runtime without metrics".into(),
        baseline: n as f64 / median(&mut off).as_secs_f64(),
        better: Better::Higher,
        target: Some(crate::harness::Target::Ratio(0.95)),
    });
    Ok(())
}

async fn handle_group_commit(report: &mut Report, name: String) -> anyhow::Result<()> {
    let n: u64 = 5_000;
    let samples = report.settings.samples;
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for i in 0..=samples {
        let dir = tempfile::tempdir()?;
        let chain: Box<dyn ChainStore> = Box::new(FileStore::create(
            dir.path(),
            chain_id()?,
            Durability::Group { max_batch: 64 },
        )?);
        let actor = spawn(
            || PaddedCounter { padding: 1024 },
            chain,
            ActorConfig::default().max_batch(64),
        )
        .await?;
        let t = Instant::now();
        for _ in 0..n {
            actor.tell(add(1)).await?;
        }
        let (state, _) = actor.state().await?;
        let a = t.elapsed();
        anyhow::ensure!(state["count"] == n, "handle lost inputs");
        actor.stop().await?;
        let b = direct(1024, n).await?;
        if i > 0 {
            ours.push(a);
            base.push(b);
        }
    }
    report.push(vs_direct(name, n, &mut ours, &mut base));
    Ok(())
}

/// The row for `n` inputs per sample, Theater's samples against the direct calls'.
fn vs_direct(name: String, n: u64, ours: &mut [Duration], base: &mut [Duration]) -> Row {
    Row {
        name,
        unit: "inputs/s",
        ours: n as f64 / median(ours).as_secs_f64(),
        baseline_name: "same actor's handle_input, direct".into(),
        baseline: n as f64 / median(base).as_secs_f64(),
        better: Better::Higher,
        target: None,
    }
}
