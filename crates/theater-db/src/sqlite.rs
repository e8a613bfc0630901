//! [`Sqlite`]: the [`Database`] of one actor, an embedded SQLite file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::unit::{Limits, hex, unhex};
use crate::{Database, DbError};
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{Connection, ErrorCode, params_from_iter};
use serde_json::{Value, json};

/// How long one request may run by default before it is interrupted.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(5);
/// How many bytes of rows one request may return by default.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 64 << 20;

/// An embedded SQLite database.
#[derive(Debug)]
pub struct Sqlite {
    inner: Mutex<Inner>,
    /// Set while an actor's SQL is being prepared: the authorizer then refuses what would
    /// break the input's transaction or the database's durability.
    guest: Arc<AtomicBool>,
    /// When the request in progress must stop, in nanoseconds since `epoch` (`u64::MAX`:
    /// never); read by the progress handler.
    deadline: Arc<AtomicU64>,
    epoch: Instant,
    limits: Limits,
}

#[derive(Debug)]
struct Inner {
    conn: Connection,
    /// Whether an input's unit is open (from `begin_input` to its commit or rollback).
    unit: bool,
}

/// What an actor's SQL may not do: control transactions (the host runs them), attach
/// databases, set pragmas, or touch the host's own tables (nor shadow or alter them).
fn authorize(ctx: AuthContext<'_>) -> Authorization {
    let host_owned =
        |name: &str| name.eq_ignore_ascii_case(APPLIED) || name.eq_ignore_ascii_case(ROWID_RESET);
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
        | AuthAction::DropTempTable { table_name }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::CreateTable { table_name }
        | AuthAction::CreateTempTable { table_name }
        | AuthAction::CreateVtable { table_name, .. }
            if host_owned(table_name) =>
        {
            Authorization::Deny
        }
        AuthAction::CreateTrigger {
            trigger_name,
            table_name,
        }
        | AuthAction::CreateTempTrigger {
            trigger_name,
            table_name,
        }
        | AuthAction::CreateIndex {
            index_name: trigger_name,
            table_name,
        }
        | AuthAction::CreateTempIndex {
            index_name: trigger_name,
            table_name,
        } if host_owned(trigger_name) || host_owned(table_name) => Authorization::Deny,
        AuthAction::CreateView { view_name } | AuthAction::CreateTempView { view_name }
            if host_owned(view_name) =>
        {
            Authorization::Deny
        }
        _ => Authorization::Allow,
    }
}

/// The table recording the last entry whose writes were committed.
const APPLIED: &str = "_theater_applied";

/// A temporary table the host inserts into before each `execute`, so the connection's
/// last insert rowid is 0 and the answer depends on the statement only, not on what the
/// connection ran before.
const ROWID_RESET: &str = "_theater_rowid";

/// What a request answers once SQLite rolled back the input's transaction itself.
const UNIT_LOST: &str = "SQLite rolled back this input's transaction (every write of the input so far is undone, and nothing more can run until the input ends)";

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

/// A value as JSON, and about how many bytes it takes.
fn from_sql(v: ValueRef<'_>) -> (Value, usize) {
    match v {
        ValueRef::Null => (Value::Null, 4),
        ValueRef::Integer(i) => (json!(i), 8),
        ValueRef::Real(f) => (json!(f), 8),
        ValueRef::Text(t) => (json!(String::from_utf8_lossy(t)), t.len()),
        ValueRef::Blob(b) => (json!({"blob_hex": hex(b)}), 2 * b.len()),
    }
}

fn params(request: &Value) -> Result<Vec<Sql>, String> {
    match request.get("params") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(to_sql).collect(),
        Some(other) => Err(format!("params must be an array, got {other}")),
    }
}

impl Limits {
    /// An error as the actor sees it: an interrupt names the time limit.
    fn error(&self, e: rusqlite::Error) -> DbError {
        if e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) {
            DbError::limit(format!(
                "query interrupted after {} ms (the database's time limit per request)",
                self.time.as_millis()
            ))
        } else {
            DbError::refused(e.to_string())
        }
    }
}

