//! The management API of `theater run`: HTTP + JSON on loopback. Every request, reads
//! included, needs `authorization: Bearer <token>`, the token the host writes to
//! `<data-dir>/admin.token` (readable by its owner only), compared in constant time; and its
//! `Host` must name the API by address (`localhost`, a loopback address, or the address it
//! listens on; any port, so a tunnel works), so a web page that reaches it through a DNS name
//! of its own (DNS rebinding) is refused. The threat model: `docs/MANAGEMENT.md`.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /actors` | every actor: name, status, head seq and hash (a family's passive members: status `passive`) |
//! | `POST /actors` | body `{"manifest": path, "name"?, "init"?}`: spawns an actor (or adds a family) |
//! | `GET /families` | the families: pattern, active members, idle time, most active |
//! | `GET /actors/NAME/state` | its state, with the seq and hash it is at |
//! | `GET /actors/NAME/chain?from=&to=` | its entries, one JSON object per line |
//! | `GET /actors/NAME/events` | its events as they happen, one JSON object per line |
//! | `POST /actors/NAME/send` | body `{"message": v}` (fire and forget) or `{"request": v}` (answered) |
//! | `POST /actors/NAME/stop` | stops it |
//! | `POST /actors/NAME/restart` | starts it again from its chain |
//! | `POST /shutdown` | stops the host cleanly |
//! | `/console/...` | the web console: its pages, `POST /console/code` (a one-time login code, with the token) and its API (`crate::console`) |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use theater_chain::{ChainStore, FileStore};
use theater_core::{ActorEvent, ActorInput, ActorStatus, RecvError, Shutdown};

use tokio::net::TcpListener;

use crate::console::Console;
use crate::host::Host;

/// The body of every answer.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// Where a running host's API is, and the token it accepts (files in the data directory).
pub(crate) struct AdminFiles;

impl AdminFiles {
    pub(crate) const ADDR: &'static str = "admin.addr";
    pub(crate) const TOKEN: &'static str = "admin.token";
}

/// A JSON answer.
pub(crate) fn full(status: StatusCode, body: Value) -> Response<Body> {
    let mut text = body.to_string();
    text.push('\n');
    let mut r = Response::new(Full::new(Bytes::from(text)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: impl std::fmt::Display) -> Response<Body> {
    full(status, json!({"error": message.to_string()}))
}

fn status_json(s: &ActorStatus) -> Value {
    match s {
        ActorStatus::Running => json!("running"),
        ActorStatus::Restarting { attempt } => json!(format!("restarting (attempt {attempt})")),
        ActorStatus::Stopped => json!("stopped"),
        ActorStatus::Failed { reason } => json!(format!("failed: {reason}")),
        other => json!(format!("{other:?}")),
    }
}

/// An event as one JSON object.
pub(crate) fn event_json(e: &ActorEvent) -> Value {
    match e {
        ActorEvent::Entry { seq, hash, failed } => {
            json!({"event": "entry", "seq": seq, "hash": hash.to_string(), "failed": failed})
        }
        ActorEvent::Restarting {
            attempt,
            reason,
            delay,
        } => json!({"event": "restarting", "attempt": attempt, "reason": reason,
                    "delay_ms": delay.as_millis() as u64}),
        ActorEvent::Restarted { attempt } => json!({"event": "restarted", "attempt": attempt}),
        ActorEvent::GaveUp { reason } => json!({"event": "gave_up", "reason": reason}),
        ActorEvent::Stopped => json!({"event": "stopped"}),
        other => json!({"event": format!("{other:?}")}),
    }
}

/// Serves the API on `addr` until `shutdown`; returns the bound address at once.
pub(crate) async fn serve(
    host: Arc<Host>,
    addr: SocketAddr,
    token: String,
    shutdown: Shutdown,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let console = Arc::new(Console::live(
        Arc::clone(&host),
        shutdown.clone(),
        token.clone(),
    ));
    let token = Arc::new(token);
    let ip = bound.ip();
    tokio::spawn(async move {
        let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                a = listener.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
            };
            let (host, token, shutdown, builder, console) = (
                Arc::clone(&host),
                Arc::clone(&token),
                shutdown.clone(),
                Arc::clone(&builder),
                Arc::clone(&console),
            );
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let (host, token, shutdown, console) = (
                        Arc::clone(&host),
                        Arc::clone(&token),
                        shutdown.clone(),
                        Arc::clone(&console),
                    );
                    async move {
                        Ok::<_, Infallible>(
                            route(&host, &token, ip, &shutdown, &console, req).await,
                        )
                    }
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

/// Whether `authority` (a `Host` header, or an HTTP/2 request's authority) names this API
/// by address: `localhost`, a loopback address, or `listening` (the address it is bound to),
/// with any port (a tunnel forwards from another). A DNS name is refused: a page in a
/// browser that rebinds a name of its own to 127.0.0.1 sends that name.
pub(crate) fn names_this_api(authority: &str, listening: std::net::IpAddr) -> bool {
    let Ok(authority) = authority.parse::<http::uri::Authority>() else {
        return false;
    };
    if authority.as_str().contains('@') {
        return false;
    }
    let host = authority.host();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip == listening)
}

/// The one authority a request names: its `Host` header (exactly one) and, if its target
/// has one (absolute form, HTTP/2), the same there.
pub(crate) fn authority_of(req: &Request<Incoming>) -> Option<String> {
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    let header = match (hosts.next(), hosts.next()) {
        (Some(h), None) => Some(h.to_str().ok()?.to_string()),
        (None, _) => None,
        (Some(_), Some(_)) => return None,
    };
    let target = req.uri().authority().map(|a| a.to_string());
    match (header, target) {
        (Some(h), Some(t)) => h.eq_ignore_ascii_case(&t).then_some(h),
        (h, t) => h.or(t),
    }
}

/// Whether `given` is the token, compared in constant time.
pub(crate) fn token_matches(given: Option<&str>, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes())))
}

