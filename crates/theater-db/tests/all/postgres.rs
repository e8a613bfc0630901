//! The PostgreSQL backend against the machine's real server (a database per test, dropped
//! after): the same unit of work as SQLite, a SIGKILL between the entry and the commit
//! repaired exactly once, actors kept apart by roles, limits, values both ways. Without a
//! server each test says it skipped; with `THEATER_REQUIRE_POSTGRES=1` (CI) it fails.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use theater_db::{Database, DbErrorKind, PgServer, Postgres};
use theater_test_support::pg::PgDatabase;

use crate::{answers, ask, assert_replays_without_the_database, exec, start_clerk};

/// Actor `actor`'s database on `db`, with a pool of its own.
fn pg(db: &PgDatabase, actor: &str) -> Arc<Postgres> {
    let config: tokio_postgres::Config = db.url().parse().unwrap();
    Arc::new(Postgres::new(PgServer::new(config, 4), actor, None))
}

fn items_sql() -> Value {
    exec(
        "CREATE TABLE items (name TEXT PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty >= 0))",
        json!([]),
    )
}

/// The items of actor `actor` (schema `theater_<actor>`), read as the host's user.
fn items(db: &PgDatabase, actor: &str) -> Vec<(String, String)> {
    db.sql(&format!(
        "SELECT name, qty FROM theater_{actor}.items ORDER BY name"
    ))
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
    .collect()
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, q)| (n.to_string(), q.to_string()))
        .collect()
}

fn add(name: &str, qty: i64) -> Value {
    exec("INSERT INTO items VALUES (?1, ?2)", json!([name, qty]))
}

fn error_of(answer: &Value) -> &str {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

#[tokio::test]
async fn postgres_commits_an_inputs_writes_with_its_entry_or_none_of_them() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let chain_dir = tmp.path().join("chain");
    let store = pg(&db, "clerk");
    let mut rt = start_clerk(store.clone(), &chain_dir).await.unwrap();
    let (seq, payload) = answers(
        &mut rt,
        json!([items_sql(), add("apples", 5), add("pears", 1), {"query": "SELECT count(*) AS n FROM items"}]),
    )
    .await;
    assert_eq!(payload[3], json!({"columns": ["n"], "rows": [[2]]}));
    assert_eq!(items(&db, "clerk"), pairs(&[("apples", 5), ("pears", 1)]));
    assert_eq!(store.applied_seq().await.unwrap(), Some(seq));

    // A write, then the input fails: rolled back, the mark unchanged.
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
    assert_eq!(items(&db, "clerk"), pairs(&[("apples", 5), ("pears", 1)]));
    assert_eq!(store.applied_seq().await.unwrap(), Some(seq));

    // Constraint errors and bad SQL undo their own request only; a transaction request is
    // all or nothing; the input's other writes commit.
    let moved = |n: i64| {
        json!({"transaction": [
            exec("UPDATE items SET qty = qty + ?1 WHERE name = 'pears'", json!([n])),
            exec("UPDATE items SET qty = qty - ?1 WHERE name = 'apples'", json!([n])),
        ]})
    };
    let (seq, payload) = answers(
        &mut rt,
        json!([
            add("apples", 1),
            moved(2),
            moved(50),
            {"execute": "INSERT INTO itemz VALUES (1)"},
            {"query": "SELEC nonsense"},
            add("kiwis", 3),
        ]),
    )
    .await;
    let dup = error_of(&payload[0]);
    assert!(
        dup.contains("duplicate key") && dup.contains("23505"),
        "{dup}"
    );
    assert_eq!(
        payload[1]["results"],
        json!([{"changes": 1}, {"changes": 1}])
    );
    let check = error_of(&payload[2]);
    assert!(
        check.contains("statement 1 failed, nothing was applied")
            && check.contains("check constraint"),
        "{check}"
    );
    assert!(
        error_of(&payload[3]).contains("does not exist"),
        "{payload}"
    );
    assert!(error_of(&payload[4]).contains("syntax error"), "{payload}");
    assert_eq!(payload[5], json!({"changes": 1}));
    assert_eq!(
        items(&db, "clerk"),
        pairs(&[("apples", 3), ("kiwis", 3), ("pears", 3)])
    );
    assert_eq!(store.applied_seq().await.unwrap(), Some(seq));

    // The actor's SQL cannot end or split the host's transaction, change its session, or
    // write the applied mark; a query cannot write, inside the unit or out.
    let (seq, payload) = answers(
        &mut rt,
        json!([
            add("figs", 1),
            {"execute": "COMMIT"},
            {"execute": "ROLLBACK"},
            {"execute": "SAVEPOINT x"},
            {"execute": "SET statement_timeout = 0"},
            {"execute": "RESET ROLE"},
            {"execute": "SELECT theater_host.mark_applied(999, 'guess')"},
            {"execute": "UPDATE theater_host.applied SET seq = 999"},
            {"query": "DELETE FROM items WHERE name = 'apples' RETURNING name"},
        ]),
    )
    .await;
    for (i, refused) in payload.as_array().unwrap()[1..].iter().enumerate() {
        let e = error_of(refused);
        let expected = match i {
            0..=4 => "is refused",
            5 => "refused: another host",
            6 => "permission denied",
            _ => "read-only transaction",
        };
        assert!(e.contains(expected), "request {}: {e}", i + 1);
    }
    assert_eq!(store.applied_seq().await.unwrap(), Some(seq));
    assert_eq!(items(&db, "clerk").len(), 4);
    let (_, payload) = answers(
        &mut rt,
        json!([{"query": "DELETE FROM items RETURNING name"}]),
    )
    .await;
    assert!(error_of(&payload[0]).contains("read-only"), "{payload}");
    assert_eq!(items(&db, "clerk").len(), 4);

    assert_replays_without_the_database(rt, &chain_dir).await;
}

