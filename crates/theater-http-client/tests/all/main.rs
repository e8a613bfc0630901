//! Outbound HTTP with the fetcher example against a real loopback server: success, a host not
//! granted, a timeout, a body over the limit, a connection refused; and replay with the
//! server gone.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, Event, FileStore};
use theater_core::{ActorInput, ActorOutput, ActorRuntime, RuntimeConfig, replay};
use theater_http_client::{HttpClient, HttpClientConfig, HttpClientGrant, SEND};
use theater_test_support::{example_component, id};
use theater_wasm::{Capabilities, Limits, WasmActor, WasmConfig, WasmHost};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback server: `/doc.json`, `/big.json` (20 KiB of JSON), `/huge` (64 KiB),
/// `/slow` (answers after 3 s), `/text`. Stops when dropped.
struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                let (status, body) = match path.as_str() {
                    "/doc.json" => ("200 OK", json!({"hello": "world", "n": 1}).to_string()),
                    "/big.json" => ("200 OK", json!({"filler": "x".repeat(20_000)}).to_string()),
                    "/huge" => ("200 OK", "y".repeat(64 << 10)),
                    "/text" => ("200 OK", "plain words".to_string()),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        ("200 OK", "{}".to_string())
                    }
                    _ => (
                        "404 Not Found",
                        "{\"error\": \"no such document\"}".to_string(),
                    ),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(response.as_bytes()).await;
            });
        }
    });
    Server { addr, task }
}

fn host() -> WasmHost {
    WasmHost::new(
        WasmConfig::default()
            .pooling(None)
            .capabilities(Capabilities::new().with(HttpClient)),
    )
    .unwrap()
}

fn fetcher(host: &WasmHost, allow: &[String]) -> WasmActor {
    fetcher_trusting(host, allow, None)
}

fn fetcher_trusting(host: &WasmHost, allow: &[String], ca_file: Option<&Path>) -> WasmActor {
    let component = host.load_file(example_component("fetcher")).unwrap();
    let actor = host.actor(&component, &id("fetcher"), Value::Null, Limits::default());
    let config = HttpClientConfig {
        allow: allow.to_vec(),
        timeout_ms: 2000,
        max_response_bytes: 32 << 10,
        ca_file: ca_file.map(Path::to_path_buf),
        credentials: Vec::new(),
    };
    actor.with_grant(
        "http-client",
        std::sync::Arc::new(HttpClientGrant::new(&config).unwrap()),
    )
}

async fn ask(rt: &mut ActorRuntime<WasmActor>, request: Value) -> Value {
    let handled = rt
        .handle(ActorInput::request(request), vec![])
        .await
        .unwrap();
    match handled.result.unwrap() {
        ActorOutput::Reply { payload } => payload,
        other => panic!("{other:?}"),
    }
}

fn chain(dir: &Path) -> Box<dyn ChainStore> {
    Box::new(FileStore::create(dir, id("fetcher"), Durability::None).unwrap())
}

