//! Actors that come and go, through the real host ([`theater::Host`]) and the rooms family:
//! activating a passivated member from its snapshot vs creating it fresh; many members
//! activated through `max_active` (rate, resident memory per active member, against bare
//! wasmtime instances of the same component); and what passive members cost a host.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use theater::Host;
use theater_core::ActorInput;
use theater_test_support::example_component;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

use crate::harness::{Better, Report, Row, median};
use crate::wasm::{bare, rss_bytes};

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    if !report.wants("family") {
        return Ok(());
    }
    let rt = crate::harness::runtime()?;
    rt.block_on(activation(report))?;
    rt.block_on(many(report))?;
    Ok(())
}

/// The rooms family's manifest in `dir`.
fn rooms(dir: &Path, idle_ms: u64, max_active: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join("rooms.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"room-*\"\ncomponent = {:?}\n\n[activation]\nidle_ms = {idle_ms}\nmax_active = {max_active}\n",
            example_component("rooms")
        ),
    )?;
    Ok(path)
}

fn post(n: usize) -> ActorInput {
    ActorInput::request(json!({"post": {"user": "ann", "text": format!("post {n}")}}))
}

/// Activation from a snapshot (of a room with 100 posts) vs creating the room fresh.
async fn activation(report: &mut Report) -> anyhow::Result<()> {
    const ROOMS: usize = 100;
    let dir = tempfile::tempdir()?;
    let manifest = rooms(dir.path(), 3_600_000, 10_000)?;
    let host = Host::start(&[manifest], &dir.path().join("data")).await?;
    // Warm the component and the paths.
    host.registry()
        .resolve("room-warm")
        .await?
        .call(post(0))
        .await?;
    let mut fresh = Vec::new();
    let mut from_snapshot = Vec::new();
    for sample in 0..=report.settings.samples {
        let names: Vec<String> = (0..ROOMS).map(|i| format!("room-s{sample}-{i}")).collect();
        let t = Instant::now();
        for name in &names {
            host.activate(name).await?;
        }
        let created = t.elapsed() / ROOMS as u32;
        for name in &names {
            let room = host.registry().resolve(name).await?;
            for n in 0..100 {
                room.call(post(n)).await?;
            }
            host.passivate(name).await;
        }
        let t = Instant::now();
        for name in &names {
            host.activate(name).await?;
        }
        let activated = t.elapsed() / ROOMS as u32;
        // Each came back with its 100 posts.
        let back = host.registry().resolve(&names[ROOMS / 2]).await?;
        let read = back
            .call(ActorInput::request(json!({"read": {"since": 99}})))
            .await?;
        anyhow::ensure!(
            read.output.to_payload().json["payload"]["count"] == 100,
            "an activated room lost posts"
        );
        for name in &names {
            host.passivate(name).await;
        }
        if sample > 0 {
            fresh.push(created);
            from_snapshot.push(activated);
        }
    }
    host.shutdown().await;
    report.push(Row {
        name: "family member activated from its snapshot (100 posts)".into(),
        unit: "s",
        ours: median(&mut from_snapshot).as_secs_f64(),
        baseline_name: "the member created fresh (init, new chain)".into(),
        baseline: median(&mut fresh).as_secs_f64(),
        better: Better::Lower,
        target: None,
    });
    Ok(())
}

