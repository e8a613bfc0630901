//! `theater run` and the commands that talk to it, on real example actors: run, send, stop,
//! restart, events, shut down, run again and find the same state.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use theater_test_support::example_component;

/// How long a test waits for a line from `theater run` by default: a liveness bound, not a
/// speed check. Three minutes, because a debug host compiling several components while the
/// other tests run on a loaded 2-core machine once took over a minute to start.
pub(crate) const START_PATIENCE: Duration = Duration::from_secs(180);

pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_theater"))
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `theater run` in the background, its stdout lines collected.
pub(crate) struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// `--data-dir` for every command, or none: the default, in `cwd`.
    data: Option<PathBuf>,
    cwd: PathBuf,
    /// How long to wait for an expected line (a guard against a hang, not a speed check).
    patience: Duration,
}

impl Running {
    pub(crate) fn start(data: &Path, manifests: &[PathBuf]) -> Running {
        Self::start_in(&std::env::current_dir().unwrap(), Some(data), manifests)
    }

    /// [`Running::start`] waiting up to `patience` for the host to start (many components
    /// to compile on a busy machine).
    pub(crate) fn start_patiently(
        data: &Path,
        manifests: &[PathBuf],
        patience: Duration,
    ) -> Running {
        Self::launch(
            &std::env::current_dir().unwrap(),
            Some(data),
            manifests,
            patience,
        )
    }

    /// `theater run` in `cwd`, with the default data directory when `data` is `None`.
    pub(crate) fn start_in(cwd: &Path, data: Option<&Path>, manifests: &[PathBuf]) -> Running {
        Self::launch(cwd, data, manifests, START_PATIENCE)
    }

    fn launch(
        cwd: &Path,
        data: Option<&Path>,
        manifests: &[PathBuf],
        patience: Duration,
    ) -> Running {
        let mut cmd = bin();
        cmd.arg("run").args(manifests).stderr(Stdio::null());
        Self::launch_cmd(cmd, cwd, data, patience)
    }

    /// `cmd`, a `theater run` set up by the caller (its arguments, environment and where
    /// stderr goes), with `--data-dir data`.
    pub(crate) fn start_cmd(cmd: Command, data: &Path) -> Running {
        Self::launch_cmd(
            cmd,
            &std::env::current_dir().unwrap(),
            Some(data),
            START_PATIENCE,
        )
    }

    fn launch_cmd(
        mut cmd: Command,
        cwd: &Path,
        data: Option<&Path>,
        patience: Duration,
    ) -> Running {
        cmd.current_dir(cwd).env_remove("THEATER_DATA_DIR");
        // Traces only where a test asks for them (a developer's settings stay out).
        if cmd
            .get_envs()
            .all(|(k, _)| k != "OTEL_EXPORTER_OTLP_ENDPOINT")
        {
            cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        }
        if let Some(data) = data {
            cmd.arg("--data-dir").arg(data);
        }
        cmd.stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut r = Running {
            child,
            lines,
            seen: Vec::new(),
            data: data.map(Path::to_path_buf),
            cwd: cwd.to_path_buf(),
            patience,
        };
        r.wait_for("management API on");
        r
    }

