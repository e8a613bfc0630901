//! A REST API over a todo list kept in the actor's state.
//!
//! | request | answer |
//! |---|---|
//! | `GET /todos` | 200, every todo by id |
//! | `POST /todos` `{"title": "...", "done": false}` | 201 with the todo and its `location` |
//! | `GET /todos/{id}` | 200 / 404 |
//! | `PUT` or `PATCH /todos/{id}` `{"title"?, "done"?}` | 200 with the updated todo / 404 |
//! | `DELETE /todos/{id}` | 204 / 404 |
//!
//! A body that is not JSON is 400, a todo without a title 422, another method 405 (with
//! `allow`), another path 404. Every answer, errors included, is recorded in the chain;
//! only successful writes change the state.
//!
//! `[init] seed = n` starts it with n todos.
//!
//! It is a [`DocActor`]: the state `{"next_id": n, "todos": {"<id>": {"id", "title",
//! "done"}}}` is read and written where a request touches it, so reading, adding, changing or
//! deleting one todo costs the same however many there are (only `GET /todos` reads them all).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use theater_guest::{
    Doc, DocActor, HttpRequest, HttpResponse, Input, Output, Value, json, serde_json,
};

#[derive(Serialize, Deserialize)]
struct Todo {
    id: u64,
    title: String,
    done: bool,
}

fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::json(status, &json!({"error": message}))
}

fn body_json(req: &HttpRequest) -> Result<Value, HttpResponse> {
    serde_json::from_slice(&req.body).map_err(|e| error(400, &format!("the body is not JSON: {e}")))
}

fn todo_json(t: &Todo) -> Value {
    json!({"id": t.id, "title": t.title, "done": t.done})
}

/// Where todo `id` is kept.
fn todo_at(id: u64) -> String {
    Doc::pointer(&["todos", &id.to_string()])
}

/// The answer to `req`. An `Err` (a state that does not fit, a write that fails) is a bug:
/// it fails the input, leaving the state as it was.
fn route(doc: &mut Doc, req: &HttpRequest) -> Result<HttpResponse, String> {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["todos"] => todos(doc, req),
        ["todos", id] => match id.parse::<u64>() {
            Ok(id) => todo(doc, req, id),
            Err(_) => Ok(error(404, "no such todo")),
        },
        _ => Ok(error(404, "not found")),
    }
}

/// `/todos`.
fn todos(doc: &mut Doc, req: &HttpRequest) -> Result<HttpResponse, String> {
    match req.method.as_str() {
        "GET" => {
            // Keyed by number, so in the order of ids (the JSON keys sort as text).
            let all = doc
                .get_as::<BTreeMap<u64, Todo>>("/todos")?
                .unwrap_or_default();
            let all: Vec<Value> = all.values().map(todo_json).collect();
            Ok(HttpResponse::json(200, &Value::Array(all)))
        }
        "POST" => {
            let body = match body_json(req) {
                Ok(b) => b,
                Err(r) => return Ok(r),
            };
            let Some(title) = body["title"].as_str().filter(|t| !t.trim().is_empty()) else {
                return Ok(error(422, "a todo needs a non-empty \"title\""));
            };
            let id = doc
                .get_as::<u64>("/next_id")?
                .ok_or("the state has no next_id")?;
            let todo = Todo {
                id,
                title: title.to_string(),
                done: body["done"].as_bool().unwrap_or(false),
            };
            doc.set(&todo_at(id), &todo)?;
            doc.set("/next_id", id + 1)?;
            Ok(HttpResponse::json(201, &todo_json(&todo))
                .header("location", &format!("/todos/{id}")))
        }
        _ => Ok(error(405, "use GET or POST").header("allow", "GET, POST")),
    }
}

/// `/todos/{id}`.
fn todo(doc: &mut Doc, req: &HttpRequest, id: u64) -> Result<HttpResponse, String> {
    let at = todo_at(id);
    let Some(mut todo) = doc.get_as::<Todo>(&at)? else {
        return Ok(error(404, "no such todo"));
    };
    match req.method.as_str() {
        "GET" => Ok(HttpResponse::json(200, &todo_json(&todo))),
        "PUT" | "PATCH" => {
            let body = match body_json(req) {
                Ok(b) => b,
                Err(r) => return Ok(r),
            };
            if let Some(title) = body.get("title") {
                match title.as_str().filter(|t| !t.trim().is_empty()) {
                    Some(t) => todo.title = t.to_string(),
                    None => return Ok(error(422, "\"title\" must be a non-empty string")),
                }
            }
            if let Some(done) = body.get("done") {
                match done.as_bool() {
                    Some(d) => todo.done = d,
                    None => return Ok(error(422, "\"done\" must be true or false")),
                }
            }
            doc.set(&at, &todo)?;
            Ok(HttpResponse::json(200, &todo_json(&todo)))
        }
        "DELETE" => {
            doc.remove(&at)?;
            Ok(HttpResponse::new(204))
        }
        _ => {
            Ok(error(405, "use GET, PUT, PATCH or DELETE")
                .header("allow", "GET, PUT, PATCH, DELETE"))
        }
    }
}

struct TodoApi;

impl DocActor for TodoApi {
    /// Starts empty, or with `seed` todos ("todo 1", "todo 2", ...) when the manifest's
    /// `[init]` says `seed = n`: a list to try the API (and measure it) against.
    fn init(params: Value) -> Result<Value, String> {
        let seed = match params.get("seed") {
            None => 0,
            Some(n) => n
                .as_u64()
                .filter(|n| *n <= 10_000_000)
                .ok_or("init parameter \"seed\" must be a whole number up to 10000000")?,
        };
        let todos: serde_json::Map<String, Value> = (1..=seed)
            .map(|id| {
                let todo = Todo {
                    id,
                    title: format!("todo {id}"),
                    done: false,
                };
                (id.to_string(), todo_json(&todo))
            })
            .collect();
        Ok(json!({"next_id": seed + 1, "todos": todos}))
    }

    fn handle(doc: &mut Doc, input: Input) -> Result<Output, String> {
        match input {
            Input::HttpRequest(req) => Ok(route(doc, &req)?.into()),
            _ => Err("the todo API answers HTTP requests".into()),
        }
    }

    /// Runs after every change, so it checks only what costs the same however many todos
    /// there are: `next_id` is a positive integer and `todos` an object. That each todo sits
    /// under its own id, below `next_id`, holds by construction (`POST` is the only writer of
    /// new ids); checking it here would walk every todo on every input.
    fn verify(doc: &Doc) -> bool {
        doc.get("/next_id")
            .and_then(Value::as_u64)
            .is_some_and(|n| n >= 1)
            && doc.get("/todos").is_some_and(Value::is_object)
    }
}

theater_guest::export_doc_actor!(TodoApi);
