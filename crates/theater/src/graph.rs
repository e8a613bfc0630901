//! `theater chain graph`: one self-contained HTML page drawing chains side by side, the
//! message and request links between their entries, and each entry's details on click.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use theater_chain::{ChainStore, Event, FileStore};
use theater_wasm::Manifest;

/// Writes the page for the chains in `dirs` to `output`. With manifests (matched to chains
/// by actor name), each entry also shows the state right after it, rebuilt by replay.
pub(crate) fn write(
    dirs: &[PathBuf],
    manifests: &[PathBuf],
    output: &Path,
) -> anyhow::Result<ExitCode> {
    let mut by_name: HashMap<String, PathBuf> = HashMap::new();
    for m in manifests {
        let loaded = Manifest::load(m)?;
        by_name.insert(loaded.name.to_string(), m.clone());
    }
    let mut stores = Vec::new();
    for dir in dirs {
        stores.push((
            FileStore::open_read_only(dir)
                .with_context(|| format!("cannot read the chain in {}", dir.display()))?,
            dir.clone(),
        ));
    }
    let data = graph_data(&stores, &by_name)?;
    let page = page(&data);
    std::fs::write(output, page).with_context(|| format!("cannot write {}", output.display()))?;
    println!(
        "wrote {} ({} chains, {} entries, {} links)",
        output.display(),
        stores.len(),
        data["chains"]
            .as_array()
            .map(|c| c
                .iter()
                .map(|c| c["entries"].as_array().map_or(0, Vec::len))
                .sum::<usize>())
            .unwrap_or(0),
        data["links"].as_array().map_or(0, Vec::len)
    );
    Ok(ExitCode::SUCCESS)
}

fn short(v: &Value, max: usize) -> String {
    crate::render::clipped(v.to_string(), max)
}

/// The page's data: chains with their entries, and links between entries.
pub(crate) fn graph_data(
    stores: &[(FileStore, PathBuf)],
    manifests: &HashMap<String, PathBuf>,
) -> anyhow::Result<Value> {
    let mut chains = Vec::new();
    let mut links = Vec::new();
    for (store, dir) in stores {
        let id = store.id().to_string();
        let mut states: HashMap<u64, Value> = HashMap::new();
        if let Some(m) = manifests.get(&id)
            && let Some(last) = store.len().checked_sub(1)
        {
            let replayed =
                crate::replay_cmd::replay_with(m, store, Some(dir), last, &mut |seq, state| {
                    states.insert(seq, state.clone());
                })?;
            if let Err(e) = replayed {
                anyhow::bail!("replaying {id} for its states: {e}");
            }
        }
        let mut entries = Vec::new();
        for entry in store.entries(store.start()) {
            let entry = entry?;
            let seq = entry.seq();
            let hash = entry.hash();
            let mut v = crate::render::entry_json(&entry, &hash);
            let label = match entry.event() {
                Event::Init { .. } => "init".to_string(),
                Event::Input { input, .. } | Event::Read { input, .. } => {
                    let t = input.json["type"].as_str().unwrap_or("input");
                    match t {
                        "http_request" => format!(
                            "{} {}",
                            input.json["method"].as_str().unwrap_or("?"),
                            input.json["path"].as_str().unwrap_or("?")
                        ),
                        _ => format!("{t} {}", short(&input.json["payload"], 28)),
                    }
                }
                Event::Failed { error, .. } => format!("failed: {}", short(&json!(error), 28)),
                other => other.kind().to_string(),
            };
            v["label"] = json!(label);
            if let Some(s) = states.get(&seq) {
                v["state"] = s.clone();
            }
            let from = match entry.event().input() {
                Some(input) if input.json["type"] == "message" => {
                    input.json["from"].as_str().map(str::to_string)
                }
                _ => None,
            };
            for r in entry.refs() {
                // A received message points back at its sending entry: draw sender → receiver.
                // Any other reference (a request's answer) is drawn from this entry to it.
                let (kind, a, b) = if from.as_deref() == Some(r.chain.as_str()) {
                    ("message", (r.chain.to_string(), r.seq), (id.clone(), seq))
                } else {
                    ("request", (id.clone(), seq), (r.chain.to_string(), r.seq))
                };
                links.push(json!({
                    "kind": kind,
                    "from": {"chain": a.0, "seq": a.1},
                    "to": {"chain": b.0, "seq": b.1},
                }));
            }
            entries.push(v);
        }
        chains.push(json!({"id": id, "start": store.start(), "entries": entries}));
    }
    Ok(json!({"chains": chains, "links": links}))
}

