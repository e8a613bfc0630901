//! How entries are shown: one line of text, or one JSON object.

use serde_json::{Value, json};
use theater_chain::{Entry, Event, Hash, Payload};

/// `seq  kind  what  -> state hash  [hash]`, on one line.
pub(crate) fn entry_line(entry: &Entry, hash: &Hash) -> String {
    format!(
        "{:>6}  {}  {}",
        entry.seq(),
        hash.short(),
        entry_what(entry)
    )
}

/// What the entry did, its host calls and its references, on one line.
pub(crate) fn entry_what(entry: &Entry) -> String {
    let mut line = match entry.event() {
        Event::Init { params, code } => match code {
            Some(code) => format!("init    {} (code {})", payload_text(params), code.short()),
            None => format!("init    {}", payload_text(params)),
        },
        Event::Upgrade { code, from } => format!(
            "upgrade code {} -> {}",
            from.map_or("unrecorded".to_string(), |f| f.short()),
            code.short()
        ),
        Event::Input { input, output } => {
            format!(
                "input   {} -> {}",
                payload_text(input),
                payload_text(output)
            )
        }
        Event::Read { input, output } => format!(
            "read    {} -> output {}",
            payload_text(input),
            output.short()
        ),
        Event::Failed { input, error } => format!("failed  {} ({error})", payload_text(input)),
        other => other.kind().to_string(),
    };
    for call in entry.host_calls() {
        // What was asked (a path, a query) matters as much as the answer, unless it is nothing.
        let asked = match (&call.request.json, call.request.bytes.is_empty()) {
            (Value::Null, true) => String::new(),
            _ => format!(" {}", payload_text(&call.request)),
        };
        line.push_str(&format!(
            "  [{}{asked} = {}]",
            call.name,
            payload_text(&call.result)
        ));
    }
    for r in entry.refs() {
        line.push_str(&format!("  [ref {}#{} {}]", r.chain, r.seq, r.hash.short()));
    }
    line
}

/// `text`, cut to `max` characters with an ellipsis when it is longer.
pub(crate) fn clipped(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        text
    } else {
        text.chars().take(max).collect::<String>() + "…"
    }
}

fn payload_text(p: &Payload) -> String {
    if p.bytes.is_empty() {
        p.json.to_string()
    } else {
        format!("{} + {} bytes", p.json, p.bytes.len())
    }
}

fn payload_json(p: &Payload) -> Value {
    let mut v = json!({ "json": p.json });
    if !p.bytes.is_empty() {
        v["bytes"] = json!({ "len": p.bytes.len(), "sha256": Hash::digest(&p.bytes).to_string() });
    }
    v
}

/// The entry as a JSON object (binary payloads as their length and SHA-256).
pub(crate) fn entry_json(entry: &Entry, hash: &Hash) -> Value {
    let mut v = json!({
        "seq": entry.seq(),
        "hash": hash.to_string(),
        "parent": entry.parent().to_string(),
        "state_hash": entry.state_hash().to_string(),
        "kind": entry.event().kind(),
    });
    match entry.event() {
        Event::Init { params, code } => {
            v["params"] = payload_json(params);
            if let Some(code) = code {
                v["code"] = json!(code.to_string());
            }
        }
        Event::Upgrade { code, from } => {
            v["code"] = json!(code.to_string());
            v["from"] = json!(from.map(|f| f.to_string()));
        }
        Event::Input { input, output } => {
            v["input"] = payload_json(input);
            v["output"] = payload_json(output);
        }
        Event::Read { input, output } => {
            v["input"] = payload_json(input);
            v["output_digest"] = json!(output.to_string());
        }
        Event::Failed { input, error } => {
            v["input"] = payload_json(input);
            v["error"] = json!(error);
        }
        _ => {}
    }
    v["host_calls"] = entry
        .host_calls()
        .iter()
        .map(|c| json!({ "name": c.name, "request": payload_json(&c.request), "result": payload_json(&c.result) }))
        .collect();
    v["refs"] = entry
        .refs()
        .iter()
        .map(|r| json!({ "chain": r.chain.as_str(), "seq": r.seq, "hash": r.hash.to_string() }))
        .collect();
    v
}