/// Re-executed by the test below: runs one input whose commit never happens (the process
/// kills itself with SIGKILL once the entry is durable, before the database commits).
#[tokio::test]
async fn postgres_sigkill_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (url, chain_dir) = spec.split_once('|').unwrap();
    let config: tokio_postgres::Config = url.parse().unwrap();
    let store = Arc::new(Postgres::new(PgServer::new(config, 2), "clerk", None));
    let killer = Arc::new(KilledAtCommit { inner: store });
    let mut rt = start_clerk(killer, std::path::Path::new(chain_dir))
        .await
        .unwrap();
    let _ = rt
        .handle(
            ask(json!([
                exec(
                    "UPDATE items SET qty = qty + 1 WHERE name = 'apples'",
                    json!([])
                ),
                add("pears", 7),
            ])),
            vec![],
        )
        .await;
    unreachable!("the commit kills this process");
}

const CHILD: &str = "THEATER_DB_PG_SIGKILL_CHILD";

/// A database whose commit is never reached: the process is killed first.
#[derive(Debug)]
struct KilledAtCommit {
    inner: Arc<Postgres>,
}

#[async_trait::async_trait]
impl Database for KilledAtCommit {
    async fn run(&self, request: &Value) -> Result<Value, theater_db::DbError> {
        self.inner.run(request).await
    }
    async fn begin_input(&self) -> Result<(), theater_db::DbError> {
        self.inner.begin_input().await
    }
    async fn commit_input(&self, _seq: u64) -> Result<(), theater_db::DbError> {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::thread::sleep(Duration::from_secs(60));
        unreachable!("SIGKILL");
    }
    fn rollback_input(&self) {
        self.inner.rollback_input();
    }
    async fn applied_seq(&self) -> Result<Option<u64>, theater_db::DbError> {
        self.inner.applied_seq().await
    }
}

#[tokio::test]
async fn postgres_a_sigkill_between_entry_and_commit_is_repaired_exactly_once() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let chain_dir = tmp.path().join("chain");
    let mut rt = start_clerk(pg(&db, "clerk"), &chain_dir).await.unwrap();
    answers(&mut rt, json!([items_sql(), add("apples", 5)])).await;
    drop(rt);

    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["postgres::postgres_sigkill_child", "--exact", "--nocapture"])
        .env(CHILD, format!("{}|{}", db.url(), chain_dir.display()))
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        child.status.signal(),
        Some(9),
        "the child was to die by SIGKILL: {child:?}"
    );
    // The entry is durable; the server rolled its unit back with the dead connection.
    let stored = theater_chain::FileStore::open_read_only(&chain_dir).unwrap();
    use theater_chain::ChainStore;
    let last = stored.len() - 1;
    drop(stored);
    assert_eq!(items(&db, "clerk"), pairs(&[("apples", 5)]));

    // The next start applies it, once.
    let store = pg(&db, "clerk");
    let rt = start_clerk(store.clone(), &chain_dir).await.unwrap();
    assert_eq!(items(&db, "clerk"), pairs(&[("apples", 6), ("pears", 7)]));
    assert_eq!(store.applied_seq().await.unwrap(), Some(last));
    drop(rt);
    let again = start_clerk(pg(&db, "clerk"), &chain_dir).await.unwrap();
    assert_eq!(items(&db, "clerk"), pairs(&[("apples", 6), ("pears", 7)]));
    assert_replays_without_the_database(again, &chain_dir).await;
}

