//! Outbound HTTP row: a GET through an actor (the fetcher example: the request input, the wasm
//! call, the recorded `http-client.send` with its request and response in the entry) vs the
//! same GET done directly with a bare hyper client, both opening one connection per request to
//! the same loopback server, in the same run; and the same with a credential the host adds from
//! a secret in a file (read, versioned and redacted at every request) vs a bare GET carrying the
//! same header.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::json;
use theater_core::{ActorInput, Shutdown};
use theater_http_client::{CredentialConfig, HttpClientConfig, HttpClientGrant};
use theater_wasm::secrets::Source;

use crate::harness::{Better, Report, Row, median, spawn_example};

const DOC: &[u8] = br#"{"name": "theater", "tags": ["actors", "wasm", "chains"], "stars": 42}"#;

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let plain = "outbound HTTP GET through an actor (fetcher, memory chain)";
    let keyed = "outbound HTTP GET with a credential from a file secret (fetcher, memory chain)";
    if !report.wants(plain) && !report.wants(keyed) {
        return Ok(());
    }
    let rt = crate::harness::runtime()?;
    rt.block_on(async {
        let shutdown = Shutdown::new();
        let addr = crate::http::bare_hyper_answering(shutdown.clone(), DOC).await?;
        let config = |credentials| HttpClientConfig {
            allow: vec![addr.to_string()],
            timeout_ms: 10_000,
            max_response_bytes: 1 << 20,
            ca_file: None,
            credentials,
        };
        if report.wants(plain) {
            let grant = HttpClientGrant::new(&config(Vec::new()))
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let row = measure(report, addr, grant, None).await?;
            report.push(Row {
                name: plain.into(),
                baseline_name: "bare hyper client GET, a connection each".into(),
                ..row
            });
        }
        if report.wants(keyed) {
            // The secret is read from its file, versioned and looked for in the response at
            // every request: that is the cost this row shows.
            let dir = tempfile::tempdir()?;
            let file = dir.path().join("token");
            std::fs::write(&file, TOKEN)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
            let secrets =
                theater_wasm::Secrets::new([("TOKEN".to_string(), Source::File(file))].into())
                    .with_key_in(dir.path())?;
            let credentials = vec![CredentialConfig {
                host: addr.to_string(),
                header: "authorization".into(),
                value: "Bearer {secret:TOKEN}".into(),
            }];
            let grant = HttpClientGrant::with_secrets(
                &config(credentials),
                std::path::Path::new("."),
                &secrets,
            )
            .map_err(|e| anyhow::anyhow!(e.message))?;
            let header = format!("Bearer {TOKEN}");
            let row = measure(report, addr, grant, Some(&header)).await?;
            report.push(Row {
                name: keyed.into(),
                baseline_name: "bare hyper client GET with the header, a connection each".into(),
                ..row
            });
        }
        shutdown.cancel();
        anyhow::Ok(())
    })
}

const TOKEN: &str = "bench-token-0123456789abcdef0123456789abcdef";

/// The fetcher's GETs through `grant` vs bare GETs (with `authorization` if given),
/// interleaved; the row's name is the caller's.
async fn measure(
    report: &Report,
    addr: std::net::SocketAddr,
    grant: HttpClientGrant,
    authorization: Option<&str>,
) -> anyhow::Result<Row> {
    let grant = Arc::new(grant);
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
            std::hint::black_box(bare_get(addr, "/doc.json", authorization).await?);
        }
        let b = t.elapsed();
        if round > 0 {
            ours.push(a / n);
            base.push(b / n);
        }
    }
    let per = |d: std::time::Duration| 1.0 / d.as_secs_f64();
    Ok(Row {
        name: String::new(),
        unit: "req/s",
        ours: per(median(&mut ours)),
        baseline_name: String::new(),
        baseline: per(median(&mut base)),
        better: Better::Higher,
        target: None,
    })
}

/// One GET over a fresh connection, the body read whole.
async fn bare_get(
    addr: std::net::SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> anyhow::Result<Bytes> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut request = http::Request::get(path).header(http::header::HOST, addr.to_string());
    if let Some(value) = authorization {
        request = request.header(http::header::AUTHORIZATION, value);
    }
    let request = request.body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    Ok(response.into_body().collect().await?.to_bytes())
}
