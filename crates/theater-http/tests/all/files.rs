//! The static file server example (a wasm component) over real HTTP and real files.

use std::path::Path;

use serde_json::Value;
use theater_chain::{ChainStore, Durability, Event, FileStore};
use theater_core::{ActorConfig, ActorHandle, replay, spawn};
use theater_files::FILES_STAT;
use theater_http::{HttpConfig, HttpServer};
use theater_test_support::{example_component, id};
use theater_wasm::{Limits, WasmActor, WasmConfig, WasmHost};

use crate::support::{Client, Running};

fn fileserver(host: &WasmHost, public: &Path) -> WasmActor {
    let component = host.load_file(example_component("fileserver")).unwrap();
    host.actor(&component, &id("files"), Value::Null, Limits::default())
        .with_grant(
            "files",
            std::sync::Arc::new(theater_files::FileGrant::read_only(public)),
        )
}

async fn serve_files(actor: ActorHandle, public: &Path) -> Running {
    let server = HttpServer::bind(HttpConfig::loopback(0))
        .await
        .unwrap()
        .route_with_files("/", actor, public)
        .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = theater_core::Shutdown::new();
    let task = tokio::spawn(server.serve(shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_served_byte_exact_and_nothing_escapes_the_grant() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir_all(public.join("img")).unwrap();
    std::fs::write(public.join("index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(public.join("style.css"), "h1 { color: red }").unwrap();
    let binary: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(public.join("img/photo.png"), &binary).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "do not serve").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), public.join("link.txt")).unwrap();

    let host = WasmHost::new(
        WasmConfig::default()
            .capabilities(theater_wasm::Capabilities::new().with(theater_files::Files))
            .pooling(Some(16)),
    )
    .unwrap();
    let chain: Box<dyn ChainStore> = Box::new(
        FileStore::create(
            dir.path().join("chain"),
            id("files"),
            Durability::EveryEntry,
        )
        .unwrap(),
    );
    let make = {
        let (host, public) = (host.clone(), public.clone());
        move || fileserver(&host, &public)
    };
    let actor = spawn(make.clone(), chain, ActorConfig::default())
        .await
        .unwrap();
    let server = serve_files(actor.clone(), &public).await;
    let mut c = Client::connect(server.addr).await;

    let r = c.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>hi</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = c.get("/style.css").await;
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    let r = c.get("/img/photo.png").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.body.len(), binary.len());
    assert!(
        r.body.as_ref() == binary.as_slice(),
        "binary file not byte-exact"
    );
    let r = c.send("HEAD", "/img/photo.png", b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    // Escapes, encoded or not, and a symlink out of the grant: refused.
    for path in [
        "/../secret.txt",
        "/img/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/img/%2E%2E/%2e%2e/secret.txt",
        "/link.txt",
    ] {
        let r = c.get(path).await;
        assert!(
            r.status == 403 || r.status == 400 || r.status == 404,
            "{path}: {}",
            r.status
        );
        assert!(!r.text().contains("do not serve"), "{path} leaked");
    }
    assert_eq!(c.get("/%2e%2e/secret.txt").await.status, 403);
    assert_eq!(c.get("/missing.txt").await.status, 404);
    assert_eq!(c.get("/img/").await.status, 404);
    assert_eq!(c.send("DELETE", "/index.html", b"").await.status, 405);
    assert_eq!(c.get("/%zz").await.status, 400);

    // A changed file is looked up again by the next request, and its new hash recorded.
    std::fs::write(public.join("style.css"), "h1 { color: blue }").unwrap();
    let r = c.get("/style.css").await;
    assert_eq!(r.text(), "h1 { color: blue }");
    server.stop().await;

    // The chain holds file hashes, not contents.
    let (state, head) = actor.state().await.unwrap();
    actor.stop().await.unwrap();
    let chain = FileStore::open_read_only(dir.path().join("chain")).unwrap();
    chain.verify().unwrap();
    let mut stats = 0;
    for seq in 0..chain.len() {
        let e = chain.get(seq).unwrap();
        stats += e
            .host_calls()
            .iter()
            .filter(|c| c.name == FILES_STAT)
            .count();
        if let Event::Input { output, .. } = e.event() {
            assert!(
                output.bytes.len() < 1000,
                "file contents in the chain at seq {seq}"
            );
        }
    }
    assert!(stats >= 5);
    let photo = (0..chain.len())
        .map(|s| chain.get(s).unwrap())
        .find(|e| matches!(e.event(), Event::Input { input, .. } if input.json["path"] == "/img/photo.png"))
        .unwrap();
    let Event::Input { output, .. } = photo.event() else {
        panic!()
    };
    assert_eq!(
        output.json["file"]["sha256"].as_str().unwrap(),
        theater_chain::Hash::digest(&binary).to_string()
    );
    // Replay needs neither the directory nor the files.
    std::fs::remove_dir_all(&public).unwrap();
    let report = replay(&mut make(), &chain).await.unwrap();
    assert_eq!(report.state.value(), &state);
    assert_eq!(report.head.unwrap().hash, head.unwrap().hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_answer_without_a_granted_directory_or_with_stale_content_is_refused() {
    use async_trait::async_trait;
    use theater_core::{
        Actor, ActorError, ActorInput, ActorOutput, FileRef, HostCalls, HttpResponse,
    };
    /// Claims a file with a made-up hash.
    struct Liar;
    #[async_trait]
    impl Actor for Liar {
        async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
            Ok(Value::Null)
        }
        async fn handle_input(
            &mut self,
            _: &ActorInput,
            s: &Value,
            _: &mut HostCalls,
        ) -> Result<(ActorOutput, Value), ActorError> {
            let r = HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![],
                file: Some(FileRef {
                    path: "a.txt".into(),
                    sha256: theater_chain::Hash::digest(b"something else"),
                    size: 14,
                }),
            };
            Ok((ActorOutput::HttpResponse(r), s.clone()))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "actual content").unwrap();
    let chain: Box<dyn ChainStore> = Box::new(theater_chain::MemoryStore::new(id("liar")));
    let liar = spawn(|| Liar, chain, ActorConfig::default()).await.unwrap();
    let with = serve_files(liar.clone(), dir.path()).await;
    let r = Client::connect(with.addr).await.get("/a.txt").await;
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("changed since the actor looked"),
        "{}",
        r.text()
    );
    with.stop().await;
    let without = crate::support::serve(HttpConfig::default(), vec![("/", liar)]).await;
    let r = Client::connect(without.addr).await.get("/a.txt").await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("no directory is granted"), "{}", r.text());
    without.stop().await;
}