#[tokio::test]
async fn postgres_actors_cannot_see_each_others_tables_or_the_server() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let (a, b) = (pg(&db, "alice"), pg(&db, "bob"));
    a.run(&items_sql()).await.unwrap();
    a.run(&add("secret", 1)).await.unwrap();
    b.run(&items_sql()).await.unwrap();
    // Each sees its own `items`.
    let rows = |v: Value| v["rows"].clone();
    assert_eq!(
        rows(
            b.run(&json!({"query": "SELECT count(*) FROM items"}))
                .await
                .unwrap()
        ),
        json!([[0]])
    );
    for sql in [
        "SELECT * FROM theater_alice.items",
        "SELECT * FROM theater_host.applied",
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT set_config('role', 'postgres', false)",
    ] {
        let e = b.run(&json!({"query": sql})).await.unwrap_err();
        assert_eq!(e.kind, DbErrorKind::Refused, "{sql}: {e}");
        assert!(
            e.message.contains("permission denied") || e.message.contains("must be"),
            "{sql}: {e}"
        );
    }
    for sql in [
        "CREATE TABLE public.shared (x int)",
        "SET ROLE postgres",
        ";COMMIT",
        " ; ROLLBACK",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "DROP SCHEMA theater_alice CASCADE",
    ] {
        let e = b.run(&json!({"execute": sql})).await.unwrap_err();
        assert!(
            e.message.contains("permission denied")
                || e.message.contains("is refused")
                || e.message.contains("must be owner"),
            "{sql}: {e}"
        );
    }
    let who = b
        .run(&json!({"query": "SELECT current_user, session_user, current_schema()"}))
        .await
        .unwrap();
    assert_eq!(
        who["rows"][0],
        json!([b.role(), b.role(), "theater_bob"]),
        "{who}"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM theater_alice.items")[0][0].as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn postgres_values_placeholders_and_returning() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let store = pg(&db, "values");
    store
        .run(&exec(
            "CREATE TABLE t (id serial PRIMARY KEY, i int, b bigint, f float8, s text, ok boolean,
              bin bytea, doc jsonb, price numeric(10, 2), day date, at timestamptz, u uuid,
              tags text[], n int)",
            json!([]),
        ))
        .await
        .unwrap();
    let row = json!([7, 9_007_199_254_740_993_i64, 1.5, "x'y", true, {"blob_hex": "00ff10"},
        {"a": [1, "two"]}, "12.50", "2026-12-04", "2026-12-04T22:05:39.123Z",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ["a", "b c"], null]);
    let inserted = store
        .run(&json!({"execute": "INSERT INTO t (i, b, f, s, ok, bin, doc, price, day, at, u, tags, n)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id", "params": row}))
        .await
        .unwrap();
    assert_eq!(
        inserted,
        json!({"changes": 1, "columns": ["id"], "rows": [[1]]})
    );
    let q = store
        .run(&json!({"query": "SELECT i, b, f, s, ok, bin, doc, price, day, at, u, tags, n FROM t WHERE id = ?1", "params": [1]}))
        .await
        .unwrap();
    assert_eq!(q["rows"][0], row, "{q}");
    // A type with no JSON form names the column and the cast.
    let e = store
        .run(&json!({"query": "SELECT '127.0.0.1'::inet AS addr"}))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("addr") && e.message.contains("::text"),
        "{e}"
    );
    // A bare ? is PostgreSQL's jsonb operator, left alone.
    let has = store
        .run(&json!({"query": "SELECT doc ? 'a' FROM t"}))
        .await
        .unwrap();
    assert_eq!(has["rows"], json!([[true]]));
    let e = store
        .run(&json!({"query": "SELECT ?1::int", "params": ["seven"]}))
        .await
        .unwrap_err();
    assert!(e.message.contains("invalid input syntax"), "{e}");
    let e = store
        .run(&json!({"query": "SELECT ?1::int", "params": [10_000_000_000_i64]}))
        .await
        .unwrap_err();
    assert!(e.message.contains("parameter"), "{e}");
}

