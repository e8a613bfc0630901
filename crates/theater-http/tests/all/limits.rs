//! Limits and bad input: each gets a clear answer, no state changes, and the server keeps
//! serving.

use std::time::Duration;

use serde_json::json;
use theater_http::{ENTRY_HEADER, HttpConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::routing::echo;
use crate::support::{Client, serve};

/// Writes `request` raw and reads until the server closes (bounded), returning the text.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_to_close(&mut s).await
}

async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server never closed the connection");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_get_413_declared_or_streamed() {
    let actor = echo("big").await;
    let config = HttpConfig {
        max_body_bytes: 1000,
        ..HttpConfig::default()
    };
    let server = serve(config, vec![("/", actor.clone())]).await;
    let mut c = Client::connect(server.addr).await;
    // At the limit: served.
    assert_eq!(
        c.send("POST", "/ok", &[7; 1000]).await.json()["length"],
        1000
    );
    // Declared too large.
    let r = c.send("POST", "/big", &[7; 1001]).await;
    assert_eq!(r.status, 413);
    assert!(r.text().contains("larger than 1000 bytes"), "{}", r.text());
    // Chunked, with no length declared: cut off at the limit.
    let chunk = "x".repeat(600);
    let request = format!(
        "POST /chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let text = raw(server.addr, request.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    // Neither reached the actor: one request served, one entry after init.
    let (state, head) = actor.state().await.unwrap();
    assert_eq!(state["served"], 1);
    assert_eq!(head.unwrap().seq, 1);
    let mut c = Client::connect(server.addr).await;
    assert_eq!(c.get("/still").await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_and_the_server_goes_on() {
    let server = serve(HttpConfig::default(), vec![("/", echo("bad").await)]).await;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /x HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ] {
        let text = raw(server.addr, garbage).await;
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 400"),
            "{garbage:?} -> {text}"
        );
    }
    // A non-ASCII header value is refused before it reaches the actor.
    let text = raw(
        server.addr,
        b"GET /x HTTP/1.1\r\nhost: x\r\nx-name: caf\xc3\xa9\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("x-name"), "{text}");
    let mut c = Client::connect(server.addr).await;
    assert_eq!(c.get("/fine").await.json()["served"], 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let config = HttpConfig {
        header_timeout: Duration::from_millis(200),
        body_timeout: Duration::from_millis(200),
        ..HttpConfig::default()
    };
    let actor = echo("slowloris").await;
    let server = serve(config, vec![("/", actor.clone())]).await;
    // Headers that never end: the connection is dropped.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut s).await;
    assert!(!text.contains("200 OK"), "{text}");
    // A body that never arrives: 408.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly this")
        .await
        .unwrap();
    let text = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // Nothing reached the actor, and others are still served.
    let mut c = Client::connect(server.addr).await;
    assert_eq!(c.get("/fine").await.json()["served"], 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_limit_gets_503() {
    let config = HttpConfig {
        max_connections: 2,
        ..HttpConfig::default()
    };
    let server = serve(config, vec![("/", echo("full").await)]).await;
    let mut first = Client::connect(server.addr).await;
    let mut second = Client::connect(server.addr).await;
    assert_eq!(first.get("/1").await.status, 200);
    assert_eq!(second.get("/2").await.status, 200);
    let text = raw(server.addr, b"GET /3 HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("too many connections"), "{text}");
    // The held connections still work; when one closes, a new one is accepted.
    assert_eq!(first.get("/4").await.status, 200);
    drop(second);
    let mut third = None;
    for _ in 0..200 {
        let text = raw(
            server.addr,
            b"GET /5 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        if text.starts_with("HTTP/1.1 200") {
            third = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(third.is_some(), "a freed slot was never reused");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_failures_and_timeouts_are_5xx_with_no_state_change() {
    let actor = echo("failing").await;
    let config = HttpConfig {
        request_timeout: Duration::from_millis(1000),
        ..HttpConfig::default()
    };
    let server = serve(config, vec![("/", actor.clone())]).await;
    let mut c = Client::connect(server.addr).await;
    assert_eq!(c.get("/ok").await.json()["served"], 1);
    let r = c.get("/fail").await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("asked to fail"), "{}", r.text());
    assert!(r.text().contains("state unchanged"), "{}", r.text());
    let r = c.get("/reply").await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("not an HTTP response"), "{}", r.text());
    let r = c.get("/status/42").await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("invalid status 42"), "{}", r.text());
    let r = c.get("/sleep/4000").await;
    assert_eq!(r.status, 504);
    // Wait for the actor to finish the slow one (a state read queues behind it).
    let _ = actor.state().await.unwrap();
    // The failure is recorded, the state is not changed by it.
    let r = c.get("/ok").await;
    assert_eq!(r.status, 200);
    assert!(r.header(ENTRY_HEADER).is_some());
    let (state, _) = actor.state().await.unwrap();
    // ok, reply, status/42 and the slow one (answered late) were handled; /fail was not.
    assert_eq!(state, json!({"served": 5}));
    server.stop().await;
}