    /// The first line containing `what`, waiting up to the patience given
    /// ([`START_PATIENCE`] unless a test says otherwise).
    pub(crate) fn wait_for(&mut self, what: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        loop {
            match self.lines.recv_timeout(self.patience) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(e) => panic!(
                    "`theater run` never printed {what:?} ({e}; the process: {:?}); it printed {:?}",
                    self.child.try_wait(),
                    self.seen
                ),
            }
        }
    }

    /// Runs a client command against this host.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = bin();
        cmd.current_dir(&self.cwd)
            .env_remove("THEATER_DATA_DIR")
            .args(args);
        if let Some(data) = &self.data {
            cmd.arg("--data-dir").arg(data);
        }
        cmd.output().unwrap()
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out)))
    }

    /// Waits (bounded) until the pingpong actors `names` have received `total` messages in
    /// all; returns how many they have.
    pub(crate) fn wait_received(&self, names: &[&str], total: u64) -> u64 {
        let mut got = 0;
        for _ in 0..500 {
            got = names
                .iter()
                .map(|n| {
                    self.json(&["state", n])["state"]["received"]
                        .as_u64()
                        .unwrap()
                })
                .sum();
            if got >= total {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        got
    }

    /// Shuts the host down cleanly; returns every line it printed.
    pub(crate) fn stop(mut self) -> Vec<String> {
        let out = self.cli(&["shutdown"]);
        assert!(out.status.success(), "{}", text(&out));
        let status = self.child.wait().unwrap();
        assert!(status.success());
        self.wait_for("every acknowledged entry is durable");
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a manifest for `example` named `name` in `dir`, with `extra` TOML appended.
pub(crate) fn manifest(dir: &Path, example: &str, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = {name:?}\ncomponent = {:?}\n{extra}",
        example_component(example)
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// One raw HTTP/1.1 exchange (connection closed after); status and body.
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn run_send_stop_restart_and_run_again_with_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifests = vec![
        manifest(dir.path(), "counter", "counter", ""),
        manifest(
            dir.path(),
            "todo",
            "todo",
            "[interfaces.http]\naddr = \"127.0.0.1:0\"\n",
        ),
        manifest(dir.path(), "pingpong", "ping", "[interfaces.msg]\n"),
        manifest(dir.path(), "pingpong", "pong", "[interfaces.msg]\n"),
    ];
    let mut host = Running::start(&data, &manifests);

    let ps = host.cli(&["ps"]);
    assert!(ps.status.success(), "{}", text(&ps));
    let listing = text(&ps);
    for name in ["counter", "todo", "ping", "pong"] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(name) && l.contains("running")),
            "{listing}"
        );
    }
    // Requests answer with the reply and the entry; messages are accepted.
    let r = host.json(&["send", "counter", "{\"add\": 5}", "--request"]);
    assert_eq!((r["reply"].clone(), r["seq"].clone()), (json!(5), json!(1)));
    host.json(&["send", "counter", "{\"add\": 2}"]);
    let mut count = json!(null);
    for _ in 0..200 {
        count = host.json(&["state", "counter"])["state"]["count"].clone();
        if count == json!(7) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count, json!(7));
    // A failed request exits 1 and names the recorded seq.
    let out = host.cli(&["send", "counter", "{\"nope\": 1}", "--request"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("seq"), "{}", text(&out));

    // The todo actor serves HTTP at the address it was given.
    let line = host.wait_for("todo serves HTTP at");
    let addr = line.rsplit("http://").next().unwrap().to_string();
    let (status, body) = http(&addr, "POST", "/todos", "", "{\"title\": \"persist me\"}");
    assert_eq!(status, 201, "{body}");

    // Actors message each other.
    host.json(&[
        "send",
        "ping",
        "{\"serve\": \"pong\", \"rounds\": 10}",
        "--request",
    ]);
    let got = host.wait_received(&["ping", "pong"], 10);
    assert_eq!(got, 10);

    // Events as they happen. The stream starts once the subscription does: send until one
    // arrives (no fixed sleep: a loaded machine may take a while to start the client).
    let mut follow = bin()
        .args(["events", "counter", "--follow", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (etx, events) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if etx.send(line).is_err() {
                break;
            }
        }
    });
    let mut count = 7;
    let mut seen = None;
    for _ in 0..150 {
        let r = host.json(&["send", "counter", "{\"add\": 1}", "--request"]);
        count += 1;
        if let Ok(line) = events.recv_timeout(Duration::from_millis(200)) {
            seen = Some((line, r["seq"].as_u64().unwrap()));
            break;
        }
    }
    let (line, last_sent) = seen.expect("no event ever arrived");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["event"], "entry");
    assert!(event["seq"].as_u64().unwrap() <= last_sent, "{event}");

    // Changing state needs the token.
    let admin = std::fs::read_to_string(data.join("admin.addr")).unwrap();
    let (status, body) = http(admin.trim(), "POST", "/actors/counter/stop", "", "");
    assert_eq!(status, 401, "{body}");

    // Stop, restart: the same state, and the event stream saw the stop.
    host.json(&["stop", "counter"]);
    let mut stopped = false;
    while let Ok(line) = events.recv_timeout(Duration::from_secs(30)) {
        if line.contains("stopped") {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "the event stream never said stopped");
    let _ = follow.wait();
    assert!(text(&host.cli(&["ps"])).contains("stopped"));
    host.json(&["restart", "counter"]);
    assert_eq!(host.json(&["state", "counter"])["state"]["count"], count);
    host.stop();

    // Every chain verifies, links between ping and pong included.
    let chains: Vec<PathBuf> = ["counter", "todo", "ping", "pong"]
        .iter()
        .map(|n| data.join("chains").join(n))
        .collect();
    let out = bin()
        .args(["chain", "verify"])
        .args(&chains)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("message link"), "{}", text(&out));
    // One chain alone verifies; its references to the other are noted as unchecked.
    let out = bin()
        .args(["chain", "verify"])
        .arg(&chains[3])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("not checked"), "{}", text(&out));

    // Run again on the same data directory: the same state.
    let mut host = Running::start(&data, &manifests);
    assert_eq!(host.json(&["state", "counter"])["state"]["count"], count);
    let line = host.wait_for("todo serves HTTP at");
    let addr = line.rsplit("http://").next().unwrap().to_string();
    let (status, body) = http(&addr, "GET", "/todos", "", "");
    assert_eq!(status, 200);
    assert!(body.contains("persist me"), "{body}");
    host.stop();
}

