//! theater-db rows: a query and a durable write through an actor (the inventory example: the
//! request, the wasm call, the recorded `db.run` and its answer in the chain) vs the same
//! statements on the same database called directly, in the same run: on SQLite, and on the
//! machine's PostgreSQL server (through the same client, tokio-postgres, directly).

use std::sync::Arc;

use serde_json::json;
use theater_core::{ActorInput, HttpRequest};
use theater_db::{Database, DbGrant, PgServer, Postgres, Sqlite};

use crate::harness::{Better, Report, Row, spawn_example, versus, versus_async};

const SQL: &str = "SELECT count(*), sum(qty) FROM items WHERE qty > 10";

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    sqlite(report)?;
    postgres(report)
}

fn sqlite(report: &mut Report) -> anyhow::Result<()> {
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
            let input = transfer_input();
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

/// The transfer `POST /move` makes: its two existence reads and its transaction.
fn transfer_input() -> ActorInput {
    ActorInput::HttpRequest(HttpRequest {
        method: "POST".into(),
        path: "/move".into(),
        query: None,
        headers: vec![],
        body: br#"{"from": "item-0", "to": "item-1", "qty": 1}"#.to_vec(),
    })
}

fn postgres(report: &mut Report) -> anyhow::Result<()> {
    let name = "PostgreSQL query through an actor (inventory, memory chain)";
    let write_name =
        "PostgreSQL durable write through an actor (a transfer: 2 reads + a transaction)";
    if !report.wants(name) && !report.wants(write_name) {
        return Ok(());
    }
    let Some(pg) = theater_test_support::pg::PgDatabase::create() else {
        println!(
            "(PostgreSQL rows skipped: no server at {})",
            theater_test_support::pg::admin_url()
        );
        return Ok(());
    };
    let rt = crate::harness::runtime()?;
    rt.block_on(async {
        let config: tokio_postgres::Config = pg.url().parse()?;
        let server = PgServer::new(config.clone(), 4);
        let db = Arc::new(Postgres::new(server, "inventory", None));
        let actor = {
            let db = Arc::clone(&db);
            spawn_example("inventory", move |actor| {
                let db = Arc::clone(&db) as Arc<dyn Database>;
                actor.with_grant("db", Arc::new(DbGrant { db }))
            })
            .await?
        };
        // The same client, connected directly as the host's user to the actor's schema.
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("SET search_path = {}", db.schema()))
            .await?;
        for i in 0..1000 {
            client
                .execute(
                    "INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)",
                    &[&(i + 1), &format!("item-{i}"), &(i % 50)],
                )
                .await?;
        }
        if report.wants(name) {
            let request = ActorInput::request(json!({"sql": SQL}));
            let stmt = client.prepare(SQL).await?;
            let (ours, base) = versus_async(report, 1000, &actor, &request, || async {
                std::hint::black_box(client.query(&stmt, &[]).await?);
                Ok(())
            })
            .await?;
            report.push(Row {
                name: name.into(),
                unit: "query/s",
                ours,
                baseline_name: "the same query, prepared, through the same client directly".into(),
                baseline: base,
                better: Better::Higher,
                target: None,
            });
        }
        if report.wants(write_name) {
            client
                .execute(
                    "UPDATE items SET qty = 1000000000 WHERE name = 'item-0'",
                    &[],
                )
                .await?;
            let exists = client
                .prepare("SELECT 1 FROM items WHERE name = $1")
                .await?;
            let more = client
                .prepare("UPDATE items SET qty = qty + $1 WHERE name = $2")
                .await?;
            let less = client
                .prepare("UPDATE items SET qty = qty - $1 WHERE name = $2")
                .await?;
            let input = transfer_input();
            let (ours, base) = versus_async(report, 200, &actor, &input, || async {
                client.query(&exists, &[&"item-0"]).await?;
                client.query(&exists, &[&"item-1"]).await?;
                client.batch_execute("BEGIN").await?;
                client.execute(&more, &[&1_i32, &"item-1"]).await?;
                client.execute(&less, &[&1_i32, &"item-0"]).await?;
                client.batch_execute("COMMIT").await?;
                Ok(())
            })
            .await?;
            report.push(Row {
                name: write_name.into(),
                unit: "write/s",
                ours,
                baseline_name: "the same reads and transaction through the same client directly"
                    .into(),
                baseline: base,
                better: Better::Higher,
                target: None,
            });
        }
        anyhow::Ok(())
    })
}
