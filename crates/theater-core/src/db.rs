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

use serde_json::{Value, json};
use theater_chain::Payload;

use crate::{HostCallError, HostCalls};

/// Name of a recorded database call: request as above, result `{"ok": answer}` or
/// `{"error": message}`.
pub const DB_RUN: &str = "theater:db/run";

/// A database an actor may use.
pub trait Database: Send + Sync + std::fmt::Debug {
    /// Runs `request`; an error says what is wrong (bad SQL, a constraint, ...) and means
    /// nothing was applied.
    fn run(&self, request: &Value) -> Result<Value, String>;
}

/// Runs `request` on `db`, recorded in the input being handled. In replay the recorded answer
/// is returned and `db` is not touched (it may be `None`).
pub fn run(
    db: Option<&dyn Database>,
    host: &mut HostCalls,
    request: Value,
) -> Result<Result<Value, String>, HostCallError> {
    let payload = Payload::json(request.clone());
    let result = host.call_sync(DB_RUN, payload, || {
        Payload::json(match db.map(|d| d.run(&request)) {
            Some(Ok(answer)) => json!({"ok": answer}),
            Some(Err(e)) => json!({"error": e}),
            None => json!({"error": "no database is granted to this actor"}),
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
