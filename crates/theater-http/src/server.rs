//! [`HttpServer`]: one listening socket serving one or more actors by path prefix.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use theater_core::FileRef;
use theater_core::{
    ActorHandle, ActorInput, ActorOutput, CallError, FailureKind, HttpRequest, HttpResponse,
    InterfaceError, Shutdown,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::HttpConfig;
use crate::served::{self, FileStream, Unservable};
use crate::ws::{self, Sockets};

/// The response header naming the chain entry that recorded the exchange: `<seq> <hash>`.
pub const ENTRY_HEADER: &str = "theater-entry";

/// A response body: the actor's bytes, or a file it named, streamed.
pub type Body = Either<Full<Bytes>, FileStream>;

struct Route {
    prefix: String,
    actor: ActorHandle,
    /// The directory whose files the actor may answer with.
    files: Option<PathBuf>,
}

struct Shared {
    config: HttpConfig,
    /// Longest prefix first.
    routes: Vec<Route>,
    sockets: Arc<Sockets>,
    shutdown: Shutdown,
}

/// A bound HTTP server: add actors with [`HttpServer::route`], then [`HttpServer::serve`].
pub struct HttpServer {
    listener: TcpListener,
    config: HttpConfig,
    routes: Vec<Route>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.listener.local_addr().ok())
            .field("config", &self.config)
            .field(
                "routes",
                &self.routes.iter().map(|r| &r.prefix).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl HttpServer {
    /// Binds `config.addr`. Nothing is served until [`HttpServer::serve`].
    pub async fn bind(config: HttpConfig) -> Result<Self, InterfaceError> {
        let listener = TcpListener::bind(config.addr).await.map_err(|e| {
            InterfaceError::with_source("http", format!("cannot bind {}", config.addr), e)
        })?;
        Ok(HttpServer {
            listener,
            config,
            routes: Vec::new(),
        })
    }

    /// The address actually bound (the port, when 0 was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr, InterfaceError> {
        self.listener
            .local_addr()
            .map_err(|e| InterfaceError::with_source("http", "no local address", e))
    }

    /// Serves `actor` at `prefix` (see [`HttpConfig::prefix`] for the form): a request for
    /// `prefix/rest` reaches it with path `/rest`. The longest matching prefix wins.
    pub fn route(self, prefix: &str, actor: ActorHandle) -> Result<Self, InterfaceError> {
        self.add_route(prefix, actor, None)
    }

    /// Like [`HttpServer::route`], and the actor may answer with files of `dir` by reference
    /// (the `file` of its response): the server sends the file's bytes after checking they
    /// still have the size and SHA-256 the actor was told (recorded in its chain).
    pub fn route_with_files(
        self,
        prefix: &str,
        actor: ActorHandle,
        dir: impl Into<PathBuf>,
    ) -> Result<Self, InterfaceError> {
        self.add_route(prefix, actor, Some(dir.into()))
    }

    fn add_route(
        mut self,
        prefix: &str,
        actor: ActorHandle,
        files: Option<PathBuf>,
    ) -> Result<Self, InterfaceError> {
        crate::config::check_prefix(prefix)?;
        let prefix = prefix.to_string();
        if self.routes.iter().any(|r| r.prefix == prefix) {
            return Err(InterfaceError::new(
                "http",
                format!("two actors at prefix {prefix:?}"),
            ));
        }
        self.routes.push(Route {
            prefix,
            actor,
            files,
        });
        self.routes
            .sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(self)
    }

    /// Serves until `shutdown` is cancelled; then stops accepting, lets requests in flight
    /// finish (for at most `shutdown_grace`) and returns.
    pub async fn serve(self, shutdown: Shutdown) -> Result<(), InterfaceError> {
        let HttpServer {
            listener,
            config,
            routes,
        } = self;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout)
            .keep_alive(true);
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let grace = config.shutdown_grace;
        let connections = Arc::new(Semaphore::new(config.max_connections));
        let shared = Arc::new(Shared {
            config,
            routes,
            sockets: Arc::new(Sockets::new()),
            shutdown: shutdown.clone(),
        });
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                tokio::spawn(refuse(stream));
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = Arc::clone(&shared);
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move {
                    // Counted for the actor the path routes to (`theater_http_requests`).
                    let metrics = route(&shared, req.uri().path())
                        .map(|(r, _)| Arc::clone(r.actor.metrics()));
                    let span = request_span(&req);
                    let response = handle(&shared, req).instrument(span.clone()).await;
                    span.record("status", response.status().as_u16());
                    if let Some(m) = metrics {
                        m.http_answered(response.status().as_u16());
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                drop(permit);
            });
        }
        drop(listener);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after {grace:?}; closing them");
        }
        Ok(())
    }
}

