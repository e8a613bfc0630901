//! An input's database unit: [`run`] records each request and opens the unit at the input's
//! first write; it is committed with the entry, and [`reapply`]d after a crash in between.
//!
//! Requests and answers:
//!
//! | request | answer |
//! |---|---|
//! | `{"query": sql, "params": [...]}` | `{"columns": [...], "rows": [[...], ...]}` |
//! | `{"execute": sql, "params": [...]}` | `{"changes": n}`, with `"columns"` and `"rows"` if it returns rows (`RETURNING`), and on SQLite `"last_insert_rowid": id` if it inserted a row |
//! | `{"transaction": [request, ...]}` | `{"results": [answer, ...]}`, all applied or none |
//!
//! Values are JSON: null, numbers, strings, booleans (as 0/1 on SQLite), and blobs as
//! `{"blob_hex": "..."}`; PostgreSQL's types map as `docs/DATABASES.md` shows.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use theater_chain::{Entry, Event};

use theater_core::{HostCallError, HostCalls};

/// Name of a recorded database call: request as above, result `{"ok": answer}` or
/// `{"error": message}` (with `"unit_lost": true` once the database ended the input's unit
/// by itself).
pub const DB_RUN: &str = "theater:db/run";

/// The error an actor granted no database gets (recorded like any answer).
pub const NOT_GRANTED: &str =
    "no database is granted to this actor (add [interfaces.db] to its manifest)";

/// Why a database request or a unit operation failed: its kind is data, its message what
/// the actor is told (recorded as `{"error": message}`, with `"unit_lost": true` for
/// [`DbErrorKind::UnitLost`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    /// What kind of failure.
    pub kind: DbErrorKind,
    /// What the actor sees.
    pub message: String,
}

/// The kinds of [`DbError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// The request is wrong: bad SQL, a violated constraint, a bad parameter, a write in a
    /// query. Nothing of it was applied.
    Refused,
    /// It ran into the time or size limit of a request.
    Limit,
    /// The database ended the input's unit by itself: every write of the input is undone.
    UnitLost,
    /// The database itself failed (it cannot be reached, a lock, I/O).
    Unavailable,
}

impl DbError {
    fn of(kind: DbErrorKind, message: impl Into<String>) -> Self {
        DbError {
            kind,
            message: message.into(),
        }
    }

    /// A refused request.
    pub fn refused(message: impl Into<String>) -> Self {
        DbError::of(DbErrorKind::Refused, message)
    }

    /// A limit reached.
    pub fn limit(message: impl Into<String>) -> Self {
        DbError::of(DbErrorKind::Limit, message)
    }

    /// A unit lost.
    pub fn unit_lost(message: impl Into<String>) -> Self {
        DbError::of(DbErrorKind::UnitLost, message)
    }

    /// The database failing.
    pub fn unavailable(message: impl Into<String>) -> Self {
        DbError::of(DbErrorKind::Unavailable, message)
    }

    /// The same error, its message prefixed with `what: `.
    pub fn context(self, what: &str) -> Self {
        DbError::of(self.kind, format!("{what}: {}", self.message))
    }

    /// The same error, `more` appended to its message.
    pub fn context_after(self, more: &str) -> Self {
        DbError::of(self.kind, format!("{}{more}", self.message))
    }
}

impl From<String> for DbError {
    fn from(message: String) -> Self {
        DbError::refused(message)
    }
}

impl From<&str> for DbError {
    fn from(message: &str) -> Self {
        DbError::refused(message)
    }
}

/// A database an actor may use. Asynchronous, so a server database (PostgreSQL) answers
/// without holding the actor's thread; an embedded one ([`crate::Sqlite`]) answers at once.
#[async_trait::async_trait]
pub trait Database: Send + Sync + std::fmt::Debug {
    /// Runs `request`; an error says what is wrong (bad SQL, a constraint, ...) and means
    /// nothing of it was applied.
    async fn run(&self, request: &Value) -> Result<Value, DbError>;

    /// Runs `request` again while repairing a lost commit ([`reapply`]): without the limits
    /// a live request has (it finished within them once; a cold cache must not make the
    /// repair fail). The default is [`Database::run`].
    async fn rerun(&self, request: &Value) -> Result<Value, DbError> {
        self.run(request).await
    }

    /// Starts the unit of one input, before its first write: until
    /// [`Database::commit_input`] or [`Database::rollback_input`], requests run in one
    /// transaction. The default runs each request on its own.
    async fn begin_input(&self) -> Result<(), DbError> {
        Ok(())
    }

    /// Commits the input's unit, recording `seq` (the input's entry) as the last applied,
    /// atomically with it.
    async fn commit_input(&self, _seq: u64) -> Result<(), DbError> {
        Ok(())
    }

    /// Rolls back the input's unit. Synchronous (it runs when a failed input's unit is
    /// dropped): a server database marks the unit and rolls it back before its next request.
    fn rollback_input(&self) {}

