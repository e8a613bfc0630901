//! The web console: pages (bundled into the binary at build time, see `build.rs`) and their
//! JSON API under `/console/`, served by `theater run` on the management API's address, and
//! by `theater console PATH...` over stored chains offline. The contract between the pages and
//! this API: `console/API.md`; the design and the threat model: `docs/CONSOLE.md`.
//!
//! The management token never reaches a browser. `POST /console/code` (with the token) mints a
//! one-time code (60 s, single use; only its hash is kept), `theater console` prints
//! `/console/#code=CODE` (a fragment is never sent to a server), and the page trades the code
//! at `POST /console/login` for a session, which it keeps in its tab's `sessionStorage` (one
//! origin, so one port) and sends as `x-theater-session` with every API request. Not a cookie:
//! a browser sends a cookie to every port of a host name, so an actor's own HTTP server on
//! 127.0.0.1 would receive it, and record it in its chain. A custom header cannot be sent by
//! another origin's page without a CORS preflight, which this server never answers.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use theater_chain::{ChainError, ChainStore, Entry, FileStore, Hash};
use theater_core::{ActorMetrics, ActorStatus, Shutdown};
use theater_wasm::Manifest;

use crate::admin::{Body, error, full};
use crate::host::Host;

const INDEX_HTML: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/console/index.html"));
const CONSOLE_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/console/console.js"));
const CONSOLE_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/console/console.css"));
/// The licenses of the npm packages bundled into the script.
const CONSOLE_LEGAL: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/console/console.js.LEGAL.txt"));

/// The header a page sends its session in.
const SESSION_HEADER: &str = "x-theater-session";
/// The largest body of a login, and of any other request (a message sent to an actor).
const MAX_LOGIN_BODY: usize = 4 * 1024;
const MAX_SEND_BODY: usize = 1024 * 1024;
/// How long a one-time code may wait to be used.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long a console session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Codes and sessions kept at most (the oldest goes first).
const MAX_CODES: usize = 32;
const MAX_SESSIONS: usize = 64;
/// How long one search request may scan before it answers with a cursor.
const SEARCH_BUDGET: Duration = Duration::from_millis(300);
/// Entries per page at most.
const MAX_PAGE: usize = 500;
/// Entries per chain in the message graph at most.
const MAX_GRAPH: u64 = 2000;
/// How often the live actor list looks for changes.
const LIVE_TICK: Duration = Duration::from_millis(250);

/// Where the console's chains come from.
enum Source {
    /// A running host: its actors, and the chains of its data directory.
    Live(Arc<Host>, Shutdown),
    /// Stored chains, read-only, and the manifests that replay them.
    Offline {
        chains: BTreeMap<String, PathBuf>,
        manifests: Vec<Manifest>,
    },
}

/// The console of one server: its chains, and the codes and sessions it has handed out.
pub(crate) struct Console {
    source: Source,
    token: String,
    codes: Mutex<Vec<(Hash, Instant)>>,
    sessions: Mutex<Vec<(Hash, Instant)>>,
    stores: Arc<Stores>,
    rates: Mutex<HashMap<String, Rate>>,
}

/// An actor's inputs per second, measured over a second or more.
#[derive(Clone, Copy)]
struct Rate {
    inputs: u64,
    at: Instant,
    per_s: f64,
}

/// A random 256-bit value, as hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // The OS's randomness is there on every platform the host runs on; without it nothing
    // secret can be made, so the request fails rather than hand out a guessable value.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random secret, of which `list` keeps the hash for `lifetime`, among `max` at most
/// (expired ones go first, then the oldest).
fn remember(list: &Mutex<Vec<(Hash, Instant)>>, lifetime: Duration, max: usize) -> String {
    let secret = random_hex();
    let mut list = list
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    list.retain(|(_, until)| *until > now);
    while list.len() >= max {
        list.remove(0);
    }
    list.push((Hash::digest(secret.as_bytes()), now + lifetime));
    secret
}

/// Takes `secret` out of `list` if it is there and not expired.
fn take(list: &Mutex<Vec<(Hash, Instant)>>, secret: &str, consume: bool) -> bool {
    let hash = Hash::digest(secret.as_bytes());
    let mut list = list
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    list.retain(|(_, until)| *until > now);
    match list.iter().position(|(h, _)| *h == hash) {
        Some(i) => {
            if consume {
                list.remove(i);
            }
            true
        }
        None => false,
    }
}

fn with_header(mut r: Response<Body>, name: header::HeaderName, value: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

fn asset(body: &'static [u8], content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body)).boxed());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()).boxed());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// The body of `req`, refused past `max` bytes without reading further.
async fn read_body<B>(req: Request<B>, max: usize) -> Result<Bytes, Response<Body>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match http_body_util::Limited::new(req.into_body(), max)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {max} bytes"),
        )),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, e)),
    }
}

/// A failed blocking task (a panic) as an answer.
fn join_error(e: tokio::task::JoinError) -> Response<Body> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the request failed: {e}"),
    )
}

impl Console {
    /// The console of a running host, behind its management token.
    pub(crate) fn live(host: Arc<Host>, shutdown: Shutdown, token: String) -> Console {
        Console::new(Source::Live(host, shutdown), token)
    }

    fn new(source: Source, token: String) -> Console {
        Console {
            source,
            token,
            codes: Mutex::new(Vec::new()),
            sessions: Mutex::new(Vec::new()),
            stores: Arc::default(),
            rates: Mutex::new(HashMap::new()),
        }
    }

    /// A new one-time code: single use, valid for [`CODE_LIFETIME`]. Only its hash is kept.
    pub(crate) fn mint_code(&self) -> String {
        remember(&self.codes, CODE_LIFETIME, MAX_CODES)
    }

    /// The session a request carries (`x-theater-session`), if it is a live one: its hash.
    fn session_of(&self, headers: &HeaderMap) -> Option<Hash> {
        let given = headers.get(SESSION_HEADER)?.to_str().ok()?;
        take(&self.sessions, given, false).then(|| Hash::digest(given.as_bytes()))
    }

