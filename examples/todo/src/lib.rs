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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, HttpRequest, HttpResponse, Input, Output, Value, json, serde_json};

#[derive(Clone, Serialize, Deserialize)]
struct Todo {
    id: u64,
    title: String,
    done: bool,
}

#[derive(Serialize, Deserialize)]
struct State {
    next_id: u64,
    todos: BTreeMap<u64, Todo>,
}

fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::json(status, &json!({"error": message}))
}

fn body_json(req: &HttpRequest) -> Result<Value, HttpResponse> {
    serde_json::from_slice(&req.body)
        .map_err(|e| error(400, &format!("the body is not JSON: {e}")))
}

fn todo_json(t: &Todo) -> Value {
    json!({"id": t.id, "title": t.title, "done": t.done})
}

fn route(mut state: State, req: &HttpRequest) -> (HttpResponse, State) {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let method = req.method.as_str();
    match segments.as_slice() {
        ["todos"] => match method {
            "GET" => {
                let all: Vec<Value> = state.todos.values().map(todo_json).collect();
                (HttpResponse::json(200, &Value::Array(all)), state)
            }
            "POST" => {
                let body = match body_json(req) {
                    Ok(b) => b,
                    Err(r) => return (r, state),
                };
                let Some(title) = body["title"].as_str().filter(|t| !t.trim().is_empty()) else {
                    return (error(422, "a todo needs a non-empty \"title\""), state);
                };
                let id = state.next_id;
                let todo = Todo {
                    id,
                    title: title.to_string(),
                    done: body["done"].as_bool().unwrap_or(false),
                };
                let r = HttpResponse::json(201, &todo_json(&todo))
                    .header("location", &format!("/todos/{id}"));
                state.todos.insert(id, todo);
                state.next_id += 1;
                (r, state)
            }
            _ => (
                error(405, "use GET or POST").header("allow", "GET, POST"),
                state,
            ),
        },
        ["todos", id] => {
            let Some(id) = id.parse::<u64>().ok().filter(|id| state.todos.contains_key(id))
            else {
                return (error(404, "no such todo"), state);
            };
            match method {
                "GET" => (HttpResponse::json(200, &todo_json(&state.todos[&id])), state),
                "PUT" | "PATCH" => {
                    let body = match body_json(req) {
                        Ok(b) => b,
                        Err(r) => return (r, state),
                    };
                    let mut todo = state.todos[&id].clone();
                    if let Some(title) = body.get("title") {
                        match title.as_str().filter(|t| !t.trim().is_empty()) {
                            Some(t) => todo.title = t.to_string(),
                            None => return (error(422, "\"title\" must be a non-empty string"), state),
                        }
                    }
                    if let Some(done) = body.get("done") {
                        match done.as_bool() {
                            Some(d) => todo.done = d,
                            None => return (error(422, "\"done\" must be true or false"), state),
                        }
                    }
                    let r = HttpResponse::json(200, &todo_json(&todo));
                    state.todos.insert(id, todo);
                    (r, state)
                }
                "DELETE" => {
                    state.todos.remove(&id);
                    (HttpResponse::new(204), state)
                }
                _ => (
                    error(405, "use GET, PUT, PATCH or DELETE")
                        .header("allow", "GET, PUT, PATCH, DELETE"),
                    state,
                ),
            }
        }
        _ => (error(404, "not found"), state),
    }
}

struct TodoApi;

impl Actor for TodoApi {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State {
            next_id: 1,
            todos: BTreeMap::new(),
        })
    }

    fn handle(state: State, input: Input) -> Result<(Output, State), String> {
        match input {
            Input::HttpRequest(req) => {
                let (response, state) = route(state, &req);
                Ok((response.into(), state))
            }
            _ => Err("the todo API answers HTTP requests".into()),
        }
    }

    fn verify(state: &State) -> bool {
        state.todos.iter().all(|(id, t)| *id == t.id && *id < state.next_id)
    }
}

theater_guest::export_actor!(TodoApi);
