//! theater-msg rows: messages/s between two native actors and between two wasm actors vs a
//! bare tokio mpsc ping-pong; request round trips to a native and to a wasm actor (median
//! and p99) vs a bare tokio request/response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use theater_chain::{ChainId, MemoryStore};
use theater_core::{
    Actor, ActorConfig, ActorError, ActorHandle, ActorInput, ActorOutput, HostCalls, spawn,
};
use theater_msg::{Messenger, Registry};
use theater_test_support::example_component;
use theater_wasm::{Limits, WasmConfig, WasmHost};
use tokio::sync::{mpsc, oneshot};

use crate::harness::{Better, Report, Row, median};

/// Passes `{"hops": k}` on to its peer while k > 0; answers requests with their payload.
#[derive(Clone)]
struct Ping {
    messenger: Messenger,
    peer: String,
}

#[async_trait]
impl Actor for Ping {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Ok(json!(0))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let p = input.payload().cloned().unwrap_or_default();
        if let ActorInput::Request { .. } = input {
            return Ok((ActorOutput::reply(p), state.clone()));
        }
        let k = p["hops"].as_u64().unwrap_or(0);
        if k > 0 {
            self.messenger
                .send(host, &self.peer, json!({"hops": k - 1}))
                .map_err(|e| ActorError::Failed(e.to_string()))?;
        }
        Ok((ActorOutput::None, json!(state.as_u64().unwrap_or(0) + 1)))
    }
}

fn id(name: &str) -> anyhow::Result<ChainId> {
    Ok(ChainId::new(name)?)
}

async fn pair(registry: &Registry) -> anyhow::Result<(ActorHandle, ActorHandle)> {
    let mut hs = Vec::new();
    for (me, peer) in [("ping", "pong"), ("pong", "ping")] {
        let actor = Ping {
            messenger: registry.messenger(id(me)?),
            peer: peer.into(),
        };
        let h = spawn(
            move || actor.clone(),
            Box::new(MemoryStore::new(id(me)?)),
            ActorConfig::default(),
        )
        .await?;
        registry.register(h.clone())?;
        hs.push(h);
    }
    let pong = hs.pop().ok_or_else(|| anyhow::anyhow!("no pong"))?;
    let ping = hs.pop().ok_or_else(|| anyhow::anyhow!("no ping"))?;
    Ok((ping, pong))
}

async fn received(h: &ActorHandle) -> anyhow::Result<u64> {
    Ok(h.state().await?.0.as_u64().unwrap_or(0))
}

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if report.wants("messages") {
        rt.block_on(ping_pong(report))?;
        rt.block_on(wasm_ping_pong(report))?;
    }
    if report.wants("request") {
        rt.block_on(requests(report))?;
        rt.block_on(wasm_requests(report))?;
    }
    Ok(())
}

/// Two `pingpong` example components, registered as `ping` and `pong`, on memory chains.
async fn wasm_pair(
    host: &WasmHost,
    registry: &Registry,
) -> anyhow::Result<(ActorHandle, ActorHandle)> {
    let component = host.load_file(example_component("pingpong"))?;
    let mut hs = Vec::new();
    for me in ["ping", "pong"] {
        let messenger = Arc::new(registry.messenger(id(me)?));
        let (host, component, name) = (host.clone(), component.clone(), id(me)?);
        let factory = move || {
            host.actor(&component, &name, Value::Null, Limits::default())
                .with_outbox(messenger.clone())
        };
        let h = spawn(
            factory,
            Box::new(MemoryStore::new(id(me)?)),
            ActorConfig::default(),
        )
        .await?;
        registry.register(h.clone())?;
        hs.push(h);
    }
    let pong = hs.pop().ok_or_else(|| anyhow::anyhow!("no pong"))?;
    let ping = hs.pop().ok_or_else(|| anyhow::anyhow!("no ping"))?;
    Ok((ping, pong))
}

async fn wasm_received(h: &ActorHandle) -> anyhow::Result<u64> {
    Ok(h.state().await?.0["received"].as_u64().unwrap_or(0))
}