    /// Whether the session with this hash is still live (not logged out, not expired).
    fn session_live(&self, hash: &Hash) -> bool {
        let now = Instant::now();
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|(h, until)| h == hash && *until > now)
    }

    fn has_token(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        crate::admin::token_matches(given, &self.token)
    }

    /// Answers a request under `/console` (the caller has checked its `Host`).
    pub(crate) async fn route(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let headers = req.headers().clone();
        let marked = headers
            .get("x-theater-console")
            .is_some_and(|v| v.as_bytes() == b"1");
        match (&method, path.as_str()) {
            (&Method::GET, "/console") => {
                let mut r = no_content();
                *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
                return with_header(r, header::LOCATION, "/console/");
            }
            (&Method::GET, "/console/" | "/console/index.html") => {
                return asset(INDEX_HTML, "text/html; charset=utf-8");
            }
            (&Method::GET, "/console/console.js") => {
                return asset(CONSOLE_JS, "text/javascript; charset=utf-8");
            }
            (&Method::GET, "/console/console.css") => {
                return asset(CONSOLE_CSS, "text/css; charset=utf-8");
            }
            (&Method::GET, "/console/console.js.LEGAL.txt") => {
                return asset(CONSOLE_LEGAL, "text/plain; charset=utf-8");
            }
            _ => {}
        }
        match (&method, path.as_str()) {
            (&Method::POST, "/console/code") => {
                if !self.has_token(&headers) {
                    return error(
                        StatusCode::UNAUTHORIZED,
                        "a one-time code needs the management token (`authorization: Bearer <token>`)",
                    );
                }
                return full(
                    StatusCode::OK,
                    json!({"code": self.mint_code(), "expires_in_s": CODE_LIFETIME.as_secs()}),
                );
            }
            (&Method::POST, "/console/login") => {
                if !marked {
                    return error(
                        StatusCode::FORBIDDEN,
                        "send the header x-theater-console: 1",
                    );
                }
                return match read_body(req, MAX_LOGIN_BODY).await {
                    Ok(body) => self.login(&body),
                    Err(r) => r,
                };
            }
            (&Method::POST, "/console/logout") => {
                let Some(hash) = self.session_of(&headers) else {
                    return error(StatusCode::UNAUTHORIZED, "no console session to end");
                };
                self.sessions
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .retain(|(h, _)| *h != hash);
                return no_content();
            }
            _ => {}
        }
        let Some(api) = path.strip_prefix("/console/api/") else {
            return error(StatusCode::NOT_FOUND, format!("no such page: {path}"));
        };
        // Who asks: the token (a program), or a session (a page). Nothing is read before.
        let session = if self.has_token(&headers) {
            None
        } else {
            match self.session_of(&headers) {
                Some(hash) => Some(hash),
                None => {
                    return error(
                        StatusCode::UNAUTHORIZED,
                        "no console session: open the link `theater console` prints (it logs in once), or send the management token",
                    );
                }
            }
        };
        let body = if method == Method::POST {
            match read_body(req, MAX_SEND_BODY).await {
                Ok(b) => b,
                Err(r) => return r,
            }
        } else {
            Bytes::new()
        };
        // A chain's id may hold any character but a control one: segments are percent-decoded.
        let segments: Vec<String> = match api
            .split('/')
            .map(|seg| {
                percent_encoding::percent_decode_str(seg)
                    .decode_utf8()
                    .map(std::borrow::Cow::into_owned)
            })
            .collect()
        {
            Ok(segments) => segments,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the path is not UTF-8: {e}"),
                );
            }
        };
        let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        self.api(&method, &segments, &params, &body, session).await
    }

    fn login(&self, body: &[u8]) -> Response<Body> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Login {
            code: String,
        }
        let login: Login = match serde_json::from_slice(body) {
            Ok(l) => l,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("expected {{\"code\": \"...\"}}: {e}"),
                );
            }
        };
        if !take(&self.codes, &login.code, true) {
            return error(
                StatusCode::UNAUTHORIZED,
                "this code is unknown, used or expired (a code works once, within a minute): run `theater console` again",
            );
        }
        let session = remember(&self.sessions, SESSION_LIFETIME, MAX_SESSIONS);
        full(
            StatusCode::OK,
            json!({"session": session, "expires_in_s": SESSION_LIFETIME.as_secs()}),
        )
    }

    async fn api(
        self: &Arc<Self>,
        method: &Method,
        segments: &[String],
        params: &HashMap<String, String>,
        body: &[u8],
        session: Option<Hash>,
    ) -> Response<Body> {
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (method, seg.as_slice()) {
            (&Method::GET, ["info"]) => {
                let (mode, data_dir) = match &self.source {
                    Source::Live(h, _) => ("live", Some(h.data_dir.display().to_string())),
                    Source::Offline { .. } => ("offline", None),
                };
                full(
                    StatusCode::OK,
                    json!({"mode": mode, "version": env!("CARGO_PKG_VERSION"), "data_dir": data_dir}),
                )
            }
            (&Method::GET, ["chains"]) => {
                let (dirs, stores) = (self.chain_dirs(), Arc::clone(&self.stores));
                match tokio::task::spawn_blocking(move || chains_json(&stores, &dirs)).await {
                    Ok(v) => full(StatusCode::OK, v),
                    Err(e) => join_error(e),
                }
            }
            (&Method::GET, ["actors"]) => match &self.source {
                Source::Live(host, _) => full(StatusCode::OK, self.actor_rows(host).await),
                Source::Offline { .. } => offline(),
            },
            (&Method::GET, ["actors", "live"]) => match &self.source {
                Source::Live(..) => self.live_actors(session),
                Source::Offline { .. } => offline(),
            },
            (&Method::POST, ["actors", name, "send"]) => match &self.source {
                Source::Live(host, _) => crate::admin::send(host, name, body).await,
                Source::Offline { .. } => offline(),
            },
            (&Method::GET, ["chains", name, "entries"]) => {
                let dir = match self.chain_dir(name) {
                    Ok(d) => d,
                    Err((status, message)) => return error(status, message),
                };
                let find = match Find::from_params(params) {
                    Ok(f) => f,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e),
                };
                let stores = Arc::clone(&self.stores);
                blocking(move || {
                    let store = stores.get(&dir)?;
                    // The budget is for the scan: a chain opened again (its log grew) is read
                    // whole first, and the search must still get its run.
                    find_entries(&store, &find, Instant::now() + SEARCH_BUDGET)
                })
                .await
            }
            (&Method::GET, ["chains", name, "entries", seq]) => {
                let dir = match self.chain_dir(name) {
                    Ok(d) => d,
                    Err((status, message)) => return error(status, message),
                };
                let Ok(seq) = seq.parse::<u64>() else {
                    return error(StatusCode::BAD_REQUEST, format!("{seq:?} is not a seq"));
                };
                let stores = Arc::clone(&self.stores);
                blocking(move || entry_json(&*stores.get(&dir)?, seq)).await
            }
            (&Method::GET, ["chains", name, "state", seq]) => {
                let dir = match self.chain_dir(name) {
                    Ok(d) => d,
                    Err((status, message)) => return error(status, message),
                };
                let Ok(seq) = seq.parse::<u64>() else {
                    return error(StatusCode::BAD_REQUEST, format!("{seq:?} is not a seq"));
                };
                let manifest = match self.manifest_of(name).await {
                    Ok(m) => m,
                    Err(r) => return r,
                };
                let stores = Arc::clone(&self.stores);
                blocking(move || state_at(manifest, &*stores.get(&dir)?, &dir, seq)).await
            }
            (&Method::POST, ["chains", name, "verify"]) => {
                let dir = match self.chain_dir(name) {
                    Ok(d) => d,
                    Err((status, message)) => return error(status, message),
                };
                blocking(move || verify(&dir)).await
            }
            (&Method::GET, ["graph"]) => {
                let all = self.chain_dirs();
                let chosen: Vec<(String, PathBuf)> = match params.get("chains") {
                    Some(list) if !list.is_empty() => {
                        let mut out = Vec::new();
                        for name in list.split(',') {
                            match all.iter().find(|(n, _)| n == name) {
                                Some(c) => out.push(c.clone()),
                                None => {
                                    return error(
                                        StatusCode::NOT_FOUND,
                                        format!("no chain named {name:?}"),
                                    );
                                }
                            }
                        }
                        out
                    }
                    _ => all,
                };
                let limit = match params.get("limit").map(|l| l.parse::<u64>()) {
                    None => 200,
                    Some(Ok(l)) if (1..=MAX_GRAPH).contains(&l) => l,
                    Some(_) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!("limit must be a number from 1 to {MAX_GRAPH}"),
                        );
                    }
                };
                let stores = Arc::clone(&self.stores);
                blocking(move || graph(&stores, &chosen, limit)).await
            }
            _ => error(
                StatusCode::NOT_FOUND,
                format!(
                    "no such console endpoint: {method} /console/api/{}",
                    segments.join("/")
                ),
            ),
        }
    }

    /// Every chain the console shows, by name.
    fn chain_dirs(&self) -> Vec<(String, PathBuf)> {
        match &self.source {
            Source::Offline { chains, .. } => {
                chains.iter().map(|(n, d)| (n.clone(), d.clone())).collect()
            }
            Source::Live(host, _) => {
                let mut out: Vec<(String, PathBuf)> =
                    std::fs::read_dir(host.data_dir.join("chains"))
                        .into_iter()
                        .flatten()
                        .filter_map(Result::ok)
                        .filter(|e| e.path().is_dir())
                        .filter_map(|e| {
                            let name = e.file_name().to_str()?.to_string();
                            theater_wasm::check_name(&name).ok()?;
                            Some((name, e.path()))
                        })
                        .collect();
                out.sort();
                out
            }
        }
    }

    fn chain_dir(&self, name: &str) -> Result<PathBuf, (StatusCode, String)> {
        let missing = || (StatusCode::NOT_FOUND, format!("no chain named {name:?}"));
        match &self.source {
            Source::Offline { chains, .. } => chains.get(name).cloned().ok_or_else(missing),
            Source::Live(host, _) => {
                if theater_wasm::check_name(name).is_err() {
                    return Err(missing());
                }
                let dir = host.data_dir.join("chains").join(name);
                if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(missing())
                }
            }
        }
    }

    /// The manifest that replays the chain `name`.
    async fn manifest_of(&self, name: &str) -> Result<Manifest, Response<Body>> {
        let found = match &self.source {
            Source::Offline { manifests, .. } => manifests
                .iter()
                .find(|m| {
                    m.name.as_str() == name || m.family.as_ref().is_some_and(|f| f.covers(name))
                })
                .cloned(),
            Source::Live(host, _) => host.manifest_of(name).await,
        };
        found.ok_or_else(|| {
            error(
                StatusCode::CONFLICT,
                match &self.source {
                    Source::Offline { .. } => format!(
                        "no manifest for {name:?} at hand: give `theater console` its manifest with --manifest to replay it"
                    ),
                    Source::Live(..) => format!(
                        "{name:?} is not an actor of this host: its manifest is not at hand to replay it (`theater console {name}'s chain --manifest M` can)"
                    ),
                },
            )
        })
    }

    /// The actors of the host, with their counters and rates.
    async fn actor_rows(&self, host: &Host) -> Value {
        let mut rows = Vec::new();
        let now = Instant::now();
        for a in host.list().await {
            let chain_bytes = host.chain_bytes(&a.name);
            let Some(h) = a.handle else {
                rows.push(json!({"name": a.name, "status": "passive", "seq": null,
                                 "chain_bytes": chain_bytes}));
                continue;
            };
            let m = h.metrics();
            let inputs = ActorMetrics::get(&m.inputs);
            let entries = ActorMetrics::get(&m.chain_entries);
            let per_s = {
                let mut rates = self
                    .rates
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let r = rates.entry(a.name.clone()).or_insert(Rate {
                    inputs,
                    at: now,
                    per_s: 0.0,
                });
                let dt = now.duration_since(r.at).as_secs_f64();
                if dt >= 1.0 {
                    r.per_s = inputs.saturating_sub(r.inputs) as f64 / dt;
                    r.inputs = inputs;
                    r.at = now;
                }
                r.per_s
            };
            let status = match h.status() {
                ActorStatus::Running => "running".to_string(),
                ActorStatus::Restarting { attempt } => format!("restarting (attempt {attempt})"),
                ActorStatus::Stopped => "stopped".to_string(),
                ActorStatus::Failed { reason } => format!("failed: {reason}"),
                other => format!("{other:?}").to_lowercase(),
            };
            rows.push(json!({
                "name": a.name,
                "status": status,
                "seq": entries.checked_sub(1),
                "inputs": inputs,
                "failures": ActorMetrics::get(&m.failures),
                "restarts": ActorMetrics::get(&m.restarts),
                "mailbox": h.mailbox_depth(),
                "inputs_per_s": (per_s * 10.0).round() / 10.0,
                "chain_bytes": chain_bytes,
            }));
        }
        Value::Array(rows)
    }

    /// Server-Sent Events: the actor rows at once, then whenever they change.
    fn live_actors(self: &Arc<Self>, session: Option<Hash>) -> Response<Body> {
        let console = Arc::clone(self);
        let state = (console, String::new(), Instant::now(), true);
        let stream = futures_util::stream::unfold(
            state,
            move |(console, last, mut quiet, first)| async move {
                let Source::Live(host, shutdown) = &console.source else {
                    return None;
                };
                let (host, shutdown) = (Arc::clone(host), shutdown.clone());
                loop {
                    // The stream ends with the host (a browser left open holds up no shutdown),
                    // and with its session (logged out or expired).
                    if session.as_ref().is_some_and(|h| !console.session_live(h)) {
                        return None;
                    }
                    if !first {
                        tokio::select! {
                            () = shutdown.cancelled() => return None,
                            () = tokio::time::sleep(LIVE_TICK) => {}
                        }
                    }
                    let rows = console.actor_rows(&host).await.to_string();
                    if rows != last {
                        let event = format!("data: {rows}\n\n");
                        return Some((event, (console, rows, Instant::now(), false)));
                    }
                    // A comment now and then: a closed connection is noticed and the stream ends.
                    if quiet.elapsed() > Duration::from_secs(10) {
                        quiet = Instant::now();
                        return Some((": alive\n\n".to_string(), (console, last, quiet, false)));
                    }
                }
            },
        )
        .map(|text| Ok::<_, Infallible>(Frame::data(Bytes::from(text))));
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    }
}

