//! `cargo xtask soak`: a `theater run` host driven at full load for a given time, reported
//! interval by interval: throughput, latency percentiles, the host's resident memory, the
//! size of its data directory, and errors.
//!
//! The host runs the `todo` example as a newcomer would: a manifest with nothing but the
//! actor and its HTTP address, the default data directory (`./theater-data` in a fresh
//! directory), every setting at its default. One todo is created, then `--connections`
//! keep-alive clients ask for it (`GET /todos/1`, a read) one request after another.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const USAGE: &str = "usage: theater-bench soak [--duration 10m] [--interval 10s] [--connections 64]
                          [--warm-up 60s] [--reads digest|full] [--keep-all] [--json]

Drives a `theater run` host (the todo example, default settings) with GET /todos/1 from
--connections keep-alive clients for --duration, printing each --interval: requests/s,
latency p50/p99/p99.9/max, the host's resident memory, its data directory's size, errors.
--reads and --keep-all add a [retention] section to the manifest (to compare with the
defaults). Exits 1 if any request failed.";

/// What to run.
struct Options {
    duration: Duration,
    interval: Duration,
    warm_up: Duration,
    connections: usize,
    retention: Vec<String>,
    json: bool,
}

fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .with_context(|| format!("{s:?} is not a duration such as 30s, 10m or 1h"))?;
    Ok(match unit {
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "ms" => Duration::from_millis(n),
        _ => bail!("{s:?} is not a duration such as 30s, 10m or 1h"),
    })
}

