//! theater-wasm rows: a wasm actor's input (the change applied to the host's state and
//! rehashed, the new state verified) vs a bare wasmtime call of the export that does the
//! guest's part of it (`handle-verified`); spawning 1,000 actors from a cached component; memory per idle actor.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use theater_chain::{ChainId, MemoryStore, to_canonical_json};
use theater_core::{Actor, ActorConfig, HostCalls, State, StateChange, spawn};
use theater_test_support::{add, example_component};
use theater_wasm::{Limits, WasmConfig, WasmHost};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

use crate::harness::{Better, Report, Row, Target, median};

/// The baseline: plain wasmtime bindings of the same world, with do-nothing host functions.
pub(crate) mod bare {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "actor",
        exports: { default: async },
    });

    pub(crate) struct Host;

    impl theater::actor::host::Host for Host {
        fn log(&mut self, _: theater::actor::host::Level, _: String) {}
        fn now_millis(&mut self) -> u64 {
            0
        }
        fn random_bytes(&mut self, n: u32) -> Vec<u8> {
            vec![4; n as usize]
        }
    }
}

/// The row of what the CPU limit's epoch checks cost the guest's code.
const EPOCH_ROW: &str = "wasm counter input, guest code compiled with the CPU limit's epoch checks";

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let rt = crate::harness::runtime()?;
    let name = "wasm counter input, 1 KiB state".to_string();
    if report.wants(&name) || report.wants(EPOCH_ROW) {
        rt.block_on(handle_input(report, name))?;
    }
    if report.wants("wasm spawn") || report.wants("wasm idle") {
        rt.block_on(spawn_many(report))?;
    }
    Ok(())
}

fn padded_state() -> Value {
    json!({"count": 0, "note": "x".repeat(1024)})
}

/// A bare instance of the counter. `like_theater`: compiled as Theater compiles it, with the
/// epoch checks its CPU limit needs (at every loop head and function entry) and canonical
/// NaNs; otherwise with wasmtime's defaults.
async fn bare_instance(like_theater: bool) -> anyhow::Result<(Store<bare::Host>, bare::Actor)> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    if like_theater {
        config
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true);
    }
    let engine = Engine::new(&config)?;
    let component = Component::from_file(&engine, example_component("counter"))?;
    let mut linker = Linker::new(&engine);
    bare::theater::actor::host::add_to_linker::<_, HasSelf<_>>(&mut linker, |h| h)?;
    let mut store = Store::new(&engine, bare::Host);
    // The epoch never moves: the checks run, and never stop the guest.
    store.set_epoch_deadline(u64::MAX / 2);
    let actor = bare::Actor::instantiate_async(&mut store, &component, &linker).await?;
    Ok((store, actor))
}

async fn handle_input(report: &mut Report, name: String) -> anyhow::Result<()> {
    let n = 20_000u32;
    let host = WasmHost::new(WasmConfig::default().pooling(Some(8)))?;
    let component = host.load_file(example_component("counter"))?;
    let id = ChainId::new("bench")?;
    let mut actor = host.actor(&component, &id, padded_state(), Limits::default());
    let mut state = State::new(actor.init(&mut HostCalls::live()).await?);
    anyhow::ensure!(
        actor.verify_state(&state).await.is_ok(),
        "the initial state is refused"
    );
    let (mut store, bare) = bare_instance(true).await?;
    bare.call_init(&mut store, &to_canonical_json(&padded_state()))
        .await?
        .map_err(anyhow::Error::msg)?;
    let (mut plain_store, plain) = bare_instance(false).await?;
    plain
        .call_init(&mut plain_store, &to_canonical_json(&padded_state()))
        .await?
        .map_err(anyhow::Error::msg)?;
    let input = add(1);
    let payload = input.to_payload();
    let bare_input = bare::Payload {
        json: to_canonical_json(&payload.json),
        bytes: Vec::new(),
    };
    let mut bare_changes = 0u64;

    let mut ours = Vec::new();
    let mut base = Vec::new();
    let mut plain_base = Vec::new();
    for i in 0..=report.settings.samples {
        let t = Instant::now();
        for _ in 0..n {
            // What the runtime does with an input, less the chain.
            let (_, change) = actor
                .handle_change(&input, &state, &mut HostCalls::live())
                .await?;
            if let StateChange::Patch(p) = change {
                let _undo = state.apply(&p)?;
                anyhow::ensure!(
                    actor.verify_state(&state).await.is_ok(),
                    "a state is refused"
                );
            }
        }
        let a = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            let (_, change, ok) = bare
                .call_handle_verified(&mut store, &bare_input)
                .await?
                .map_err(anyhow::Error::msg)?;
            anyhow::ensure!(ok, "the bare call's state is refused");
            if !matches!(change, bare::StateChange::Unchanged) {
                bare_changes += 1;
            }
        }
        let b = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            let (_, _, ok) = plain
                .call_handle_verified(&mut plain_store, &bare_input)
                .await?
                .map_err(anyhow::Error::msg)?;
            anyhow::ensure!(ok, "the plain call's state is refused");
        }
        let c = t.elapsed() / n;
        if i > 0 {
            ours.push(a);
            base.push(b);
            plain_base.push(c);
        }
    }
    anyhow::ensure!(
        bare_changes > 0 && state.value()["count"].as_u64() > Some(0),
        "both counted"
    );
    let base = median(&mut base);
    report.push(Row {
        name,
        unit: "s",
        ours: median(&mut ours).as_secs_f64(),
        baseline_name:
            "bare wasmtime call of handle-verified, same bytes, compiled as Theater compiles".into(),
        baseline: base.as_secs_f64(),
        better: Better::Lower,
        target: Some(Target::Ratio(1.0 / 1.5)),
    });
    // What the CPU limit's epoch checks (and canonical NaNs) cost the guest's own code.
    report.push(Row {
        name: EPOCH_ROW.into(),
        unit: "s",
        ours: base.as_secs_f64(),
        baseline_name: "the same bare call, wasmtime's default settings".into(),
        baseline: median(&mut plain_base).as_secs_f64(),
        better: Better::Lower,
        target: None,
    });
    Ok(())
}

