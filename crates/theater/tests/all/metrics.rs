//! `GET /metrics` after a known workload: the counts are the workload's.

use std::collections::HashMap;

use crate::run::{Running, http, manifest, text};

/// The scrape's samples: `name{labels}` -> value.
fn scrape(data: &std::path::Path, token: Option<&str>) -> (u16, String) {
    let addr = std::fs::read_to_string(data.join("admin.addr")).unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    http(addr.trim(), "GET", "/metrics", &auth, "")
}

fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap();
            (key.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_count_inputs_failures_latencies_chains_and_http_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let counter = manifest(dir.path(), "counter", "counter", "");
    let todo = manifest(
        dir.path(),
        "todo",
        "todo",
        "[interfaces.http]\naddr = \"127.0.0.1:0\"\n",
    );
    let mut host = Running::start(&data, &[counter, todo]);
    let line = host.wait_for("todo serves HTTP at");
    let web = line.rsplit("http://").next().unwrap().trim().to_string();
    for n in 1..=3 {
        host.json(&["send", "counter", &format!("{{\"add\": {n}}}"), "--request"]);
    }
    let out = host.cli(&["send", "counter", "{\"nope\": 1}", "--request"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for title in ["a", "b"] {
        let (status, body) = http(
            &web,
            "POST",
            "/todos",
            "",
            &format!("{{\"title\": \"{title}\"}}"),
        );
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(http(&web, "GET", "/todos/99", "", "").0, 404);
    assert_eq!(http(&web, "GET", "/todos", "", "").0, 200);

    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    assert_eq!(scrape(&data, None).0, 401, "a scrape needs the token");
    let (status, body) = scrape(&data, Some(token.trim()));
    assert_eq!(status, 200, "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    assert!(
        body.contains("# TYPE theater_actor_handle_seconds histogram"),
        "{body}"
    );
    let s = samples(&body);
    let get = |key: &str| {
        *s.get(key)
            .unwrap_or_else(|| panic!("no sample {key} in:\n{body}"))
    };
    let counter = "{actor=\"counter\"}";
    assert_eq!(get(&format!("theater_actor_inputs_total{counter}")), 4.0);
    assert_eq!(get(&format!("theater_actor_failures_total{counter}")), 1.0);
    assert_eq!(get(&format!("theater_actor_restarts_total{counter}")), 0.0);
    assert_eq!(
        get(&format!("theater_actor_handle_seconds_count{counter}")),
        4.0
    );
    assert_eq!(
        get("theater_actor_handle_seconds_bucket{le=\"+Inf\",actor=\"counter\"}"),
        4.0
    );
    // Cumulative buckets: each holds those below it.
    let buckets: Vec<f64> = body
        .lines()
        .filter(|l| {
            l.starts_with("theater_actor_handle_seconds_bucket{") && l.contains("\"counter\"")
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 17, "{body}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert!(get(&format!("theater_actor_handle_seconds_sum{counter}")) > 0.0);
    assert!(get(&format!("theater_actor_commit_seconds_count{counter}")) >= 1.0);
    // init + 4 inputs.
    assert_eq!(get(&format!("theater_chain_entries{counter}")), 5.0);
    assert!(get(&format!("theater_chain_bytes{counter}")) > 0.0);
    assert_eq!(get(&format!("theater_actor_mailbox_depth{counter}")), 0.0);
    assert_eq!(get(&format!("theater_actor_running{counter}")), 1.0);
    // Every HTTP request the todo answered (its own 404 too) is an input.
    assert_eq!(get("theater_actor_inputs_total{actor=\"todo\"}"), 4.0);
    assert_eq!(
        get("theater_http_requests_total{actor=\"todo\",status=\"201\"}"),
        2.0
    );
    assert_eq!(
        get("theater_http_requests_total{actor=\"todo\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        get("theater_http_requests_total{actor=\"todo\",status=\"200\"}"),
        1.0
    );
    assert!(!body.contains("theater_http_requests_total{actor=\"counter\""));
    // `theater ps` shows each chain's size on disk, as the metrics do.
    let ps = text(&host.cli(&["ps"]));
    let bytes = get(&format!("theater_chain_bytes{counter}"));
    let shown = if bytes < 1000.0 {
        format!("{bytes} B")
    } else {
        format!("{:.1} KB", bytes / 1000.0)
    };
    assert!(
        ps.lines()
            .any(|l| l.starts_with("counter") && l.contains(&shown)),
        "{shown} not in:\n{ps}"
    );
    host.stop();
}