fn offline() -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "an offline console (`theater console PATH...`) has chains, not running actors",
    )
}

/// What a blocking task answers: a JSON value, or a status and a message.
type Answer = Result<Value, (StatusCode, String)>;

async fn blocking(f: impl FnOnce() -> Answer + Send + 'static) -> Response<Body> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => full(StatusCode::OK, v),
        Ok(Err((status, message))) => error(status, message),
        Err(e) => join_error(e),
    }
}

fn open(dir: &Path) -> Result<FileStore, (StatusCode, String)> {
    FileStore::open_read_only(dir).map_err(|e| match e {
        e @ ChainError::Corrupt(_) => chain_error(e),
        e => (
            StatusCode::NOT_FOUND,
            format!("cannot read the chain in {}: {e}", dir.display()),
        ),
    })
}

fn chain_error(e: ChainError) -> (StatusCode, String) {
    match e {
        ChainError::Corrupt(c) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the chain is damaged at seq {}: {}", c.seq, c.problem),
        ),
        e => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn chains_json(stores: &Stores, dirs: &[(String, PathBuf)]) -> Value {
    let rows: Vec<Value> = dirs
        .iter()
        .map(|(name, dir)| {
            let bytes = std::fs::metadata(dir.join("chain.log"))
                .map(|m| m.len())
                .ok();
            match stores.get_or_peek(dir, false) {
                Ok(s) => json!({"name": name, "len": s.len(), "start": s.start(), "bytes": bytes}),
                Err((_, e)) => json!({"name": name, "error": e, "bytes": bytes}),
            }
        })
        .collect();
    Value::Array(rows)
}

/// A search of one chain: the page before `before`, newest first.
struct Find {
    before: Option<u64>,
    limit: usize,
    kind: Option<String>,
    failed: bool,
    from: Option<u64>,
    to: Option<u64>,
    q: Option<String>,
}

impl Find {
    fn from_params(p: &HashMap<String, String>) -> Result<Find, String> {
        let seq = |key: &str| -> Result<Option<u64>, String> {
            match p.get(key).map(String::as_str) {
                None | Some("") => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{key}={v:?} is not a seq (a whole number)")),
            }
        };
        let limit = match p.get("limit").map(String::as_str) {
            None | Some("") => 50,
            Some(v) => match v.parse::<usize>() {
                Ok(l) if (1..=MAX_PAGE).contains(&l) => l,
                _ => return Err(format!("limit={v:?}: give a number from 1 to {MAX_PAGE}")),
            },
        };
        let text = |key: &str| p.get(key).filter(|v| !v.is_empty()).cloned();
        Ok(Find {
            before: seq("before")?,
            limit,
            kind: text("kind"),
            failed: matches!(p.get("failed").map(String::as_str), Some("1" | "true")),
            from: seq("from")?,
            to: seq("to")?,
            q: text("q"),
        })
    }

    /// Whether anything but the seq bounds filters the entries.
    fn filters(&self) -> bool {
        self.failed || self.kind.is_some() || self.q.is_some()
    }

    fn keeps(&self, entry: &Entry) -> bool {
        use theater_chain::Event;
        if self.failed && !matches!(entry.event(), Event::Failed { .. }) {
            return false;
        }
        if let Some(kind) = &self.kind
            && !crate::chain_cmd::matches_kind(entry, kind)
        {
            return false;
        }
        if let Some(q) = &self.q {
            let found = match entry.event() {
                Event::Input { input, output } => {
                    contains(&input.json, q) || contains(&output.json, q)
                }
                Event::Read { input, .. } => contains(&input.json, q),
                Event::Failed { input, error } => {
                    contains(&input.json, q) || error.contains(q.as_str())
                }
                Event::Init { params, .. } => contains(&params.json, q),
                _ => false,
            };
            if !found {
                return false;
            }
        }
        true
    }
}

/// Whether `q` is in the JSON text of `v`.
fn contains(v: &Value, q: &str) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => s.contains(q) || v.to_string().contains(q),
        _ => v.to_string().contains(q),
    }
}

