//! An input's SQL is one unit: committed with its entry, rolled back if the input fails, and
//! applied again at the next start if the host died between the entry and the commit.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, FileStore};
use theater_core::{
    Actor, ActorError, ActorInput, ActorOutput, ActorRuntime, HostCalls, RuntimeConfig,
    RuntimeError, replay,
};
use theater_db as db;
use theater_db::Sqlite;
use theater_db::{Database, DbError};
use theater_test_support::id;

mod postgres;
mod wasm;

/// Runs each request of a list through the recorded `db::run`; `"fail"` fails the input.
struct Clerk {
    db: Option<Arc<dyn Database>>,
}

#[async_trait]
impl Actor for Clerk {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Ok(json!(0))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let ActorInput::Request { payload } = input else {
            return Err(ActorError::Failed("requests only".into()));
        };
        let mut answers = Vec::new();
        for r in payload.as_array().into_iter().flatten() {
            if r == "fail" {
                return Err(ActorError::Failed("asked to fail".into()));
            }
            let a = db::run(self.db.as_ref(), host, r.clone()).await?;
            answers.push(a.unwrap_or_else(|e| json!({"error": e})));
        }
        let n = state.as_u64().unwrap_or(0) + 1;
        Ok((
            ActorOutput::Reply {
                payload: Value::Array(answers),
            },
            json!(n),
        ))
    }

    async fn reapply(
        &mut self,
        entry: &theater_chain::Entry,
        _: &dyn theater_chain::BlobStore,
    ) -> Result<(), String> {
        match &self.db {
            Some(d) => db::reapply(&**d, entry).await.map(|_| ()),
            None => Ok(()),
        }
    }
}

/// A database whose next commit fails, as if the host died before it (or whose next begin
/// fails, as when another process holds the database).
#[derive(Debug)]
struct DiesBeforeCommit {
    inner: Arc<Sqlite>,
    armed: AtomicBool,
    busy: AtomicBool,
}

#[async_trait]
impl Database for DiesBeforeCommit {
    async fn run(&self, request: &Value) -> Result<Value, DbError> {
        self.inner.run(request)
    }
    async fn rerun(&self, request: &Value) -> Result<Value, DbError> {
        self.inner.rerun(request)
    }
    async fn begin_input(&self) -> Result<(), DbError> {
        if self.busy.swap(false, Ordering::SeqCst) {
            return Err(DbError::unavailable("database is locked"));
        }
        self.inner.begin_input()
    }
    async fn commit_input(&self, seq: u64) -> Result<(), DbError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.inner.rollback_input();
            return Err(DbError::unavailable("the host died"));
        }
        self.inner.commit_input(seq)
    }
    fn rollback_input(&self) {
        self.inner.rollback_input()
    }
    async fn applied_seq(&self) -> Result<Option<u64>, DbError> {
        self.inner.applied_seq()
    }
}

/// Handles a request of `ops`, which must succeed: the seq it was recorded at, and the answers.
async fn answers(rt: &mut ActorRuntime<Clerk>, ops: Value) -> (u64, Value) {
    let h = rt.handle(ask(ops), vec![]).await.unwrap();
    match h.result {
        Ok(ActorOutput::Reply { payload }) => (h.seq, payload),
        other => panic!("{other:?}"),
    }
}

fn ask(r: Value) -> ActorInput {
    ActorInput::Request { payload: r }
}

fn exec(sql: &str, params: Value) -> Value {
    json!({"execute": sql, "params": params})
}

fn rows(db: &Sqlite) -> Value {
    db.run(&json!({"query": "SELECT name, qty FROM items ORDER BY name"}))
        .unwrap()["rows"]
        .clone()
}

/// The database at `path`, with the `items` table (quantities never negative).
fn items_db(path: &std::path::Path) -> Arc<Sqlite> {
    let sqlite = Arc::new(Sqlite::open(path).unwrap());
    sqlite
        .run(&exec(
            "CREATE TABLE items (name TEXT PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty >= 0))",
            json!([]),
        ))
        .unwrap();
    sqlite
}

/// A clerk on `db`, started (or resumed) on the chain in `dir`.
async fn start_clerk(
    db: Arc<dyn Database>,
    dir: &std::path::Path,
) -> Result<ActorRuntime<Clerk>, RuntimeError> {
    ActorRuntime::start(Clerk { db: Some(db) }, chain(dir), RuntimeConfig::default()).await
}

impl DiesBeforeCommit {
    fn new(inner: &Arc<Sqlite>, busy: bool) -> Arc<Self> {
        Arc::new(DiesBeforeCommit {
            inner: Arc::clone(inner),
            armed: AtomicBool::new(false),
            busy: AtomicBool::new(busy),
        })
    }
}

