//! theater-http rows: requests/s and latency of the REST example (memory chain, and a file
//! chain in group commit) vs a bare hyper hello-world server, both driven by the same load
//! generator over loopback in the same run.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use theater_chain::{ChainId, ChainStore, Durability, FileStore, MemoryStore};
use theater_core::{ActorConfig, ActorHandle, Shutdown, spawn};
use theater_http::{HttpConfig, HttpServer};
use theater_test_support::example_component;
use theater_wasm::{Limits, WasmConfig, WasmHost};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Better, Report, Row, Target, median, percentile};

/// Concurrent keep-alive connections of the load generator.
pub(crate) const CONNECTIONS: usize = 16;

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    if !report.wants("HTTP requests to the REST example")
        && !report.wants("HTTP latency, REST")
        && !report.wants("HTTP requests, REST example (file chain), 8 vs 128 connections")
    {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(rest_vs_bare(report))
}

/// What one load run measured.
pub(crate) struct Load {
    pub(crate) per_second: f64,
    pub(crate) latencies: Vec<Duration>,
}

/// `CONNECTIONS` clients, each sending `per_connection` `GET path` requests one after another
/// on its own keep-alive connection; every answer must be 200.
async fn load(addr: SocketAddr, path: &str, per_connection: usize) -> anyhow::Result<Load> {
    load_requests(addr, "GET", path, "", 200, per_connection).await
}

/// `CONNECTIONS` clients, each sending `per_connection` `method path` requests with `body`
/// one after another on its own keep-alive connection; every answer must be `expect`.
pub(crate) async fn load_requests(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &'static str,
    expect: u16,
    per_connection: usize,
) -> anyhow::Result<Load> {
    load_on(
        addr,
        method,
        path,
        body,
        expect,
        per_connection,
        CONNECTIONS,
    )
    .await
}