/// Runs `stmt` and collects its rows within `budget` bytes: (columns, rows).
fn rows(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: Vec<Sql>,
    limits: &Limits,
    budget: &mut usize,
) -> Result<(Vec<String>, Vec<Value>), DbError> {
    let err = |e: rusqlite::Error| limits.error(e);
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let n = columns.len();
    let mut rows = stmt.query(params_from_iter(params)).map_err(err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(err)? {
        let mut r = Vec::with_capacity(n);
        for i in 0..n {
            let (v, size) = from_sql(row.get_ref(i).map_err(err)?);
            *budget = budget.checked_sub(size).ok_or_else(|| {
                DbError::limit(format!(
                    "result over {} bytes (the database's limit per request)",
                    limits.result_bytes
                ))
            })?;
            r.push(v);
        }
        out.push(Value::Array(r));
    }
    Ok((columns, out))
}

/// Runs one `query` or `execute` request on `conn`; `budget` is how many bytes of rows it
/// may still return. An `execute` expects the connection's last insert rowid to be 0.
fn statement(
    conn: &Connection,
    request: &Value,
    limits: &Limits,
    budget: &mut usize,
) -> Result<Value, DbError> {
    let err = |e: rusqlite::Error| limits.error(e);
    if let Some(sql) = request.get("query").and_then(Value::as_str) {
        let mut stmt = conn.prepare_cached(sql).map_err(err)?;
        if !stmt.readonly() {
            return Err(DbError::refused(format!(
                "a query may only read; use {{\"execute\": ...}} to write ({sql})"
            )));
        }
        let (columns, out) = rows(&mut stmt, params(request)?, limits, budget)?;
        return Ok(json!({"columns": columns, "rows": out}));
    }
    if let Some(sql) = request.get("execute").and_then(Value::as_str) {
        let params = params(request)?;
        let before = conn.total_changes();
        let mut stmt = conn.prepare_cached(sql).map_err(err)?;
        // A statement with RETURNING answers its rows too.
        let (changes, returned) = if stmt.column_count() > 0 {
            let (columns, out) = rows(&mut stmt, params, limits, budget)?;
            (conn.changes(), Some((columns, out)))
        } else {
            let n = stmt.execute(params_from_iter(params)).map_err(err)?;
            (u64::try_from(n).unwrap_or(u64::MAX), None)
        };
        drop(stmt);
        // Counts from the connection's history are not the statement's: a statement that
        // changed no row (DDL, say) changed 0, and only one that inserted has a rowid.
        let changes = if conn.total_changes() == before {
            0
        } else {
            changes
        };
        let mut answer = json!({"changes": changes});
        if let Some((columns, out)) = returned {
            answer["columns"] = json!(columns);
            answer["rows"] = Value::Array(out);
        }
        if let rowid @ 1.. = conn.last_insert_rowid() {
            answer["last_insert_rowid"] = json!(rowid);
        }
        return Ok(answer);
    }
    Err(DbError::refused(format!(
        "expected {{\"query\": sql}}, {{\"execute\": sql}} or {{\"transaction\": [...]}}, got {request}"
    )))
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

    /// Interrupts a request that runs longer than `limit` (default
    /// [`DEFAULT_TIME_LIMIT`]); the actor is answered "query interrupted after N ms".
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.limits.time = limit;
        self
    }

    /// Refuses a request whose rows take more than `bytes` (default
    /// [`DEFAULT_MAX_RESULT_BYTES`]); the actor is answered "result over N bytes".
    pub fn with_max_result_bytes(mut self, bytes: usize) -> Self {
        self.limits.result_bytes = bytes;
        self
    }

    fn with(conn: Connection) -> Result<Self, String> {
        let count = |sql: &str| -> Result<i64, String> {
            conn.query_row(sql, [APPLIED], |r| r.get(0))
                .map_err(|e| e.to_string())
        };
        let has_applied =
            count("SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?1")?
                > 0;
        let has_tables =
            count("SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name != ?1")?
                > 0;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS main.{APPLIED} (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
             CREATE TEMP TABLE IF NOT EXISTS {ROWID_RESET} (x);"
        ))
        .map_err(|e| e.to_string())?;
        if !has_applied && has_tables {
            // A database from before units were recorded: take everything as applied.
            conn.execute(
                &format!("INSERT INTO main.{APPLIED} (id, seq) VALUES (1, ?1)"),
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
        let epoch = Instant::now();
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let due = Arc::clone(&deadline);
        conn.progress_handler(
            1000,
            Some(move || nanos_since(epoch) > due.load(Ordering::Relaxed)),
        );
        Ok(Sqlite {
            inner: Mutex::new(Inner { conn, unit: false }),
            guest,
            deadline,
            epoch,
            limits: Limits {
                time: DEFAULT_TIME_LIMIT,
                result_bytes: DEFAULT_MAX_RESULT_BYTES,
            },
        })
    }

    /// Runs an actor's statement with the authorizer's checks on.
    fn guest_statement(
        &self,
        conn: &Connection,
        request: &Value,
        budget: &mut usize,
    ) -> Result<Value, DbError> {
        if request.get("execute").is_some() {
            // (The host's statement: prepared before the authorizer's checks are on.)
            // Not cached: the cache is shared with the actor's SQL, which must never be handed
            // a statement prepared while the authorizer was off.
            conn.prepare(&format!(
                "INSERT OR REPLACE INTO temp.{ROWID_RESET} (rowid) VALUES (0)"
            ))
            .and_then(|mut s| s.execute([]))
            .map_err(|e| DbError::unavailable(e.to_string()))?;
        }
        self.guest.store(true, Ordering::Relaxed);
        let r = statement(conn, request, &self.limits, budget);
        self.guest.store(false, Ordering::Relaxed);
        r.map_err(|e| {
            if e.message.contains("not authorized") {
                e.context_after(&format!(": an actor's SQL may not begin, commit or roll back transactions (the host does), attach databases, set pragmas, or create, change or shadow {APPLIED}"))
            } else {
                e
            }
        })
    }

    /// Runs one request (a statement, or a transaction of them), its rows within `budget`.
    fn request(
        &self,
        conn: &mut Connection,
        request: &Value,
        mut budget: usize,
    ) -> Result<Value, DbError> {
        let Some(list) = request.get("transaction") else {
            return self.guest_statement(conn, request, &mut budget);
        };
        let list = list
            .as_array()
            .ok_or("transaction must be an array of requests")?;
        // Dropping it without commit rolls it back: all or nothing. A savepoint nests inside
        // an input's open transaction.
        let tx = conn
            .savepoint()
            .map_err(|e| DbError::unavailable(e.to_string()))?;
        let mut results = Vec::with_capacity(list.len());
        for (i, r) in list.iter().enumerate() {
            let answer = self
                .guest_statement(&tx, r, &mut budget)
                .map_err(|e| e.context(&format!("statement {i} failed, nothing was applied")))?;
            results.push(answer);
        }
        tx.commit()
            .map_err(|e| DbError::unavailable(e.to_string()))?;
        Ok(json!({"results": results}))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, DbError> {
        self.inner
            .lock()
            .map_err(|_| DbError::unavailable("the database is unusable after a panic"))
    }
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Inner {
    /// Whether SQLite ended the open unit's transaction by itself (a conflict resolved by
    /// `OR ROLLBACK`, `RAISE(ROLLBACK)`, a full disk, an I/O error...).
    fn lost(&self) -> bool {
        self.unit && self.conn.is_autocommit()
    }
}

impl Sqlite {
    /// Runs `request`, within the time and size limits if `limited`.
    fn run_limited(&self, request: &Value, limited: bool) -> Result<Value, DbError> {
        let mut inner = self.lock()?;
        // Once the unit is lost a write would autocommit before the entry is durable.
        if inner.lost() {
            return Err(DbError::unit_lost(UNIT_LOST));
        }
        let budget = if limited {
            let limit = u64::try_from(self.limits.time.as_nanos()).unwrap_or(u64::MAX);
            self.deadline.store(
                nanos_since(self.epoch).saturating_add(limit),
                Ordering::Relaxed,
            );
            self.limits.result_bytes
        } else {
            usize::MAX
        };
        let answer = self.request(&mut inner.conn, request, budget);
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        match answer {
            _ if inner.lost() => Err(DbError::unit_lost(match answer {
                Err(e) => format!("{UNIT_LOST}: {e}"),
                Ok(_) => UNIT_LOST.into(),
            })),
            answer => answer,
        }
    }
}

/// The database's own calls, synchronous (each takes the connection's lock): what the
/// [`Database`] implementation runs. See that trait for what each does.
impl Sqlite {
    /// Runs `request` within the time and size limits.
    pub fn run(&self, request: &Value) -> Result<Value, DbError> {
        self.run_limited(request, true)
    }

    /// Runs `request` without the limits (a repair).
    pub fn rerun(&self, request: &Value) -> Result<Value, DbError> {
        self.run_limited(request, false)
    }

    /// Opens an input's unit.
    pub fn begin_input(&self) -> Result<(), DbError> {
        let mut inner = self.lock()?;
        if !inner.conn.is_autocommit() {
            return Err(DbError::unavailable(
                "a transaction is already open on this database",
            ));
        }
        inner.conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| {
            DbError::unavailable(format!("cannot begin the input's transaction: {e}"))
        })?;
        inner.unit = true;
        Ok(())
    }

    /// Commits the open unit with `seq`.
    pub fn commit_input(&self, seq: u64) -> Result<(), DbError> {
        let mut inner = self.lock()?;
        if !inner.unit {
            return Err(DbError::unavailable(
                "no input's transaction is open to commit",
            ));
        }
        let lost = inner.lost();
        inner.unit = false;
        if lost {
            // Nothing to commit, as the actor was told (its requests answered that): the
            // entry stands, and a repair applies nothing of it either.
            tracing::warn!(seq, "{UNIT_LOST}: the entry's unit committed nothing");
            return Ok(());
        }
        let seq = i64::try_from(seq).map_err(|e| DbError::unavailable(e.to_string()))?;
        let conn = &inner.conn;
        conn.execute(
            &format!("INSERT OR REPLACE INTO main.{APPLIED} (id, seq) VALUES (1, ?1)"),
            [seq],
        )
        .and_then(|_| conn.execute_batch("COMMIT"))
        .map_err(|e| DbError::unavailable(format!("cannot commit the input's transaction: {e}")))
    }

    /// Rolls the open unit back.
    pub fn rollback_input(&self) {
        if let Ok(mut inner) = self.lock() {
            inner.unit = false;
            if !inner.conn.is_autocommit()
                && let Err(e) = inner.conn.execute_batch("ROLLBACK")
            {
                tracing::error!("cannot roll back an input's transaction: {e}");
            }
        }
    }

    /// Whether SQLite ended the open unit by itself.
    pub fn unit_lost(&self) -> bool {
        self.lock().is_ok_and(|inner| inner.lost())
    }

    /// The seq of the last entry whose unit was committed.
    pub fn applied_seq(&self) -> Result<Option<u64>, DbError> {
        let inner = self.lock()?;
        let seq: Option<i64> = inner
            .conn
            .query_row(
                &format!("SELECT seq FROM main.{APPLIED} WHERE id = 1"),
                [],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(DbError::unavailable(e.to_string())),
            })?;
        Ok(seq.and_then(|s| u64::try_from(s).ok()))
    }
}

// SQLite answers at once from a local file: each call runs on the caller's task, as the
// actor's other work does (a request is bounded by the time limit).
#[async_trait::async_trait]
impl Database for Sqlite {
    async fn run(&self, request: &Value) -> Result<Value, DbError> {
        Sqlite::run(self, request)
    }

    async fn rerun(&self, request: &Value) -> Result<Value, DbError> {
        Sqlite::rerun(self, request)
    }

    async fn begin_input(&self) -> Result<(), DbError> {
        Sqlite::begin_input(self)
    }

    async fn commit_input(&self, seq: u64) -> Result<(), DbError> {
        Sqlite::commit_input(self, seq)
    }

    fn rollback_input(&self) {
        Sqlite::rollback_input(self);
    }

    fn unit_lost(&self) -> bool {
        Sqlite::unit_lost(self)
    }

    async fn applied_seq(&self) -> Result<Option<u64>, DbError> {
        Sqlite::applied_seq(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn errors_carry_their_kind() {
        let db = Sqlite::open_in_memory().unwrap().with_max_result_bytes(64);
        db.run(&json!({"execute": "CREATE TABLE t (s TEXT)"}))
            .unwrap();
        db.run(&json!({"execute": "INSERT INTO t VALUES (?1)", "params": ["x".repeat(100)]}))
            .unwrap();
        let big = db.run(&json!({"query": "SELECT s FROM t"})).unwrap_err();
        assert_eq!(big.kind, crate::DbErrorKind::Limit, "{big}");
        assert!(big.message.contains("result over 64 bytes"), "{big}");
        let bad = db.run(&json!({"query": "SELEKT"})).unwrap_err();
        assert_eq!(bad.kind, crate::DbErrorKind::Refused, "{bad}");
        let write = db.run(&json!({"query": "DELETE FROM t"})).unwrap_err();
        assert_eq!(write.kind, crate::DbErrorKind::Refused, "{write}");
        db.begin_input().unwrap();
        let twice = db.begin_input().unwrap_err();
        assert_eq!(twice.kind, crate::DbErrorKind::Unavailable, "{twice}");
        db.rollback_input();
    }

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
        assert!(e.message.contains("syntax error"), "{e}");
        assert_eq!(e.kind, crate::DbErrorKind::Refused);
        let e = db
            .run(&json!({"execute": "INSERT INTO t VALUES (?1)", "params": [[1]]}))
            .unwrap_err();
        assert!(e.message.contains("unsupported parameter"), "{e}");
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
        assert!(
            e.message
                .contains("statement 1 failed, nothing was applied"),
            "{e}"
        );
        assert!(e.message.contains("CHECK constraint"), "{e}");
        let q = db
            .run(&json!({"query": "SELECT qty FROM a ORDER BY id"}))
            .unwrap();
        assert_eq!(q["rows"], json!([[2], [3]]));
    }

    #[test]
    fn an_answer_depends_on_its_statement_not_on_the_connections_history() {
        let db = Sqlite::open_in_memory().unwrap();
        db.run(&json!({"execute": "CREATE TABLE t (x INTEGER)"}))
            .unwrap();
        let insert = json!({"execute": "INSERT INTO t VALUES (1), (2)"});
        assert_eq!(
            db.run(&insert).unwrap(),
            json!({"changes": 2, "last_insert_rowid": 2})
        );
        // Neither the rowid nor the count of the INSERT leaks into what follows.
        let update = json!({"execute": "UPDATE t SET x = x + 1"});
        assert_eq!(db.run(&update).unwrap(), json!({"changes": 2}));
        let ddl = json!({"execute": "CREATE TABLE u (y)"});
        assert_eq!(db.run(&ddl).unwrap(), json!({"changes": 0}));
        // The host's own writes (the applied marker, rowid 1) leak into none either.
        db.begin_input().unwrap();
        db.commit_input(7).unwrap();
        let ignored = json!({"execute": "INSERT INTO u SELECT 1 WHERE 0"});
        assert_eq!(db.run(&ignored).unwrap(), json!({"changes": 0}));
        let first = json!({"execute": "INSERT INTO u VALUES (1)"});
        assert_eq!(
            db.run(&first).unwrap(),
            json!({"changes": 1, "last_insert_rowid": 1})
        );
    }

    #[test]
    fn an_actor_cannot_alter_shadow_or_hook_the_hosts_tables() {
        let db = Sqlite::open_in_memory().unwrap();
        db.run(&json!({"execute": "CREATE TABLE t (x)"})).unwrap();
        for sql in [
            "ALTER TABLE _theater_applied ADD COLUMN y",
            "ALTER TABLE _theater_applied RENAME TO gone",
            "CREATE TEMP TABLE _theater_applied (id, seq)",
            "CREATE TABLE _Theater_Applied (id, seq)",
            "CREATE TEMP VIEW _theater_applied AS SELECT 1 AS id, 0 AS seq",
            "CREATE VIEW _theater_applied AS SELECT 1",
            "CREATE TRIGGER hook AFTER UPDATE ON _theater_applied BEGIN DELETE FROM t; END",
            "CREATE TEMP TRIGGER hook AFTER INSERT ON _theater_applied BEGIN DELETE FROM t; END",
            "CREATE INDEX i ON _theater_applied (seq)",
            "DROP TABLE _theater_applied",
            "DROP TABLE temp._theater_rowid",
            "INSERT INTO temp._theater_rowid (rowid) VALUES (9)",
        ] {
            let e = db.run(&json!({"execute": sql})).unwrap_err();
            assert!(
                e.message.contains("not authorized") && e.message.contains("_theater_applied"),
                "{sql}: {e}"
            );
        }
        db.begin_input().unwrap();
        db.commit_input(3).unwrap();
        assert_eq!(db.applied_seq().unwrap(), Some(3));
    }
}