    /// Whether the database ended the open unit by itself (its writes so far are undone and
    /// it refuses further requests until the input ends). The default never does.
    fn unit_lost(&self) -> bool {
        false
    }

    /// The seq of the last entry whose unit was committed, if the database records it.
    async fn applied_seq(&self) -> Result<Option<u64>, DbError> {
        Ok(None)
    }
}

/// What a recorded `db.run` answered: `{"ok": answer}`, or `{"error": message}` with
/// `"unit_lost": true` once the database ended the input's unit by itself. (The request is
/// the SQL request itself, as the actor gave it.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RunAnswer {
    /// Refused: bad SQL, a constraint, a limit, not granted...
    Refused {
        /// What the actor was told.
        error: String,
        /// Whether the input's unit was lost (its writes so far undone).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unit_lost: bool,
    },
    /// The answer.
    Ok {
        /// Rows, or the changes made.
        ok: Value,
    },
}

/// What one request may use (both backends).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// How long it may run.
    pub(crate) time: std::time::Duration,
    /// How many bytes of rows it may return.
    pub(crate) result_bytes: usize,
}

/// Bytes as lower-case hex: how a blob is written in a request or an answer
/// (`{"blob_hex": ...}`), on both backends.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of `s`, if it is hex.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether the input being handled opened its unit (kept in [`HostCalls::scratch`]).
#[derive(Default)]
struct UnitOpen(bool);

/// The open unit of one input: committed by the runtime once the entry is durable, rolled
/// back if dropped first (the input failed).
struct Unit {
    db: Arc<dyn Database>,
    done: std::sync::atomic::AtomicBool,
}

impl Drop for Unit {
    fn drop(&mut self) {
        if !self.done.load(std::sync::atomic::Ordering::Relaxed) {
            self.db.rollback_input();
        }
    }
}

/// Runs `request` on `db`, recorded in the input being handled, within the input's unit. In
/// replay the recorded answer is returned and `db` is not touched (it may be `None`).
pub async fn run(
    db: Option<&Arc<dyn Database>>,
    host: &mut HostCalls,
    request: Value,
) -> Result<Result<Value, String>, HostCallError> {
    // Reads need no unit (an input that only reads commits nothing); the first write opens it.
    let writes = request.get("query").is_none();
    let live = match db {
        _ if host.is_replaying() => None,
        None => Some(RunAnswer::Refused {
            error: NOT_GRANTED.into(),
            unit_lost: false,
        }),
        Some(db) => Some({
            let begun = if writes && !host.peek::<UnitOpen>().is_some_and(|o| o.0) {
                begin(db, host).await
            } else {
                Ok(())
            };
            let answer = match begun {
                Ok(()) => db.run(&request).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(ok) => RunAnswer::Ok { ok },
                Err(e) => RunAnswer::Refused {
                    unit_lost: e.kind == DbErrorKind::UnitLost || db.unit_lost(),
                    error: e.message,
                },
            }
        }),
    };
    // Every answer is recorded, a failure to begin the unit included.
    let answer = host.call_typed(DB_RUN, &request, move || {
        live.unwrap_or(RunAnswer::Refused {
            error: "replayed".into(),
            unit_lost: false,
        })
    })?;
    Ok(match answer {
        RunAnswer::Ok { ok } => Ok(ok),
        RunAnswer::Refused { error, .. } => Err(error),
    })
}

/// Opens the input's unit on `db`, to be committed with the entry (or rolled back if the
/// input fails).
async fn begin(db: &Arc<dyn Database>, host: &mut HostCalls) -> Result<(), DbError> {
    db.begin_input().await?;
    host.scratch::<UnitOpen>().0 = true;
    let unit = Unit {
        db: Arc::clone(db),
        done: std::sync::atomic::AtomicBool::new(false),
    };
    host.on_commit_async(move |seq| async move {
        let committed = unit.db.commit_input(seq).await;
        // A failed commit is rolled back (by the drop), never left open for the next input.
        unit.done
            .store(committed.is_ok(), std::sync::atomic::Ordering::Relaxed);
        committed.map_err(|e| e.message)
    });
    Ok(())
}