/// Each `[interfaces.X]` section goes to capability X, which checks it: an unknown section or
/// field, a missing or wrong field, a directory that is not there; each error names the
/// file, the field and the problem, and nothing starts.
#[test]
fn interface_sections_are_checked_by_their_capability() {
    let dir = tempfile::tempdir().unwrap();
    for (section, field, problem) in [
        (
            "[interfaces.file]\ndir = \".\"\n",
            "interfaces.file",
            "no interface is called \"file\"",
        ),
        (
            "[interfaces.files]\n",
            "interfaces.files.dir",
            "expected the directory",
        ),
        (
            "[interfaces.files]\ndir = \"nowhere\"\n",
            "interfaces.files.dir",
            "no directory at",
        ),
        (
            "[interfaces.files]\ndir = \".\"\nwritable = \"yes\"\n",
            "interfaces.files.writable",
            "expected a boolean",
        ),
        (
            "[interfaces.timers]\nevery = 1\n",
            "interfaces.timers.every",
            "unknown field",
        ),
        (
            "[interfaces.http]\nlisten = \"127.0.0.1:0\"\n",
            "interfaces.http.listen",
            "unknown field",
        ),
        (
            "[interfaces.http]\naddr = \"localhost\"\n",
            "interfaces.http.addr",
            "not an IP address",
        ),
        (
            "[interfaces.db]\npath = \"x.sqlite\"\n",
            "interfaces.db.path",
            "unknown field",
        ),
    ] {
        let bad = manifest(dir.path(), "counter", "x", section);
        let out = bin()
            .arg("run")
            .arg(&bad)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{section}: {said}");
        assert!(
            said.contains("x.toml")
                && said.contains(&format!("`{field}`"))
                && said.contains(problem),
            "{section}: {said}"
        );
    }
}

