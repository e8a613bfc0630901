//! # theater-db
//!
//! SQL for Theater actors: [`Sqlite`] implements [`theater_core::db::Database`] on an
//! embedded SQLite database (one file per actor). Every request and its answer are recorded
//! in the actor's chain ([`theater_core::db::run`]), so replay needs no database. An input's
//! writes are one transaction, committed once its entry is durable together with that
//! entry's seq (table `_theater_applied`), and rolled back if the input fails. Within it, a
//! `transaction` request is applied whole or not at all (a savepoint). Bad SQL, a violated
//! constraint or a wrong parameter is a clear error to the actor, and leaves the database as
//! it was before that request. A `query` may only read.
//!
//! ```
//! use serde_json::json;
//! use theater_core::db::Database;
//! use theater_db::Sqlite;
//!
//! let db = Sqlite::open_in_memory()?;
//! db.run(&json!({"execute": "CREATE TABLE t (x INTEGER)"}))?;
//! db.run(&json!({"execute": "INSERT INTO t VALUES (?1)", "params": [42]}))?;
//! let rows = db.run(&json!({"query": "SELECT x FROM t"}))?;
//! assert_eq!(rows, json!({"columns": ["x"], "rows": [[42]]}));
//! # Ok::<(), String>(())
//! ```

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{Connection, params_from_iter};
use serde_json::{Value, json};
use theater_core::db::Database;

/// An embedded SQLite database.
#[derive(Debug)]
pub struct Sqlite {
    conn: Mutex<Connection>,
    /// Set while an actor's SQL is being prepared: the authorizer then refuses what would
    /// break the input's transaction or the database's durability.
    guest: Arc<AtomicBool>,
}

/// What an actor's SQL may not do: control transactions (the host runs them), attach
/// databases, set pragmas, or touch the host's own table.
fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. }
        | AuthAction::Attach { .. }
        | AuthAction::Detach { .. }
        | AuthAction::Pragma {
            pragma_value: Some(_),
            ..
        } => Authorization::Deny,
        AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::DropTable { table_name }
            if table_name.eq_ignore_ascii_case(APPLIED) =>
        {
            Authorization::Deny
        }
        _ => Authorization::Allow,
    }
}

/// The table recording the last entry whose writes were committed.
const APPLIED: &str = "_theater_applied";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn to_sql(v: &Value) -> Result<Sql, String> {
    Ok(match v {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Sql::Integer(i),
            None => Sql::Real(n.as_f64().ok_or("a number SQLite cannot hold")?),
        },
        Value::String(s) => Sql::Text(s.clone()),
        Value::Object(o) if o.len() == 1 && o.contains_key("blob_hex") => {
            let h = o["blob_hex"].as_str().ok_or("blob_hex must be a string")?;
            Sql::Blob(unhex(h).ok_or("blob_hex is not hex")?)
        }
        other => {
            return Err(format!(
                "unsupported parameter {other} (use null, numbers, strings, booleans or {{\"blob_hex\": ...}})"
            ));
        }
    })
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => json!({"blob_hex": hex(b)}),
    }
}

fn params(request: &Value) -> Result<Vec<Sql>, String> {
    match request.get("params") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(to_sql).collect(),
        Some(other) => Err(format!("params must be an array, got {other}")),
    }
}

/// Runs one `query` or `execute` request on `conn`.
fn statement(conn: &Connection, request: &Value) -> Result<Value, String> {
    let err = |e: rusqlite::Error| e.to_string();
    if let Some(sql) = request.get("query").and_then(Value::as_str) {
        let mut stmt = conn.prepare(sql).map_err(err)?;
        if !stmt.readonly() {
            return Err(format!(
                "a query may only read; use {{\"execute\": ...}} to write ({sql})"
            ));
        }
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let n = columns.len();
        let mut rows = stmt
            .query(params_from_iter(params(request)?))
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let mut r = Vec::with_capacity(n);
            for i in 0..n {
                r.push(from_sql(row.get_ref(i).map_err(err)?));
            }
            out.push(Value::Array(r));
        }
        return Ok(json!({"columns": columns, "rows": out}));
    }
    if let Some(sql) = request.get("execute").and_then(Value::as_str) {
        let changes = conn
            .execute(sql, params_from_iter(params(request)?))
            .map_err(err)?;
        return Ok(json!({"changes": changes, "last_insert_rowid": conn.last_insert_rowid()}));
    }
    Err(format!(
        "expected {{\"query\": sql}}, {{\"execute\": sql}} or {{\"transaction\": [...]}}, got {request}"
    ))
}

