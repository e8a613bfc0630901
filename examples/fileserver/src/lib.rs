//! A static file server over the directory its manifest grants.
//!
//! `GET` or `HEAD /path` answers the file at `path` (`/dir/` means `/dir/index.html`) with
//! its content type; the response names the file by reference, so the chain records its
//! SHA-256 and size, never its bytes, and the server checks the bytes it sends against them.
//! Paths are percent-decoded; any that would leave the directory get 403, missing files 404,
//! other methods 405. The state counts files served and requests refused.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, HttpResponse, Input, Output, Value, files, percent_decode};

#[derive(Serialize, Deserialize)]
struct State {
    served: u64,
    refused: u64,
}

fn text(status: u16, message: &str) -> HttpResponse {
    HttpResponse::new(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(format!("{message}\n"))
}

struct FileServer;

impl Actor for FileServer {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State {
            served: 0,
            refused: 0,
        })
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        let Input::HttpRequest(req) = input else {
            return Err("the file server answers HTTP requests".into());
        };
        if req.method != "GET" && req.method != "HEAD" {
            state.refused += 1;
            let r = text(405, "read-only: use GET or HEAD").header("allow", "GET, HEAD");
            return Ok((r.into(), state));
        }
        let Some(mut path) = percent_decode(&req.path) else {
            state.refused += 1;
            return Ok((text(400, "malformed path").into(), state));
        };
        if path.ends_with('/') {
            path.push_str("index.html");
        }
        let response = match files::stat(&path) {
            Ok(info) => {
                state.served += 1;
                let r = HttpResponse::new(200).header("etag", &format!("\"{}\"", info.sha256));
                if req.method == "HEAD" {
                    r.header("content-type", &info.content_type)
                } else {
                    r.file(&path, &info)
                }
            }
            Err(e) if e.contains("outside the granted directory") => {
                state.refused += 1;
                text(403, "forbidden")
            }
            Err(_) => {
                state.refused += 1;
                text(404, "not found")
            }
        };
        Ok((response.into(), state))
    }
}

theater_guest::export_actor!(FileServer);