/// The span of one request (the actor's input span is its child): continuing the trace its
/// `traceparent` header names, when the host exports traces (W3C trace context).
fn request_span(req: &Request<Incoming>) -> tracing::Span {
    let span = tracing::info_span!(
        target: "theater::http",
        "http_request",
        method = %req.method(),
        path = %req.uri().path(),
        status = tracing::field::Empty,
    );
    if req.headers().contains_key("traceparent") {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let parent =
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
        // Without a layer that exports traces there is nothing to continue.
        let _ = span.set_parent(parent);
    }
    span
}

/// Request headers as OpenTelemetry's propagators read them.
struct Headers<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Answers a connection over the limit with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = "too many connections\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut body = message.into();
    body.push('\n');
    let mut r = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn route<'a>(shared: &'a Shared, path: &str) -> Option<(&'a Route, String)> {
    shared.routes.iter().find_map(|r| {
        if r.prefix == "/" {
            return Some((r, path.to_string()));
        }
        let rest = path.strip_prefix(r.prefix.as_str())?;
        match rest {
            "" => Some((r, "/".to_string())),
            _ if rest.starts_with('/') => Some((r, rest.to_string())),
            _ => None,
        }
    })
}

async fn handle(shared: &Shared, mut req: Request<Incoming>) -> Response<Body> {
    let config = &shared.config;
    let Some((route, path)) = route(shared, req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "no actor is served at this path");
    };
    // A WebSocket upgrade asks the actor like any request, naming the connection it would open.
    let upgrade = ws::upgrade_key(req.method(), req.headers()).map(|accept| {
        (
            accept,
            shared.sockets.new_id(),
            hyper::upgrade::on(&mut req),
        )
    });
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
        return too_large(config.max_body_bytes);
    }
    let body = if hyper::body::Body::is_end_stream(&body) {
        Bytes::new() // no body (most GETs): no timer, no collection
    } else {
        match collect_body(body, config).await {
            Ok(b) => b,
            Err(response) => return response,
        }
    };
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("header {name} is not visible ASCII"),
            );
        };
        headers.push((name.as_str().to_string(), value.to_string()));
    }
    if let Some((_, conn, _)) = &upgrade {
        headers.push((ws::CONN_HEADER.to_string(), conn.clone()));
    }
    let input = ActorInput::HttpRequest(HttpRequest {
        method: parts.method.as_str().to_string(),
        path,
        query: parts.uri.query().map(str::to_string),
        headers,
        body: body.to_vec(),
    });
    // Dropping the call at the timeout withdraws the request if the actor has not begun it.
    let answer = tokio::time::timeout(config.request_timeout, route.actor.call(input)).await;
    match answer {
        Err(_) => plain(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the actor did not answer within {:?}",
                config.request_timeout
            ),
        ),
        Ok(Err(e)) => failure(&e),
        Ok(Ok(outcome)) => match outcome.output {
            ActorOutput::HttpResponse(r) if r.status == 101 => match upgrade {
                Some((accept, conn, on_upgrade)) => {
                    tokio::spawn(ws::run(
                        on_upgrade,
                        conn,
                        route.actor.clone(),
                        Arc::clone(&shared.sockets),
                        config.clone(),
                        shared.shutdown.clone(),
                    ));
                    switching_protocols(r, &accept)
                }
                None => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the actor answered 101 to a request that is not a WebSocket upgrade",
                ),
            },
            ActorOutput::HttpResponse(mut r) => {
                let body = match r.file.take() {
                    Some(file) => match file_body(route, file).await {
                        Ok(body) => body,
                        Err(response) => return response,
                    },
                    None => Either::Left(Full::new(Bytes::from(std::mem::take(&mut r.body)))),
                };
                let mut response = response(r, body);
                if let Ok(v) = HeaderValue::try_from(format!("{} {}", outcome.seq, outcome.hash)) {
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static(ENTRY_HEADER), v);
                }
                response
            }
            other => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the actor answered {}, not an HTTP response",
                    other.to_payload().json["type"]
                ),
            ),
        },
    }
}