async fn wasm_ping_pong(report: &mut Report) -> anyhow::Result<()> {
    let n = 2_000u64;
    let host = WasmHost::new(WasmConfig::default().pooling(Some(16)))?;
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for i in 0..=report.settings.samples {
        let registry = Registry::new();
        let (ping, pong) = wasm_pair(&host, &registry).await?;
        let t = Instant::now();
        ping.call(ActorInput::request(json!({"serve": "pong", "rounds": n})))
            .await?;
        loop {
            if wasm_received(&ping).await? + wasm_received(&pong).await? >= n {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let a = t.elapsed();
        let b = bare_ping_pong(n).await;
        if i > 0 {
            ours.push(a);
            base.push(b);
        }
    }
    report.push(Row {
        name: "messages between two wasm actors (memory chains)".into(),
        unit: "msg/s",
        ours: n as f64 / median(&mut ours).as_secs_f64(),
        baseline_name: "bare tokio mpsc ping-pong".into(),
        baseline: n as f64 / median(&mut base).as_secs_f64(),
        better: Better::Higher,
        target: None,
    });
    Ok(())
}

async fn wasm_requests(report: &mut Report) -> anyhow::Result<()> {
    let n = 2_000;
    let host = WasmHost::new(WasmConfig::default().pooling(Some(16)))?;
    let registry = Registry::new();
    let (_ping, _pong) = wasm_pair(&host, &registry).await?;
    let asker = registry.messenger(id("bench")?);
    let mut ours = Vec::with_capacity(n);
    for i in 0..n {
        let mut host = HostCalls::live();
        let t = Instant::now();
        let reply = asker
            .request(
                &mut host,
                "pong",
                json!({"echo": i}),
                Duration::from_secs(5),
            )
            .await?;
        ours.push(t.elapsed());
        anyhow::ensure!(reply == json!(i), "wrong reply");
    }
    let mut base = bare_requests(n).await?;
    for (label, p) in [("median", 0.5), ("p99", 0.99)] {
        report.push(Row {
            name: format!("request round trip to a wasm actor, {label}"),
            unit: "s",
            ours: percentile(&mut ours, p).as_secs_f64(),
            baseline_name: "bare tokio mpsc + oneshot".into(),
            baseline: percentile(&mut base, p).as_secs_f64(),
            better: Better::Lower,
            target: None,
        });
    }
    Ok(())
}

async fn bare_ping_pong(n: u64) -> Duration {
    let (to_b, mut b_in) = mpsc::channel::<u64>(256);
    let (to_a, mut a_in) = mpsc::channel::<u64>(256);
    let b = tokio::spawn(async move {
        while let Some(k) = b_in.recv().await {
            if to_a.send(k).await.is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    let mut k = 0;
    while k < n {
        if to_b.send(k).await.is_err() {
            break;
        }
        k = a_in.recv().await.unwrap_or(n) + 2;
    }
    let took = t.elapsed();
    drop(to_b);
    let _ = b.await;
    took
}

async fn ping_pong(report: &mut Report) -> anyhow::Result<()> {
    let n = 4_000u64;
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for i in 0..=report.settings.samples {
        let registry = Registry::new();
        let (ping, pong) = pair(&registry).await?;
        let t = Instant::now();
        ping.tell(ActorInput::message(json!({"hops": n - 1})))
            .await?;
        // Poll the receivers until every hop is in.
        loop {
            if received(&ping).await? + received(&pong).await? >= n {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let a = t.elapsed();
        let b = bare_ping_pong(n).await;
        if i > 0 {
            ours.push(a);
            base.push(b);
        }
    }
    report.push(Row {
        name: "messages between two native actors (memory chains)".into(),
        unit: "msg/s",
        ours: n as f64 / median(&mut ours).as_secs_f64(),
        baseline_name: "bare tokio mpsc ping-pong".into(),
        baseline: n as f64 / median(&mut base).as_secs_f64(),
        better: Better::Higher,
        target: None,
    });
    Ok(())
}

fn percentile(xs: &mut [Duration], p: f64) -> Duration {
    xs.sort_unstable();
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i.min(xs.len() - 1)]
}

async fn requests(report: &mut Report) -> anyhow::Result<()> {
    let n = 4_000;
    let registry = Registry::new();
    let (_ping, _pong) = pair(&registry).await?;
    let asker = registry.messenger(id("bench")?);
    let mut ours = Vec::with_capacity(n);
    for i in 0..n {
        let mut host = HostCalls::live();
        let t = Instant::now();
        let reply = asker
            .request(&mut host, "pong", json!(i), Duration::from_secs(5))
            .await?;
        ours.push(t.elapsed());
        anyhow::ensure!(reply == json!(i), "wrong reply");
    }
    let mut base = bare_requests(n).await?;
    for (label, p) in [("median", 0.5), ("p99", 0.99)] {
        report.push(Row {
            name: format!("request round trip to a native actor, {label}"),
            unit: "s",
            ours: percentile(&mut ours, p).as_secs_f64(),
            baseline_name: "bare tokio mpsc + oneshot".into(),
            baseline: percentile(&mut base, p).as_secs_f64(),
            better: Better::Lower,
            target: None,
        });
    }
    Ok(())
}

/// `n` round trips through a bare tokio request/response: mpsc there, oneshot back.
async fn bare_requests(n: usize) -> anyhow::Result<Vec<Duration>> {
    let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(256);
    tokio::spawn(async move {
        while let Some((v, reply)) = rx.recv().await {
            let _ = reply.send(v);
        }
    });
    let mut base = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let (rtx, rrx) = oneshot::channel();
        let t = Instant::now();
        tx.send((i, rtx)).await?;
        let v = rrx.await?;
        base.push(t.elapsed());
        anyhow::ensure!(v == i, "wrong bare reply");
    }
    Ok(base)
}