/// The kinds of the errors the chain recorded for the actor's requests, in order.
fn recorded(chain: &dyn ChainStore) -> Vec<String> {
    (0..chain.len())
        .flat_map(|s| chain.get(s).unwrap().host_calls().to_vec())
        .filter(|c| c.name == SEND)
        .map(|c| match c.result.json.get("error") {
            Some(e) => e["kind"].as_str().unwrap().to_string(),
            None => format!("ok {}", c.result.json["ok"]["status"]),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_refused_or_failed_by_kind_and_replay_without_the_server() {
    let server = server().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let allow = vec![server.addr.to_string(), dead.to_string(), "*".to_string()];
    let mut rt = ActorRuntime::start(
        fetcher(&host, &allow),
        chain(dir.path()),
        RuntimeConfig::default(),
    )
    .await
    .unwrap();
    let url = |path: &str| format!("http://{}{path}", server.addr);

    let got = ask(&mut rt, json!({"fetch": url("/doc.json")})).await;
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["document"], json!({"hello": "world", "n": 1}));
    assert_eq!(got["cached"], false);
    let again = ask(&mut rt, json!({"fetch": url("/doc.json")})).await;
    assert_eq!(
        again["cached"], true,
        "a cached document is not fetched again"
    );
    let big = ask(&mut rt, json!({"fetch": url("/big.json")})).await;
    assert_eq!(big["document"]["filler"].as_str().unwrap().len(), 20_000);

    let kind = |v: &Value| v["error"]["kind"].as_str().unwrap_or("none").to_string();
    // Not granted: another port of the loopback server's address (a wildcard never reaches
    // loopback), and `localhost`, which is not named.
    let other_port = format!("http://127.0.0.1:{}/doc.json", server.addr.port() ^ 1);
    assert_eq!(
        kind(&ask(&mut rt, json!({"fetch": other_port})).await),
        "refused"
    );
    let by_name = format!("http://localhost:{}/doc.json", server.addr.port());
    assert_eq!(
        kind(&ask(&mut rt, json!({"fetch": by_name})).await),
        "refused"
    );
    // (The grant's timeout is 2 s; /slow answers after 3 s.)
    let slow = ask(&mut rt, json!({"fetch": url("/slow")})).await;
    assert_eq!(kind(&slow), "timeout", "{slow}");
    let huge = ask(&mut rt, json!({"fetch": url("/huge")})).await;
    assert_eq!(kind(&huge), "too-large", "{huge}");
    let refused = ask(&mut rt, json!({"fetch": format!("http://{dead}/x")})).await;
    assert_eq!(kind(&refused), "unreachable", "{refused}");
    let text = ask(&mut rt, json!({"fetch": url("/text")})).await;
    assert_eq!(kind(&text), "not-json");
    let bad = ask(&mut rt, json!({"fetch": "ftp://example.com/x"})).await;
    assert_eq!(kind(&bad), "invalid");
    rt.commit().unwrap();
    let state = rt.state().clone();
    assert_eq!(state["failures"], 7, "{state}");
    assert_eq!(
        recorded(rt.chain()),
        [
            "ok 200",
            "ok 200",
            "refused",
            "refused",
            "timeout",
            "too-large",
            "unreachable",
            "ok 200",
            "invalid"
        ]
    );
    // The 20 KiB body lives beside its entry, by hash.
    let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
    assert!(blobs >= 1, "the large response is a blob");
    drop(rt);
    drop(server);

    // Replay, with the server gone and no grant: every answer comes from the chain.
    let stored = FileStore::open_read_only(dir.path()).unwrap();
    stored.verify().unwrap();
    let component = host.load_file(example_component("fetcher")).unwrap();
    let mut bare = host.actor(&component, &id("fetcher"), Value::Null, Limits::default());
    let report = replay(&mut bare, &stored).await.unwrap();
    assert_eq!(report.state, state);
    assert!(matches!(
        stored.get(1).unwrap().event(),
        Event::Input { .. }
    ));
}

#[tokio::test]
async fn an_actor_granted_nothing_is_refused_and_the_refusal_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let component = host.load_file(example_component("fetcher")).unwrap();
    let bare = host.actor(&component, &id("fetcher"), Value::Null, Limits::default());
    let mut rt = ActorRuntime::start(bare, chain(dir.path()), RuntimeConfig::default())
        .await
        .unwrap();
    let got = ask(&mut rt, json!({"fetch": "http://example.com/doc.json"})).await;
    assert_eq!(got["error"]["kind"], "refused");
    let message = got["error"]["message"].as_str().unwrap();
    assert!(message.contains("[interfaces.http-client]"), "{message}");
    assert_eq!(recorded(rt.chain()), ["refused"]);
}

/// An HTTPS server on loopback with a certificate of its own for 127.0.0.1: its CA (PEM)
/// and address. Answers `/doc.json`.
async fn tls_server(dir: &Path) -> (std::path::PathBuf, SocketAddr, tokio::task::JoinHandle<()>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, certified.cert.pem()).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = json!({"secure": true}).to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(response.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (pem, addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_verified_against_the_granted_roots_and_replays_without_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, addr, task) = tls_server(dir.path()).await;
    let host = host();
    let allow = vec![addr.to_string()];
    let url = format!("https://{addr}/doc.json");

    // Not trusted: Mozilla's roots do not include this certificate.
    let chains = tempfile::tempdir().unwrap();
    let mut rt = ActorRuntime::start(
        fetcher(&host, &allow),
        chain(&chains.path().join("untrusted")),
        RuntimeConfig::default(),
    )
    .await
    .unwrap();
    let refused = ask(&mut rt, json!({"fetch": url})).await;
    assert_eq!(refused["error"]["kind"], "unreachable", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("TLS") && message.contains("certificate"),
        "{message}"
    );

    // Trusted through ca_file.
    let mut rt = ActorRuntime::start(
        fetcher_trusting(&host, &allow, Some(&ca)),
        chain(&chains.path().join("trusted")),
        RuntimeConfig::default(),
    )
    .await
    .unwrap();
    let got = ask(&mut rt, json!({"fetch": url})).await;
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["document"], json!({"secure": true}));
    rt.commit().unwrap();
    let state = rt.state().clone();
    drop(rt);
    task.abort();

    let stored = FileStore::open_read_only(chains.path().join("trusted")).unwrap();
    let component = host.load_file(example_component("fetcher")).unwrap();
    let mut bare = host.actor(&component, &id("fetcher"), Value::Null, Limits::default());
    let report = replay(&mut bare, &stored).await.unwrap();
    assert_eq!(report.state, state);
    assert_eq!(recorded(&stored), ["ok 200"]);
}

