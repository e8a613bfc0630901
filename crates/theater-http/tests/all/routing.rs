//! Several actors on one host (prefixes and ports), what reaches the actor, HTTP/2, and
//! graceful shutdown.

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use theater_chain::{ChainStore, MemoryStore};
use theater_core::{ActorConfig, ActorHandle, spawn};
use theater_http::HttpConfig;
use theater_test_support::id;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::support::{Client, Echo, serve};

pub(crate) async fn echo(name: &str) -> ActorHandle {
    let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id(name)));
    spawn(Echo::default, chain, ActorConfig::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_at_several_prefixes_and_ports_see_their_own_paths() {
    let (a, b, c) = (echo("a").await, echo("b").await, echo("c").await);
    let one = serve(HttpConfig::default(), vec![("/a", a), ("/a/b", b)]).await;
    let two = serve(HttpConfig::default(), vec![("/", c)]).await;
    let mut client = Client::connect(one.addr).await;
    let r = client.send("POST", "/a/x/y?k=v&w", b"hello").await;
    assert_eq!(r.status, 200);
    let seen = r.json();
    assert_eq!(seen["path"], "/x/y");
    assert_eq!(seen["query"], "k=v&w");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["length"], 5);
    assert!(
        seen["headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["content-length", "5"]))
    );
    // The longest prefix wins; the prefix alone is the actor's root.
    assert_eq!(client.get("/a/b/z").await.json()["path"], "/z");
    assert_eq!(client.get("/a/b").await.json()["path"], "/");
    assert_eq!(client.get("/ab").await.status, 404);
    assert_eq!(client.get("/").await.status, 404);
    let mut other = Client::connect(two.addr).await;
    assert_eq!(other.get("/anything").await.json()["path"], "/anything");
    one.stop().await;
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_is_served() {
    let server = serve(HttpConfig::default(), vec![("/", echo("h2").await)]).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for n in 0..3 {
        let req = Request::builder()
            .uri(format!("http://{}/h2/{n}", server.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.version(), http::Version::HTTP_2);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["path"], format!("/h2/{n}"));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_request_in_flight_finish_and_then_refuses() {
    let started = Arc::new(Notify::new());
    let actor = Echo {
        started: Some(Arc::clone(&started)),
    };
    let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id("slow")));
    let actor = spawn(move || actor.clone(), chain, ActorConfig::default())
        .await
        .unwrap();
    let server = serve(HttpConfig::default(), vec![("/", actor)]).await;
    let addr = server.addr;
    let mut c = Client::connect(addr).await;
    let in_flight = tokio::spawn(async move { c.get("/sleep/300").await });
    started.notified().await;
    server.stop().await;
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/sleep/300");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interface_serves_an_actor_at_its_manifest_address_and_prefix() {
    use theater_core::{ActorInterface, Shutdown};
    use theater_http::HttpInterface;
    // A free port, as a manifest would name one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let section: toml::Value =
        toml::from_str::<toml::Table>(&format!("addr = \"127.0.0.1:{port}\"\nprefix = \"/svc\""))
            .unwrap()
            .into();
    let config = HttpConfig::from_toml(&section).unwrap();
    let interface = HttpInterface::new(config).unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(interface.start(echo("svc").await, shutdown.clone()));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut connected = None;
    for _ in 0..500 {
        if TcpStream::connect(addr).await.is_ok() {
            connected = Some(());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(connected.is_some(), "the interface never listened");
    let mut c = Client::connect(addr).await;
    assert_eq!(c.get("/svc/hello").await.json()["path"], "/hello");
    assert_eq!(c.get("/other").await.status, 404);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