/// The HTML page with `data` embedded.
pub(crate) fn page(data: &Value) -> String {
    // JSON inside <script> must not close the element early.
    let embedded = data.to_string().replace("</", "<\\/");
    PAGE.replace("__DATA__", &embedded)
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Theater chains</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; display: flex; height: 100vh; color: #222; }
  #canvas { flex: 1; overflow: auto; background: #fafafa; }
  #side { width: 38%; border-left: 1px solid #ddd; padding: 12px; overflow: auto; }
  h1 { font-size: 16px; margin: 0 0 8px; }
  #details { white-space: pre-wrap; font: 12px ui-monospace, monospace; }
  .lane-title { font-weight: 600; }
  .entry { cursor: pointer; }
  .entry circle { fill: #fff; stroke: #3b6ea5; stroke-width: 2; }
  .entry.failed circle { stroke: #c0392b; }
  .entry.selected circle { fill: #3b6ea5; }
  .entry text { font-size: 11px; fill: #333; }
  .chainline { stroke: #bbb; stroke-width: 2; }
  .link { fill: none; stroke-width: 1.6; }
  .link.message { stroke: #27ae60; }
  .link.request { stroke: #8e44ad; stroke-dasharray: 5 3; }
  .legend span { margin-right: 12px; }
</style>
</head>
<body>
<div id="canvas"><svg id="graph" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div id="side">
  <h1>Theater chains</h1>
  <div id="summary"></div>
  <div class="legend"><span style="color:#27ae60">── message</span><span style="color:#8e44ad">- - request</span><span style="color:#c0392b">○ failed</span></div>
  <p>Click an entry to see its input, output, host calls, references and state.</p>
  <pre id="details"></pre>
</div>
<script type="application/json" id="data">__DATA__</script>
<script>
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const svg = document.getElementById("graph");
  const NS = "http://www.w3.org/2000/svg";
  const laneW = 380, rowH = 40, top = 50, left = 30;
  const pos = {};
  let maxRows = 0;
  const el = (name, attrs, parent) => {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    (parent || svg).appendChild(e);
    return e;
  };
  const defs = el("defs", {});
  const linkLayer = el("g", {id: "links"});
  const entryLayer = el("g", {id: "entries"});
  for (const [id, color] of [["m", "#27ae60"], ["r", "#8e44ad"]]) {
    const mk = el("marker", {id: "arrow-" + id, viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"}, defs);
    el("path", {d: "M 0 0 L 10 5 L 0 10 z", fill: color}, mk);
  }
  data.chains.forEach((chain, ci) => {
    const x = left + ci * laneW + 20;
    const t = el("text", {x: x - 10, y: 24, class: "lane-title"});
    t.textContent = chain.id + " (" + chain.entries.length + ")";
    const rows = chain.entries.length;
    maxRows = Math.max(maxRows, rows);
    el("line", {x1: x, y1: top, x2: x, y2: top + Math.max(rows - 1, 0) * rowH, class: "chainline"},
      linkLayer);
    chain.entries.forEach((e, i) => {
      const y = top + i * rowH;
      pos[chain.id + "#" + e.seq] = {x, y};
      const g = el("g", {class: "entry" + (e.kind === "failed" ? " failed" : ""),
        id: "entry-" + ci + "-" + e.seq, "data-chain": chain.id, "data-seq": e.seq}, entryLayer);
      el("circle", {cx: x, cy: y, r: 8}, g);
      const label = el("text", {x: x + 14, y: y + 4}, g);
      label.textContent = "#" + e.seq + " " + e.label;
      g.addEventListener("click", () => show(chain, e, g));
    });
  });
  let links = 0;
  for (const l of data.links) {
    const a = pos[l.from.chain + "#" + l.from.seq], b = pos[l.to.chain + "#" + l.to.seq];
    if (!a || !b) continue;
    const dx = (b.x - a.x) / 2;
    el("path", {class: "link " + l.kind,
      d: "M " + (a.x + (b.x > a.x ? 8 : -8)) + " " + a.y + " C " + (a.x + dx) + " " + a.y + ", " +
         (b.x - dx) + " " + b.y + ", " + (b.x + (b.x > a.x ? -8 : 8)) + " " + b.y,
      "marker-end": "url(#arrow-" + (l.kind === "message" ? "m" : "r") + ")",
      "data-from": l.from.chain + "#" + l.from.seq, "data-to": l.to.chain + "#" + l.to.seq},
      linkLayer);
    links++;
  }
  svg.setAttribute("width", left + data.chains.length * laneW + 200);
  svg.setAttribute("height", top + maxRows * rowH + 20);
  document.getElementById("summary").textContent =
    data.chains.length + " chains, " + links + " links";
  let selected = null;
  function show(chain, e, g) {
    if (selected) selected.classList.remove("selected");
    selected = g; g.classList.add("selected");
    const d = {chain: chain.id, seq: e.seq, hash: e.hash, kind: e.kind};
    for (const k of ["input", "output", "output_digest", "error", "params", "host_calls", "refs", "state_hash", "state"])
      if (e[k] !== undefined) d[k] = e[k];
    document.getElementById("details").textContent = JSON.stringify(d, null, 2);
  }
})();
</script>
</body>
</html>
"##;