/// Members activated one after another through `max_active`; memory per active member; a
/// host started on the passive ones.
async fn many(report: &mut Report) -> anyhow::Result<()> {
    // The full run activates 100,000 members; --quick, 10,000.
    let total: usize = if report.settings.samples < 7 {
        10_000
    } else {
        100_000
    };
    const ACTIVE: usize = 1000;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let manifest = rooms(dir.path(), 3_600_000, ACTIVE)?;
    let host = Host::start(std::slice::from_ref(&manifest), &data).await?;
    host.registry()
        .resolve("room-warm")
        .await?
        .call(post(0))
        .await?;
    host.passivate("room-warm").await;

    let rss_before = rss_bytes()?;
    let t = Instant::now();
    for i in 0..ACTIVE {
        let room = host.registry().resolve(&format!("room-{i}")).await?;
        room.call(post(i)).await?;
    }
    let first = t.elapsed();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let per_active = rss_bytes()?.saturating_sub(rss_before) / ACTIVE as u64;
    let t = Instant::now();
    for i in ACTIVE..total {
        let room = host.registry().resolve(&format!("room-{i}")).await?;
        room.call(post(i)).await?;
    }
    let rest = t.elapsed();
    let per_member = (first + rest) / total as u32;
    let status = host.families().await;
    anyhow::ensure!(
        status.first().map(|f| f.active) == Some(ACTIVE),
        "not {ACTIVE} active: {status:?}"
    );
    // One of the first, long passive, answers with its post.
    let back = host.registry().resolve("room-7").await?;
    let read = back.call(ActorInput::request(json!({"read": {}}))).await?;
    anyhow::ensure!(
        read.output.to_payload().json["payload"]["posts"][0]["text"] == "post 7",
        "a passive member lost its post"
    );
    host.shutdown().await;
    drop(host);

    // Bare wasmtime instances of the same component, instantiated and initialised.
    let engine = Engine::new(Config::new().wasm_component_model(true))?;
    let component = Component::from_file(&engine, example_component("rooms"))?;
    let mut linker = Linker::new(&engine);
    bare::theater::actor::host::add_to_linker::<_, HasSelf<_>>(&mut linker, |h| h)?;
    let pre = bare::ActorPre::new(linker.instantiate_pre(&component)?)?;
    let before = rss_bytes()?;
    let t = Instant::now();
    let mut instances = Vec::with_capacity(ACTIVE);
    for _ in 0..ACTIVE {
        let mut store = Store::new(&engine, bare::Host);
        let inst = pre.instantiate_async(&mut store).await?;
        inst.call_init(&mut store, b"null")
            .await?
            .map_err(anyhow::Error::msg)?;
        instances.push((store, inst));
    }
    let bare_spawn = t.elapsed() / ACTIVE as u32;
    let bare_per = rss_bytes()?.saturating_sub(before) / ACTIVE as u64;
    drop(instances);

    report.push(Row {
        name: format!("family members activated (×{total}, {ACTIVE} active at most)"),
        unit: "s",
        ours: per_member.as_secs_f64(),
        baseline_name: "bare wasmtime instantiate + init".into(),
        baseline: bare_spawn.as_secs_f64(),
        better: Better::Lower,
        target: None,
    });
    report.push(Row {
        name: "family member active, resident memory".into(),
        unit: "B",
        ours: per_active as f64,
        baseline_name: "bare wasmtime instance after init".into(),
        baseline: bare_per.max(1) as f64,
        better: Better::Lower,
        target: None,
    });

    // A host started on the passive members holds nothing for them: its memory after start,
    // against a host started on an empty data directory. More passive members than were
    // activated are written directly (a room's genesis, as the host writes it): 1,000,000 in
    // all for the full run, 10,000 with --quick.
    let passive_total: usize = if report.settings.samples < 7 {
        10_000
    } else {
        1_000_000
    };
    let written = passive_total.saturating_sub(total + 1);
    passive_members(&data.join("chains"), written)?;
    let empty = dir.path().join("empty");
    let before = rss_bytes()?;
    let h = Host::start(std::slice::from_ref(&manifest), &empty).await?;
    let empty_rss = rss_bytes()?.saturating_sub(before);
    h.shutdown().await;
    drop(h);
    let before = rss_bytes()?;
    let t = Instant::now();
    let h = Host::start(std::slice::from_ref(&manifest), &data).await?;
    let start = t.elapsed();
    let passive_rss = rss_bytes()?.saturating_sub(before);
    for name in [
        format!("room-{}", total / 2),
        format!("room-p{}", written.max(1) - 1),
    ] {
        let back = h.registry().resolve(&name).await?;
        back.call(ActorInput::request(json!({"read": {}}))).await?;
    }
    h.shutdown().await;
    report.push(Row {
        name: format!(
            "host started on {} passive members, memory growth (start {:.1} s)",
            total + 1 + written,
            start.as_secs_f64()
        ),
        unit: "B",
        ours: passive_rss.max(1) as f64,
        baseline_name: "host started on an empty data directory".into(),
        baseline: empty_rss.max(1) as f64,
        better: Better::Lower,
        target: None,
    });
    Ok(())
}

/// Writes `n` passive rooms `room-p0...` under `chains`: each a genesis as the host writes it
/// for a new room (its init state, `{"posts": []}`), unsynced (this is setup, not the row).
fn passive_members(chains: &Path, n: usize) -> anyhow::Result<()> {
    use theater_chain::state::State;
    use theater_chain::{ChainId, ChainStore, Durability, FileStore, NewEntry, Payload};
    let state = State::new(json!({"posts": []}));
    for i in 0..n {
        let id = ChainId::new(format!("room-p{i}"))?;
        let mut store = FileStore::open_or_create(chains.join(id.as_str()), id, Durability::None)?;
        store.append(NewEntry::init(
            Payload::json(state.value().clone()),
            state.hash(),
        ))?;
    }
    Ok(())
}
