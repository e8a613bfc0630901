//! Notes kept as Markdown files in the directory the manifest grants (read-write).
//!
//! Over HTTP:
//!
//! | request | answer |
//! |---|---|
//! | `GET /notes` | 200, `[{"name", "size"}]` from a listing of the directory |
//! | `GET /notes/{name}` | 200 with the note (`text/markdown`) / 404 |
//! | `PUT /notes/{name}` with the text | 201 (new) or 200, `{"name", "size", "sha256"}` |
//! | `DELETE /notes/{name}` | 204 / 404 |
//! | `GET /search?q=word` | 200, the names of the notes containing `word` |
//!
//! and as requests (`theater send notes '{"op": "read", "name": "x"}' --request`):
//! `{"op": "list"}`, `{"op": "read", "name"}`, `{"op": "write", "name", "text"}`,
//! `{"op": "delete", "name"}`.
//!
//! A note `x` is the file `x.md`. Names are used as given (percent-decoded): the host refuses
//! any that would leave the directory (`..`, absolute paths, links out), and the actor
//! answers 403 naming the refusal, which the chain records. The state is an index of the
//! notes this actor wrote (size, SHA-256, when), so the chain proves what each note held.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use theater_guest::{
    Actor, HttpRequest, HttpResponse, Input, Output, Value, files, host, json, percent_decode,
};

#[derive(Clone, Serialize, Deserialize)]
struct Note {
    size: u64,
    sha256: String,
    updated_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct State {
    notes: BTreeMap<String, Note>,
    writes: u64,
}

/// Why an operation failed, as an HTTP status and a message.
struct Failure(u16, String);

impl Failure {
    /// Classifies a host error: refused paths are 403, missing files 404.
    fn from_host(e: String) -> Self {
        let status = if e.contains("outside the granted directory") || e.contains("read-only") {
            403
        } else if e.starts_with("no file") {
            404
        } else {
            500
        };
        Failure(status, e)
    }
}

fn file_of(name: &str) -> Result<String, Failure> {
    if name.is_empty() || name.ends_with('/') {
        return Err(Failure(400, "a note needs a name".into()));
    }
    Ok(format!("{name}.md"))
}

fn list() -> Result<Value, Failure> {
    let entries = files::list("").map_err(Failure::from_host)?;
    let notes: Vec<Value> = entries
        .iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| {
            let name = e.name.strip_suffix(".md")?;
            Some(json!({"name": name, "size": e.size}))
        })
        .collect();
    Ok(Value::Array(notes))
}

fn read(name: &str) -> Result<Vec<u8>, Failure> {
    files::read(&file_of(name)?).map_err(Failure::from_host)
}

fn write(state: &mut State, name: &str, text: &[u8]) -> Result<(bool, Value), Failure> {
    let path = file_of(name)?;
    let new = files::stat(&path).is_err();
    files::write(&path, text).map_err(Failure::from_host)?;
    let info = files::stat(&path).map_err(Failure::from_host)?;
    let note = Note {
        size: info.size,
        sha256: info.sha256.clone(),
        updated_ms: host::now_millis(),
    };
    state.notes.insert(name.to_string(), note);
    state.writes += 1;
    Ok((
        new,
        json!({"name": name, "size": info.size, "sha256": info.sha256}),
    ))
}

fn delete(state: &mut State, name: &str) -> Result<(), Failure> {
    files::delete(&file_of(name)?).map_err(Failure::from_host)?;
    state.notes.remove(name);
    Ok(())
}

fn search(word: &str) -> Result<Value, Failure> {
    let mut found = Vec::new();
    for e in files::list("").map_err(Failure::from_host)? {
        let Some(name) = e.name.strip_suffix(".md").filter(|_| !e.is_dir) else {
            continue;
        };
        let text = files::read(&e.name).map_err(Failure::from_host)?;
        if String::from_utf8_lossy(&text).contains(word) {
            found.push(Value::String(name.to_string()));
        }
    }
    Ok(Value::Array(found))
}

fn error(f: Failure) -> HttpResponse {
    HttpResponse::json(f.0, &json!({"error": f.1}))
}

fn query_param(req: &HttpRequest, key: &str) -> Option<String> {
    req.query.as_deref()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(&v.replace('+', " ")))?
    })
}

fn http(state: &mut State, req: &HttpRequest) -> HttpResponse {
    let Some(path) = percent_decode(&req.path) else {
        return error(Failure(400, "malformed percent-encoding".into()));
    };
    let method = req.method.as_str();
    let result = if path == "/notes" || path == "/notes/" {
        match method {
            "GET" => list().map(|l| HttpResponse::json(200, &l)),
            _ => return error(Failure(405, "use GET".into())).header("allow", "GET"),
        }
    } else if let Some(name) = path.strip_prefix("/notes/") {
        match method {
            "GET" => read(name).map(|text| {
                HttpResponse::new(200)
                    .header("content-type", "text/markdown; charset=utf-8")
                    .body(text)
            }),
            "PUT" => write(state, name, &req.body)
                .map(|(new, info)| HttpResponse::json(if new { 201 } else { 200 }, &info)),
            "DELETE" => delete(state, name).map(|()| HttpResponse::new(204)),
            _ => {
                return error(Failure(405, "use GET, PUT or DELETE".into()))
                    .header("allow", "GET, PUT, DELETE");
            }
        }
    } else if path == "/search" {
        match query_param(req, "q") {
            Some(word) if !word.is_empty() => search(&word).map(|r| HttpResponse::json(200, &r)),
            _ => Err(Failure(400, "give a word to search for: /search?q=word".into())),
        }
    } else {
        Err(Failure(404, "not found".into()))
    };
    result.unwrap_or_else(error)
}

fn request(state: &mut State, payload: &Value) -> Result<Value, Failure> {
    let name = || {
        payload["name"]
            .as_str()
            .ok_or_else(|| Failure(400, "expected \"name\"".into()))
    };
    match payload["op"].as_str() {
        Some("list") => list(),
        Some("read") => {
            let text = read(name()?)?;
            Ok(json!({"text": String::from_utf8_lossy(&text)}))
        }
        Some("write") => {
            let text = payload["text"]
                .as_str()
                .ok_or_else(|| Failure(400, "expected \"text\"".into()))?;
            let (_, info) = write(state, name()?, text.as_bytes())?;
            Ok(info)
        }
        Some("delete") => {
            let name = name()?;
            delete(state, name)?;
            Ok(json!({"deleted": name}))
        }
        _ => Err(Failure(
            400,
            "expected {\"op\": \"list\" | \"read\" | \"write\" | \"delete\", ...}".into(),
        )),
    }
}

struct Notes;

impl Actor for Notes {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State {
            notes: BTreeMap::new(),
            writes: 0,
        })
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        match input {
            Input::HttpRequest(req) => {
                let response = http(&mut state, &req);
                Ok((response.into(), state))
            }
            Input::Request { payload } | Input::Message { payload, .. } => {
                // A failed request changes nothing: its writes are never applied.
                let reply = request(&mut state, &payload).map_err(|f| f.1)?;
                Ok((Output::reply(reply), state))
            }
            _ => Err("the notes actor answers HTTP requests and requests".into()),
        }
    }

    fn verify(state: &State) -> bool {
        state
            .notes
            .iter()
            .all(|(name, n)| !name.is_empty() && n.sha256.len() == 64)
    }
}

theater_guest::export_actor!(Notes);
