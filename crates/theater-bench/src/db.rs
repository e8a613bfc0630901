//! theater-db rows: a SQLite query through an actor (the inventory example: the request, the
//! wasm call, the recorded `db.run` and its answer in the chain) vs the same query on the same
//! database called directly, in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use theater_chain::{ChainId, MemoryStore};
use theater_core::db::Database;
use theater_core::{ActorConfig, ActorInput, spawn};
use theater_db::Sqlite;
use theater_test_support::example_component;
use theater_wasm::{Limits, WasmConfig, WasmHost};

use crate::harness::{Better, Report, Row, median};

const SQL: &str = "SELECT count(*), sum(qty) FROM items WHERE qty > 10";

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let name = "SQLite query through an actor (inventory, memory chain)";
    if !report.wants(name) {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let db =
            Arc::new(Sqlite::open(dir.path().join("bench.sqlite")).map_err(anyhow::Error::msg)?);
        let host = WasmHost::new(WasmConfig::default().pooling(Some(4)))?;
        let component = host.load_file(example_component("inventory"))?;
        let id = ChainId::new("inventory")?;
        let actor = {
            let (db, actor_id) = (Arc::clone(&db), id.clone());
            spawn(
                move || {
                    host.actor(&component, &actor_id, Value::Null, Limits::default())
                        .with_database(Arc::clone(&db) as Arc<dyn Database>)
                },
                Box::new(MemoryStore::new(id.clone())),
                ActorConfig::default(),
            )
            .await?
        };
        for i in 0..1000 {
            db.run(
                &json!({"execute": "INSERT INTO items (name, qty) VALUES (?1, ?2)",
                           "params": [format!("item-{i}"), i % 50]}),
            )
            .map_err(anyhow::Error::msg)?;
        }
        let n = 2000;
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for round in 0..=report.settings.samples {
            let t = Instant::now();
            for _ in 0..n {
                let out = actor.call(ActorInput::request(json!({"sql": SQL}))).await?;
                std::hint::black_box(out);
            }
            let a = t.elapsed();
            let t = Instant::now();
            for _ in 0..n {
                let rows = db.run(&json!({"query": SQL})).map_err(anyhow::Error::msg)?;
                std::hint::black_box(rows);
            }
            let b = t.elapsed();
            if round > 0 {
                ours.push(a / n);
                base.push(b / n);
            }
        }
        let per = |d: Duration| 1.0 / d.as_secs_f64();
        report.push(Row {
            name: name.into(),
            unit: "query/s",
            ours: per(median(&mut ours)),
            baseline_name: "the same query on the same database, directly".into(),
            baseline: per(median(&mut base)),
            better: Better::Higher,
            target: None,
        });
        anyhow::Ok(())
    })
}