async fn route(
    host: &Arc<Host>,
    token: &str,
    listening: std::net::IpAddr,
    shutdown: &Shutdown,
    console: &Arc<Console>,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let authority = authority_of(&req);
    if !authority
        .as_deref()
        .is_some_and(|a| names_this_api(a, listening))
    {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "the Host header (one) must name this API by address: localhost, a loopback address or the address it listens on, not a DNS name",
        );
    }
    // The console's pages, its login and its API (a console session or the token).
    if path == "/console" || path.starts_with("/console/") {
        return console.route(req).await;
    }
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token_matches(given, token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "send the token of <data-dir>/admin.token as `authorization: Bearer <token>` (every request needs it)",
        );
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    // Owned path segments: nothing borrowed is held across the awaits below.
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let (what, name) = match parts.as_slice() {
        [a] => (a.clone(), String::new()),
        [a, name, what] if a == "actors" => (what.clone(), name.clone()),
        _ => (String::new(), String::new()),
    };
    match (method, what.as_str(), parts.len()) {
        (Method::GET, "actors", 1) => list(host).await,
        (Method::POST, "actors", 1) => spawn(host, &body).await,
        (Method::GET, "families", 1) => families(host).await,
        (Method::GET, "metrics", 1) => match crate::metrics::scrape(host).await {
            Ok(text) => {
                let mut r = Response::new(Full::new(Bytes::from(text)).boxed());
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
                );
                r
            }
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        (Method::GET, "state", 3) => state(host, &name).await,
        (Method::GET, "chain", 3) => match theater_wasm::check_name(&name) {
            Ok(_) => chain(host, &name, &query),
            Err(e) => error(StatusCode::NOT_FOUND, e),
        },
        (Method::GET, "events", 3) => events(host, &name).await,
        (Method::POST, "send", 3) => send(host, &name, &body).await,
        (Method::POST, "stop", 3) => match host.stop_actor(name.clone()).await {
            Ok(()) => full(StatusCode::OK, json!({"stopped": name})),
            Err(e) => error(StatusCode::NOT_FOUND, e),
        },
        (Method::POST, "upgrade", 3) => upgrade(host, &name, &body).await,
        (Method::POST, "restart", 3) => match host.restart_actor(name.clone()).await {
            Ok(()) => full(StatusCode::OK, json!({"restarted": name})),
            Err(e) => error(StatusCode::CONFLICT, format!("{e:#}")),
        },
        (Method::POST, "checkpoint", 1) => match &host.audit {
            Some(audit) => match audit.checkpoint().await {
                Ok(note) => full(StatusCode::OK, json!({"checkpoint": note})),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
            },
            None => error(
                StatusCode::NOT_FOUND,
                "this host keeps no audit log (run it with --audit, or an [audit] table)",
            ),
        },
        (Method::POST, "shutdown", 1) => {
            shutdown.cancel();
            full(StatusCode::OK, json!({"shutting_down": true}))
        }
        _ => error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")),
    }
}