#[tokio::test]
async fn postgres_limits_lost_connections_and_stale_hosts() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let store = Arc::new(
        Postgres::new(PgServer::new(db.url().parse().unwrap(), 2), "limited", None)
            .with_time_limit(Duration::from_millis(300))
            .with_max_result_bytes(1000),
    );
    store.run(&items_sql()).await.unwrap();
    // Too slow: cancelled on the server, the unit goes on.
    store.begin_input().await.unwrap();
    store.run(&add("a", 1)).await.unwrap();
    let e = store
        .run(&json!({"query": "SELECT pg_sleep(5)"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, DbErrorKind::Limit, "{e}");
    assert!(e.message.contains("interrupted after 300 ms"), "{e}");
    let e = store
        .run(&json!({"query": "SELECT repeat('x', 5000)"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, DbErrorKind::Limit, "{e}");
    store.run(&add("b", 1)).await.unwrap();
    store.commit_input(1).await.unwrap();
    assert_eq!(items(&db, "limited"), pairs(&[("a", 1), ("b", 1)]));

    // The server ends the unit's connection: the unit is lost, later requests say so, and
    // its commit applies nothing.
    store.begin_input().await.unwrap();
    store.run(&add("c", 1)).await.unwrap();
    db.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}'",
        store.role()
    ));
    let e = store.run(&add("d", 1)).await.unwrap_err();
    assert_eq!(e.kind, DbErrorKind::UnitLost, "{e}");
    assert!(store.unit_lost());
    let e = store.run(&add("e", 1)).await.unwrap_err();
    assert_eq!(e.kind, DbErrorKind::UnitLost, "{e}");
    store.commit_input(2).await.unwrap();
    assert_eq!(items(&db, "limited"), pairs(&[("a", 1), ("b", 1)]));
    assert_eq!(store.applied_seq().await.unwrap(), Some(1));

    // Another grant of the same actor (a host taking it over) ends this one's sessions, and
    // this one can commit nothing more.
    store.begin_input().await.unwrap();
    store.run(&add("stale", 1)).await.unwrap();
    let successor = pg(&db, "limited");
    assert_eq!(successor.applied_seq().await.unwrap(), Some(1));
    assert!(store.commit_input(3).await.is_err());
    assert_eq!(items(&db, "limited"), pairs(&[("a", 1), ("b", 1)]));
    successor.run(&add("fresh", 1)).await.unwrap();
    assert_eq!(items(&db, "limited").len(), 3);
}

#[tokio::test]
async fn postgres_a_unit_stays_one_transaction_however_its_commands_are_pipelined() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let store = pg(&db, "pipes");
    store.run(&items_sql()).await.unwrap();
    // An empty transaction first, refused requests, a read, a failed write, a transaction
    // with a read in it: all inside the unit, and all of it undone by the rollback.
    store.begin_input().await.unwrap();
    assert_eq!(
        store.run(&json!({"transaction": []})).await.unwrap(),
        json!({"results": []})
    );
    assert!(store.run(&json!({"execute": "COMMIT"})).await.is_err());
    store.run(&add("a", 1)).await.unwrap();
    assert!(store.run(&add("a", 1)).await.is_err());
    let tx = json!({"transaction": [add("b", 2), {"query": "SELECT count(*) FROM items"}]});
    assert_eq!(
        store.run(&tx).await.unwrap()["results"][1]["rows"],
        json!([[2]])
    );
    assert_eq!(
        items(&db, "pipes"),
        pairs(&[]),
        "nothing is visible before the commit"
    );
    store.rollback_input();
    assert_eq!(
        store
            .run(&json!({"query": "SELECT count(*) FROM items"}))
            .await
            .unwrap()["rows"],
        json!([[0]])
    );
    // The same, committed: all of it.
    store.begin_input().await.unwrap();
    store.run(&json!({"transaction": []})).await.unwrap();
    store.run(&tx).await.unwrap();
    store.run(&add("c", 3)).await.unwrap();
    store.commit_input(5).await.unwrap();
    assert_eq!(items(&db, "pipes"), pairs(&[("b", 2), ("c", 3)]));
    assert_eq!(store.applied_seq().await.unwrap(), Some(5));
    // A unit whose every request was refused before reaching the server commits nothing.
    store.begin_input().await.unwrap();
    assert!(store.run(&json!({"execute": "BEGIN"})).await.is_err());
    store.commit_input(6).await.unwrap();
    assert_eq!(store.applied_seq().await.unwrap(), Some(5));
}