#[tokio::test]
async fn the_host_sets_host_and_framing_headers_and_urls_carry_no_credentials() {
    use theater_http_client::{Request, calls};
    let server = server().await;
    let config = HttpClientConfig {
        allow: vec![server.addr.to_string()],
        timeout_ms: 2000,
        max_response_bytes: 32 << 10,
        ca_file: None,
        credentials: Vec::new(),
    };
    let grant = HttpClientGrant::new(&config).unwrap();
    let get = |url: String, headers: Vec<(String, String)>| Request {
        method: "GET".into(),
        url,
        headers,
        body: vec![],
    };
    let url = format!("http://{}/doc.json", server.addr);
    let mut host = theater_core::HostCalls::live();
    for name in ["host", "Content-Length", "transfer-encoding", "connection"] {
        let headers = vec![(name.to_string(), "x".to_string())];
        let e = calls::send(Some(&grant), &mut host, get(url.clone(), headers))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(e, theater_http_client::FetchError::Invalid(_)),
            "{name}: {e}"
        );
    }
    let with_user = format!("http://user:secret@{}/doc.json", server.addr);
    let e = calls::send(Some(&grant), &mut host, get(with_user, vec![]))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("credentials"), "{e}");
    let accept = vec![("accept".to_string(), "application/json".to_string())];
    let ok = calls::send(Some(&grant), &mut host, get(url, accept))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.status, 200);
    // Every attempt is recorded, refusals included.
    assert_eq!(host.calls().len(), 6);
}

