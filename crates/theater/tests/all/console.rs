//! The web console against a real `theater run`: its API refuses anyone without a session
//! (from a one-time code) or the token, and its pages work in headless Chromium (the actor
//! list live, a search of 100,000 entries one page at a time, references across chains, the
//! diff of an entry's state, verify finding a damaged entry, the message graph). Screenshots
//! go to `target/tmp/console-screenshots/`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use theater_chain::{
    ChainError, ChainId, ChainStore, Durability, FileStore, Hash, NewEntry, Payload,
};

use crate::browser::{browser_paths, start_browser, stop_browser};
use crate::run::{Running, bin, manifest, text};

/// One raw HTTP/1.1 exchange: status, head and body.
fn exchange(
    addr: &str,
    host: &str,
    method: &str,
    path: &str,
    headers: &[String],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let headers: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\n{headers}connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, head.to_lowercase(), body.to_string())
}

fn code_of(url: &str) -> String {
    url.trim()
        .split_once("#code=")
        .unwrap_or_else(|| panic!("no code in {url:?}"))
        .1
        .to_string()
}

/// Logs in with `code`: the session's header (`x-theater-session: ...`).
fn login(addr: &str, code: &str) -> String {
    let marked = ["x-theater-console: 1".to_string()];
    let (status, head, body) = exchange(
        addr,
        addr,
        "POST",
        "/console/login",
        &marked,
        &json!({"code": code}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    // No cookie: a browser would send it to every port of the host name (an actor's HTTP
    // server among them).
    assert!(!head.contains("set-cookie"), "{head}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let session = v["session"].as_str().unwrap();
    assert_eq!(session.len(), 64, "{v}");
    format!("x-theater-session: {session}")
}

#[test]
fn the_console_needs_a_one_time_code_or_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = manifest(dir.path(), "counter", "counter", "");
    let host = Running::start(&data, std::slice::from_ref(&m));
    host.json(&["send", "counter", "{\"add\": 3}", "--request"]);
    let addr = std::fs::read_to_string(data.join("admin.addr")).unwrap();
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let bearer = format!("authorization: Bearer {token}");
    let get = |path: &str, headers: &[String]| exchange(&addr, &addr, "GET", path, headers, "");
    let post = |path: &str, headers: &[String], body: &str| {
        exchange(&addr, &addr, "POST", path, headers, body)
    };

    // The page itself holds no data: it loads without a session, with a strict CSP.
    let (status, head, body) = get("/console/", &[]);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(body.contains("console.js"), "{body}");
    // No session, a made-up one, or a wrong token: 401 on every API endpoint.
    let forged = format!("x-theater-session: {}", "ab".repeat(32));
    let wrong = format!("authorization: Bearer {}", "0".repeat(token.len()));
    for (method, path) in [
        ("GET", "/console/api/info"),
        ("GET", "/console/api/chains"),
        ("GET", "/console/api/actors"),
        ("GET", "/console/api/actors/live"),
        ("GET", "/console/api/chains/counter/entries"),
        ("GET", "/console/api/chains/counter/entries/0"),
        ("GET", "/console/api/chains/counter/state/1"),
        ("GET", "/console/api/graph"),
        ("POST", "/console/api/chains/counter/verify"),
        ("POST", "/console/api/actors/counter/send"),
        ("POST", "/console/logout"),
    ] {
        for headers in [vec![], vec![forged.clone()], vec![wrong.clone()]] {
            let (status, _, body) = exchange(&addr, &addr, method, path, &headers, "{}");
            assert_eq!(status, 401, "{method} {path} {headers:?}: {body}");
        }
    }
    // A code needs the token.
    assert_eq!(post("/console/code", &[], "").0, 401);

    // `theater console` prints a one-time link; the code in it works once.
    let out = host.cli(&["console"]);
    assert!(out.status.success(), "{}", text(&out));
    let url = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        url.starts_with(&format!("http://{addr}/console/#code=")),
        "{url}"
    );
    let code = code_of(&url);
    // Without the console's header, login is refused (a cross-site form cannot send it).
    let login_body = json!({"code": code}).to_string();
    assert_eq!(post("/console/login", &[], &login_body).0, 403);
    let session = login(&addr, &code);
    let marked = "x-theater-console: 1".to_string();
    let (status, _, body) = post("/console/login", std::slice::from_ref(&marked), &login_body);
    assert_eq!(status, 401, "a code used twice: {body}");
    let (status, _, body) = post(
        "/console/login",
        std::slice::from_ref(&marked),
        "{\"code\": \"x\"}",
    );
    assert_eq!(status, 401, "a made-up code: {body}");

    // The session opens the console's API, and nothing else.
    let s = std::slice::from_ref(&session);
    let (status, _, body) = get("/console/api/chains", s);
    assert_eq!(status, 200, "{body}");
    let chains: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(chains[0]["name"], "counter");
    assert_eq!(chains[0]["len"], 2);
    let (status, _, body) = get("/console/api/actors", s);
    assert_eq!(status, 200, "{body}");
    let actors: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(actors[0]["name"], "counter");
    assert_eq!(actors[0]["seq"], 1);
    assert_eq!(actors[0]["inputs"], 1);
    assert_eq!(get("/actors", s).0, 401);
    // The token works on the console's API too.
    assert_eq!(
        get("/console/api/chains", std::slice::from_ref(&bearer)).0,
        200
    );
    // A name that is not the API's address: refused before anything else.
    let port = addr.rsplit(':').next().unwrap();
    let (status, _, _) = exchange(
        &addr,
        &format!("console.example:{port}"),
        "GET",
        "/console/api/chains",
        s,
        "",
    );
    assert_eq!(status, 421);

    // Verify, search, an entry, and the state after it with its diff.
    let (status, _, body) = post("/console/api/chains/counter/verify", s, "");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, json!({"ok": true, "entries": 2, "head": 1}));
    let (status, _, body) = get(
        "/console/api/chains/counter/entries?q=%22add%22%3A3&limit=10",
        s,
    );
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["entries"][0]["seq"], 1);
    assert_eq!(page["next"], Value::Null);
    let (status, _, body) = get("/console/api/chains/counter/entries?limit=0", s);
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = get("/console/api/chains/counter/entries/1", s);
    assert_eq!(status, 200, "{body}");
    let entry: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(entry["input"]["json"]["payload"], json!({"add": 3}));
    assert_eq!(
        (entry["prev"].clone(), entry["next"].clone()),
        (json!(0), Value::Null)
    );
    let (status, _, body) = get("/console/api/chains/counter/state/1", s);
    assert_eq!(status, 200, "{body}");
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["state"]["count"], 3);
    assert_eq!(
        state["diff"],
        json!([{"path": "/count", "before": 0, "after": 3}])
    );
    assert_eq!(get("/console/api/chains/nope/entries", s).0, 404);
    let (status, _, body) = get("/console/api/chains/counter/state/9", s);
    assert_eq!(status, 404, "a seq past the head: {body}");

    // A message to an actor (its body is bounded: a unit test in console.rs).
    let send = "/console/api/actors/counter/send";
    let (status, _, body) = post(send, s, "{\"request\": {\"add\": 1}}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["reply"], 4);
    // The live actor list: the rows at once, and the stream ends with its session.
    let mut live = TcpStream::connect(&addr).unwrap();
    write!(
        live,
        "GET /console/api/actors/live HTTP/1.1\r\nhost: {addr}\r\n{session}\r\n\r\n"
    )
    .unwrap();
    live.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: [") {
        let n = live.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended before its first event");
        seen.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("\"name\":\"counter\""), "{head}");
    // Logging out ends the session on the server, not only in the page.
    assert_eq!(post("/console/logout", s, "").0, 204);
    assert_eq!(get("/console/api/chains", s).0, 401);
    // The stream's last chunk follows (a read timeout would fail here).
    loop {
        let n = live.read(&mut buf).unwrap();
        seen.extend_from_slice(&buf[..n]);
        if n == 0 || String::from_utf8_lossy(&seen).ends_with("0\r\n\r\n") {
            break;
        }
    }
    host.stop();

    // Offline: the same API over a copy of the stored chain in a directory of another name
    // (it is named by its id, as references name it), behind a code of its own.
    let copy = dir.path().join("saved-counter");
    copy_dir(&data.join("chains").join("counter"), &copy);
    let mut offline = Command::new(env!("CARGO_BIN_EXE_theater"))
        .arg("console")
        .arg(&copy)
        .arg("--manifest")
        .arg(&m)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(offline.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"));
    let at = url
        .strip_prefix("http://")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let get =
        |path: &str, host: &str, headers: &[String]| exchange(&at, host, "GET", path, headers, "");
    assert_eq!(get("/console/api/chains", &at, &[]).0, 401);
    let session = login(&at, &code_of(url));
    let s = std::slice::from_ref(&session);
    let (status, _, body) = get("/console/api/chains", &at, s);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()[0]["name"],
        "counter"
    );
    let (status, _, body) = get("/console/api/chains/counter/state/2", &at, s);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["state"]["count"],
        4
    );
    assert_eq!(get("/console/api/chains/nope/state/1", &at, s).0, 404);
    assert_eq!(
        get("/console/api/actors", &at, s).0,
        404,
        "offline: no actors"
    );
    let port = at.rsplit(':').next().unwrap();
    let (status, _, _) = get("/console/api/chains", &format!("console.example:{port}"), s);
    assert_eq!(status, 421, "a DNS name, offline too");
    // Enter prints a new link.
    writeln!(offline.stdin.as_mut().unwrap()).unwrap();
    let again = lines.next().unwrap().unwrap();
    assert_ne!(code_of(&again), code_of(url));
    let _ = offline.kill();
    let _ = offline.wait();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A chain of `n` entries written directly: an init, then inputs `{"n": i}`, and at
