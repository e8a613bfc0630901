//! theater-db rows: a SQLite query through an actor (the inventory example: the request, the
//! wasm call, the recorded `db.run` and its answer in the chain) vs the same query on the same
//! database called directly, in the same run.

use std::sync::Arc;

use serde_json::json;
use theater_core::{ActorInput, HttpRequest};
use theater_db::{Database, DbGrant, Sqlite};

use crate::harness::{Better, Report, Row, spawn_example, versus};

const SQL: &str = "SELECT count(*), sum(qty) FROM items WHERE qty > 10";

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let name = "SQLite query through an actor (inventory, memory chain)";
    let write_name = "SQLite durable write through an actor (a transfer: 2 reads + a transaction)";
    if !report.wants(name) && !report.wants(write_name) {
        return Ok(());
    }
    let rt = crate::harness::runtime()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let db =
            Arc::new(Sqlite::open(dir.path().join("bench.sqlite")).map_err(anyhow::Error::msg)?);
        let actor = {
            let db = Arc::clone(&db);
            spawn_example("inventory", move |actor| {
                let db = Arc::clone(&db) as Arc<dyn Database>;
                actor.with_grant("db", Arc::new(DbGrant { db }))
            })
            .await?
        };
        for i in 0..1000 {
            db.run(
                &json!({"execute": "INSERT INTO items (name, qty) VALUES (?1, ?2)",
                           "params": [format!("item-{i}"), i % 50]}),
            )
            .map_err(anyhow::Error::msg)?;
        }
        if report.wants(name) {
            let request = ActorInput::request(json!({"sql": SQL}));
            let (ours, base) = versus(report, 2000, &actor, &request, || {
                let rows = db.run(&json!({"query": SQL})).map_err(anyhow::Error::msg)?;
                std::hint::black_box(rows);
                Ok(())
            })
            .await?;
            report.push(Row {
                name: name.into(),
                unit: "query/s",
                ours,
                baseline_name: "the same query on the same database, directly".into(),
                baseline: base,
                better: Better::Higher,
                target: None,
            });
        }
        if report.wants(write_name) {
            // POST /move: two existence reads and a transaction of two updates, committed
            // durably (synchronous=FULL) together with the entry's seq.
            db.run(&json!({"execute": "UPDATE items SET qty = 1000000000 WHERE name = 'item-0'"}))
                .map_err(anyhow::Error::msg)?;
            let input = ActorInput::HttpRequest(HttpRequest {
                method: "POST".into(),
                path: "/move".into(),
                query: None,
                headers: vec![],
                body: br#"{"from": "item-0", "to": "item-1", "qty": 1}"#.to_vec(),
            });
            let exists = json!({"query": "SELECT 1 FROM items WHERE name = ?1", "params": ["item-0"]});
            let transfer = json!({"transaction": [
                {"execute": "UPDATE items SET qty = qty + ?1 WHERE name = ?2", "params": [1, "item-1"]},
                {"execute": "UPDATE items SET qty = qty - ?1 WHERE name = ?2", "params": [1, "item-0"]},
            ]});
            let (ours, base) = versus(report, 200, &actor, &input, || {
                db.run(&exists).map_err(anyhow::Error::msg)?;
                db.run(&exists).map_err(anyhow::Error::msg)?;
                std::hint::black_box(db.run(&transfer).map_err(anyhow::Error::msg)?);
                Ok(())
            })
            .await?;
            report.push(Row {
                name: write_name.into(),
                unit: "write/s",
                ours,
                baseline_name: "the same reads and transaction, directly".into(),
                baseline: base,
                better: Better::Higher,
                target: None,
            });
        }
        anyhow::Ok(())
    })
}