/// Reads a request body within the size and time limits, or answers why not.
async fn collect_body(body: Incoming, config: &HttpConfig) -> Result<Bytes, Response<Body>> {
    let collect = Limited::new(body, config.max_body_bytes).collect();
    match tokio::time::timeout(config.body_timeout, collect).await {
        Err(_) => Err(plain(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(too_large(config.max_body_bytes))
        }
        Ok(Err(e)) => Err(plain(
            StatusCode::BAD_REQUEST,
            format!("unreadable body: {e}"),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The body of the file an actor answered with, if its bytes are still what it was told.
async fn file_body(route: &Route, file: FileRef) -> Result<Body, Response<Body>> {
    let Some(root) = route.files.clone() else {
        return Err(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the actor answered with a file, but no directory is granted to it",
        ));
    };
    let path = file.path.clone();
    match served::open(root, file).await {
        Ok(body) => Ok(body),
        Err(Unservable::Unusable(e)) => Err(plain(StatusCode::INTERNAL_SERVER_ERROR, e)),
        // What would be sent is not what the chain says was served.
        Err(Unservable::Changed) => Err(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{path} changed since the actor looked at it"),
        )),
    }
}

/// The 101 answer that completes a WebSocket handshake, with the actor's extra headers
/// (a chosen subprotocol, say).
fn switching_protocols(r: HttpResponse, accept: &str) -> Response<Body> {
    let mut response = response(
        HttpResponse {
            status: 101,
            headers: r
                .headers
                .into_iter()
                .filter(|(n, _)| {
                    !["upgrade", "sec-websocket-accept"]
                        .iter()
                        .any(|h| n.eq_ignore_ascii_case(h))
                })
                .collect(),
            body: Vec::new(),
            file: None,
        },
        Either::Left(Full::default()),
    );
    let h = response.headers_mut();
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::try_from(accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    response
}

fn too_large(max: usize) -> Response<Body> {
    let mut r = plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {max} bytes"),
    );
    // The rest of an oversize body is not read: do not reuse the connection.
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

fn failure(e: &CallError) -> Response<Body> {
    match e {
        CallError::Failed {
            kind: FailureKind::Timeout,
            error,
            seq,
            ..
        } => plain(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the actor ran out of time (recorded at seq {seq}): {error}"),
        ),
        CallError::Failed { error, seq, .. } => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the actor failed (recorded at seq {seq}; state unchanged): {error}"),
        ),
        CallError::Crashed { .. } => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        CallError::Stopped { .. } | CallError::Full { .. } => {
            plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        _ => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The actor's response, or a 500 naming what about it is invalid.
fn response(r: HttpResponse, body: Body) -> Response<Body> {
    let Ok(status) = StatusCode::from_u16(r.status) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the actor answered an invalid status {}", r.status),
        );
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in r.headers {
        // Framing is the server's business: the body's length is known.
        if ["content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) else {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the actor answered an invalid header {name:?}"),
            );
        };
        response.headers_mut().append(name, value);
    }
    response
}