/// A GET of `path` on a connection of its own, once the answer's head has arrived: its body
/// is not read (the sender keeps the connection open).
async fn get_head(
    addr: std::net::SocketAddr,
    path: &str,
) -> (
    hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    http::Response<hyper::body::Incoming>,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    (sender, res)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_is_streamed_byte_exact_and_a_change_mid_stream_cuts_it_short() {
    use http_body_util::BodyExt;
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir_all(&public).unwrap();
    // Far more than the socket buffers and the chunks read ahead can hold.
    let size = 48 << 20;
    let big: Vec<u8> = (0..size as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(public.join("big.bin"), &big).unwrap();
    let host = WasmHost::new(
        WasmConfig::default()
            .capabilities(theater_wasm::Capabilities::new().with(theater_files::Files)),
    )
    .unwrap();
    let chain: Box<dyn ChainStore> = Box::new(theater_chain::MemoryStore::new(id("files")));
    let actor = spawn(
        {
            let (host, public) = (host.clone(), public.clone());
            move || fileserver(&host, &public)
        },
        chain,
        ActorConfig::default(),
    )
    .await
    .unwrap();
    let server = serve_files(actor.clone(), &public).await;

    let r = Client::connect(server.addr).await.get("/big.bin").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
    assert!(
        r.body.as_ref() == big.as_slice(),
        "large file not byte-exact"
    );

    // The answer starts (the file checked), then the file changes under the stream: the body
    // must not arrive whole.
    let (_sender, res) = get_head(server.addr, "/big.bin").await;
    assert_eq!(res.status(), 200);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(public.join("big.bin"))
            .unwrap();
        f.seek(SeekFrom::End(-1)).unwrap();
        f.write_all(&[!big[size - 1]]).unwrap();
    }
    let body = res.into_body().collect().await;
    assert!(body.is_err(), "a changed file was sent whole");
    server.stop().await;
    actor.stop().await.unwrap();
}

#[test]
fn clients_that_stop_reading_large_files_hold_no_threads() {
    // Two blocking threads for the whole server: each stalled download holding one (as a
    // reader thread waiting for the client would) starves every later file answer.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public");
        std::fs::create_dir_all(&public).unwrap();
        let size = 16 << 20;
        std::fs::write(public.join("big.bin"), vec![7u8; size]).unwrap();
        let host = WasmHost::new(
            WasmConfig::default()
                .capabilities(theater_wasm::Capabilities::new().with(theater_files::Files)),
        )
        .unwrap();
        let chain: Box<dyn ChainStore> = Box::new(theater_chain::MemoryStore::new(id("files")));
        let make = {
            let (host, public) = (host.clone(), public.clone());
            move || fileserver(&host, &public)
        };
        let actor = spawn(make, chain, ActorConfig::default()).await.unwrap();
        let server = serve_files(actor.clone(), &public).await;
        let served = async {
            let mut stalled = Vec::new();
            for _ in 0..4 {
                let (sender, res) = get_head(server.addr, "/big.bin").await;
                assert_eq!(res.status(), 200);
                // Its body is never read.
                stalled.push((sender, res));
            }
            let r = Client::connect(server.addr).await.get("/big.bin").await;
            assert_eq!(r.body.len(), size);
            stalled
        };
        // A liveness bound, not a speed one: starved, the answers never come.
        let stalled = tokio::time::timeout(std::time::Duration::from_secs(120), served)
            .await
            .expect("file answers starved by clients that stopped reading");
        drop(stalled);
        server.stop().await;
        actor.stop().await.unwrap();
    });
}