fn summary(entry: &Entry, hash: &Hash) -> Value {
    let what = crate::render::clipped(crate::render::entry_what(entry), 200);
    json!({
        "seq": entry.seq(),
        "hash": hash.to_string(),
        "kind": entry.event().kind(),
        "failed": matches!(entry.event(), theater_chain::Event::Failed { .. }),
        "summary": what,
        "refs": entry.refs().iter()
            .map(|r| json!({"chain": r.chain.as_str(), "seq": r.seq, "hash": r.hash.to_string()}))
            .collect::<Vec<_>>(),
    })
}

/// One page of the entries `find` keeps, newest first, scanning back from `before` for at
/// most `budget`; the answer's `next` resumes where it stopped.
fn find_entries(store: &FileStore, find: &Find, deadline: Instant) -> Answer {
    // Without a filter every entry is kept: read a page, not a search's run.
    let chunk: u64 = if find.filters() {
        1024
    } else {
        find.limit as u64
    };
    let (start, len) = (store.start(), store.len());
    let low = find.from.unwrap_or(0).max(start);
    let high = find
        .before
        .unwrap_or(len)
        .min(len)
        .min(find.to.map_or(u64::MAX, |t| t.saturating_add(1)));
    let mut page: Vec<Value> = Vec::new();
    let mut scanned = 0u64;
    let mut hi = high;
    let mut next = None;
    let mut complete = true;
    while hi > low {
        let lo = hi.saturating_sub(chunk).max(low);
        let mut kept = Vec::new();
        store
            .for_each_record_in(lo, hi, &mut |rec| {
                scanned += 1;
                // A record that fails its hash is a row of its own, whatever the filters (it
                // could not be searched), and the scan goes on past it.
                let entry = match rec.checked_entry(store) {
                    Ok(entry) => entry,
                    Err(ChainError::Corrupt(c)) => {
                        kept.push(json!({
                            "seq": rec.seq,
                            "hash": rec.hash.to_string(),
                            "kind": "damaged",
                            "failed": false,
                            "damaged": true,
                            "summary": format!("damaged: {}", c.problem),
                            "refs": [],
                        }));
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                if find.keeps(&entry) {
                    kept.push(summary(&entry, &rec.hash));
                }
                Ok(())
            })
            .map_err(chain_error)?;
        for v in kept.into_iter().rev() {
            if page.len() == find.limit {
                break;
            }
            page.push(v);
        }
        hi = lo;
        if page.len() == find.limit {
            let last = page.last().and_then(|v| v["seq"].as_u64()).unwrap_or(low);
            next = (last > low).then_some(last);
            break;
        }
        if hi > low && Instant::now() >= deadline {
            next = Some(hi);
            complete = false;
            break;
        }
    }
    Ok(json!({
        "chain": store.id().as_str(),
        "start": start,
        "len": len,
        "entries": page,
        "next": next,
        "scanned": scanned,
        "complete": complete,
    }))
}

/// Searches the stored chain in `dir` as the console's chain page does, to its start: the
/// seqs of the entries whose input, output or error (or an init's parameters) holds `text` in
/// its JSON text, newest first, and how many entries were read. Every record read is checked
/// against its stored hash.
pub fn search_chain(dir: &Path, text: &str) -> anyhow::Result<(Vec<u64>, u64)> {
    let store = open(dir).map_err(|(_, e)| anyhow::anyhow!(e))?;
    search_store(&store, text)
}

/// [`search_chain`] over a chain already open.
pub fn search_store(store: &FileStore, text: &str) -> anyhow::Result<(Vec<u64>, u64)> {
    let mut find = Find {
        before: None,
        limit: MAX_PAGE,
        kind: None,
        failed: false,
        from: None,
        to: None,
        q: Some(text.to_string()),
    };
    let (mut found, mut scanned) = (Vec::new(), 0);
    loop {
        let far = Instant::now() + Duration::from_secs(3600);
        let page = find_entries(store, &find, far).map_err(|(_, e)| anyhow::anyhow!(e))?;
        scanned += page["scanned"].as_u64().unwrap_or(0);
        found.extend(
            page["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["seq"].as_u64()),
        );
        match page["next"].as_u64() {
            Some(next) => find.before = Some(next),
            None => return Ok((found, scanned)),
        }
    }
}

/// The answer for a seq the chain does not hold.
fn no_entry(store: &FileStore, seq: u64) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!(
            "{} has no entry {seq} (it holds {}..{})",
            store.id().as_str(),
            store.start(),
            store.len()
        ),
    )
}

fn entry_json(store: &FileStore, seq: u64) -> Answer {
    if seq < store.start() || seq >= store.len() {
        return Err(no_entry(store, seq));
    }
    let entry = store.get(seq).map_err(chain_error)?;
    let hash = store.hash_at(seq).map_err(chain_error)?;
    let mut v = crate::render::entry_json(&entry, &hash);
    v["chain"] = json!(store.id().as_str());
    v["prev"] = json!((seq > store.start()).then(|| seq - 1));
    v["next"] = json!((seq + 1 < store.len()).then_some(seq + 1));
    Ok(v)
}

fn state_at(manifest: Manifest, store: &FileStore, dir: &Path, seq: u64) -> Answer {
    if seq < store.start() || seq >= store.len() {
        return Err(no_entry(store, seq));
    }
    let mut before: Option<Value> = None;
    // From the newest snapshot before the entry (not at it: the state before it is seen too).
    let not_after = seq.saturating_sub(1).max(store.start());
    let report = crate::replay_cmd::replay_manifest(
        manifest,
        store,
        Some(dir),
        seq,
        Some(not_after),
        &mut |s, state| {
            if s + 1 == seq {
                before = Some(state.clone());
            }
        },
    )
    .map_err(|e| (StatusCode::CONFLICT, format!("{e:#}")))?
    .map_err(|e| (StatusCode::CONFLICT, format!("replaying to {seq}: {e}")))?;
    let state = report.state.into_value();
    let diff: Vec<Value> =
        crate::replay_cmd::json_diff(before.as_ref().unwrap_or(&Value::Null), &state)
            .into_iter()
            .map(|(path, a, b)| json!({"path": path, "before": a, "after": b}))
            .collect();
    Ok(json!({
        "seq": seq,
        "state": state,
        "diff": diff,
        "diff_from": before.is_some().then(|| seq - 1),
        "replayed": report.entries,
        "from": report.from,
    }))
}

fn verify(dir: &Path) -> Answer {
    let bad = |c: theater_chain::Corruption| json!({"ok": false, "seq": c.seq, "problem": c.problem.to_string(), "offset": c.offset});
    let store = match FileStore::open_read_only(dir) {
        Ok(s) => s,
        Err(ChainError::Corrupt(c)) => return Ok(bad(*c)),
        Err(e) => return Err((StatusCode::NOT_FOUND, e.to_string())),
    };
    match store.verify() {
        Ok(r) => Ok(json!({"ok": true, "entries": r.entries, "head": r.head.map(|h| h.seq)})),
        Err(ChainError::Corrupt(c)) => Ok(bad(*c)),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// The last `limit` entries of each chain, and the links between them (from the entry a
/// reference names, its cause, to the entry holding it). A chain that cannot be read is a
/// lane with its error: the others still draw.
fn graph(stores: &Stores, chains: &[(String, PathBuf)], limit: u64) -> Answer {
    let mut out = Vec::new();
    let mut refs = Vec::new();
    let mut shown: std::collections::HashSet<(String, u64)> = std::collections::HashSet::new();
    for (name, dir) in chains {
        let mut lane_refs = Vec::new();
        let mut lane_shown = Vec::new();
        let lane = stores.get(dir).and_then(|store| {
            let from = store.len().saturating_sub(limit).max(store.start());
            let mut entries = Vec::new();
            store
                .for_each_record_in(from, store.len(), &mut |rec| {
                    let entry = rec.checked_entry(&*store)?;
                    let what = crate::render::clipped(crate::render::entry_what(&entry), 120);
                    for r in entry.refs() {
                        lane_refs.push((r.chain.as_str().to_string(), r.seq, name.clone(), rec.seq));
                    }
                    lane_shown.push((name.clone(), rec.seq));
                    entries.push(json!({
                        "seq": rec.seq,
                        "kind": entry.event().kind(),
                        "failed": matches!(entry.event(), theater_chain::Event::Failed { .. }),
                        "summary": what,
                    }));
                    Ok(())
                })
                .map_err(chain_error)?;
            Ok(json!({"name": name, "start": store.start(), "len": store.len(), "entries": entries}))
        });
        match lane {
            Ok(v) => {
                out.push(v);
                refs.extend(lane_refs);
                shown.extend(lane_shown);
            }
            Err((_, e)) => out.push(json!({"name": name, "error": e})),
        }
    }
    let links: Vec<Value> = refs
        .into_iter()
        .filter(|(c, s, _, _)| shown.contains(&(c.clone(), *s)))
        .map(|(c, s, to_chain, to_seq)| {
            json!({"from": {"chain": c, "seq": s}, "to": {"chain": to_chain, "seq": to_seq}})
        })
        .collect();
    Ok(json!({"chains": out, "links": links}))
}

/// Chains opened read-only, kept between requests: opening one walks its whole log, and a
/// page of a chain of millions of entries should cost a page. A kept chain is used while its
/// log file is the same file (device and inode) with the same length and modification time.
/// A log that was replaced (a chain pruned, or deleted and made again) is opened again at
/// once; one that has grown at most every [`REOPEN_AFTER`], so a busy actor's chain is a
/// second behind at most. A chain whose log is gone is dropped.
#[derive(Default)]
struct Stores(Mutex<HashMap<PathBuf, Opened>>);

struct Opened {
    store: Arc<FileStore>,
    log: LogId,
    opened: Instant,
    used: Instant,
}

/// What tells one state of a log file from another.
#[derive(Clone, Copy, PartialEq, Eq)]
struct LogId {
    /// Device and inode (Unix): which file it is.
    file: (u64, u64),
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl LogId {
    fn of(dir: &Path) -> Option<LogId> {
        let m = std::fs::metadata(dir.join("chain.log")).ok()?;
        #[cfg(unix)]
        let file = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let file = (0, 0);
        Some(LogId {
            file,
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}

/// How stale a kept chain may be when its log has grown.
const REOPEN_AFTER: Duration = Duration::from_secs(1);
/// Chains kept open at most (the one used longest ago goes first).
const MAX_OPEN: usize = 64;

impl Stores {
    /// The chain in `dir`, opened read-only, and kept (blocks: call it off the async
    /// runtime).
    fn get(&self, dir: &Path) -> Result<Arc<FileStore>, (StatusCode, String)> {
        self.get_or_peek(dir, true)
    }

    /// The chain in `dir`: kept if it is, else opened, and kept only if `keep` (a listing of
    /// every chain should not push out the ones being looked at).
    fn get_or_peek(&self, dir: &Path, keep: bool) -> Result<Arc<FileStore>, (StatusCode, String)> {
        let now = Instant::now();
        let id = LogId::of(dir);
        {
            let mut kept = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match (kept.get_mut(dir), id) {
                (Some(o), Some(id))
                    if o.log == id
                        || (o.log.file == id.file
                            && id.len >= o.log.len
                            && o.opened.elapsed() < REOPEN_AFTER) =>
                {
                    o.used = now;
                    return Ok(Arc::clone(&o.store));
                }
                (Some(_), _) => {
                    kept.remove(dir);
                }
                (None, _) => {}
            }
        }
        let store = Arc::new(open(dir)?);
        let Some(id) = id.filter(|_| keep) else {
            return Ok(store);
        };
        let mut kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() >= MAX_OPEN
            && let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, o)| o.used)
                .map(|(d, _)| d.clone())
        {
            kept.remove(&oldest);
        }
        kept.insert(
            dir.to_path_buf(),
            Opened {
                store: Arc::clone(&store),
                log: id,
                opened: now,
                used: now,
            },
        );
        Ok(store)
    }
}

/// `theater console` without paths: a one-time URL for the running host's console.
pub(crate) fn url_of_running(data_dir: &Path) -> anyhow::Result<String> {
    crate::client::console_url(data_dir)
}

/// `theater console PATH...`: the console over stored chains, offline, until Ctrl-C. Each
/// path is a data directory (its `chains/*`) or a chain's directory.
pub(crate) fn serve_offline(
    paths: &[PathBuf],
    manifests: &[PathBuf],
    listen: SocketAddr,
) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "the console listens on loopback only ({listen} is not)"
    );
    let mut chains = BTreeMap::new();
    let stores = Stores::default();
    for path in paths {
        let candidates: Vec<PathBuf> = if path.join("chain.log").is_file() {
            vec![path.clone()]
        } else if path.join("chains").is_dir() {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(path.join("chains"))
                .with_context(|| format!("cannot list {}", path.join("chains").display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("chain.log").is_file())
                .collect();
            dirs.sort();
            dirs
        } else {
            anyhow::bail!(
                "{} is neither a chain's directory (with chain.log) nor a data directory (with chains/)",
                path.display()
            );
        };
        for dir in candidates {
            // A chain is named by its id (what references name), whatever its directory is
            // called; by its directory when it cannot be opened (its verify tells why) or
            // when another chain of the paths has that id (a copy).
            let by_dir = dir
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
                .with_context(|| format!("{} has no name", dir.display()))?;
            let name = match stores.get(&dir) {
                Ok(store) if !chains.contains_key(store.id().as_str()) => {
                    store.id().as_str().to_string()
                }
                _ => by_dir,
            };
            if let Some(other) = chains.insert(name.clone(), dir.clone()) {
                anyhow::bail!(
                    "two chains are named {name:?}: {} and {}",
                    other.display(),
                    dir.display()
                );
            }
        }
    }
    anyhow::ensure!(!chains.is_empty(), "no chains found in the paths given");
    let manifests = manifests
        .iter()
        .map(|m| Manifest::load(m).with_context(|| format!("cannot load {}", m.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        let n = chains.len();
        let console = Arc::new(Console {
            stores: Arc::new(stores),
            ..Console::new(Source::Offline { chains, manifests }, random_hex())
        });
        println!(
            "console over {n} chain(s): http://{bound}/console/#code={} (the link works once, within a minute; press Enter for a new one, Ctrl-C to stop)",
            console.mint_code()
        );
        let minting = Arc::clone(&console);
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                println!("http://{bound}/console/#code={}", minting.mint_code());
                line.clear();
            }
        });
        let ip = bound.ip();
        loop {
            let stream = tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                a = listener.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
            };
            let console = Arc::clone(&console);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let console = Arc::clone(&console);
                    async move {
                        let ok = crate::admin::authority_of(&req)
                            .is_some_and(|a| crate::admin::names_this_api(&a, ip));
                        if !ok {
                            return Ok::<_, Infallible>(error(
                                StatusCode::MISDIRECTED_REQUEST,
                                "the Host header must name this console by address (localhost or a loopback address), not a DNS name",
                            ));
                        }
                        if req.uri().path() == "/console" || req.uri().path().starts_with("/console/") {
                            Ok(console.route(req).await)
                        } else {
                            Ok(error(StatusCode::NOT_FOUND, "the console is under /console/"))
                        }
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
        Ok(std::process::ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_chain(dir: &Path, n: u64, hit: impl Fn(u64) -> bool) -> FileStore {
        use theater_chain::{ChainId, Durability, NewEntry, Payload};
        let mut s = FileStore::create(dir, ChainId::new("c").unwrap(), Durability::None).unwrap();
        let state = Hash::digest(b"s");
        s.append(NewEntry::init(Payload::json(json!({})), state))
            .unwrap();
        for i in 1..n {
            let input = if hit(i) {
                json!({"hit": i})
            } else {
                json!({"n": i})
            };
            s.append(NewEntry::input(
                Payload::json(input),
                Payload::json(json!(i)),
                state,
            ))
            .unwrap();
        }
        s.sync().unwrap();
        FileStore::open_read_only(dir).unwrap()
    }

    fn find(p: &[(&str, &str)]) -> Find {
        let p: HashMap<String, String> = p
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Find::from_params(&p).unwrap()
    }

    fn seqs(page: &Value) -> Vec<u64> {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    }

    /// Paging by `next` visits every match once, newest first, whatever the page size and
    /// whether a page ends inside a chunk or the budget runs out between chunks.
    #[test]
    fn pages_and_cut_searches_visit_every_match_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = write_chain(dir.path(), 5000, |i| i % 7 == 3);
        let every: Vec<u64> = (0..5000u64).rev().filter(|i| *i % 7 == 3).collect();
        let mut cut = 0;
        for (limit, budget) in [
            ("1", 10_000),
            ("50", 10_000),
            ("500", 10_000),
            ("50", 0),
            ("500", 0),
        ] {
            let mut seen = Vec::new();
            let mut before: Option<u64> = None;
            let mut requests = 0;
            loop {
                let mut p = vec![("q", "hit"), ("limit", limit)];
                let b = before.map(|b| b.to_string());
                if let Some(b) = &b {
                    p.push(("before", b));
                }
                let deadline = Instant::now() + Duration::from_millis(budget);
                let page = find_entries(&store, &find(&p), deadline).unwrap();
                let got = seqs(&page);
                assert!(got.len() <= limit.parse().unwrap());
                if page["complete"] == false {
                    // Out of budget after one chunk, short of a full page: it says so.
                    assert_eq!(budget, 0);
                    assert!(got.len() < limit.parse().unwrap(), "{page}");
                    cut += 1;
                }
                seen.extend(got);
                requests += 1;
                match page["next"].as_u64() {
                    Some(n) => before = Some(n),
                    None => break,
                }
            }
            assert_eq!(seen, every, "limit {limit}, budget {budget} ms");
            assert!(requests >= every.len() / limit.parse::<usize>().unwrap());
        }
        assert!(cut > 0, "no search ran out of its budget");
        // Bounds: from and to are inclusive, kind and failed filter.
        let page = find_entries(
            &store,
            &find(&[("from", "10"), ("to", "24"), ("q", "hit")]),
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(seqs(&page), vec![24, 17, 10]);
        let page = find_entries(
            &store,
            &find(&[("kind", "init")]),
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(seqs(&page), vec![0]);
        let page = find_entries(
            &store,
            &find(&[("failed", "1")]),
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(seqs(&page), Vec::<u64>::new());
        // Without a filter a page reads a page.
        let page = find_entries(
            &store,
            &find(&[("limit", "50"), ("before", "3000")]),
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(seqs(&page), (2950..3000).rev().collect::<Vec<_>>());
        assert_eq!(
            (page["scanned"].clone(), page["next"].clone()),
            (json!(50), json!(2950))
        );
        for bad in [
            ("limit", "0"),
            ("limit", "501"),
            ("before", "x"),
            ("from", "-1"),
        ] {
            let p: HashMap<String, String> = [(bad.0.to_string(), bad.1.to_string())].into();
            assert!(Find::from_params(&p).is_err(), "{bad:?}");
        }
    }

    /// A record that fails its hash is listed as damaged, whatever the filters, and the
    /// entries on both sides of it are still found.
    #[test]
    fn a_damaged_record_is_a_row_and_the_scan_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = write_chain(dir.path(), 100, |i| i % 10 == 0);
        let mut at = 0;
        store
            .for_each_record_in(55, 56, &mut |rec| {
                at = rec.offset.unwrap() as usize + 8 + rec.body.len() / 2;
                Ok(())
            })
            .unwrap();
        drop(store);
        let log = dir.path().join("chain.log");
        let mut bytes = std::fs::read(&log).unwrap();
        bytes[at] ^= 0x01;
        std::fs::write(&log, &bytes).unwrap();
        let store = FileStore::open_read_only(dir.path()).unwrap();
        let far = || Instant::now() + Duration::from_secs(10);
        let page = find_entries(&store, &find(&[("limit", "500")]), far()).unwrap();
        assert_eq!(seqs(&page), (0..100).rev().collect::<Vec<_>>());
        let damaged: Vec<&Value> = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["damaged"] == true)
            .collect();
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0]["seq"], 55);
        assert!(
            damaged[0]["summary"]
                .as_str()
                .unwrap()
                .contains("hash mismatch")
        );
        let page = find_entries(&store, &find(&[("q", "hit")]), far()).unwrap();
        assert_eq!(seqs(&page), vec![90, 80, 70, 60, 55, 50, 40, 30, 20, 10]);
    }

    /// A kept chain is served while its log is the same file; a log replaced by another of
    /// the same length (a chain made again) is read again at once, and a chain deleted is
    /// dropped.
    #[test]
    fn kept_chains_follow_their_log_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("c");
        write_chain(&dir, 10, |i| i == 3);
        let stores = Stores::default();
        let first = stores.get(&dir).unwrap();
        assert!(Arc::ptr_eq(&first, &stores.get(&dir).unwrap()), "kept");
        let hash = first.hash_at(9).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(stores.get(&dir).is_err(), "a deleted chain is not served");
        assert!(stores.0.lock().unwrap().is_empty(), "and is dropped");
        // Made again; then replaced by a log of the same length, its hit at 4 instead of 3.
        write_chain(&dir, 10, |i| i == 3);
        let first = stores.get(&dir).unwrap();
        assert_eq!(first.hash_at(9).unwrap(), hash, "the same chain again");
        let other = root.path().join("d");
        write_chain(&other, 10, |i| i == 4);
        assert_eq!(
            std::fs::metadata(dir.join("chain.log")).unwrap().len(),
            std::fs::metadata(other.join("chain.log")).unwrap().len()
        );
        std::fs::rename(other.join("chain.log"), dir.join("chain.log")).unwrap();
        let again = stores.get(&dir).unwrap();
        assert!(
            !Arc::ptr_eq(&first, &again),
            "a replaced log is opened again"
        );
        assert_ne!(again.hash_at(9).unwrap(), hash);
        // A listing does not keep what it opens.
        let listed = root.path().join("e");
        write_chain(&listed, 3, |_| false);
        stores.get_or_peek(&listed, false).unwrap();
        assert!(!stores.0.lock().unwrap().contains_key(&listed));
    }

    #[test]
    fn codes_work_once_and_expire() {
        let console = Console::new(
            Source::Offline {
                chains: BTreeMap::new(),
                manifests: Vec::new(),
            },
            "token".into(),
        );
        let code = console.mint_code();
        assert!(take(&console.codes, &code, true));
        assert!(!take(&console.codes, &code, true), "used twice");
        let code = console.mint_code();
        for (_, until) in console.codes.lock().unwrap().iter_mut() {
            *until = Instant::now() - Duration::from_millis(1);
        }
        assert!(!take(&console.codes, &code, true), "expired");
        // Kept codes are bounded.
        for _ in 0..1000 {
            console.mint_code();
        }
        assert!(console.codes.lock().unwrap().len() <= MAX_CODES);
    }

    #[tokio::test]
    async fn bodies_are_bounded() {
        let req = |n: usize| Request::new(Full::new(Bytes::from(vec![b'x'; n])));
        assert_eq!(read_body(req(10), 10).await.unwrap().len(), 10);
        let refused = read_body(req(11), 10).await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