/// The actor `name`: a listed one (running or not), or a family member, activated. Only a
/// message (`send`, which needs the token) creates a member; reading one activates it only
/// if it has a chain.
async fn handle_of(
    host: &Host,
    name: &str,
    create: bool,
) -> Result<theater_core::ActorHandle, Response<Body>> {
    if let Some(h) = host.actors.lock().await.get(name).map(|a| a.handle.clone()) {
        return Ok(h);
    }
    if !create
        && host.registry.lookup(name).is_none()
        && !(theater_wasm::check_name(name).is_ok()
            && host.data_dir.join("chains").join(name).is_dir())
    {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no actor named {name:?} (a family's member is created by a message)"),
        ));
    }
    host.registry.resolve(name).await.map_err(|e| {
        let status = match e.kind {
            theater_msg::TransportErrorKind::NoSuchActor => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        };
        error(status, e)
    })
}

async fn spawn(host: &Host, body: &[u8]) -> Response<Body> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Spawn {
        manifest: std::path::PathBuf,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        init: Option<Value>,
    }
    let s: Spawn = match serde_json::from_slice(body) {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"manifest\": path, \"name\"?, \"init\"?}}: {e}"),
            );
        }
    };
    match host.spawn_manifest(&s.manifest, s.name, s.init).await {
        Ok(name) => full(StatusCode::CREATED, json!({"spawned": name})),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

/// `POST /actors/NAME/upgrade` `{"component": path}` or `{"code": sha256}`.
async fn upgrade(host: &Host, name: &str, body: &[u8]) -> Response<Body> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Upgrade {
        #[serde(default)]
        component: Option<std::path::PathBuf>,
        #[serde(default)]
        code: Option<String>,
    }
    let to = match serde_json::from_slice::<Upgrade>(body) {
        Ok(Upgrade {
            component: Some(path),
            code: None,
        }) => crate::host::UpgradeTo::File(path),
        Ok(Upgrade {
            component: None,
            code: Some(code),
        }) => match code.parse() {
            Ok(hash) => crate::host::UpgradeTo::Code(hash),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("{code:?} is not a SHA-256 (64 hex digits)"),
                );
            }
        },
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "give one of \"component\" (a file) or \"code\" (a SHA-256 the host has run)",
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"component\": path}} or {{\"code\": sha256}}: {e}"),
            );
        }
    };
    match host.upgrade_actor(name, to).await {
        Ok(v) => full(StatusCode::OK, v),
        Err((status, message)) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
            message,
        ),
    }
}

/// A request to an actor of the cluster running on another host, forwarded to it.
async fn send_remote(host: &Host, name: &str, body: &[u8]) -> Response<Body> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            );
        }
    };
    let Some(request) = v.get("request") else {
        return error(
            StatusCode::CONFLICT,
            format!(
                "{name:?} runs on another host of the cluster: send it a request from here, or a message from its host"
            ),
        );
    };
    match host.ask_remote(name, request.clone()).await {
        Some(answer) if answer.get("error").is_some() => {
            full(StatusCode::UNPROCESSABLE_ENTITY, answer)
        }
        Some(answer) => full(StatusCode::OK, answer),
        None => error(StatusCode::NOT_FOUND, format!("no actor named {name:?}")),
    }
}

async fn families(host: &Host) -> Response<Body> {
    let out: Vec<Value> = host
        .families()
        .await
        .into_iter()
        .map(|f| {
            json!({"pattern": f.pattern, "active": f.active,
                   "idle_ms": f.idle.as_millis() as u64, "max_active": f.max_active})
        })
        .collect();
    full(StatusCode::OK, Value::Array(out))
}

