//! An inventory kept in an SQL table, answering over HTTP. The same component runs on SQLite
//! or PostgreSQL (the manifest picks): its SQL is what both accept (`?N` placeholders, ids it
//! assigns itself, `RETURNING`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /items` | 200, every item `{id, name, qty}` |
//! | `POST /items` `{"name", "qty"}` | 201 `{id}`; 409 if the name exists or qty < 0 |
//! | `POST /move` `{"from", "to", "qty"}` | 200; 404 for an unknown item; 409 if `from` has too few (nothing moved) |
//!
//! A request `{"sql": "..."}` (not over HTTP) runs a query and replies with its rows: the
//! database's own error if the SQL is bad. Every statement and its answer is recorded in the
//! chain, so the chain replays without the database.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, HttpRequest, HttpResponse, Input, Output, Value, db, json, serde_json};

#[derive(Serialize, Deserialize)]
struct State {
    requests: u64,
}

fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::json(status, &json!({"error": message}))
}

fn body(req: &HttpRequest) -> Result<Value, HttpResponse> {
    serde_json::from_slice(&req.body).map_err(|e| error(400, &format!("the body is not JSON: {e}")))
}

fn exists(name: &str) -> Result<bool, String> {
    let r = db::query("SELECT 1 FROM items WHERE name = ?1", &[json!(name)])?;
    Ok(r["rows"].as_array().is_some_and(|rows| !rows.is_empty()))
}

fn route(req: &HttpRequest) -> Result<HttpResponse, String> {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/items") => {
            let r = db::query("SELECT id, name, qty FROM items ORDER BY id", &[])?;
            let items: Vec<Value> = r["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|row| json!({"id": row[0], "name": row[1], "qty": row[2]}))
                .collect();
            Ok(HttpResponse::json(200, &Value::Array(items)))
        }
        ("POST", "/items") => {
            let b = match body(req) {
                Ok(b) => b,
                Err(r) => return Ok(r),
            };
            let (Some(name), Some(qty)) = (b["name"].as_str(), b["qty"].as_i64()) else {
                return Ok(error(422, "expected {\"name\": string, \"qty\": integer}"));
            };
            let insert = "INSERT INTO items (id, name, qty)
                VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM items), ?1, ?2) RETURNING id";
            match db::execute(insert, &[json!(name), json!(qty)]) {
                Ok(r) => Ok(HttpResponse::json(201, &json!({"id": r["rows"][0][0]}))),
                Err(e) => Ok(error(409, &e)),
            }
        }
        ("POST", "/move") => {
            let b = match body(req) {
                Ok(b) => b,
                Err(r) => return Ok(r),
            };
            let (Some(from), Some(to), Some(qty)) =
                (b["from"].as_str(), b["to"].as_str(), b["qty"].as_i64())
            else {
                return Ok(error(422, "expected {\"from\", \"to\", \"qty\"}"));
            };
            for name in [from, to] {
                if !exists(name)? {
                    return Ok(error(404, &format!("no item {name:?}")));
                }
            }
            let moved = db::transaction(&[
                ("UPDATE items SET qty = qty + ?1 WHERE name = ?2", vec![json!(qty), json!(to)]),
                ("UPDATE items SET qty = qty - ?1 WHERE name = ?2", vec![json!(qty), json!(from)]),
            ]);
            match moved {
                Ok(_) => Ok(HttpResponse::json(200, &json!({"moved": qty}))),
                Err(e) => Ok(error(409, &e)),
            }
        }
        (_, "/items") | (_, "/move") => Ok(error(405, "method not allowed")),
        _ => Ok(error(404, "not found")),
    }
}

struct Inventory;

impl Actor for Inventory {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        db::execute(
            "CREATE TABLE IF NOT EXISTS items (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                qty INTEGER NOT NULL CHECK (qty >= 0)
            )",
            &[],
        )?;
        Ok(State { requests: 0 })
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        state.requests += 1;
        match input {
            Input::HttpRequest(req) => Ok((route(&req)?.into(), state)),
            Input::Request { payload } => {
                let sql = payload["sql"].as_str().ok_or("expected {\"sql\": query}")?;
                let rows = db::query(sql, &[])?;
                Ok((Output::reply(rows), state))
            }
            _ => Err("the inventory answers HTTP and {\"sql\"} requests".into()),
        }
    }
}

theater_guest::export_actor!(Inventory);