fn chain(dir: &std::path::Path) -> Box<dyn ChainStore> {
    Box::new(
        FileStore::open_or_create(dir, id("clerk"), Durability::Group { max_batch: 8 }).unwrap(),
    )
}

/// Stops `rt` and replays its chain (in `chain_dir`) with no database: the same state.
async fn assert_replays_without_the_database(
    rt: ActorRuntime<Clerk>,
    chain_dir: impl AsRef<std::path::Path>,
) {
    let state = rt.state().clone();
    drop(rt);
    let stored = FileStore::open_read_only(chain_dir.as_ref()).unwrap();
    let report = replay(&mut Clerk { db: None }, &stored).await.unwrap();
    assert_eq!(report.state.value(), &state);
}

#[tokio::test]
async fn an_input_commits_all_its_writes_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = items_db(&tmp.path().join("db.sqlite"));
    let mut rt = start_clerk(sqlite.clone(), &tmp.path().join("chain"))
        .await
        .unwrap();
    let add = |name: &str, qty: i64| exec("INSERT INTO items VALUES (?1, ?2)", json!([name, qty]));

    // Two writes and a read of them inside the input, then committed with the entry.
    let (seq, payload) = answers(
        &mut rt,
        json!([add("apples", 5), add("pears", 1), {"query": "SELECT count(*) FROM items"}]),
    )
    .await;
    assert_eq!(payload[2]["rows"], json!([[2]]));
    assert_eq!(rows(&sqlite), json!([["apples", 5], ["pears", 1]]));
    assert_eq!(sqlite.applied_seq().unwrap(), Some(seq));

    // A write, then the input fails: rolled back, though the chain records the write's answer.
    let h = rt
        .handle(
            ask(json!([
                add("plums", 9),
                exec("UPDATE items SET qty = 0", json!([])),
                "fail"
            ])),
            vec![],
        )
        .await
        .unwrap();
    assert!(h.result.is_err());
    assert_eq!(rows(&sqlite), json!([["apples", 5], ["pears", 1]]));
    assert_eq!(sqlite.applied_seq().unwrap(), Some(1));

    // A failing statement inside a successful input: that statement only is undone; a
    // transaction request inside the input is all or nothing.
    let moved = |n: i64| {
        json!({"transaction": [
            exec("UPDATE items SET qty = qty + ?1 WHERE name = 'pears'", json!([n])),
            exec("UPDATE items SET qty = qty - ?1 WHERE name = 'apples'", json!([n])),
        ]})
    };
    let (_, payload) = answers(
        &mut rt,
        json!([add("apples", 1), moved(2), moved(50), add("kiwis", 3)]),
    )
    .await;
    assert!(payload[0]["error"].as_str().unwrap().contains("UNIQUE"));
    assert!(
        payload[2]["error"]
            .as_str()
            .unwrap()
            .contains("nothing was applied")
    );
    assert_eq!(
        rows(&sqlite),
        json!([["apples", 3], ["kiwis", 3], ["pears", 3]])
    );

    // The actor's SQL cannot end, nest or open the host's transaction, weaken durability or
    // forge the applied marker; its writes so far stay in the unit.
    let (seq, payload) = answers(
        &mut rt,
        json!([
            add("figs", 1),
            {"query": "ROLLBACK"},
            {"execute": "COMMIT"},
            {"execute": "BEGIN"},
            {"execute": "SAVEPOINT x"},
            {"execute": "PRAGMA synchronous = OFF"},
            {"execute": "UPDATE _theater_applied SET seq = 99"},
            {"execute": "ATTACH DATABASE ':memory:' AS other"},
        ]),
    )
    .await;
    for refused in &payload.as_array().unwrap()[1..] {
        let e = refused["error"]
            .as_str()
            .unwrap_or_else(|| panic!("allowed: {refused}"));
        assert!(e.contains("not authorized") && e.contains("may not"), "{e}");
    }
    assert_eq!(sqlite.applied_seq().unwrap(), Some(seq));
    assert_eq!(rows(&sqlite).as_array().unwrap().len(), 4);
    sqlite
        .run(&exec("DELETE FROM items WHERE name = 'figs'", json!([])))
        .unwrap();

    // A query that writes is refused (writes go through execute, inside the unit).
    let (_, payload) = answers(
        &mut rt,
        json!([{"query": "DELETE FROM items RETURNING name"}]),
    )
    .await;
    assert!(
        payload[0]["error"]
            .as_str()
            .unwrap()
            .contains("may only read"),
        "{payload}"
    );
    assert_eq!(rows(&sqlite).as_array().unwrap().len(), 3);

    assert_replays_without_the_database(rt, tmp.path().join("chain")).await;
}