/// `needle` the input `{"needle": "found-me"}`.
fn write_chain(dir: &Path, name: &str, n: u64, needle: Option<u64>) {
    let mut s = FileStore::create(dir, ChainId::new(name).unwrap(), Durability::None).unwrap();
    let state = Hash::digest(b"not replayed");
    s.append(NewEntry::init(Payload::json(json!({})), state))
        .unwrap();
    for i in 1..n {
        let input = if Some(i) == needle {
            json!({"needle": "found-me"})
        } else {
            json!({"n": i})
        };
        s.append(NewEntry::input(
            Payload::json(input),
            Payload::json(json!({"ok": i})),
            state,
        ))
        .unwrap();
    }
    s.sync().unwrap();
}

/// The first bad seq of the chain in `dir`, as the library finds it.
fn first_bad(dir: &Path) -> u64 {
    let err = match FileStore::open_read_only(dir) {
        Err(e) => e,
        Ok(s) => s.verify().unwrap_err(),
    };
    match err {
        ChainError::Corrupt(c) => c.seq,
        other => panic!("{other}"),
    }
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// The element `css` names, once the page has drawn it (30 s at most).
async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

async fn text_of(c: &Client, css: &str) -> String {
    wait_for(c, css).await.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let Some(paths) = browser_paths("the console's browser test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Chains beside the actors' own: 100,000 entries to search, and one to damage.
    const NEEDLE: u64 = 61_234;
    write_chain(
        &data.join("chains").join("big"),
        "big",
        100_000,
        Some(NEEDLE),
    );
    let damaged = data.join("chains").join("damaged");
    write_chain(&damaged, "damaged", 1000, None);
    let manifests = vec![
        manifest(dir.path(), "pingpong", "ping", "[interfaces.msg]\n"),
        manifest(dir.path(), "pingpong", "pong", "[interfaces.msg]\n"),
        manifest(dir.path(), "counter", "counter", ""),
    ];
    let host = Running::start(&data, &manifests);
    host.json(&[
        "send",
        "ping",
        "{\"serve\": \"pong\", \"rounds\": 2}",
        "--request",
    ]);
    assert_eq!(host.wait_received(&["ping", "pong"], 2), 2);
    host.json(&["send", "counter", "{\"add\": 2}", "--request"]);
    let out = host.cli(&["console"]);
    assert!(out.status.success(), "{}", text(&out));
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let base = url.split_once('#').unwrap().0.to_string();

    let (c, chromedriver) = start_browser(&paths).await;
    let result = async {
        // The link logs in, and the fragment with the code leaves the address bar.
        c.goto(&url).await?;
        let counter_seq = "table#actors tr[data-actor=\"counter\"] td[data-col=\"seq\"]";
        assert_eq!(text_of(&c, counter_seq).await, "1");
        assert!(!c.current_url().await?.as_str().contains("code="));
        shot(&c, "actors").await;

        // The actor list follows a message sent from outside the browser.
        host.json(&["send", "counter", "{\"add\": 5}", "--request"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while text_of(&c, counter_seq).await != "2" {
            assert!(
                Instant::now() < deadline,
                "the actor list never showed seq 2"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let inputs = text_of(&c, "tr[data-actor=\"counter\"] td[data-col=\"inputs\"]").await;
        assert_eq!(inputs, "2");
        shot(&c, "actors-updated").await;

        // A search of 100,000 entries finds the one payload, one page at a time.
        c.goto(&format!("{base}#/chain/big")).await?;
        c.wait()
            .for_element(Locator::Css(
                "#chain[data-chain=\"big\"] table#entries tr[data-seq]",
            ))
            .await?;
        let q = wait_for(&c, "input#q").await;
        q.send_keys("found-me").await?;
        let searching = Instant::now();
        wait_for(&c, "button#search").await.click().await?;
        let found = format!("table#entries tr[data-seq=\"{NEEDLE}\"]");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if c.find(Locator::Css(&found)).await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the search never found seq {NEEDLE}"
            );
            // A search that ran out of its budget offers to go on.
            if let Ok(older) = c.find(Locator::Css("button#older")).await
                && older.is_displayed().await?
            {
                let _ = older.click().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rows = c
            .find_all(Locator::Css("table#entries tr[data-seq]"))
            .await?;
        assert!(rows.len() <= 50, "{} rows rendered", rows.len());
        let row = text_of(&c, &found).await;
        assert!(row.contains("found-me"), "{row}");
        eprintln!(
            "search: found in {:?} (debug build); {}",
            searching.elapsed(),
            text_of(&c, "#status").await
        );
        shot(&c, "search").await;

        // A reference opens the other actor's entry.
        c.goto(&format!("{base}#/chain/pong")).await?;
        let link = c
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("table#entries a.ref[data-chain=\"ping\"]"))
            .await?;
        let seq = link.attr("data-seq").await?.unwrap();
        link.click().await?;
        let entry = c
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(&format!(
                "#entry[data-chain=\"ping\"][data-seq=\"{seq}\"]"
            )))
            .await?;
        assert!(entry.text().await?.contains("pong"));
        shot(&c, "reference").await;

        // The state after the counter's last entry, and the field it changed.
        c.goto(&format!("{base}#/entry/counter/2")).await?;
        c.wait()
            .for_element(Locator::Css(
                "#entry[data-chain=\"counter\"][data-seq=\"2\"]",
            ))
            .await?;
        // The page draws the entry's frame first, then its sections (the replay button among
        // them) once the entry has loaded.
        wait_for(&c, "button#replay").await.click().await?;
        let change = text_of(&c, "#entry-diff [data-path=\"/count\"]").await;
        assert!(change.contains('2') && change.contains('7'), "{change}");
        assert!(text_of(&c, "#entry-state").await.contains("\"count\": 7"));
        shot(&c, "diff").await;

        // A chain damaged on disk: verify names its first bad entry.
        let log = damaged.join("chain.log");
        let mut bytes = std::fs::read(&log).unwrap();
        // Near its end: among the newest 50, the chain page's first page (and so among the
        // last 200, which the graph shows).
        let at = bytes.len() / 100 * 98;
        bytes[at] ^= 0x20;
        std::fs::write(&log, &bytes).unwrap();
        let bad = first_bad(&damaged);
        c.goto(&format!("{base}#/chain/damaged")).await?;
        c.wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("button#verify"))
            .await?
            .click()
            .await?;
        let result = c
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("#verify-result[data-ok=\"false\"]"))
            .await?;
        assert_eq!(result.attr("data-seq").await?, Some(bad.to_string()));
        // The list shows the damaged entry as a row of its own, and the entries around it.
        let row = text_of(
            &c,
            &format!("tr[data-damaged=\"true\"][data-seq=\"{bad}\"]"),
        )
        .await;
        assert!(row.contains("hash mismatch"), "{row}");
        c.find(Locator::Css(&format!("tr[data-seq=\"{}\"]", bad + 1)))
            .await?;
        c.find(Locator::Css(&format!("tr[data-seq=\"{}\"]", bad - 1)))
            .await?;
        shot(&c, "verify").await;

        // The message graph: every chain's last entries, the messages as edges.
        c.goto(&format!("{base}#/graph")).await?;
        let graph = c
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("#graph[data-nodes]"))
            .await?;
        let nodes: usize = graph.attr("data-nodes").await?.unwrap().parse().unwrap();
        let edges: usize = graph.attr("data-edges").await?.unwrap().parse().unwrap();
        // The last 200 of big, ping's 3, pong's 2 and the counter's 3; damaged's lane shows
        // its error instead.
        assert_eq!(nodes, 208, "{nodes} nodes");
        let errors = text_of(&c, "#graph-errors").await;
        assert!(
            errors.contains("damaged") && errors.contains(&bad.to_string()),
            "{errors}"
        );
        assert!(edges >= 2, "{edges} edges: the two balls");
        shot(&c, "graph").await;

        // The session was never a cookie; logging out ends it, and the page says how to
        // come back.
        assert!(c.get_all_cookies().await?.is_empty());
        wait_for(&c, "button#logout").await.click().await?;
        let out = text_of(&c, "#logged-out").await;
        assert!(out.contains("theater console"), "{out}");
        assert!(
            !out.contains("did not confirm"),
            "the host ended the session: {out}"
        );
        c.goto(&format!("{base}#/actors")).await?;
        c.refresh().await?;
        text_of(&c, "#login-error").await;
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    stop_browser(c, chromedriver).await;
    host.stop();
    result.unwrap();
}

#[test]
fn an_offline_console_refuses_what_is_not_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().arg("console").arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("neither a chain's directory"),
        "{}",
        text(&out)
    );
    let out = bin()
        .args(["console", "--listen", "0.0.0.0:0"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("loopback"), "{}", text(&out));
}