#[test]
fn a_bad_manifest_is_refused_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = manifest(dir.path(), "counter", "x", "[limits]\nmemory_mb = 0\n");
    let out = bin()
        .arg("run")
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("x.toml") && said.contains("limits.memory_mb"),
        "{said}"
    );
    // No host: client commands say so.
    let out = bin()
        .args(["ps", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no running host"), "{}", text(&out));
}

#[test]
fn a_new_project_builds_and_runs_anywhere_with_the_binary_alone() {
    example_component("counter"); // the guest toolchain is set up (and warm)
    // A directory outside the source tree, with the defaults: no --data-dir, no --path.
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args(["new", "greeter"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("cd greeter && theater build && theater run greeter.toml"));
    let project = dir.path().join("greeter");
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "greeter.toml",
        "README.md",
        "theater-guest/Cargo.toml",
        "theater-guest/src/lib.rs",
        "theater-guest/wit/actor.wit",
    ] {
        assert!(project.join(f).is_file(), "{f} missing");
    }
    // Refuses to overwrite, and refuses bad names.
    let again = bin()
        .current_dir(dir.path())
        .args(["new", "greeter"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("not empty"), "{}", text(&again));
    let bad = bin().args(["new", "Bad Name"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));

    // `theater build` in the project, as its README says.
    let built = bin().current_dir(&project).arg("build").output().unwrap();
    assert!(built.status.success(), "{}", text(&built));
    assert!(project.join("target/theater/greeter.wasm").is_file());
    // Not a project: a clear error naming the file.
    let not = bin().current_dir(dir.path()).arg("build").output().unwrap();
    assert_eq!(not.status.code(), Some(2));
    assert!(text(&not).contains("Cargo.toml"), "{}", text(&not));

    let host = Running::start_in(&project, None, &[PathBuf::from("greeter.toml")]);
    let r = host.json(&["send", "greeter", "{\"greet\": \"you\"}", "--request"]);
    assert_eq!(r["reply"], json!({"text": "hello, you!", "greeted": 1}));
    host.stop();
    assert!(project.join("theater-data/chains/greeter").is_dir());
    let verify = bin()
        .current_dir(&project)
        .args(["chain", "verify", "theater-data/chains/greeter"])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn ctrl_c_stops_cleanly_with_every_acknowledged_entry_durable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = manifest(dir.path(), "counter", "counter", "");
    let mut host = Running::start(&data, &[m]);
    for n in 1..=20 {
        let r = host.json(&["send", "counter", "{\"add\": 1}", "--request"]);
        assert_eq!(r["reply"], n);
    }
    let killed = Command::new("kill")
        .args(["-INT", &host.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = host.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    host.wait_for("every acknowledged entry is durable");
    let out = bin()
        .args(["chain", "verify"])
        .arg(data.join("chains/counter"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("21 entries verified"), "{}", text(&out));
}

#[test]
fn timers_keep_firing_across_a_restart_of_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = manifest(dir.path(), "ticker", "ticker", "[interfaces.timers]\n");
    let host = Running::start(&data, std::slice::from_ref(&m));
    host.json(&["send", "ticker", "{\"every_ms\": 100}", "--request"]);
    let runs = |h: &Running| {
        h.json(&["state", "ticker"])["state"]["runs"]
            .as_u64()
            .unwrap()
    };
    let mut before = 0;
    for _ in 0..300 {
        before = runs(&host);
        if before >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(before >= 3, "the job ran {before} times");
    host.stop();
    // Down for a while; back up, the job goes on (a late run first, not a burst).
    std::thread::sleep(Duration::from_millis(500));
    let host = Running::start(&data, &[m]);
    let restarted = runs(&host);
    let mut after = restarted;
    for _ in 0..300 {
        after = runs(&host);
        if after >= restarted + 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        after >= restarted + 3,
        "the job stopped after the restart ({restarted} -> {after})"
    );
    host.stop();
}

/// The inventory example over HTTP with `db` (its manifest's `[interfaces.db]` body), on a
/// host with the configuration file `config` if given: the same requests and answers on
/// either backend; returns the data directory and manifest.
fn inventory_flow(
    dir: &Path,
    db: &str,
    duplicate: &str,
    config: Option<&Path>,
) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let m = manifest(
        dir,
        "inventory",
        "inventory",
        &format!("[interfaces.http]\naddr = \"127.0.0.1:0\"\n\n[interfaces.db]\n{db}"),
    );
    let mut cmd = bin();
    cmd.arg("run").arg(&m).stderr(Stdio::null());
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let mut host = Running::start_cmd(cmd, &data);
    let line = host.wait_for("inventory serves HTTP at");
    let addr = line.rsplit("http://").next().unwrap().to_string();
    let post = |path: &str, body: &str| http(&addr, "POST", path, "", body);
    assert_eq!(
        post("/items", "{\"name\": \"apples\", \"qty\": 5}"),
        (201, "{\"id\":1}".into())
    );
    assert_eq!(post("/items", "{\"name\": \"pears\", \"qty\": 0}").0, 201);
    // A constraint (unique name; qty >= 0) is a 409, nothing written.
    let (status, body) = post("/items", "{\"name\": \"apples\", \"qty\": 1}");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(duplicate), "{body}");
    assert_eq!(
        post(
            "/move",
            "{\"from\": \"apples\", \"to\": \"pears\", \"qty\": 2}"
        )
        .0,
        200
    );
    // Too many: the transaction applies neither update.
    let (status, body) = post(
        "/move",
        "{\"from\": \"apples\", \"to\": \"pears\", \"qty\": 99}",
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("nothing was applied"), "{body}");
    assert_eq!(
        post(
            "/move",
            "{\"from\": \"plums\", \"to\": \"pears\", \"qty\": 1}"
        )
        .0,
        404
    );
    let (status, body) = http(&addr, "GET", "/items", "", "");
    assert_eq!(status, 200);
    let items: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        items,
        json!([{"id": 1, "name": "apples", "qty": 3}, {"id": 2, "name": "pears", "qty": 2}])
    );
    // Bad SQL is a clear error to the actor (its input fails, recorded).
    let out = host.cli(&[
        "send",
        "inventory",
        "{\"sql\": \"SELEC * FROM items\"}",
        "--request",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("syntax error"), "{}", text(&out));
    let r = host.json(&[
        "send",
        "inventory",
        "{\"sql\": \"SELECT sum(qty) AS total FROM items\"}",
        "--request",
    ]);
    assert_eq!(r["reply"]["rows"], json!([[5]]));
    host.stop();
    (data, m)
}

/// `theater chain replay` of the inventory's chain: it must pass.
fn assert_inventory_replays(data: &Path, m: &Path) {
    let out = bin()
        .args(["chain", "replay"])
        .arg(data.join("chains/inventory"))
        .arg("--manifest")
        .arg(m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn an_actor_keeps_a_sqlite_table_over_http_and_replays_without_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (data, m) = inventory_flow(dir.path(), "", "UNIQUE", None);
    // The chain replays bit for bit with the database gone.
    let db = data.join("db/inventory.sqlite");
    assert!(db.is_file());
    std::fs::remove_file(&db).unwrap();
    let _ = std::fs::remove_file(data.join("db/inventory.sqlite-wal"));
    let _ = std::fs::remove_file(data.join("db/inventory.sqlite-shm"));
    assert_inventory_replays(&data, &m);
}

#[test]
fn the_inventory_runs_unchanged_on_postgresql_and_replays_without_the_server() {
    let Some(pg) = theater_test_support::pg::PgDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("url = \"{}\"\n", pg.url());
    let (data, m) = inventory_flow(dir.path(), &db, "duplicate key", None);
    assert!(!data.join("db").exists(), "no SQLite file");
    let rows = pg.sql("SELECT id, name, qty FROM theater_inventory.items ORDER BY id");
    assert_eq!(rows.len(), 2, "{rows:?}");
    // The database and its server gone (the manifest names a port nothing listens on).
    drop(pg);
    let dead = std::fs::read_to_string(&m)
        .unwrap()
        .replace("127.0.0.1:5432", "127.0.0.1:9");
    std::fs::write(&m, dead).unwrap();
    assert_inventory_replays(&data, &m);
}

#[test]
fn the_inventory_runs_on_a_connection_the_hosts_configuration_names() {
    let Some(pg) = theater_test_support::pg::PgDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The URL and the password's source live in the host's configuration; the manifest
    // names the connection and its schema. (The server trusts loopback, so any password
    // passes; the secret must still be declared and readable.)
    let password = dir.path().join("pg-password");
    theater_test_support::write_private(&password, b"not-checked-by-trust\n");
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[secrets]\nPG_PASSWORD = {{ file = \"pg-password\" }}\n\n[databases.main]\nurl = \"{}\"\npassword_secret = \"PG_PASSWORD\"\n",
            pg.url()
        ),
    )
    .unwrap();
    let db = "connection = \"main\"\nschema = \"shop\"\n";
    let (data, m) = inventory_flow(dir.path(), db, "duplicate key", Some(&config));
    let rows = pg.sql("SELECT id, name, qty FROM shop.items ORDER BY id");
    assert_eq!(rows.len(), 2, "{rows:?}");
    // `theater secret list` says the connection uses the secret, and the actor through it.
    let out = bin()
        .args(["secret", "list", "--json", "--config"])
        .arg(&config)
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let row: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        row["used_by"],
        json!(["databases.main", "inventory (db)"]),
        "{row}"
    );
    // Replay needs neither the server nor the host's configuration.
    drop(pg);
    assert_inventory_replays(&data, &m);
}

#[test]
fn a_named_connection_is_checked_at_start_in_the_manifest_and_the_hosts_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        "[databases.main]\nurl = \"postgres://theater@127.0.0.1:9/app\"\n",
    )
    .unwrap();
    let m = manifest(
        dir.path(),
        "inventory",
        "inventory",
        "[interfaces.db]\nconnection = \"main\"\n",
    );
    // A connection the host does not name is refused, naming the field and those it has.
    let out = bin()
        .args(["run", "--data-dir"])
        .arg(dir.path().join("data2"))
        .arg("--config")
        .arg(&config)
        .arg(manifest(
            dir.path(),
            "inventory",
            "other",
            "[interfaces.db]\nconnection = \"reports\"\n",
        ))
        .output()
        .unwrap();
    let said = text(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("interfaces.db.connection") && said.contains("(it has: main)"),
        "{said}"
    );
    // A host configuration's connection is checked as a manifest's url is, by its field,
    // without repeating a password.
    for (body, field) in [
        (
            "[databases.main]\nurl = \"postgres://u:hunter2@127.0.0.1/app\"\n",
            "databases.main.url",
        ),
        (
            "[databases.main]\nurl = \"postgres://u@127.0.0.1/app\"\npassword_secret = \"NOPE\"\n",
            "databases.main.password_secret",
        ),
        (
            "[databases.\"bad name\"]\nurl = \"postgres://u@127.0.0.1/app\"\n",
            "databases.bad name",
        ),
        (
            "[databases.main]\nurl = \"postgres://u@127.0.0.1/app\"\nschema = \"x\"\n",
            "unknown field `schema`",
        ),
        (
            "[databases.main]\nurl = \"postgres://u:hunter2@127.0.0.1/app?sslmode=verify-full\"\n",
            "databases.main.url",
        ),
    ] {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, body).unwrap();
        let out = bin()
            .args(["run", "--data-dir"])
            .arg(dir.path().join("data3"))
            .arg("--config")
            .arg(&bad)
            .arg(&m)
            .output()
            .unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{body}: {said}");
        assert!(said.contains(field), "{body}: {said}");
        assert!(!said.contains("hunter2"), "{said}");
    }
}

