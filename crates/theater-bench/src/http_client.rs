//! Outbound HTTP row: a GET through an actor (the fetcher example: the request input, the wasm
//! call, the recorded `http-client.send` with its request and response in the entry) vs the
//! same GET done directly with a bare hyper client, both opening one connection per request to
//! the same loopback server, in the same run.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::json;
use theater_core::{ActorInput, Shutdown};
use theater_http_client::{HttpClientConfig, HttpClientGrant};

use crate::harness::{Better, Report, Row, median, spawn_example};

const DOC: &[u8] = br#"{"name": "theater", "tags": ["actors", "wasm", "chains"], "stars": 42}"#;

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let name = "outbound HTTP GET through an actor (fetcher, memory chain)";
    if !report.wants(name) {
        return Ok(());
    }
    let rt = crate::harness::runtime()?;
    rt.block_on(async {
        let shutdown = Shutdown::new();
        let addr = crate::http::bare_hyper_answering(shutdown.clone(), DOC).await?;
        let config = HttpClientConfig {
            allow: vec![addr.to_string()],
            timeout_ms: 10_000,
            max_response_bytes: 1 << 20,
            ca_file: None,
            credentials: Vec::new(),
        };
        let grant =
            Arc::new(HttpClientGrant::new(&config).map_err(|e| anyhow::anyhow!(e.message))?);
        let actor = spawn_example("fetcher", move |actor| {
            actor.with_grant("http-client", Arc::clone(&grant))
        })
        .await?;
        let url = format!("http://{addr}/doc.json");
        let input = ActorInput::request(json!({"refresh": url}));
        let n = 300;
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for round in 0..=report.settings.samples {
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(actor.call(input.clone()).await?);
            }
            let a = t.elapsed();
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(bare_get(addr, "/doc.json").await?);
            }
            let b = t.elapsed();
            if round > 0 {
                ours.push(a / n);
                base.push(b / n);
            }
        }
        let per = |d: std::time::Duration| 1.0 / d.as_secs_f64();
        report.push(Row {
            name: name.into(),
            unit: "req/s",
            ours: per(median(&mut ours)),
            baseline_name: "bare hyper client GET, a connection each".into(),
            baseline: per(median(&mut base)),
            better: Better::Higher,
            target: None,
        });
        shutdown.cancel();
        anyhow::Ok(())
    })
}

/// One GET over a fresh connection, the body read whole.
async fn bare_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<Bytes> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    Ok(response.into_body().collect().await?.to_bytes())
}