#[tokio::test]
async fn a_commit_lost_after_the_entry_is_applied_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db.sqlite");
    let sqlite = items_db(&path);
    let dying = DiesBeforeCommit::new(&sqlite, false);
    let chain_dir = tmp.path().join("chain");
    let mut rt = start_clerk(dying.clone(), &chain_dir).await.unwrap();
    let add = |name: &str, qty: i64| exec("INSERT INTO items VALUES (?1, ?2)", json!([name, qty]));
    rt.handle(ask(json!([add("apples", 5)])), vec![])
        .await
        .unwrap();
    dying.armed.store(true, Ordering::SeqCst);
    let e = rt
        .handle(
            ask(json!([
                add("pears", 2),
                exec(
                    "UPDATE items SET qty = qty - 1 WHERE name = 'apples'",
                    json!([])
                )
            ])),
            vec![],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::Apply { seq: 2, .. }), "{e}");
    // The entry is durable; the database does not have its writes.
    assert_eq!(rows(&sqlite), json!([["apples", 5]]));
    drop(rt);
    drop(dying);
    drop(sqlite);

    let sqlite = Arc::new(Sqlite::open(&path).unwrap());
    let rt = start_clerk(sqlite.clone(), &chain_dir).await.unwrap();
    assert_eq!(rows(&sqlite), json!([["apples", 4], ["pears", 2]]));
    assert_eq!(sqlite.applied_seq().unwrap(), Some(2));
    assert_eq!(*rt.state(), json!(2));
    drop(rt);
    // Applied once: another start changes nothing.
    let rt = start_clerk(sqlite.clone(), &chain_dir).await.unwrap();
    assert_eq!(rows(&sqlite), json!([["apples", 4], ["pears", 2]]));
    drop(rt);

    // A database that does not match the chain is reported, not patched over.
    sqlite.run(&exec("DELETE FROM items", json!([]))).unwrap();
    // (The actor's SQL may not touch the marker; the test does, behind the host's back.)
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE _theater_applied SET seq = 1", [])
        .unwrap();
    std::fs::remove_file(chain_dir.join("applied")).unwrap();
    let e = start_clerk(sqlite.clone(), &chain_dir)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match the chain"), "{e}");
}

#[tokio::test]
async fn a_unit_that_could_not_begin_is_recorded_and_never_applied_later() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db.sqlite");
    let sqlite = items_db(&path);
    let busy = DiesBeforeCommit::new(&sqlite, true);
    let chain_dir = tmp.path().join("chain");
    let mut rt = start_clerk(busy.clone(), &chain_dir).await.unwrap();
    let (_, payload) = answers(
        &mut rt,
        json!([
            exec("INSERT INTO items VALUES ('x', 1)", json!([])),
            {"query": "SELECT count(*) FROM items"},
        ]),
    )
    .await;
    assert!(
        payload[0]["error"].as_str().unwrap().contains("locked"),
        "{payload}"
    );
    assert_eq!(payload[1]["rows"], json!([[0]]));
    drop(rt);
    // The next start finds nothing to apply: the write never happened, as recorded.
    let rt = start_clerk(sqlite.clone(), &chain_dir).await.unwrap();
    assert_eq!(rows(&sqlite), json!([]));
    assert_replays_without_the_database(rt, &chain_dir).await;
}

#[tokio::test]
async fn a_lost_commit_of_updates_only_is_applied_once_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db.sqlite");
    let sqlite = items_db(&path);
    let dying = DiesBeforeCommit::new(&sqlite, false);
    let chain_dir = tmp.path().join("chain");
    let mut rt = start_clerk(dying.clone(), &chain_dir).await.unwrap();
    answers(
        &mut rt,
        json!([exec(
            "INSERT INTO items VALUES ('apples', 5), ('pears', 1)",
            json!([])
        )]),
    )
    .await;
    // What the inventory's POST /move does: no INSERT, so no rowid of its own.
    let moved = json!({"transaction": [
        exec("UPDATE items SET qty = qty + 2 WHERE name = 'pears'", json!([])),
        exec("UPDATE items SET qty = qty - 2 WHERE name = 'apples'", json!([])),
    ]});
    dying.armed.store(true, Ordering::SeqCst);
    let e = rt
        .handle(
            ask(json!([
                moved,
                exec("UPDATE items SET qty = qty * 10", json!([])),
                {"query": "SELECT name, qty FROM items ORDER BY name"},
            ])),
            vec![],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::Apply { seq: 2, .. }), "{e}");
    assert_eq!(rows(&sqlite), json!([["apples", 5], ["pears", 1]]));
    drop((rt, dying, sqlite));

    // A fresh connection has another history than the one that answered live; and limits
    // so strict that no request would pass live do not stop the repair (it finished once).
    let strict = Sqlite::open(&path)
        .unwrap()
        .with_time_limit(std::time::Duration::ZERO)
        .with_max_result_bytes(0);
    let sqlite = Arc::new(strict);
    let check = Sqlite::open(&path).unwrap();
    let rt = start_clerk(sqlite.clone(), &chain_dir).await.unwrap();
    assert_eq!(rows(&check), json!([["apples", 30], ["pears", 30]]));
    assert_eq!(sqlite.applied_seq().unwrap(), Some(2));
    drop(rt);
    let rt = start_clerk(sqlite.clone(), &chain_dir).await.unwrap();
    assert_eq!(rows(&check), json!([["apples", 30], ["pears", 30]]));
    drop(rt);
}