async fn list(host: &Host) -> Response<Body> {
    let mut out = Vec::new();
    for a in host.list().await {
        let member = matches!(a.origin, Some(crate::host::Origin::Member { .. }));
        // The chain's size on disk (its log; snapshots and blobs beside it not counted).
        let chain_bytes = host.chain_bytes(&a.name);
        let Some(h) = a.handle else {
            out.push(json!({"name": a.name, "status": "passive", "seq": null, "hash": null, "chain_bytes": chain_bytes}));
            continue;
        };
        let status = h.status();
        let head = match status {
            ActorStatus::Running => h.state().await.ok().and_then(|(_, head)| head),
            _ => None,
        };
        let shown = match (&status, member) {
            (ActorStatus::Running, true) => json!("active"),
            _ => status_json(&status),
        };
        out.push(json!({
            "name": a.name,
            "status": shown,
            "seq": head.as_ref().map(|h| h.seq),
            "hash": head.map(|h| h.hash.to_string()),
            "chain_bytes": chain_bytes,
        }));
    }
    if let Some(state) = host.cluster_state() {
        // Every actor of the cluster: those here with this host's name, the others with
        // the host that owns them.
        let placed = state.placed();
        for a in out.iter_mut() {
            let name = a["name"].as_str().unwrap_or_default().to_string();
            let moves = placed
                .iter()
                .find(|(n, _, _)| *n == name)
                .is_some_and(|(_, l, _)| l.pinned.is_none());
            a["host"] = json!(state.host());
            a["placement"] = json!(if moves { "moves" } else { "pinned" });
        }
        for (name, listing, owner) in placed {
            if out.iter().any(|a| a["name"] == name.as_str()) {
                continue;
            }
            out.push(json!({
                "name": name,
                "status": if owner.is_some() { "elsewhere" } else { "unplaced" },
                "seq": null,
                "hash": null,
                "host": owner,
                "placement": if listing.pinned.is_some() { "pinned" } else { "moves" },
            }));
        }
        out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
    full(StatusCode::OK, Value::Array(out))
}

async fn state(host: &Host, name: &str) -> Response<Body> {
    let h = match handle_of(host, name, false).await {
        Ok(h) => h,
        Err(response) => return response,
    };
    match h.state().await {
        Ok((state, head)) => full(
            StatusCode::OK,
            json!({
                "state": state,
                "seq": head.as_ref().map(|h| h.seq),
                "hash": head.map(|h| h.hash.to_string()),
            }),
        ),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

fn chain(host: &Host, name: &str, query: &str) -> Response<Body> {
    let param = |key: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let dir = host.data_dir.join("chains").join(name);
    let store = match FileStore::open_read_only(&dir) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::NOT_FOUND, format!("{name}: {e}")),
    };
    let from = param("from").unwrap_or(store.start()).max(store.start());
    let to = param("to").unwrap_or(u64::MAX);
    let mut text = String::new();
    for entry in store.entries(from) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        };
        if entry.seq() > to {
            break;
        }
        let hash = entry.hash();
        text.push_str(&crate::render::entry_json(&entry, &hash).to_string());
        text.push('\n');
    }
    let mut r = Response::new(Full::new(Bytes::from(text)).boxed());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

async fn events(host: &Host, name: &str) -> Response<Body> {
    let h = match handle_of(host, name, false).await {
        Ok(h) => h,
        Err(response) => return response,
    };
    let sub = h.subscribe();
    let stream = futures_util::stream::unfold(Some(sub), |sub| async move {
        let mut sub = sub?;
        let line = match sub.recv().await {
            Ok(e) => {
                let last = matches!(e, ActorEvent::Stopped | ActorEvent::GaveUp { .. });
                let line = event_json(&e).to_string() + "\n";
                return Some((line, (!last).then_some(sub)));
            }
            Err(RecvError::Lagged { missed }) => {
                json!({"event": "lagged", "missed": missed}).to_string() + "\n"
            }
            Err(_) => return None,
        };
        Some((line, Some(sub)))
    })
    .map(|line| Ok::<_, Infallible>(Frame::data(Bytes::from(line))));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

pub(crate) async fn send(host: &Host, name: &str, body: &[u8]) -> Response<Body> {
    if host.registry.lookup(name).is_none()
        && host
            .cluster_state()
            .is_some_and(|s| s.listing(name).is_some())
    {
        return send_remote(host, name, body).await;
    }
    let h = match handle_of(host, name, true).await {
        Ok(h) => h,
        Err(response) => return response,
    };
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            );
        }
    };
    if let Some(message) = v.get("message") {
        return match h.tell(ActorInput::message(message.clone())).await {
            Ok(()) => full(StatusCode::ACCEPTED, json!({"sent": true})),
            Err(e) => error(StatusCode::CONFLICT, e),
        };
    }
    let Some(request) = v.get("request") else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"message\": ...} or {\"request\": ...}",
        );
    };
    match h.call(ActorInput::request(request.clone())).await {
        Ok(out) => full(
            StatusCode::OK,
            json!({
                "reply": out.output.to_payload().json.get("payload").cloned().unwrap_or(Value::Null),
                "seq": out.seq,
                "hash": out.hash.to_string(),
            }),
        ),
        Err(theater_core::CallError::Failed { seq, error: e, .. }) => full(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": e, "seq": seq}),
        ),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}
