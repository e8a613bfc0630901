//! theater-msg rows: messages/s between two native actors and between two wasm actors vs a
//! bare tokio mpsc ping-pong; request round trips to a native and to a wasm actor (median
//! and p99) vs a bare tokio request/response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use theater_chain::{ChainId, MemoryStore};
use theater_core::{
    Actor, ActorConfig, ActorError, ActorFactory, ActorHandle, ActorInput, ActorOutput, HostCalls,
    spawn,
};
use theater_msg::{Messenger, Registry};
use theater_test_support::example_component;
use theater_wasm::{Limits, WasmConfig, WasmHost};
use tokio::sync::{mpsc, oneshot};

use crate::harness::{Better, Report, Row, median, percentile};

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

/// Spawns and registers `ping` and `pong` on memory chains, each actor made by `make(me, peer)`.
async fn spawn_pair<F: ActorFactory>(
    registry: &Registry,
    make: impl Fn(&str, &str) -> anyhow::Result<F>,
) -> anyhow::Result<(ActorHandle, ActorHandle)> {
    let mut hs = Vec::new();
    for (me, peer) in [("ping", "pong"), ("pong", "ping")] {
        let h = spawn(
            make(me, peer)?,
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

/// Two native `Ping` actors.
async fn pair(registry: &Registry) -> anyhow::Result<(ActorHandle, ActorHandle)> {
    spawn_pair(registry, |me, peer| {
        let actor = Ping {
            messenger: registry.messenger(id(me)?),
            peer: peer.into(),
        };
        Ok(move || actor.clone())
    })
    .await
}

/// Messages an actor has received: the native `Ping` keeps a number, the wasm `pingpong`
/// a `received` field.
async fn received(h: &ActorHandle) -> anyhow::Result<u64> {
    let state = h.state().await?.0;
    Ok(state
        .as_u64()
        .or_else(|| state["received"].as_u64())
        .unwrap_or(0))
}

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let rt = crate::harness::runtime()?;
    if report.wants("messages") {
        rt.block_on(async {
            let n = 4_000;
            let start = ActorInput::message(json!({"hops": n - 1}));
            messages_row(report, "native", n, start, async || {
                pair(&Registry::new()).await
            })
            .await?;
            let host = WasmHost::new(
                WasmConfig::default()
                    .pooling(Some(16))
                    .capabilities(crate::harness::capabilities()),
            )?;
            let n = 2_000;
            let start = ActorInput::request(json!({"serve": "pong", "rounds": n}));
            messages_row(report, "wasm", n, start, async || {
                wasm_pair(&host, &Registry::new()).await
            })
            .await
        })?;
    }
    if report.wants("request") {
        rt.block_on(async {
            let registry = Registry::new();
            let (_ping, _pong) = pair(&registry).await?;
            request_rows(
                report,
                "native",
                &registry,
                4_000,
                |i| json!(i),
                |i| json!(i),
            )
            .await?;
            let host = WasmHost::new(
                WasmConfig::default()
                    .pooling(Some(16))
                    .capabilities(crate::harness::capabilities()),
            )?;
            let registry = Registry::new();
            let (_ping, _pong) = wasm_pair(&host, &registry).await?;
            let ask = |i| json!({"echo": i});
            request_rows(report, "wasm", &registry, 2_000, ask, |i| json!(i)).await
        })?;
    }
    Ok(())
}

/// Two `pingpong` example components, registered as `ping` and `pong`, on memory chains.
async fn wasm_pair(
    host: &WasmHost,
    registry: &Registry,
) -> anyhow::Result<(ActorHandle, ActorHandle)> {
    let component = host.load_file(example_component("pingpong"))?;
    spawn_pair(registry, |me, _| {
        let outbox = Arc::new(registry.messenger(id(me)?));
        let grant = Arc::new(theater_msg::MsgGrant { outbox });
        let (host, component, name) = (host.clone(), component.clone(), id(me)?);
        Ok(move || {
            host.actor(&component, &name, Value::Null, Limits::default())
                .with_grant("msg", grant.clone())
        })
    })
    .await
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

/// Messages/s between the two actors `make` creates (a fresh pair per sample), started by
/// `start` sent to the first, until they have received `n` in all; beside a bare tokio mpsc
/// ping-pong of `n` messages, interleaved.
async fn messages_row(
    report: &mut Report,
    kind: &str,
    n: u64,
    start: ActorInput,
    make: impl AsyncFn() -> anyhow::Result<(ActorHandle, ActorHandle)>,
) -> anyhow::Result<()> {
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for i in 0..=report.settings.samples {
        let (ping, pong) = make().await?;
        let t = Instant::now();
        ping.tell(start.clone()).await?;
        // Poll the receivers until every message is in.
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
        name: format!("messages between two {kind} actors (memory chains)"),
        unit: "msg/s",
        ours: n as f64 / median(&mut ours).as_secs_f64(),
        baseline_name: "bare tokio mpsc ping-pong".into(),
        baseline: n as f64 / median(&mut base).as_secs_f64(),
        better: Better::Higher,
        target: None,
    });
    Ok(())
}

/// Request round trips (median and p99) to the actor registered as `pong`, asking
/// `ask(i)` and expecting `reply(i)`; beside bare tokio request/responses.
async fn request_rows(
    report: &mut Report,
    kind: &str,
    registry: &Registry,
    n: usize,
    ask: impl Fn(usize) -> Value,
    reply: impl Fn(usize) -> Value,
) -> anyhow::Result<()> {
    let asker = registry.messenger(id("bench")?);
    let mut ours = Vec::with_capacity(n);
    for i in 0..n {
        let mut host = HostCalls::live();
        let t = Instant::now();
        let answer = asker
            .request(&mut host, "pong", ask(i), Duration::from_secs(5))
            .await?;
        ours.push(t.elapsed());
        anyhow::ensure!(answer == reply(i), "wrong reply");
    }
    let mut base = bare_requests(n).await?;
    for (label, p) in [("median", 0.5), ("p99", 0.99)] {
        report.push(Row {
            name: format!("request round trip to a {kind} actor, {label}"),
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
