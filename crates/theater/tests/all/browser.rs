//! The chain graph page in a real browser: headless Chromium driven over WebDriver
//! (chromedriver on loopback), checked through the DOM, and saved as a screenshot.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test says so and passes, unless `THEATER_REQUIRE_BROWSER=1` (set by `.ci/run`) makes their
//! absence a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::run::{Running, bin, manifest, text};

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Chromium and chromedriver, found on the PATH. Without them: `None`, after saying that
/// `test` is skipped, unless `THEATER_REQUIRE_BROWSER=1` (set by `.ci/run`) makes their
/// absence a failure.
pub(crate) fn browser_paths(test: &str) -> Option<(PathBuf, PathBuf)> {
    let required = std::env::var("THEATER_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let (Some(chromium), Some(driver)) = (
        find(&["chromium", "chromium-browser", "google-chrome"]),
        find(&["chromedriver"]),
    ) else {
        assert!(
            !required,
            "THEATER_REQUIRE_BROWSER=1 but chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipping {test}: install chromium and chromium-driver to run it");
        return None;
    };
    Some((chromium, driver))
}

/// Headless Chromium driven over WebDriver: chromedriver on a free loopback port, and a
/// session on it.
pub(crate) async fn start_browser((chromium, driver): &(PathBuf, PathBuf)) -> (Client, Child) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let chromedriver = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--no-first-run", "--window-size=1400,900"]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    for _ in 0..100 {
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps.clone());
        match builder.connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(c) => return (c, chromedriver),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("chromedriver never accepted a session");
}

/// Ends the session and stops chromedriver.
pub(crate) async fn stop_browser(c: Client, mut chromedriver: Child) {
    let _ = c.close().await;
    let _ = chromedriver.kill();
    let _ = chromedriver.wait();
}

/// Chains of two actors that message each other, and one that does not.
fn make_chains(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let data = dir.join("data");
    let manifests = vec![
        manifest(dir, "pingpong", "ping", "[interfaces.msg]\n"),
        manifest(dir, "pingpong", "pong", "[interfaces.msg]\n"),
        manifest(dir, "counter", "counter", ""),
    ];
    let host = Running::start(&data, &manifests);
    host.json(&[
        "send",
        "ping",
        "{\"serve\": \"pong\", \"rounds\": 4}",
        "--request",
    ]);
    host.json(&["send", "counter", "{\"add\": 2}", "--request"]);
    let got = host.wait_received(&["ping", "pong"], 4);
    assert_eq!(got, 4);
    host.json(&[
        "send",
        "ping",
        "{\"ask\": \"pong\", \"payload\": {\"echo\": 9}}",
        "--request",
    ]);
    host.stop();
    let chains = ["ping", "pong", "counter"]
        .iter()
        .map(|n| data.join("chains").join(n))
        .collect();
    (chains, manifests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_page_shows_entries_and_links_and_details_on_click() {
    let Some(paths) = browser_paths("the graph page's browser test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (chains, manifests) = make_chains(dir.path());
    let page = dir.path().join("graph.html");
    let mut cmd = bin();
    cmd.args(["chain", "graph"])
        .args(&chains)
        .arg("-o")
        .arg(&page);
    for m in &manifests {
        cmd.arg("--manifest").arg(m);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("3 chains"), "{}", text(&out));

    let (c, chromedriver) = start_browser(&paths).await;
    let result = async {
        c.goto(&format!("file://{}", page.display())).await?;
        // Entries: ping has init, serve request, 2 balls, the ask = 5; pong init + 2 balls +
        // the echo request = 4; counter init + 1 = 2.
        let entries = c.find_all(Locator::Css(".entry")).await?;
        assert_eq!(entries.len(), 11);
        // Links: 4 balls (message) + 1 request.
        assert_eq!(c.find_all(Locator::Css(".link.message")).await?.len(), 4);
        assert_eq!(c.find_all(Locator::Css(".link.request")).await?.len(), 1);
        let summary = c.find(Locator::Id("summary")).await?.text().await?;
        assert_eq!(summary, "3 chains, 5 links");
        // Clicking pong's first ball shows its input, its sender, and its state.
        assert_eq!(c.find(Locator::Id("details")).await?.text().await?, "");
        c.find(Locator::Css("#entry-1-1")).await?.click().await?;
        let details: String = c.find(Locator::Id("details")).await?.text().await?;
        let v: serde_json::Value = serde_json::from_str(&details).unwrap();
        assert_eq!(v["chain"], "pong");
        assert_eq!(v["seq"], 1);
        assert_eq!(v["input"]["json"]["from"], "ping");
        assert_eq!(v["input"]["json"]["payload"]["ball"], 1);
        assert_eq!(v["refs"][0]["chain"], "ping");
        assert_eq!(v["state"]["received"], 1);
        let selected = c.find_all(Locator::Css(".entry.selected")).await?;
        assert_eq!(selected.len(), 1);
        // The counter's entry shows the counter's state.
        c.find(Locator::Css("#entry-2-1")).await?.click().await?;
        let details: String = c.find(Locator::Id("details")).await?.text().await?;
        let v: serde_json::Value = serde_json::from_str(&details).unwrap();
        assert_eq!(v["state"]["count"], 2);
        let png = c.screenshot().await?;
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chain-graph.png");
        std::fs::write(&shot, &png).unwrap();
        eprintln!("screenshot: {}", shot.display());
        assert!(png.starts_with(b"\x89PNG"));
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    stop_browser(c, chromedriver).await;
    result.unwrap();
}