fn parse(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut o = Options {
        duration: Duration::from_secs(600),
        interval: Duration::from_secs(10),
        warm_up: Duration::from_secs(60),
        connections: 64,
        retention: Vec::new(),
        json: false,
    };
    let mut args = args.iter();
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match a.as_str() {
            "--duration" => o.duration = parse_duration(&value(a)?)?,
            "--interval" => o.interval = parse_duration(&value(a)?)?,
            "--warm-up" => o.warm_up = parse_duration(&value(a)?)?,
            "--connections" => {
                o.connections = value(a)?
                    .parse()
                    .context("--connections must be a whole number")?;
                ensure!(o.connections > 0, "--connections must be at least 1");
            }
            "--reads" => {
                let v = value(a)?;
                ensure!(
                    v == "digest" || v == "full",
                    "--reads must be digest or full, got {v:?}"
                );
                o.retention.push(format!("reads = \"{v}\""));
            }
            "--keep-all" => o.retention.push("keep_all = true".into()),
            "--json" => o.json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    ensure!(
        o.interval >= Duration::from_secs(1),
        "--interval must be at least 1s"
    );
    ensure!(
        o.duration >= o.interval,
        "--duration must be at least one --interval"
    );
    Ok(Some(o))
}

/// Runs the soak named by `args` (what follows `soak`).
pub(crate) fn main(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some(options) = parse(args)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let bin = std::env::current_exe()?.with_file_name("theater");
    ensure!(
        bin.exists(),
        "no `theater` binary at {} (`cargo xtask soak` builds it)",
        bin.display()
    );
    let component = theater_test_support::example_component("todo");
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut manifest = format!(
        "name = \"todo\"\ncomponent = {:?}\n\n[interfaces.http]\naddr = \"127.0.0.1:{port}\"\n",
        component.display().to_string()
    );
    if !options.retention.is_empty() {
        manifest.push_str("\n[retention]\n");
        for line in &options.retention {
            manifest.push_str(line);
            manifest.push('\n');
        }
    }
    std::fs::write(dir.path().join("todo.toml"), &manifest)?;
    let host = Host::start(&bin, dir.path())?;
    // A loader of its own: one thread, beside the host's.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let report = rt.block_on(soak(&options, addr, &host))?;
    host.stop();
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    }
    for line in report.summary(&options) {
        // Beside JSON on stdout, the summary goes to stderr.
        if options.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(if report.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `theater run` process under load.
struct Host {
    child: Mutex<Child>,
    data: PathBuf,
}

impl Host {
    fn start(bin: &Path, dir: &Path) -> anyhow::Result<Host> {
        let log = std::fs::File::create(dir.join("host.log"))?;
        let child = Command::new(bin)
            .args(["run", "todo.toml"])
            .current_dir(dir)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting theater run")?;
        let host = Host {
            child: Mutex::new(child),
            data: dir.join("theater-data"),
        };
        let started = Instant::now();
        while !host.data.join("admin.addr").exists() {
            if let Some(status) = host.child.lock().expect("host").try_wait()? {
                let log = std::fs::read_to_string(dir.join("host.log")).unwrap_or_default();
                bail!("theater run exited ({status}) before it started:\n{log}");
            }
            ensure!(
                started.elapsed() < Duration::from_secs(120),
                "theater run did not start in 2 minutes"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(host)
    }

    fn pid(&self) -> u32 {
        self.child.lock().expect("host").id()
    }

    /// Resident memory, in bytes (Linux: `VmRSS` of `/proc/PID/status`).
    fn rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Bytes of every file under the data directory.
    fn disk(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(p) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) => e.metadata().map_or(0, |m| m.len()),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.data)
    }

    fn exited(&self) -> bool {
        !matches!(self.child.lock().expect("host").try_wait(), Ok(None))
    }

    /// `theater shutdown` (a clean stop), then a kill if it has not exited in 30 s.
    fn stop(&self) {
        let dir = self.data.parent().unwrap_or(Path::new("."));
        let bin = std::env::current_exe().map(|b| b.with_file_name("theater"));
        if let Ok(bin) = bin
            && let Ok(mut shutdown) = Command::new(bin)
                .arg("shutdown")
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        {
            let asked = Instant::now();
            while matches!(shutdown.try_wait(), Ok(None))
                && asked.elapsed() < Duration::from_secs(30)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = shutdown.kill();
            let _ = shutdown.wait();
        }
        let started = Instant::now();
        while !self.exited() && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut child = self.child.lock().expect("host");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One interval's figures.
struct Interval {
    at: Duration,
    requests: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
    errors: u64,
    rss: u64,
    disk: u64,
}

/// Everything a soak measured.
struct Report {
    intervals: Vec<Interval>,
    errors: u64,
    first_error: Option<String>,
    disk_before: u64,
    /// Bytes on disk per request over the first requests (`early_requests` of them).
    per_request: f64,
    early_requests: u64,
}

/// What the clients share with the reporter.
struct Shared {
    stop: AtomicBool,
    errors: AtomicU64,
    /// Requests answered 200, in all.
    done: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Each client's latencies (µs) since the last report.
    latencies: Vec<Mutex<Vec<u32>>>,
}

async fn request(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    method: http::Method,
    path: &str,
    body: &'static str,
) -> anyhow::Result<(u16, Bytes)> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "soak")
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;
    sender.ready().await?;
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    Ok((status, res.into_body().collect().await?.to_bytes()))
}

async fn connect(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Longest a request may take before it counts as an error (and its connection is
/// replaced).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn client(shared: Arc<Shared>, me: usize, addr: SocketAddr) {
    let mut sender = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let attempt = async {
            if sender.is_none() {
                sender = Some(connect(addr).await?);
            }
            let s = sender.as_mut().context("not connected")?;
            request(s, http::Method::GET, "/todos/1", "").await
        };
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow::anyhow!(
                "no answer in {}s",
                REQUEST_TIMEOUT.as_secs()
            )),
        };
        match outcome {
            Ok((200, _)) => {
                let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                shared.latencies[me].lock().expect("latencies").push(us);
                shared.done.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                let what = match other {
                    Ok((status, body)) => {
                        format!("status {status}: {}", String::from_utf8_lossy(&body))
                    }
                    Err(e) => format!("{e:#}"),
                };
                shared
                    .first_error
                    .lock()
                    .expect("first error")
                    .get_or_insert(what);
                sender = None;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn soak(options: &Options, addr: SocketAddr, host: &Host) -> anyhow::Result<Report> {
    let mut seed = connect(addr).await?;
    let (status, body) = request(
        &mut seed,
        http::Method::POST,
        "/todos",
        r#"{"title": "soak"}"#,
    )
    .await?;
    ensure!(
        status == 201,
        "creating the todo answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        errors: AtomicU64::new(0),
        done: AtomicU64::new(0),
        first_error: Mutex::new(None),
        latencies: (0..options.connections)
            .map(|_| Mutex::new(Vec::new()))
            .collect(),
    });
    let disk_before = host.disk();
    let mut clients = Vec::new();
    for me in 0..options.connections {
        clients.push(tokio::spawn(client(Arc::clone(&shared), me, addr)));
    }
    if !options.json {
        println!(
            "{:>7}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  {:>6}  {:>8}  {:>9}",
            "time", "req/s", "p50", "p99", "p99.9", "max", "errors", "RSS", "disk"
        );
    }
    let started = Instant::now();
    // What a request costs on disk, read before the chain is long enough for a prune (the
    // default keeps 100,000 entries and prunes once it has twice that).
    tokio::time::sleep(Duration::from_secs(2).min(options.interval / 2)).await;
    let early = (host.disk(), shared.done.load(Ordering::Relaxed));
    let mut report = Report {
        intervals: Vec::new(),
        errors: 0,
        first_error: None,
        disk_before,
        per_request: (early.0 as f64 - disk_before as f64) / early.1.max(1) as f64,
        early_requests: early.1,
    };
    let mut last = started;
    let mut errors_before = 0;
    while started.elapsed() < options.duration {
        let next = last + options.interval;
        tokio::time::sleep_until(next.into()).await;
        let now = Instant::now();
        let mut lat: Vec<u32> = Vec::new();
        for l in &shared.latencies {
            lat.append(&mut l.lock().expect("latencies"));
        }
        lat.sort_unstable();
        let q = |p: f64| -> Duration {
            if lat.is_empty() {
                return Duration::ZERO;
            }
            let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
            Duration::from_micros(u64::from(lat[i.min(lat.len() - 1)]))
        };
        let errors_now = shared.errors.load(Ordering::Relaxed);
        let i = Interval {
            at: now - started,
            requests: lat.len() as u64,
            per_second: lat.len() as f64 / (now - last).as_secs_f64(),
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
            max: q(1.0),
            errors: errors_now - errors_before,
            rss: host.rss().unwrap_or(0),
            disk: host.disk(),
        };
        errors_before = errors_now;
        last = now;
        if !options.json {
            println!(
                "{:>6.0}s  {:>9.0}  {:>8}  {:>8}  {:>8}  {:>8}  {:>6}  {:>8}  {:>9}",
                i.at.as_secs_f64(),
                i.per_second,
                ms(i.p50),
                ms(i.p99),
                ms(i.p999),
                ms(i.max),
                i.errors,
                mb(i.rss),
                mb(i.disk),
            );
        }
        report.intervals.push(i);
        if host.exited() {
            shared.stop.store(true, Ordering::Relaxed);
            bail!("the host exited during the soak");
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for c in &clients {
        // A request in flight is not waited for.
        c.abort();
    }
    for c in clients {
        let _ = c.await;
    }
    report.errors = shared.errors.load(Ordering::Relaxed);
    report.first_error = shared.first_error.lock().expect("first error").take();
    Ok(report)
}

fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1e3)
}

fn mb(bytes: u64) -> String {
    format!("{:.1}MB", bytes as f64 / 1e6)
}

impl Report {
    /// The intervals after the warm-up (all of them if the warm-up takes every one).
    fn steady(&self, options: &Options) -> &[Interval] {
        let first = self
            .intervals
            .iter()
            .position(|i| i.at > options.warm_up)
            .unwrap_or(0);
        &self.intervals[first..]
    }

    /// The summary's lines.
    fn summary(&self, options: &Options) -> Vec<String> {
        let steady = self.steady(options);
        let Some(last) = self.intervals.last() else {
            return Vec::new();
        };
        let requests: u64 = self.intervals.iter().map(|i| i.requests).sum();
        let minutes = last.at.as_secs_f64() / 60.0;
        let rss_min = steady.iter().map(|i| i.rss).min().unwrap_or(0);
        let rss_max = steady.iter().map(|i| i.rss).max().unwrap_or(0);
        let p99s: Vec<Duration> = steady.iter().map(|i| i.p99).collect();
        let rates: Vec<f64> = steady.iter().map(|i| i.per_second).collect();
        let disk_growth = last.disk as f64 - self.disk_before as f64;
        vec![
            String::new(),
            format!(
                "{requests} requests in {:.1} min ({:.0}/s), {} errors{}",
                minutes,
                requests as f64 / (minutes * 60.0),
                self.errors,
                self.first_error
                    .as_deref()
                    .map_or(String::new(), |e| format!(" (first: {e})"))
            ),
            format!(
                "after the {:.0}s warm-up ({} intervals): req/s {:.0}..{:.0}, p99 {}..{}, RSS {}..{} (spread {})",
                options.warm_up.as_secs_f64(),
                steady.len(),
                rates.iter().copied().fold(f64::INFINITY, f64::min),
                rates.iter().copied().fold(0.0, f64::max),
                ms(p99s.iter().copied().min().unwrap_or_default()),
                ms(p99s.iter().copied().max().unwrap_or_default()),
                mb(rss_min),
                mb(rss_max),
                mb(rss_max - rss_min),
            ),
            format!(
                "disk: {} before, {} after ({:+.1} MB/min on average; {:.0} bytes per request over the first {} requests)",
                mb(self.disk_before),
                mb(last.disk),
                disk_growth / 1e6 / minutes,
                self.per_request,
                self.early_requests,
            ),
            match (steady.first(), steady.last()) {
                (Some(a), Some(b)) if b.at > a.at => format!(
                    "disk after the warm-up: {}..{}, {:+.1} MB/min from the first steady interval to the last",
                    mb(steady.iter().map(|i| i.disk).min().unwrap_or(0)),
                    mb(steady.iter().map(|i| i.disk).max().unwrap_or(0)),
                    (b.disk as f64 - a.disk as f64) / 1e6 / ((b.at - a.at).as_secs_f64() / 60.0),
                ),
                _ => "disk after the warm-up: too few intervals to say".into(),
            },
        ]
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "errors": self.errors,
            "first_error": self.first_error,
            "disk_before": self.disk_before,
            "bytes_per_request": self.per_request,
            "intervals": self.intervals.iter().map(|i| serde_json::json!({
                "at_s": i.at.as_secs_f64(),
                "requests": i.requests,
                "per_second": i.per_second,
                "p50_us": i.p50.as_micros() as u64,
                "p99_us": i.p99.as_micros() as u64,
                "p999_us": i.p999.as_micros() as u64,
                "max_us": i.max.as_micros() as u64,
                "errors": i.errors,
                "rss_bytes": i.rss,
                "disk_bytes": i.disk,
            })).collect::<Vec<_>>(),
        })
    }
}