/// This process's resident memory.
pub(crate) fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/self/status"))?;
    Ok(kb * 1024)
}

async fn spawn_many(report: &mut Report) -> anyhow::Result<()> {
    const N: usize = 1000;
    let bytes = std::fs::read(example_component("counter"))?;
    // Compile once without any cache: the cost spawning from the cache avoids.
    let mut compiles = Vec::new();
    for _ in 0..3 {
        let host = WasmHost::new(WasmConfig::default().pooling(None))?;
        let t = Instant::now();
        host.load(&bytes, "counter")?;
        compiles.push(t.elapsed());
    }
    let compile = median(&mut compiles);

    let host = WasmHost::new(WasmConfig::default().pooling(Some(N as u32 + 16)))?;
    let component = host.load(&bytes, "counter")?;
    // Warm up allocator and runtime paths with one actor.
    let warm = {
        let (h, c) = (host.clone(), component.clone());
        let id = ChainId::new("warm")?;
        spawn(
            move || h.actor(&c, &id, Value::Null, Limits::default()),
            Box::new(MemoryStore::new(ChainId::new("warm")?)),
            ActorConfig::default(),
        )
        .await?
    };
    let rss_before = rss_bytes()?;
    let mut actors = Vec::with_capacity(N);
    let t = Instant::now();
    for i in 0..N {
        let id = ChainId::new(format!("actor-{i}"))?;
        let (h, c, aid) = (host.clone(), component.clone(), id.clone());
        let chain = Box::new(MemoryStore::new(id));
        let handle = spawn(
            move || h.actor(&c, &aid, Value::Null, Limits::default()),
            chain,
            ActorConfig::default().mailbox(4),
        )
        .await?;
        actors.push(handle);
    }
    let per_spawn = t.elapsed() / N as u32;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let per_actor = rss_bytes()?.saturating_sub(rss_before) / N as u64;
    // Every actor is alive and answers.
    for a in actors.iter().step_by(97) {
        a.call(add(1)).await?;
    }
    if report.wants("wasm spawn") {
        report.push(Row {
            name: format!("wasm spawn from cached component (×{N})"),
            unit: "s",
            ours: per_spawn.as_secs_f64(),
            baseline_name: "compile the component once".into(),
            baseline: compile.as_secs_f64(),
            better: Better::Lower,
            target: Some(Target::AtMost(50e-6)),
        });
    }
    drop(actors);
    drop(warm);

    // The same measure for bare wasmtime instances of the component.
    let (engine, component) = {
        let engine = Engine::new(Config::new().wasm_component_model(true))?;
        let c = Component::new(&engine, &bytes)?;
        (engine, c)
    };
    let mut linker = Linker::new(&engine);
    bare::theater::actor::host::add_to_linker::<_, HasSelf<_>>(&mut linker, |h| h)?;
    let pre = bare::ActorPre::new(linker.instantiate_pre(&component)?)?;
    let before = rss_bytes()?;
    let mut bare_instances = Vec::with_capacity(N);
    for _ in 0..N {
        let mut store = Store::new(&engine, bare::Host);
        let inst = pre.instantiate_async(&mut store).await?;
        inst.call_init(&mut store, b"null")
            .await?
            .map_err(anyhow::Error::msg)?;
        bare_instances.push((store, inst));
    }
    let bare_per = rss_bytes()?.saturating_sub(before) / N as u64;
    if report.wants("wasm idle") {
        report.push(Row {
            name: "wasm idle actor, resident memory".into(),
            unit: "B",
            ours: per_actor as f64,
            baseline_name: "bare wasmtime instance after init".into(),
            baseline: bare_per.max(1) as f64,
            better: Better::Lower,
            target: Some(Target::AtMost(200.0 * 1024.0)),
        });
    }
    Ok(())
}
