//! State-cost rows: an input's cost must follow what it changes, not the size of the state.
//!
//! - The in-memory `ActorRuntime` with a native actor that changes one field per input, at
//!   1 KiB, 64 KiB and 1 MiB of state; each larger state beside the 1 KiB one in the same run.
//! - The `todo` REST example (a wasm component of world `actor`, file chain in group commit as
//!   `theater run` keeps it) answering `GET /todos/1` and `POST /todos` while it holds 1,
//!   1,000, 10,000 and 100,000 todos; each beside the 1-todo figure of the same run, and the
//!   1-todo rows beside a bare hyper server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use theater_chain::{ChainId, ChainStore, Durability, FileStore, MemoryStore};
use theater_core::{
    Actor, ActorConfig, ActorError, ActorHandle, ActorInput, ActorOutput, ActorRuntime, HostCalls,
    Patch, RuntimeConfig, Shutdown, State, StateChange, spawn,
};
use theater_http::{HttpConfig, HttpServer};
use theater_test_support::{add, example_component};
use theater_wasm::{Limits, WasmConfig, WasmHost};

use crate::harness::{Better, Report, Row, Target, median};
use crate::http::{CONNECTIONS, bare_hyper, load_requests};

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let rt = crate::harness::runtime()?;
    if report.wants("state change, in-memory runtime") {
        rt.block_on(runtime_sizes(report))?;
    }
    if report.wants("todo example") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(todo_sizes(report))?;
    }
    Ok(())
}

/// A native actor whose state is `{"count": n, "items": {...}}` padded to a size; each input
/// replaces `count` and says so.
struct OneField;

fn padded(bytes: usize) -> Value {
    let items: Map<String, Value> = (0..bytes / 40)
        .map(|i| (format!("item{i:06}"), json!("x".repeat(24))))
        .collect();
    json!({"count": 0, "items": items})
}

#[async_trait]
impl Actor for OneField {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Err(ActorError::Failed("started from a padded state".into()))
    }

    async fn handle_input(
        &mut self,
        _: &ActorInput,
        state: &Value,
        _: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let mut next = state.clone();
        next["count"] = json!(state["count"].as_u64().unwrap_or(0) + 1);
        Ok((ActorOutput::None, next))
    }

    async fn handle_change(
        &mut self,
        _: &ActorInput,
        state: &State,
        _: &mut HostCalls,
    ) -> Result<(ActorOutput, StateChange), ActorError> {
        let count = state.value()["count"].as_u64().unwrap_or(0) + 1;
        let patch = Patch::from_json(&json!([
            {"op": "replace", "path": "/count", "value": count}
        ]))
        .map_err(ActorError::Failed)?;
        Ok((ActorOutput::None, StateChange::Patch(patch)))
    }
}

/// A chain whose init entry holds `state`: the runtime resumes on it (hashing it once).
fn seeded_chain(state: &Value) -> anyhow::Result<Box<dyn ChainStore>> {
    let mut chain = MemoryStore::new(ChainId::new("state-bench")?);
    let _ = chain.append(theater_chain::NewEntry::init(
        theater_chain::Payload::json(Value::Null),
        theater_chain::Hash::of_state(state),
    ))?;
    chain.save_snapshot(&theater_chain::Snapshot::new(
        0,
        chain.hash_at(0)?,
        state.clone(),
    ))?;
    Ok(Box::new(chain))
}

/// Time per input over `n` inputs on a runtime holding `bytes` of state.
async fn per_input(bytes: usize, n: u64) -> anyhow::Result<Duration> {
    let chain = seeded_chain(&padded(bytes))?;
    let mut rt = ActorRuntime::start(OneField, chain, RuntimeConfig::default()).await?;
    let t = Instant::now();
    for _ in 0..n {
        let handled = rt.handle(add(1), vec![]).await?;
        anyhow::ensure!(handled.result.is_ok(), "an input failed");
    }
    rt.commit()?;
    let took = t.elapsed();
    anyhow::ensure!(rt.state()["count"] == n, "the runtime lost inputs");
    Ok(took / n as u32)
}

async fn runtime_sizes(report: &mut Report) -> anyhow::Result<()> {
    let n = 5_000;
    let sizes = [("1 KiB", 1 << 10), ("64 KiB", 64 << 10), ("1 MiB", 1 << 20)];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); sizes.len()];
    let mut direct = Vec::new();
    for round in 0..=report.settings.samples {
        for (i, (_, bytes)) in sizes.iter().enumerate() {
            let t = per_input(*bytes, n).await?;
            if round > 0 {
                times[i].push(t);
            }
        }
        // The 1 KiB row's baseline: the actor called directly, the change applied by hand.
        let mut state = State::new(padded(1 << 10));
        let t = Instant::now();
        for _ in 0..n {
            let (_, change) = OneField
                .handle_change(&add(1), &state, &mut HostCalls::live())
                .await?;
            if let StateChange::Patch(p) = change {
                let _undo = state.apply(&p)?;
            }
        }
        if round > 0 {
            direct.push(t.elapsed() / n as u32);
        }
    }
    let small = median(&mut times[0]);
    report.push(Row {
        name: "state change, in-memory runtime, 1 KiB state".into(),
        unit: "s",
        ours: small.as_secs_f64(),
        baseline_name: "the actor called directly, change applied".into(),
        baseline: median(&mut direct).as_secs_f64(),
        better: Better::Lower,
        target: None,
    });
    for (i, (label, _)) in sizes.iter().enumerate().skip(1) {
        report.push(Row {
            name: format!("state change, in-memory runtime, {label} state"),
            unit: "s",
            ours: median(&mut times[i]).as_secs_f64(),
            baseline_name: "the same with 1 KiB of state".into(),
            baseline: small.as_secs_f64(),
            better: Better::Lower,
            target: (*label == "64 KiB").then_some(Target::Ratio(0.5)),
        });
    }
    Ok(())
}