#[tokio::test]
async fn a_credential_is_the_hosts_to_set_and_an_echo_of_it_is_redacted() {
    use theater_http_client::{CredentialConfig, Request, calls};
    use theater_wasm::secrets::Source;
    // A server that echoes the request's head in its body.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                head.len()
            );
            let _ = s.write_all(response.as_bytes()).await;
            let _ = s.write_all(&head).await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    theater_test_support::write_private(&file, "k-0123456789abcdef\n");
    let secrets = theater_wasm::Secrets::new([("KEY".to_string(), Source::File(file))].into())
        .with_key_in(dir.path())
        .unwrap();
    let config = HttpClientConfig {
        allow: vec![addr.to_string()],
        timeout_ms: 2000,
        max_response_bytes: 32 << 10,
        ca_file: None,
        credentials: vec![CredentialConfig {
            host: addr.to_string(),
            header: "x-api-key".into(),
            value: "key={secret:KEY}".into(),
        }],
    };
    let grant = HttpClientGrant::with_secrets(&config, Path::new("."), &secrets).unwrap();
    let get = |headers: Vec<(String, String)>| Request {
        method: "GET".into(),
        url: format!("http://{addr}/"),
        headers,
        body: vec![],
    };
    let mut host = theater_core::HostCalls::live();
    // The actor may not set (or overwrite) the header the host adds.
    let mine = vec![("X-Api-Key".to_string(), "guess".to_string())];
    let e = calls::send(Some(&grant), &mut host, get(mine))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("credential"), "{e}");
    let ok = calls::send(Some(&grant), &mut host, get(vec![]))
        .await
        .unwrap()
        .unwrap();
    let echoed = String::from_utf8(ok.body.clone()).unwrap();
    assert!(echoed.contains("x-api-key: key=[secret KEY]"), "{echoed}");
    assert!(!echoed.contains("0123456789abcdef"), "{echoed}");
    // The host asked for the response unencoded, and the length the actor sees is the
    // redacted body's.
    assert!(echoed.contains("accept-encoding: identity"), "{echoed}");
    let length = ok
        .headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .unwrap();
    assert_eq!(length.1, ok.body.len().to_string());
    // Nor may it ask for an encoding or a range, in which an echo would hide.
    for (name, value) in [("accept-encoding", "gzip"), ("range", "bytes=0-3")] {
        let e = calls::send(
            Some(&grant),
            &mut host,
            get(vec![(name.into(), value.into())]),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(e.to_string().contains("unencoded"), "{name}: {e}");
    }
    let recorded = &host.calls()[1].result.json;
    assert_eq!(recorded["secrets"][0]["name"], "KEY", "{recorded}");
    assert_eq!(
        recorded["secrets"][0]["version"].as_str(),
        secrets.version_of("KEY", b"k-0123456789abcdef").as_deref()
    );
    assert!(!recorded.to_string().contains("0123456789abcdef"));
    task.abort();

    // A server that answers compressed (whatever was asked): refused, since an echo inside
    // could not be found.
    let gzip = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gzip_addr = gzip.local_addr().unwrap();
    let gzip_task = tokio::spawn(async move {
        while let Ok((mut s, _)) = gzip.accept().await {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 3\r\nconnection: close\r\n\r\nxyz")
                .await;
        }
    });
    let zipped = HttpClientConfig {
        allow: vec![gzip_addr.to_string()],
        credentials: vec![CredentialConfig {
            host: gzip_addr.to_string(),
            header: "x-api-key".into(),
            value: "{secret:KEY}".into(),
        }],
        ..config.clone()
    };
    let grant = HttpClientGrant::with_secrets(&zipped, Path::new("."), &secrets).unwrap();
    let e = calls::send(
        Some(&grant),
        &mut host,
        Request {
            method: "GET".into(),
            url: format!("http://{gzip_addr}/"),
            headers: vec![],
            body: vec![],
        },
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(e.to_string().contains("encoded or partial"), "{e}");
    gzip_task.abort();

    // Over plain http a credential goes to a loopback or private address only: a public
    // host is refused before anything is sent (no lookup, no connection).
    let public = HttpClientConfig {
        allow: vec!["example.com".into()],
        credentials: vec![CredentialConfig {
            host: "example.com".into(),
            header: "x-api-key".into(),
            value: "{secret:KEY}".into(),
        }],
        ..config.clone()
    };
    let grant = HttpClientGrant::with_secrets(&public, Path::new("."), &secrets).unwrap();
    let e = calls::send(
        Some(&grant),
        &mut host,
        Request {
            method: "GET".into(),
            url: "http://example.com/".into(),
            headers: vec![],
            body: vec![],
        },
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(e.to_string().contains("https only"), "{e}");
    // A secret that cannot be read: the actor and the chain learn which, not where it is.
    std::fs::remove_file(dir.path().join("key")).unwrap();
    let grant = HttpClientGrant::with_secrets(&config, Path::new("."), &secrets).unwrap();
    let e = calls::send(Some(&grant), &mut host, get(vec![]))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("secret KEY cannot be read"), "{e}");
    assert!(
        !e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );
}
