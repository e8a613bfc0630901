//! Traces over OTLP: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, `theater run` exports a span per
//! input (actor, kind, seq) to an OTLP/HTTP receiver (here, one in the test), an HTTP
//! request's input continuing the trace its `traceparent` names; unset, nothing is sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::run::{Running, bin, http, manifest};

/// An OTLP/HTTP receiver on loopback: the bodies POSTed to it.
fn receiver() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                // Requests one after another on a kept-alive connection.
                loop {
                    let mut len = 0;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    kept.lock().unwrap().push(body);
                    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    (addr, bodies)
}

fn spans(bodies: &[Vec<u8>]) -> Vec<Span> {
    bodies
        .iter()
        .flat_map(|b| {
            ExportTraceServiceRequest::decode(&b[..])
                .unwrap()
                .resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Any::StringValue(s) => s.clone(),
            Any::IntValue(i) => i.to_string(),
            Any::BoolValue(b) => b.to_string(),
            other => format!("{other:?}"),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn each_input_is_a_span_exported_over_otlp_continuing_an_http_traceparent() {
    let (otlp, bodies) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let manifests = [
        manifest(dir.path(), "counter", "counter", ""),
        manifest(
            dir.path(),
            "todo",
            "todo",
            "[interfaces.http]\naddr = \"127.0.0.1:0\"\n",
        ),
    ];

    // Unset: nothing is sent, even with the SDK's per-signal variable naming the receiver.
    let mut cmd = bin();
    cmd.arg("run")
        .args(&manifests)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://{otlp}/v1/traces"),
        )
        .stderr(Stdio::null());
    let host = Running::start_cmd(cmd, &dir.path().join("quiet"));
    host.json(&["send", "counter", "{\"add\": 1}", "--request"]);
    host.stop();
    assert!(
        bodies.lock().unwrap().is_empty(),
        "sent with no endpoint set"
    );

    let mut cmd = bin();
    cmd.arg("run")
        .args(&manifests)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        // The exporter's HTTP client honours proxy variables: the receiver is on loopback.
        .env("NO_PROXY", "127.0.0.1")
        .stderr(Stdio::null());
    let mut host = Running::start_cmd(cmd, &dir.path().join("data"));
    let line = host.wait_for("todo serves HTTP at");
    let web = line.rsplit("http://").next().unwrap().trim().to_string();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let caller = "b7ad6b7169203331";
    let (status, body) = http(
        &web,
        "POST",
        "/todos",
        &format!("traceparent: 00-{trace}-{caller}-01\r\n"),
        "{\"title\": \"traced\"}",
    );
    assert_eq!(status, 201, "{body}");
    host.json(&["send", "counter", "{\"add\": 2}", "--request"]);
    let out = host.cli(&["send", "counter", "{\"nope\": 2}", "--request"]);
    assert_eq!(out.status.code(), Some(1));
    // Shutting down flushes what is batched.
    host.stop();

    let spans = spans(&bodies.lock().unwrap());
    let inputs: Vec<&Span> = spans.iter().filter(|s| s.name == "input").collect();
    let todo = inputs
        .iter()
        .find(|s| attr(s, "actor").as_deref() == Some("todo"))
        .unwrap_or_else(|| panic!("no input span of todo in {spans:#?}"));
    assert_eq!(attr(todo, "kind").as_deref(), Some("http_request"));
    assert_eq!(attr(todo, "seq").as_deref(), Some("1"));
    assert_eq!(attr(todo, "failed").as_deref(), Some("false"));
    // It continues the caller's trace, under the request's span, under the caller's.
    assert_eq!(hex(&todo.trace_id), trace);
    let request = spans
        .iter()
        .find(|s| s.name == "http_request" && s.span_id == todo.parent_span_id)
        .unwrap_or_else(|| panic!("no parent request span in {spans:#?}"));
    assert_eq!(hex(&request.parent_span_id), caller);
    assert_eq!(attr(request, "status").as_deref(), Some("201"));
    assert!(todo.end_time_unix_nano > todo.start_time_unix_nano);
    // The counter's inputs: their own traces, the failed one marked.
    let counter: Vec<_> = inputs
        .iter()
        .filter(|s| attr(s, "actor").as_deref() == Some("counter"))
        .map(|s| {
            (
                attr(s, "kind").unwrap(),
                attr(s, "seq").unwrap(),
                attr(s, "failed").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counter,
        vec![
            ("request".to_string(), "1".to_string(), "false".to_string()),
            ("request".to_string(), "2".to_string(), "true".to_string()),
        ]
    );
}