#[test]
fn the_inventory_reaches_postgresql_over_tls_with_the_servers_certificate_checked() {
    let Some(pg) = theater_test_support::pg::PgDatabase::create() else {
        return;
    };
    let setting = pg.sql("SELECT current_setting('ssl'), current_setting('ssl_cert_file')");
    let (ssl, cert) = (
        setting[0][0].clone().unwrap(),
        setting[0][1].clone().unwrap(),
    );
    if ssl != "on" || std::fs::metadata(&cert).is_err() {
        eprintln!("skipped: the server does not speak TLS with a certificate readable here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The server's certificate names it `localhost`.
    let url = pg.url().replace("127.0.0.1", "localhost");
    let m = manifest(
        dir.path(),
        "inventory",
        "inventory",
        &format!("[interfaces.db]\nurl = \"{url}?sslmode=require\"\nca_file = \"{cert}\"\n"),
    );
    let data = dir.path().join("data");
    let mut host = Running::start(&data, std::slice::from_ref(&m));
    host.wait_for("actor(s) running");
    let r = host.json(&[
        "send",
        "inventory",
        "{\"sql\": \"SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()\"}",
        "--request",
    ]);
    assert_eq!(r["reply"]["rows"], json!([[true]]), "{r}");
    host.stop();
    drop(pg);
    assert_inventory_replays(&data, &m);
}

#[test]
fn a_postgresql_url_with_a_password_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        "inventory",
        "inventory",
        "[interfaces.db]\nurl = \"postgres://theater:hunter2@127.0.0.1/app\"\n",
    );
    let out = bin()
        .args(["run", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg(&m)
        .output()
        .unwrap();
    let said = text(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("url") && said.contains("password_env"),
        "{said}"
    );
    assert!(
        !said.contains("hunter2"),
        "the error repeats the password: {said}"
    );
}

#[test]
fn notes_are_written_to_a_granted_directory_and_replay_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = manifest(
        dir.path(),
        "notes",
        "notes",
        "[interfaces.http]\naddr = \"127.0.0.1:0\"\n\n[interfaces.files]\ndir = \"my-notes\"\nwritable = true\n",
    );
    let notes = dir.path().join("my-notes");
    let mut host = Running::start(&data, std::slice::from_ref(&m));
    let line = host.wait_for("notes serves HTTP at");
    let addr = line.rsplit("http://").next().unwrap().to_string();
    assert!(notes.is_dir(), "a writable grant is created");
    let (status, body) = http(&addr, "PUT", "/notes/plan", "", "# Plan\nship it");
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        std::fs::read_to_string(notes.join("plan.md")).unwrap(),
        "# Plan\nship it"
    );
    let big = "x".repeat(50_000);
    assert_eq!(http(&addr, "PUT", "/notes/big", "", &big).0, 201);
    let (status, body) = http(&addr, "PUT", "/notes/..%2Fescape", "", "no");
    assert_eq!(status, 403, "{body}");
    assert!(!dir.path().join("escape.md").exists());
    let r = host.json(&[
        "send",
        "notes",
        "{\"op\": \"read\", \"name\": \"plan\"}",
        "--request",
    ]);
    assert_eq!(r["reply"]["text"], "# Plan\nship it");
    let r = host.json(&["send", "notes", "{\"op\": \"list\"}", "--request"]);
    assert_eq!(
        r["reply"],
        json!([{"name": "big", "size": 50_000}, {"name": "plan", "size": 14}])
    );
    host.stop();

    // The log shows what each file call asked and answered.
    let out = bin()
        .args(["chain", "log"])
        .arg(data.join("chains/notes"))
        .output()
        .unwrap();
    let log = text(&out);
    assert!(
        log.contains(r#"[theater:files/write {"path":"plan.md","size":14} + 14 bytes = {}]"#),
        "{log}"
    );
    assert!(log.contains("outside the granted directory"), "{log}");

    // Replay and verify need no notes directory; verify checks the blob of the big note.
    std::fs::remove_dir_all(&notes).unwrap();
    let chain = data.join("chains/notes");
    let replay = || {
        bin()
            .args(["chain", "replay"])
            .arg(&chain)
            .arg("--manifest")
            .arg(&m)
            .output()
            .unwrap()
    };
    let out = replay();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let verify = || {
        bin()
            .args(["chain", "verify"])
            .arg(&chain)
            .output()
            .unwrap()
    };
    assert_eq!(verify().status.code(), Some(0), "{}", text(&verify()));
    let blob = std::fs::read_dir(chain.join("blobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("damaged"), "{}", text(&out));
    // Replay re-runs the write from the actor's own bytes: it needs no blob of a write.
    assert_eq!(replay().status.code(), Some(0));
}
