//! The management API is locked down: every endpoint needs the token, and the `Host` header
//! must name the API itself (a page that rebinds a DNS name of its own to 127.0.0.1 is
//! refused); the `theater` client commands work unchanged.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::run::{Running, manifest};

/// One raw exchange with `addr`, sending `host` (`a|b`: two Host headers) and `auth` (or
/// nothing): the status.
fn status(addr: &str, method: &str, path: &str, host: Option<&str>, auth: Option<&str>) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    let host: String = host
        .map(|h| h.split('|').map(|h| format!("host: {h}\r\n")).collect())
        .unwrap_or_default();
    let auth = auth
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = if method == "POST" {
        "{\"message\": 1}"
    } else {
        ""
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\n{host}{auth}connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out[9..12].parse().unwrap()
}

#[test]
fn every_endpoint_needs_the_token_and_the_apis_own_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = manifest(dir.path(), "counter", "counter", "");
    let host = Running::start(&data, &[m]);
    let addr = std::fs::read_to_string(data.join("admin.addr")).unwrap();
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let port = addr.rsplit(':').next().unwrap();
    let wrong = "0".repeat(token.len());
    let endpoints = [
        ("GET", "/actors"),
        ("GET", "/families"),
        ("GET", "/metrics"),
        ("GET", "/actors/counter/state"),
        ("GET", "/actors/counter/chain"),
        ("GET", "/actors/counter/events"),
        ("POST", "/actors"),
        ("POST", "/actors/counter/send"),
        ("POST", "/actors/counter/stop"),
        ("POST", "/actors/counter/restart"),
        ("POST", "/actors/counter/upgrade"),
        ("POST", "/shutdown"),
        ("GET", "/no/such/endpoint"),
    ];
    for (method, path) in endpoints {
        // No token, a wrong one of the same length, a truncated one: 401, reads included.
        for auth in [None, Some(wrong.as_str()), Some(&token[..token.len() - 1])] {
            assert_eq!(
                status(&addr, method, path, Some(&addr), auth),
                401,
                "{method} {path} with {auth:?}"
            );
        }
        // The right token through another name (DNS rebinding), a public address, two Host
        // headers, or none.
        for name in [
            format!("evil.example:{port}"),
            format!("127.0.0.1.nip.io:{port}"),
            format!("localhost.evil.example:{port}"),
            format!("8.8.8.8:{port}"),
            format!("user@127.0.0.1:{port}"),
            format!("{addr}|evil.example:{port}"),
        ] {
            assert_eq!(
                status(&addr, method, path, Some(&name), Some(&token)),
                421,
                "{method} {path} as {name}"
            );
        }
        assert_eq!(status(&addr, method, path, None, Some(&token)), 421);
    }
    // A target in absolute form naming another host than the Host header: refused.
    let absolute = format!("http://evil.example:{port}/actors");
    assert_eq!(
        status(&addr, "GET", &absolute, Some(&addr), Some(&token)),
        421
    );
    // The API's own address, localhost, a loopback address on another port (a tunnel):
    // answered.
    for name in [
        addr.clone(),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        "127.0.0.1:9000".to_string(),
        "localhost".to_string(),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            status(&addr, "GET", "/actors", Some(&name), Some(&token)),
            200,
            "{name}"
        );
    }
    // The client commands send both, unchanged for their users.
    let state = host.json(&["state", "counter"]);
    assert!(state["state"].is_object(), "{state}");
    host.json(&["send", "counter", "{\"add\": 2}", "--request"]);
    let ps = host.cli(&["ps"]);
    assert!(ps.status.success() && crate::run::text(&ps).contains("counter"));
    host.stop();
}
