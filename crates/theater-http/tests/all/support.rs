//! A small HTTP client over loopback, a native test actor, and server set-up.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use theater_core::{
    Actor, ActorError, ActorHandle, ActorInput, ActorOutput, HostCalls, HttpResponse, Shutdown,
};
use theater_http::{HttpConfig, HttpServer};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
    pub(crate) addr: SocketAddr,
}

/// A response, read to the end.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Client { sender, addr }
    }

    pub(crate) async fn send(&mut self, method: &str, path: &str, body: &[u8]) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        self.sender.ready().await.unwrap();
        let res = self.sender.send_request(req).await.unwrap();
        let (parts, body) = res.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, b"").await
    }

    pub(crate) async fn json(&mut self, method: &str, path: &str, body: Value) -> Answer {
        self.send(method, path, body.to_string().as_bytes()).await
    }
}

/// A running server and the means to stop it.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) shutdown: Shutdown,
    pub(crate) task: JoinHandle<Result<(), theater_core::InterfaceError>>,
}

impl Running {
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Serves `routes` on a free loopback port with `config`.
pub(crate) async fn serve(config: HttpConfig, routes: Vec<(&str, ActorHandle)>) -> Running {
    let mut server = HttpServer::bind(HttpConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..config
    })
    .await
    .unwrap();
    for (prefix, actor) in routes {
        server = server.route(prefix, actor).unwrap();
    }
    let addr = server.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
    }
}

/// A native actor for the HTTP paths around the actor: counts the requests it answers.
/// `/fail` fails, `/sleep/<ms>` answers after a delay, `/reply` answers a non-HTTP output,
/// `/status/<n>` answers status n; anything else echoes method, path, query, headers and
/// body length as JSON, with the body itself in `x-body` if it is short.
/// `/sleep/<ms>` notifies `started`, if set, when it begins.
#[derive(Clone, Debug, Default)]
pub(crate) struct Echo {
    pub(crate) started: Option<std::sync::Arc<tokio::sync::Notify>>,
}

#[async_trait]
impl Actor for Echo {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Ok(json!({"served": 0}))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        _: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let ActorInput::HttpRequest(req) = input else {
            return Err(ActorError::Failed("HTTP only".into()));
        };
        let served = json!({"served": state["served"].as_u64().unwrap_or(0) + 1});
        let path = req.path.as_str();
        if path == "/fail" {
            return Err(ActorError::Failed("asked to fail".into()));
        }
        if path == "/reply" {
            return Ok((ActorOutput::reply(json!("not http")), served));
        }
        if let Some(ms) = path.strip_prefix("/sleep/") {
            if let Some(n) = &self.started {
                n.notify_one();
            }
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        }
        let status = path
            .strip_prefix("/status/")
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        let body = json!({
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "headers": req.headers,
            "length": req.body.len(),
            "served": served["served"],
        });
        let response = HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            file: None,
        };
        Ok((ActorOutput::HttpResponse(response), served))
    }
}