/// The todo example seeded with `todos` todos, on a file chain in group commit, served on a
/// free loopback port.
async fn todo_server(
    host: &WasmHost,
    dir: &std::path::Path,
    todos: u64,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, ActorHandle)> {
    let component = host.load_file(example_component("todo"))?;
    let id = ChainId::new(format!("todo-{todos}"))?;
    let chain: Box<dyn ChainStore> = Box::new(FileStore::create(
        dir.join(id.as_str()),
        id.clone(),
        Durability::Group { max_batch: 64 },
    )?);
    let host = host.clone();
    let limits = Limits {
        memory_bytes: 256 << 20,
        ..Limits::default()
    };
    let actor = spawn(
        move || host.actor(&component, &id, json!({"seed": todos}), limits),
        chain,
        ActorConfig::default(),
    )
    .await?;
    let server = HttpServer::bind(HttpConfig::loopback(0))
        .await?
        .route("/", actor.clone())?;
    let addr = server.local_addr()?;
    tokio::spawn(server.serve(shutdown));
    Ok((addr, actor))
}

async fn todo_sizes(report: &mut Report) -> anyhow::Result<()> {
    let per_connection = if report.settings.samples <= 3 {
        200
    } else {
        600
    };
    let shutdown = Shutdown::new();
    let host = WasmHost::new(WasmConfig::default().pooling(Some(16)))?;
    let bare = bare_hyper(shutdown.clone()).await?;
    let dir = tempfile::tempdir()?;
    let sizes = [1u64, 1_000, 10_000, 100_000];
    let mut servers = Vec::new();
    for todos in sizes {
        let started = Instant::now();
        let (addr, actor) = todo_server(&host, dir.path(), todos, shutdown.clone()).await?;
        eprintln!(
            "  (todo example seeded with {todos} todos in {:.2?})",
            started.elapsed()
        );
        servers.push((todos, addr, actor));
    }
    let body = r#"{"title": "one more thing to do"}"#;
    let mut get: Vec<Vec<Duration>> = vec![Vec::new(); sizes.len()];
    let mut post: Vec<Vec<Duration>> = vec![Vec::new(); sizes.len()];
    let mut bare_get = Vec::new();
    for round in 0..=report.settings.samples {
        for (i, (_, addr, _)) in servers.iter().enumerate() {
            let g = load_requests(*addr, "GET", "/todos/1", "", 200, per_connection).await?;
            let p = load_requests(*addr, "POST", "/todos", body, 201, per_connection / 4).await?;
            if round > 0 {
                get[i].push(Duration::from_secs_f64(1.0 / g.per_second));
                post[i].push(Duration::from_secs_f64(1.0 / p.per_second));
            }
        }
        let b = load_requests(bare, "GET", "/todos/1", "", 200, per_connection).await?;
        if round > 0 {
            bare_get.push(Duration::from_secs_f64(1.0 / b.per_second));
        }
    }
    let rate = |d: Duration| 1.0 / d.as_secs_f64();
    let get_one = rate(median(&mut get[0]));
    let post_one = rate(median(&mut post[0]));
    report.push(Row {
        name: "todo example GET /todos/1, 1 todo".into(),
        unit: "req/s",
        ours: get_one,
        baseline_name: "bare hyper hello world".into(),
        baseline: rate(median(&mut bare_get)),
        better: Better::Higher,
        target: None,
    });
    report.push(Row {
        name: "todo example POST /todos, 1 todo".into(),
        unit: "req/s",
        ours: post_one,
        baseline_name: "todo example GET, 1 todo".into(),
        baseline: get_one,
        better: Better::Higher,
        target: None,
    });
    for (i, todos) in sizes.iter().enumerate().skip(1) {
        let get_target = match todos {
            10_000 => Some(Target::Ratio(0.5)),
            100_000 => Some(Target::Ratio(0.25)),
            _ => None,
        };
        report.push(Row {
            name: format!("todo example GET /todos/1, {todos} todos"),
            unit: "req/s",
            ours: rate(median(&mut get[i])),
            baseline_name: "the same with 1 todo".into(),
            baseline: get_one,
            better: Better::Higher,
            target: get_target,
        });
        report.push(Row {
            name: format!("todo example POST /todos, {todos} todos"),
            unit: "req/s",
            ours: rate(median(&mut post[i])),
            baseline_name: "the same with 1 todo".into(),
            baseline: post_one,
            better: Better::Higher,
            target: (*todos == 10_000).then_some(Target::Ratio(0.3)),
        });
    }
    // Every request was recorded: init, then each GET and POST of every round.
    let posts = (report.settings.samples + 1) * CONNECTIONS * (per_connection / 4);
    let gets = (report.settings.samples + 1) * CONNECTIONS * per_connection;
    for (todos, _, actor) in &servers {
        let (state, head) = actor.state().await?;
        anyhow::ensure!(
            head.map(|h| h.seq) == Some((gets + posts) as u64),
            "the chain of the {todos}-todo actor does not hold every request"
        );
        let held = state["todos"].as_object().map_or(0, Map::len) as u64;
        anyhow::ensure!(
            held == todos + posts as u64,
            "the {todos}-todo actor holds {held} todos"
        );
    }
    shutdown.cancel();
    Ok(())
}