impl Sqlite {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, String> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // Durable commits; readers never block the writer.
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.pragma_update(None, "synchronous", "FULL"))
            .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Self::with(conn).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A database in memory (for tests and benchmarks).
    pub fn open_in_memory() -> Result<Self, String> {
        Self::with(Connection::open_in_memory().map_err(|e| e.to_string())?)
    }

    fn with(conn: Connection) -> Result<Self, String> {
        let count = |sql: &str| -> Result<i64, String> {
            conn.query_row(sql, [APPLIED], |r| r.get(0))
                .map_err(|e| e.to_string())
        };
        let has_applied =
            count("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1")? > 0;
        let has_tables =
            count("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name != ?1")? > 0;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {APPLIED} (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)"
        ))
        .map_err(|e| e.to_string())?;
        if !has_applied && has_tables {
            // A database from before units were recorded: take everything as applied.
            conn.execute(
                &format!("INSERT INTO {APPLIED} (id, seq) VALUES (1, ?1)"),
                [i64::MAX],
            )
            .map_err(|e| e.to_string())?;
        }
        let guest = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&guest);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if flag.load(Ordering::Relaxed) {
                authorize(ctx)
            } else {
                Authorization::Allow
            }
        }));
        Ok(Sqlite {
            conn: Mutex::new(conn),
            guest,
        })
    }

    /// Runs an actor's statement with the authorizer's checks on.
    fn guest_statement(&self, conn: &Connection, request: &Value) -> Result<Value, String> {
        self.guest.store(true, Ordering::Relaxed);
        let r = statement(conn, request);
        self.guest.store(false, Ordering::Relaxed);
        r.map_err(|e| {
            if e.contains("not authorized") {
                format!("{e}: an actor's SQL may not begin, commit or roll back transactions (the host does), attach databases, set pragmas or change {APPLIED}")
            } else {
                e
            }
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, String> {
        self.conn
            .lock()
            .map_err(|_| "the database is unusable after a panic".to_string())
    }
}

impl Database for Sqlite {
    fn run(&self, request: &Value) -> Result<Value, String> {
        let mut conn = self.lock()?;
        let Some(list) = request.get("transaction") else {
            return self.guest_statement(&conn, request);
        };
        let list = list
            .as_array()
            .ok_or("transaction must be an array of requests")?;
        // Dropping it without commit rolls it back: all or nothing. A savepoint nests inside
        // an input's open transaction.
        let tx = conn.savepoint().map_err(|e| e.to_string())?;
        let mut results = Vec::with_capacity(list.len());
        for (i, r) in list.iter().enumerate() {
            let answer = self
                .guest_statement(&tx, r)
                .map_err(|e| format!("statement {i} failed, nothing was applied: {e}"))?;
            results.push(answer);
        }
        tx.commit().map_err(|e| e.to_string())?;
        Ok(json!({"results": results}))
    }

    fn begin_input(&self) -> Result<(), String> {
        let conn = self.lock()?;
        if !conn.is_autocommit() {
            return Err("a transaction is already open on this database".into());
        }
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| format!("cannot begin the input's transaction: {e}"))
    }

    fn commit_input(&self, seq: u64) -> Result<(), String> {
        let conn = self.lock()?;
        if conn.is_autocommit() {
            return Err(
                "the input's transaction was rolled back by SQLite before it could commit".into(),
            );
        }
        let seq = i64::try_from(seq).map_err(|e| e.to_string())?;
        conn.execute(
            &format!("INSERT OR REPLACE INTO {APPLIED} (id, seq) VALUES (1, ?1)"),
            [seq],
        )
        .and_then(|_| conn.execute_batch("COMMIT"))
        .map_err(|e| format!("cannot commit the input's transaction: {e}"))
    }

    fn rollback_input(&self) {
        if let Ok(conn) = self.lock()
            && !conn.is_autocommit()
            && let Err(e) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!("cannot roll back an input's transaction: {e}");
        }
    }

    fn applied_seq(&self) -> Result<Option<u64>, String> {
        let conn = self.lock()?;
        let seq: Option<i64> = conn
            .query_row(
                &format!("SELECT seq FROM {APPLIED} WHERE id = 1"),
                [],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e.to_string()),
            })?;
        Ok(seq.and_then(|s| u64::try_from(s).ok()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn values_round_trip_and_errors_are_clear() {
        let db = Sqlite::open_in_memory().unwrap();
        db.run(&json!({"execute": "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)"}))
            .unwrap();
        let row = json!([7, 1.5, "x", {"blob_hex": "00ff10"}, null]);
        let r = db
            .run(&json!({"execute": "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)", "params": row}))
            .unwrap();
        assert_eq!(r, json!({"changes": 1, "last_insert_rowid": 1}));
        let q = db.run(&json!({"query": "SELECT * FROM t"})).unwrap();
        assert_eq!(q["columns"], json!(["i", "r", "s", "b", "n"]));
        assert_eq!(q["rows"], json!([row]));
        let e = db.run(&json!({"query": "SELEC nonsense"})).unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        let e = db
            .run(&json!({"execute": "INSERT INTO t VALUES (?1)", "params": [[1]]}))
            .unwrap_err();
        assert!(e.contains("unsupported parameter"), "{e}");
        assert!(db.run(&json!({"nope": 1})).is_err());
    }

    #[test]
    fn a_transaction_is_all_or_nothing() {
        let db = Sqlite::open_in_memory().unwrap();
        db.run(&json!({"execute": "CREATE TABLE a (id INTEGER PRIMARY KEY, qty INTEGER CHECK (qty >= 0))"}))
            .unwrap();
        db.run(&json!({"execute": "INSERT INTO a VALUES (1, 5), (2, 0)"}))
            .unwrap();
        let moved = |n: i64| {
            json!({"transaction": [
                {"execute": "UPDATE a SET qty = qty + ?1 WHERE id = 2", "params": [n]},
                {"execute": "UPDATE a SET qty = qty - ?1 WHERE id = 1", "params": [n]},
            ]})
        };
        db.run(&moved(3)).unwrap();
        let e = db.run(&moved(10)).unwrap_err();
        assert!(e.contains("statement 1 failed, nothing was applied"), "{e}");
        assert!(e.contains("CHECK constraint"), "{e}");
        let q = db
            .run(&json!({"query": "SELECT qty FROM a ORDER BY id"}))
            .unwrap();
        assert_eq!(q["rows"], json!([[2], [3]]));
    }
}