/// [`load_requests`] on `connections` connections.
async fn load_on(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &'static str,
    expect: u16,
    per_connection: usize,
    connections: usize,
) -> anyhow::Result<Load> {
    let mut clients = Vec::new();
    for _ in 0..connections {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        clients.push(sender);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut sender in clients {
        let path = path.to_string();
        let method = http::Method::from_bytes(method.as_bytes())?;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_connection);
            for _ in 0..per_connection {
                let req = Request::builder()
                    .method(method.clone())
                    .uri(path.as_str())
                    .header("host", "bench")
                    .body(Full::new(Bytes::from_static(body.as_bytes())))?;
                let t = Instant::now();
                sender.ready().await?;
                let res = sender.send_request(req).await?;
                let status = res.status();
                let _ = res.into_body().collect().await?;
                latencies.push(t.elapsed());
                anyhow::ensure!(status == expect, "status {status}, expected {expect}");
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(CONNECTIONS * per_connection);
    for t in tasks {
        latencies.extend(t.await??);
    }
    let took = started.elapsed();
    Ok(Load {
        per_second: latencies.len() as f64 / took.as_secs_f64(),
        latencies,
    })
}

/// A bare hyper server answering `hello world` to everything, built like ours (auto
/// HTTP/1.1 + HTTP/2, one task per connection).
pub(crate) async fn bare_hyper(shutdown: Shutdown) -> anyhow::Result<SocketAddr> {
    bare_hyper_answering(shutdown, b"hello world").await
}

/// [`bare_hyper`] answering `body` to everything.
pub(crate) async fn bare_hyper_answering(
    shutdown: Shutdown,
    body: &'static [u8],
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                a = listener.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
            };
            let _ = stream.set_nodelay(true);
            let builder = Arc::clone(&builder);
            tokio::spawn(async move {
                let service = service_fn(move |_req| async move {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(body))))
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The todo example on `chain`, holding a few todos, served on a free loopback port.
async fn rest_server(
    host: &WasmHost,
    chain: Box<dyn ChainStore>,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, ActorHandle)> {
    let component = host.load_file(example_component("todo"))?;
    let (host, id) = (host.clone(), chain.id().clone());
    let actor = spawn(
        move || host.actor(&component, &id, Value::Null, Limits::default()),
        chain,
        ActorConfig::default(),
    )
    .await?;
    let server = HttpServer::bind(HttpConfig::loopback(0))
        .await?
        .route("/", actor.clone())?;
    let addr = server.local_addr()?;
    tokio::spawn(server.serve(shutdown));
    // Seed the list through the API itself.
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    for title in ["one", "two", "three"] {
        let body = format!("{{\"title\": \"{title}\"}}");
        let req = Request::post("/todos")
            .header("host", "bench")
            .body(Full::new(Bytes::from(body)))?;
        sender.ready().await?;
        let res = sender.send_request(req).await?;
        anyhow::ensure!(res.status() == 201, "seeding failed: {}", res.status());
        let _ = res.into_body().collect().await?;
    }
    Ok((addr, actor))
}

async fn rest_vs_bare(report: &mut Report) -> anyhow::Result<()> {
    let per_connection = if report.settings.samples <= 3 {
        300
    } else {
        1000
    };
    let shutdown = Shutdown::new();
    let host = WasmHost::new(WasmConfig::default().pooling(Some(16)))?;
    let bare = bare_hyper(shutdown.clone()).await?;
    let dir = tempfile::tempdir()?;
    let memory: Box<dyn ChainStore> = Box::new(MemoryStore::new(ChainId::new("todo-memory")?));
    let file: Box<dyn ChainStore> = Box::new(FileStore::create(
        dir.path().join("todo"),
        ChainId::new("todo-file")?,
        Durability::Group { max_batch: 64 },
    )?);
    let mut servers = Vec::new();
    for (label, chain) in [("memory chain", memory), ("file chain, group commit", file)] {
        let (addr, actor) = rest_server(&host, chain, shutdown.clone()).await?;
        servers.push((label, addr, actor));
    }
    for (label, addr, actor) in &servers {
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        let (mut ours_lat, mut base_lat) = (Vec::new(), Vec::new());
        // The first round warms both up and is not counted.
        for round in 0..=report.settings.samples {
            let a = load(*addr, "/todos/2", per_connection).await?;
            let b = load(bare, "/todos/2", per_connection).await?;
            if round > 0 {
                ours.push(Duration::from_secs_f64(1.0 / a.per_second));
                base.push(Duration::from_secs_f64(1.0 / b.per_second));
                ours_lat.extend(a.latencies);
                base_lat.extend(b.latencies);
            }
        }
        let target = (*label == "memory chain").then_some(Target::Ratio(0.5));
        report.push(Row {
            name: format!("HTTP requests to the REST example ({label})"),
            unit: "req/s",
            ours: 1.0 / median(&mut ours).as_secs_f64(),
            baseline_name: "bare hyper hello world".into(),
            baseline: 1.0 / median(&mut base).as_secs_f64(),
            better: Better::Higher,
            target,
        });
        for (what, p) in [("median", 0.5), ("p99", 0.99)] {
            report.push(Row {
                name: format!("HTTP latency, REST example ({label}), {what}"),
                unit: "s",
                ours: percentile(&mut ours_lat, p).as_secs_f64(),
                baseline_name: "bare hyper hello world".into(),
                baseline: percentile(&mut base_lat, p).as_secs_f64(),
                better: Better::Lower,
                target: None,
            });
        }
        // Every request was a recorded input.
        let (_, head) = actor.state().await?;
        let expected = 3 + (report.settings.samples + 1) * CONNECTIONS * per_connection;
        anyhow::ensure!(
            head.map(|h| h.seq) == Some(expected as u64),
            "the chain does not hold every request"
        );
    }
    // Group commit shares an fsync among the requests that are ready: with few connections,
    // few are. The same total of requests on 8 and on 128 connections, interleaved.
    if let Some((_, addr, _)) = servers.iter().find(|(l, _, _)| l.starts_with("file"))
        && report.wants("HTTP requests, REST example (file chain), 8 vs 128 connections")
    {
        let total = 16 * per_connection;
        let (mut few, mut many) = (Vec::new(), Vec::new());
        for round in 0..=report.settings.samples {
            let a = load_on(*addr, "GET", "/todos/2", "", 200, total / 8, 8).await?;
            let b = load_on(*addr, "GET", "/todos/2", "", 200, total / 128, 128).await?;
            if round > 0 {
                few.push(Duration::from_secs_f64(1.0 / a.per_second));
                many.push(Duration::from_secs_f64(1.0 / b.per_second));
            }
        }
        report.push(Row {
            name: "HTTP requests, REST example (file chain), 8 vs 128 connections".into(),
            unit: "req/s",
            ours: 1.0 / median(&mut few).as_secs_f64(),
            baseline_name: "the same server on 128 connections".into(),
            baseline: 1.0 / median(&mut many).as_secs_f64(),
            better: Better::Higher,
            target: Some(Target::Ratio(0.8)),
        });
    }
    shutdown.cancel();
    Ok(())
}