#[tokio::test]
async fn postgres_set_up_races_and_refuses_a_privileged_role_of_the_actors_name() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    // Four actors set up on a fresh database at once: one creates `theater_host`, the others
    // wait for it or try again.
    let stores: Vec<_> = (0..4).map(|i| pg(&db, &format!("racer{i}"))).collect();
    let seqs = futures_util::future::join_all(stores.iter().map(|s| s.applied_seq())).await;
    for s in seqs {
        assert_eq!(s.unwrap(), None);
    }
    // A role of the actor's name that can do more than log in is never taken over.
    let greedy = pg(&db, "greedy");
    db.sql(&format!("CREATE ROLE \"{}\" CREATEDB", greedy.role()));
    let e = greedy.applied_seq().await.unwrap_err();
    assert!(
        e.message.contains("privileges an actor must not have"),
        "{e}"
    );
    db.sql(&format!("DROP ROLE \"{}\"", greedy.role()));
}

#[tokio::test]
async fn postgres_over_tls_checks_the_servers_certificate() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let cert = db.sql("SELECT current_setting('ssl'), current_setting('ssl_cert_file')");
    let (ssl, cert) = (cert[0][0].clone().unwrap(), cert[0][1].clone().unwrap());
    let Ok(pem) = std::fs::read(&cert) else {
        eprintln!("skipped: the server's certificate {cert} is not readable here (ssl = {ssl})");
        return;
    };
    if ssl != "on" {
        eprintln!("skipped: the server does not speak TLS (ssl = off)");
        return;
    }
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .unwrap();
    // The certificate names the server `localhost`.
    let url = format!(
        "{}?sslmode=require",
        db.url().replace("127.0.0.1", "localhost")
    );
    // Mozilla's roots alone do not vouch for it: refused, never sent in the clear.
    let unchecked = Postgres::new(PgServer::new(url.parse().unwrap(), 2), "tls", None);
    let e = unchecked
        .run(&json!({"query": "SELECT 1"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("certificate"), "{e}");
    // With its certificate among the roots: connected, over TLS.
    let server = PgServer::with_roots(url.parse().unwrap(), 2, certs).unwrap();
    let store = Postgres::new(server, "tls", None);
    let r = store
        .run(&json!({"query": "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"}))
        .await
        .unwrap();
    assert_eq!(r["rows"], json!([[true]]));
}

#[tokio::test]
async fn postgres_reads_a_password_secret_again_for_each_set_up_connection() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("pg.password");
    let server = PgServer::new(db.url().parse().unwrap(), 4);
    server.read_password_from(theater_db::PasswordSource::Secret {
        name: "PG_PASSWORD".into(),
        source: Some(theater_wasm::secrets::Source::File(file.clone())),
    });
    let store = Arc::new(Postgres::new(server, "keyed", None));
    let mut rt = start_clerk(store.clone(), &tmp.path().join("chain"))
        .await
        .unwrap();
    // The secret's file is missing: the set-up connection says which secret, and why.
    let (_, payload) = answers(&mut rt, json!([items_sql()])).await;
    let e = error_of(&payload[0]);
    assert!(
        e.contains("secret PG_PASSWORD") && e.contains("pg.password"),
        "{e}"
    );
    // Put in place (the server trusts loopback, so any value logs in): the next set-up
    // connection reads it, with no restart.
    theater_test_support::write_private(&file, "rotated-password\n");
    let (_, payload) = answers(&mut rt, json!([items_sql(), add("apples", 1)])).await;
    assert!(payload[0].get("error").is_none(), "{payload}");
    assert_eq!(items(&db, "keyed"), pairs(&[("apples", 1)]));
}
