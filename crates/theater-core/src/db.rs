//! SQL for actors, behind one seam: [`Database`] runs a request (JSON in, JSON out), and
//! [`run`] records it as a host call, so replay answers from the chain and needs no database.
//! `theater-db` provides SQLite; a server database (PostgreSQL) can implement the same trait.
//!
//! Requests and answers:
//!
//! | request | answer |
//! |---|---|
//! | `{"query": sql, "params": [...]}` | `{"columns": [...], "rows": [[...], ...]}` |
//! | `{"execute": sql, "params": [...]}` | `{"changes": n, "last_insert_rowid": id}` |
//! | `{"transaction": [request, ...]}` | `{"results": [answer, ...]}`, all applied or none |
//!
//! Values are JSON: null, numbers, strings, booleans (as 0/1), and blobs as
//! `{"blob_hex": "..."}`.
//!
//! An input's statements form one unit: [`run`] begins it at the input's first write
//! (`execute` or `transaction`; a `query` must not write), and it is committed once the
//! input's entry is durable (rolled back if the input fails), so an
//! input never leaves half its writes behind. A database that records the last committed
//! seq with each commit lets a restart apply the last entry's unit again if the host died
//! between the entry and the commit ([`reapply`]).

use std::sync::Arc;

use serde_json::{Value, json};
use theater_chain::{Entry, Event, Payload};

use crate::{HostCallError, HostCalls};

/// Name of a recorded database call: request as above, result `{"ok": answer}` or
/// `{"error": message}`.
pub const DB_RUN: &str = "theater:db/run";

/// A database an actor may use.
pub trait Database: Send + Sync + std::fmt::Debug {
    /// Runs `request`; an error says what is wrong (bad SQL, a constraint, ...) and means
    /// nothing was applied.
    fn run(&self, request: &Value) -> Result<Value, String>;

    /// Starts the unit of one input, before its first write: until
    /// [`Database::commit_input`] or [`Database::rollback_input`], requests run in one
    /// transaction. The default runs each request on its own.
    fn begin_input(&self) -> Result<(), String> {
        Ok(())
    }

    /// Commits the input's unit, recording `seq` (the input's entry) as the last applied,
    /// atomically with it.
    fn commit_input(&self, _seq: u64) -> Result<(), String> {
        Ok(())
    }

    /// Rolls back the input's unit.
    fn rollback_input(&self) {}

    /// The seq of the last entry whose unit was committed, if the database records it.
    fn applied_seq(&self) -> Result<Option<u64>, String> {
        Ok(None)
    }
}

/// The open unit of one input: committed by the runtime once the entry is durable, rolled
/// back if dropped first (the input failed).
struct Unit {
    db: Arc<dyn Database>,
    done: std::cell::Cell<bool>,
}

impl Drop for Unit {
    fn drop(&mut self) {
        if !self.done.get() {
            self.db.rollback_input();
        }
    }
}

/// Runs `request` on `db`, recorded in the input being handled, within the input's unit. In
/// replay the recorded answer is returned and `db` is not touched (it may be `None`).
pub fn run(
    db: Option<&Arc<dyn Database>>,
    host: &mut HostCalls,
    request: Value,
) -> Result<Result<Value, String>, HostCallError> {
    let payload = Payload::json(request.clone());
    // Reads need no unit (an input that only reads commits nothing); the first write opens it.
    let writes = request.get("query").is_none();
    let live = match db {
        _ if host.is_replaying() => None,
        None => Some(Err("no database is granted to this actor".to_string())),
        Some(db) => {
            let begun = if writes && !host.db_unit {
                begin(db, host)
            } else {
                Ok(())
            };
            Some(begun.and_then(|()| db.run(&request)))
        }
    };
    // Every answer is recorded, a failure to begin the unit included.
    let result = host.call_sync(DB_RUN, payload, move || {
        Payload::json(match live {
            Some(Ok(answer)) => json!({"ok": answer}),
            Some(Err(e)) => json!({"error": e}),
            None => Value::Null,
        })
    })?;
    if let Some(e) = result.json.get("error").and_then(Value::as_str) {
        return Ok(Err(e.to_string()));
    }
    match result.json.get("ok") {
        Some(answer) => Ok(Ok(answer.clone())),
        None => Err(HostCallError::Malformed {
            name: DB_RUN.into(),
        }),
    }
}

/// Opens the input's unit on `db`, to be committed with the entry (or rolled back if the
/// input fails).
fn begin(db: &Arc<dyn Database>, host: &mut HostCalls) -> Result<(), String> {
    db.begin_input()?;
    host.db_unit = true;
    let unit = Unit {
        db: Arc::clone(db),
        done: std::cell::Cell::new(false),
    };
    host.on_commit(move |seq| {
        let committed = unit.db.commit_input(seq);
        // A failed commit is rolled back (by the drop), never left open for the next input.
        unit.done.set(committed.is_ok());
        committed
    });
    Ok(())
}

/// Applies again the unit of `entry` (the chain's last entry) if `db` has not committed it:
/// its recorded requests are run again in order, each answer must be the recorded one (or
/// the database does not match the chain), and the unit is committed with `entry`'s seq.
/// Returns whether anything was applied.
pub fn reapply(db: &dyn Database, entry: &Entry) -> Result<bool, String> {
    if !matches!(entry.event(), Event::Input { .. } | Event::Init { .. }) {
        return Ok(false);
    }
    // Only requests that succeeded changed anything (a failed one was undone alone), and only
    // an entry with a successful write had a unit to commit.
    let done: Vec<_> = entry
        .host_calls()
        .iter()
        .filter(|c| c.name == DB_RUN && c.result.json.get("ok").is_some())
        .collect();
    let wrote = done.iter().any(|c| c.request.json.get("query").is_none());
    if !wrote || db.applied_seq()?.is_some_and(|s| s >= entry.seq()) {
        return Ok(false);
    }
    db.begin_input()?;
    let applied = (|| {
        for (i, call) in done.iter().enumerate() {
            let again = db.run(&call.request.json);
            if again.as_ref().ok() != call.result.json.get("ok") {
                return Err(format!(
                    "the database does not match the chain: request {i} of entry {} answers {again:?} now, {} then",
                    entry.seq(),
                    call.result.json
                ));
            }
        }
        db.commit_input(entry.seq())
    })();
    if applied.is_err() {
        db.rollback_input();
    }
    applied.map(|()| true)
}