/// The answers recorded in the chain's last entry.
fn last_answers(rt: &ActorRuntime<Clerk>) -> Vec<Value> {
    let chain = rt.chain();
    let entry = chain.get(chain.head().unwrap().seq).unwrap();
    entry
        .host_calls()
        .iter()
        .map(|c| c.result.json.clone())
        .collect()
}

#[tokio::test]
async fn a_unit_sqlite_rolled_back_refuses_the_rest_of_the_input_and_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db.sqlite");
    let sqlite = items_db(&path);
    let chain_dir = tmp.path().join("chain");
    let mut rt = start_clerk(sqlite.clone(), &chain_dir).await.unwrap();
    answers(
        &mut rt,
        json!([exec("INSERT INTO items VALUES ('apples', 5)", json!([]))]),
    )
    .await;
    // The conflict makes SQLite roll back the whole transaction, figs included. The input
    // stands (its answers say so) and the actor goes on.
    answers(
        &mut rt,
        json!([
            exec("INSERT INTO items VALUES ('figs', 1)", json!([])),
            exec("INSERT OR ROLLBACK INTO items VALUES ('apples', 1)", json!([])),
            exec("INSERT INTO items VALUES ('kiwis', 3)", json!([])),
            {"query": "SELECT count(*) FROM items"},
        ]),
    )
    .await;
    let recorded = last_answers(&rt);
    assert!(recorded[0].get("ok").is_some(), "{recorded:?}");
    for refused in &recorded[1..] {
        let e = refused["error"].as_str().unwrap();
        assert!(e.contains("rolled back this input's transaction"), "{e}");
        assert_eq!(refused["unit_lost"], true);
    }
    // Nothing of the input autocommitted behind the entry's back.
    assert_eq!(rows(&sqlite), json!([["apples", 5]]));
    let (_, after) = answers(
        &mut rt,
        json!([exec("INSERT INTO items VALUES ('pears', 2)", json!([]))]),
    )
    .await;
    assert_eq!(after[0]["changes"], 1, "{after:?}");
    assert_eq!(rows(&sqlite), json!([["apples", 5], ["pears", 2]]));
    drop(rt);
    // The next start applies nothing: the actor was told the unit was undone.
    let rt = start_clerk(sqlite.clone(), &chain_dir).await.unwrap();
    assert_eq!(rows(&sqlite), json!([["apples", 5], ["pears", 2]]));
    assert_replays_without_the_database(rt, &chain_dir).await;
}

#[tokio::test]
async fn a_request_over_its_time_or_size_limit_is_an_error_the_chain_records() {
    let tmp = tempfile::tempdir().unwrap();
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)";
    let slow = Sqlite::open(tmp.path().join("slow.sqlite"))
        .unwrap()
        .with_time_limit(std::time::Duration::from_millis(1));
    let big = Sqlite::open(tmp.path().join("big.sqlite"))
        .unwrap()
        .with_max_result_bytes(10_000);
    for (db, sql, error) in [
        (
            slow,
            format!("{endless} SELECT count(*) FROM c"),
            "query interrupted after 1 ms",
        ),
        (
            big,
            format!("{endless} SELECT x FROM c"),
            "result over 10000 bytes",
        ),
    ] {
        let dir = tmp.path().join(error);
        let mut rt = start_clerk(Arc::new(db), &dir).await.unwrap();
        let (_, payload) = answers(&mut rt, json!([{"query": sql}])).await;
        let e = payload[0]["error"].as_str().unwrap();
        assert!(e.contains(error), "{e}");
        // A limited request inside a transaction fails it whole, like any other error.
        let (_, payload) = answers(&mut rt, json!([{"transaction": [{"query": sql}]}])).await;
        let e = payload[0]["error"].as_str().unwrap();
        assert!(
            e.contains("nothing was applied") && e.contains(error),
            "{e}"
        );
        assert_replays_without_the_database(rt, &dir).await;
    }
}

#[tokio::test]
async fn a_database_that_was_not_granted_is_a_recorded_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rt = ActorRuntime::start(
        Clerk { db: None },
        chain(tmp.path()),
        RuntimeConfig::default(),
    )
    .await
    .unwrap();
    let (_, payload) = answers(&mut rt, json!([{"query": "SELECT 1"}])).await;
    assert_eq!(payload[0]["error"], db::NOT_GRANTED);
    assert_replays_without_the_database(rt, tmp.path()).await;
}