/// Applies again the unit of `entry` (the chain's last entry) if `db` has not committed it:
/// its recorded requests are run again in order, each answer must match the recorded one (or
/// the database does not match the chain; see [`same_answer`]), and the unit is committed
/// with `entry`'s seq. A unit the database lost live is not applied (the actor was told its
/// writes were undone). Returns whether anything was applied.
pub async fn reapply(db: &dyn Database, entry: &Entry) -> Result<bool, String> {
    if !matches!(
        entry.event(),
        Event::Input { .. } | Event::Read { .. } | Event::Init { .. }
    ) {
        return Ok(false);
    }
    // Only requests that succeeded changed anything (a failed one was undone alone), and only
    // an entry with a successful write had a unit to commit.
    let answers: Vec<(&Value, RunAnswer)> = entry
        .host_calls()
        .iter()
        .filter(|c| c.name == DB_RUN)
        .map(|c| {
            serde_json::from_value::<RunAnswer>(c.result.json.clone())
                .map(|a| (&c.request.json, a))
                .map_err(|_| format!("a recorded {DB_RUN} of entry {} is malformed", entry.seq()))
        })
        .collect::<Result<_, _>>()?;
    let done: Vec<(&Value, &Value)> = answers
        .iter()
        .filter_map(|(request, answer)| match answer {
            RunAnswer::Ok { ok } => Some((*request, ok)),
            RunAnswer::Refused { .. } => None,
        })
        .collect();
    let wrote = done
        .iter()
        .any(|(request, _)| request.get("query").is_none());
    let lost = answers.iter().any(|(_, a)| {
        matches!(
            a,
            RunAnswer::Refused {
                unit_lost: true,
                ..
            }
        )
    });
    if !wrote || lost {
        return Ok(false);
    }
    let applied_seq = db.applied_seq().await.map_err(|e| e.message)?;
    if applied_seq.is_some_and(|s| s >= entry.seq()) {
        return Ok(false);
    }
    db.begin_input().await.map_err(|e| e.message)?;
    let applied = async {
        for (i, (request, then)) in done.iter().enumerate() {
            let again = db.rerun(request).await.map_err(|e| e.message);
            let matches = match &again {
                Ok(again) => same_answer(request, then, again),
                Err(_) => false,
            };
            if !matches {
                return Err(format!(
                    "the database does not match the chain: request {i} of entry {} answers {again:?} now, {{\"ok\": {then}}} then",
                    entry.seq(),
                ));
            }
        }
        db.commit_input(entry.seq()).await.map_err(|e| e.message)
    }
    .await;
    if applied.is_err() {
        db.rollback_input();
    }
    applied.map(|()| true)
}

/// Whether `again`, the answer to `request` now, matches `then`, the recorded one, in what
/// is a function of the request and the database: rows, and the changes and inserted rowid
/// of an `execute`. Older hosts recorded counts left over from earlier statements (a rowid
/// for an `UPDATE`, a count for DDL), so a rowid is compared only where one is answered now,
/// and the count only of statements that change rows.
pub fn same_answer(request: &Value, then: &Value, again: &Value) -> bool {
    if let Some(list) = request.get("transaction").and_then(Value::as_array) {
        let (Some(t), Some(a)) = (
            then.get("results").and_then(Value::as_array),
            again.get("results").and_then(Value::as_array),
        ) else {
            return false;
        };
        return t.len() == list.len()
            && a.len() == list.len()
            && list
                .iter()
                .zip(t.iter().zip(a))
                .all(|(r, (t, a))| same_answer(r, t, a));
    }
    let Some(sql) = request.get("execute").and_then(Value::as_str) else {
        return then == again;
    };
    // Only a statement that changes rows has a count of its own (DDL, ANALYZE, REINDEX...
    // were recorded with a leftover one).
    let counts = matches!(
        leading_keyword(sql).to_ascii_uppercase().as_str(),
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "WITH"
    );
    let rowid = again.get("last_insert_rowid");
    (!counts || then.get("changes") == again.get("changes"))
        && (rowid.is_none() || then.get("last_insert_rowid") == rowid)
        && (then.get("rows").is_none() || then.get("rows") == again.get("rows"))
}

/// The first word of `sql`, after whitespace and comments.
fn leading_keyword(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest =
            rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ';' || c == '\u{0B}');
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once(['\n', '\r']).map_or("", |(_, r)| r);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_compare_on_what_the_statement_decides() {
        let exec = |sql: &str| json!({"execute": sql});
        let update = exec("UPDATE t SET x = 1");
        // An older host's UPDATE answer carried the connection's last rowid.
        let old = json!({"changes": 1, "last_insert_rowid": 1});
        assert!(same_answer(&update, &old, &json!({"changes": 1})));
        assert!(!same_answer(&update, &old, &json!({"changes": 0})));
        let insert = exec("INSERT INTO t VALUES (1)");
        let then = json!({"changes": 1, "last_insert_rowid": 3});
        assert!(same_answer(&insert, &then, &then));
        let moved = json!({"changes": 1, "last_insert_rowid": 4});
        assert!(!same_answer(&insert, &then, &moved));
        let ddl = exec(" -- schema\n/* v1 */ create table u (x)");
        assert!(same_answer(&ddl, &old, &json!({"changes": 0})));
        assert!(same_answer(&exec("ANALYZE"), &old, &json!({"changes": 0})));
        let tx = json!({"transaction": [update, insert]});
        let t = json!({"results": [old, then]});
        assert!(same_answer(
            &tx,
            &t,
            &json!({"results": [{"changes": 1}, then]})
        ));
        assert!(!same_answer(&tx, &t, &json!({"results": [{"changes": 1}]})));
        let q = json!({"query": "SELECT 1"});
        assert!(!same_answer(
            &q,
            &json!({"rows": [[1]]}),
            &json!({"rows": [[2]]})
        ));
    }
}
