//! Cluster mode with real `nats-server` processes and real `theater run` hosts: accounts
//! transferring money between hosts while a host is killed, a NATS server is killed, a host
//! is stopped past its lease, and a host dies between committing a send and delivering it.
//! Every scenario ends with the audit read back from JetStream alone: each acknowledged
//! entry is there with the same hash, no message is recorded twice, the chains link, and
//! the balances sum to what the accounts started with.
//!
//! Skipped, saying so, without a nats-server ≥ 2.12 on PATH, unless `THEATER_REQUIRE_NATS=1`
//! (set by `.ci/run`) makes that a failure.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use theater_chain::{ChainStore, Event, Hash};
use theater_cluster::{Cluster, ClusterConfig, ReplicaChain};
use theater_test_support::nats::NatsCluster;

use crate::run::{bin, manifest, text};

/// A guard against a hang, not a speed check.
const PATIENCE: Duration = Duration::from_secs(120);
const BALANCE: i64 = 1000;

/// A `theater run` host of a cluster.
struct Host {
    name: String,
    data: PathBuf,
    child: Child,
    log: PathBuf,
}

impl Host {
    fn start(
        dir: &Path,
        name: &str,
        nats: &str,
        cluster: &str,
        lease_ms: u64,
        manifests: &[PathBuf],
    ) -> Host {
        let data = dir.join(name);
        let log = dir.join(format!("{name}.log"));
        let mut child = bin()
            .env_remove("THEATER_DATA_DIR")
            .env("RUST_LOG", "info")
            .arg("run")
            .args(manifests)
            .arg("--data-dir")
            .arg(&data)
            .args(["--cluster", cluster, "--nats", nats, "--host", name])
            .args(["--shards", "8", "--lease-ms", &lease_ms.to_string()])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let started = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.contains("management API on") => break,
                _ if started.elapsed() > PATIENCE => panic!(
                    "host {name} did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
                _ => {}
            }
        }
        Host {
            name: name.to_string(),
            data,
            child,
            log,
        }
    }

    fn addr(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.addr")).unwrap()
    }

    /// One exchange with the management API; `Err` if the host cannot be reached.
    fn http(&self, method: &str, path: &str, body: &str) -> Result<(u16, Value), String> {
        // Across a restart the files change: the address first (written after the token),
        // and once more if the token read was the old one.
        for _ in 0..20 {
            let answer = self.http_once(method, path, body)?;
            if answer.0 != 401 {
                return Ok(answer);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.http_once(method, path, body)
    }

    fn http_once(&self, method: &str, path: &str, body: &str) -> Result<(u16, Value), String> {
        let addr = self.addr();
        let token = std::fs::read_to_string(self.data.join("admin.token")).unwrap();
        let mut s = TcpStream::connect(addr.trim()).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n{body}",
            addr.trim(),
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        let status = out
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or(out.clone())?;
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    /// A request to `actor` (anywhere in the cluster) through this host: the answer on
    /// success.
    fn request(&self, actor: &str, payload: Value) -> Result<Value, String> {
        match self.http(
            "POST",
            &format!("/actors/{actor}/send"),
            &json!({"request": payload}).to_string(),
        )? {
            (200, v) => Ok(v),
            (status, v) => Err(format!("{status}: {v}")),
        }
    }

    /// The cluster's actors and their hosts, as this host sees them.
    fn placement(&self) -> BTreeMap<String, (String, String)> {
        let (_, v) = self.http("GET", "/actors", "").unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap().to_string(),
                    (
                        a["host"].as_str().unwrap_or("-").to_string(),
                        a["status"].as_str().unwrap_or("?").to_string(),
                    ),
                )
            })
            .collect()
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {}", self.name);
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.signal_quietly();
        self.kill9();
    }
}

impl Host {
    fn signal_quietly(&self) -> std::io::Result<std::process::ExitStatus> {
        std::process::Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status()
    }
}

fn accounts(dir: &Path, n: usize) -> (Vec<String>, Vec<PathBuf>) {
    let names: Vec<String> = (0..n).map(|i| format!("acct-{i}")).collect();
    let manifests = names
        .iter()
        .map(|name| {
            manifest(
                dir,
                "account",
                name,
                &format!("[init]\nbalance = {BALANCE}\n[interfaces.msg]\n"),
            )
        })
        .collect();
    (names, manifests)
}

/// Waits until every one of `names` answers through `via` and the placement has settled
/// (unchanged for a few lease ticks, as hosts that joined late take their shards over);
/// returns where each runs.
fn wait_placed(via: &Host, names: &[String]) -> BTreeMap<String, String> {
    let started = Instant::now();
    let placed = || -> BTreeMap<String, String> {
        via.placement()
            .into_iter()
            .filter(|(n, (h, s))| names.contains(n) && h != "-" && s != "unplaced")
            .map(|(n, (h, _))| (n, h))
            .collect()
    };
    loop {
        let before = placed();
        if before.len() == names.len()
            && names
                .iter()
                .all(|n| via.request(n, json!({"balance": true})).is_ok())
        {
            std::thread::sleep(Duration::from_secs(3));
            if placed() == before {
                return before;
            }
        }
        assert!(started.elapsed() < PATIENCE, "not placed: {before:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What a transfer's answer says was acknowledged: its entry in the sender's chain.
#[derive(Clone, Debug)]
struct Acked {
    chain: String,
    seq: u64,
    hash: Hash,
}

/// Transfers 1 around the ring of `names` through `via`, until `stop`; the acknowledged
/// ones are pushed to `acked`.
fn drive(
    via: Arc<Host>,
    names: Vec<String>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut k = 0;
        while !stop.load(Ordering::SeqCst) {
            let (from, to) = (&names[k % names.len()], &names[(k + 1) % names.len()]);
            k += 1;
            if let Ok(v) = via.request(from, json!({"transfer": {"to": to, "amount": 1}})) {
                acked.lock().unwrap().push(Acked {
                    chain: from.clone(),
                    seq: v["seq"].as_u64().unwrap(),
                    hash: v["hash"].as_str().unwrap().parse().unwrap(),
                });
            }
        }
    })
}

fn wait_acked(acked: &Mutex<Vec<Acked>>, n: usize) {
    let started = Instant::now();
    while acked.lock().unwrap().len() < n {
        assert!(
            started.elapsed() < PATIENCE,
            "only {} transfers acknowledged",
            acked.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The balances the accounts report through `via`, once they sum to the total (credits
/// still in flight are waited for).
fn settled(via: &Host, names: &[String]) -> Vec<i64> {
    let started = Instant::now();
    loop {
        let balances: Vec<i64> = names
            .iter()
            .map(|n| {
                via.request(n, json!({"balance": true}))
                    .map(|v| v["reply"].as_i64().unwrap())
                    .unwrap_or(i64::MIN / 64)
            })
            .collect();
        if balances.iter().sum::<i64>() == BALANCE * names.len() as i64 {
            return balances;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "balances never settled: {balances:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The audit over the chains as JetStream holds them: every chain verifies (read_chain
/// checks each hash and link), every acknowledged entry is there with its hash, the links
/// between chains hold (each message received once, from an entry that sent it), no
/// receiver records one sending entry's message twice, and the balances the chains imply
/// sum to the total and equal what the accounts report.
fn audit(
    nats: &NatsCluster,
    cluster: &str,
    names: &[String],
    acked: &[Acked],
    reported: &[i64],
) -> Vec<ReplicaChain> {
    let c = Cluster::connect(ClusterConfig::new(cluster, nats.urls(), "auditor").unwrap()).unwrap();
    let chains: Vec<ReplicaChain> = names
        .iter()
        .map(|n| c.read_chain_blocking(n).unwrap())
        .collect();
    let by_name: HashMap<&str, &ReplicaChain> = names
        .iter()
        .map(String::as_str)
        .zip(chains.iter())
        .collect();
    for a in acked {
        let chain = &by_name[a.chain.as_str()].store;
        assert_eq!(
            chain.hash_at(a.seq).ok(),
            Some(a.hash),
            "acknowledged entry {} {} is not in the replica",
            a.chain,
            a.seq
        );
    }
    let stores: Vec<&dyn ChainStore> = chains.iter().map(|c| &c.store as &dyn ChainStore).collect();
    let problems = theater_msg::verify_links(&stores).unwrap();
    assert!(problems.is_empty(), "links: {problems:?}");
    let mut implied = Vec::new();
    for chain in &chains {
        let store = &chain.store;
        let mut balance = BALANCE;
        let mut seen: HashMap<(String, u64), u32> = HashMap::new();
        for seq in 0..store.len() {
            let entry = store.get(seq).unwrap();
            let Event::Input { input, .. } = entry.event() else {
                continue;
            };
            let p = &input.json["payload"];
            if input.json["type"] == "message" {
                balance += p["credit"].as_i64().unwrap();
                let r = &entry.refs()[0];
                *seen.entry((r.chain.to_string(), r.seq)).or_default() += 1;
            } else if let Some(amount) = p["transfer"]["amount"].as_i64() {
                balance -= amount;
            }
        }
        // One transfer sends one credit: a sending entry recorded twice is a double.
        assert!(
            seen.values().all(|&n| n == 1),
            "{}: a message recorded twice: {seen:?}",
            store.id()
        );
        implied.push(balance);
    }
    assert_eq!(
        implied.iter().sum::<i64>(),
        BALANCE * names.len() as i64,
        "{implied:?}"
    );
    assert_eq!(
        implied, reported,
        "the chains imply other balances than the accounts report"
    );
    let out = bin()
        .args([
            "chain",
            "verify",
            "--nats",
            &nats.urls(),
            "--cluster",
            cluster,
            "--all",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    chains
}

#[test]
fn a_killed_host_s_accounts_answer_from_another_and_nothing_acknowledged_is_lost() {
    let Some(mut nats) = NatsCluster::start(3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (names, manifests) = accounts(dir.path(), 6);
    let urls = nats.urls();
    let mut hosts: Vec<Host> = ["h0", "h1", "h2"]
        .iter()
        .map(|h| Host::start(dir.path(), h, &urls, "bank", 3000, &manifests))
        .collect();
    let placed = wait_placed(&hosts[0], &names);
    // The victim: the other host holding the most accounts.
    let count = |h: &str| placed.values().filter(|p| *p == h).count();
    let victim = if count("h1") >= count("h2") { 1 } else { 2 };
    let moved: Vec<String> = placed
        .iter()
        .filter(|(_, h)| **h == hosts[victim].name)
        .map(|(n, _)| n.clone())
        .collect();
    assert!(!moved.is_empty(), "the victim holds no account: {placed:?}");

    let via = Arc::new(hosts.remove(0));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let driver = drive(
        Arc::clone(&via),
        names.clone(),
        Arc::clone(&stop),
        Arc::clone(&acked),
    );
    wait_acked(&acked, 30);

    // kill -9 a host under load: its accounts answer again from another host.
    let victim = victim - 1;
    let killed_name = hosts[victim].name.clone();
    let killed = Instant::now();
    hosts[victim].kill9();
    while via.request(&moved[0], json!({"balance": true})).is_err() {
        assert!(
            killed.elapsed() < PATIENCE,
            "{} never answered again",
            moved[0]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "{} answered again {:?} after the kill",
        moved[0],
        killed.elapsed()
    );
    let before = acked.lock().unwrap().len();
    wait_acked(&acked, before + 30);

    // kill -9 a NATS server under load: the cluster goes on, and the server rejoins.
    nats.kill(1);
    let before = acked.lock().unwrap().len();
    wait_acked(&acked, before + 20);
    nats.restart(1);
    let before = acked.lock().unwrap().len();
    wait_acked(&acked, before + 10);
    stop.store(true, Ordering::SeqCst);
    driver.join().unwrap();

    let now = wait_placed(&via, &names);
    assert!(now.values().all(|h| *h != killed_name), "{now:?}");
    let reported = settled(&via, &names);
    let acked = acked.lock().unwrap().clone();
    let chains = audit(&nats, "bank", &names, &acked, &reported);
    // The moved accounts were written by the killed host and then by their new one.
    for chain in chains
        .iter()
        .filter(|c| moved.contains(&c.store.id().to_string()))
    {
        assert!(chain.hosts.len() >= 2, "{:?}", chain.hosts);
    }
}

#[test]
fn a_host_stopped_past_its_lease_is_fenced_and_no_chain_forks() {
    let Some(nats) = NatsCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (names, manifests) = accounts(dir.path(), 4);
    let urls = nats.urls();
    let h0 = Host::start(dir.path(), "h0", &urls, "fence", 2000, &manifests);
    let h1 = Host::start(dir.path(), "h1", &urls, "fence", 2000, &manifests);
    let placed = wait_placed(&h0, &names);
    let on_h1: Vec<String> = placed
        .iter()
        .filter(|(_, h)| *h == "h1")
        .map(|(n, _)| n.clone())
        .collect();
    assert!(!on_h1.is_empty(), "{placed:?}");
    let x = &on_h1[0];
    let other = names.iter().find(|n| *n != x).unwrap();
    let mut acked = Vec::new();
    let mut transfer = |from: &str, to: &str| {
        let v = h0
            .request(from, json!({"transfer": {"to": to, "amount": 1}}))
            .unwrap();
        acked.push(Acked {
            chain: from.to_string(),
            seq: v["seq"].as_u64().unwrap(),
            hash: v["hash"].as_str().unwrap().parse().unwrap(),
        });
    };
    transfer(x, other);

    // h1 stops past its lease; x answers again from h0, which writes its chain.
    h1.signal("-STOP");
    let stopped = Instant::now();
    // Every account h1 had runs on h0 now (h1 still holds its NATS connection, stopped).
    let here = |n: &String| h0.placement()[n] == ("h0".to_string(), "running".to_string());
    while !on_h1.iter().all(here) {
        assert!(stopped.elapsed() < PATIENCE, "{on_h1:?} never moved");
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        transfer(x, other);
        transfer(other, x);
    }
    // h1 wakes up: it finds its leases gone and stops its actors before writing anything.
    h1.signal("-CONT");
    let woke = Instant::now();
    while !h1.log().contains("lost the shard") {
        assert!(
            woke.elapsed() < PATIENCE,
            "h1 never gave its shards up: {}",
            h1.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reported = settled(&h0, &names);
    let chains = audit(&nats, "fence", &names, &acked, &reported);
    // One writer at a time: every group was written by the host that sealed the chain last.
    for chain in &chains {
        let mut writer: Option<&str> = None;
        for w in &chain.history {
            if w.seal {
                writer = Some(&w.host);
            } else {
                assert_eq!(
                    Some(w.host.as_str()),
                    writer,
                    "{}: {:?}",
                    chain.store.id(),
                    chain.history
                );
            }
        }
    }
}

#[test]
fn a_send_committed_by_a_host_killed_before_delivering_it_is_delivered_once() {
    let Some(nats) = NatsCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (names, manifests) = accounts(dir.path(), 6);
    let urls = nats.urls();
    let mut hosts: Vec<Host> = ["h0", "h1", "h2"]
        .iter()
        .map(|h| Host::start(dir.path(), h, &urls, "redeliver", 2000, &manifests))
        .collect();
    let placed = wait_placed(&hosts[0], &names);
    // A sender on one host, its receiver on another, neither on h0 (which stays up).
    let (sender, receiver) = names
        .iter()
        .flat_map(|a| names.iter().map(move |b| (a, b)))
        .find(|(a, b)| placed[*a] != placed[*b] && placed[*a] != "h0" && placed[*b] != "h0")
        .map(|(a, b)| (a.clone(), b.clone()))
        .unwrap_or_else(|| panic!("no sender and receiver on two other hosts: {placed:?}"));
    let index = |h: &str| hosts.iter().position(|x| x.name == h).unwrap();
    let (s_host, r_host) = (index(&placed[&sender]), index(&placed[&receiver]));

    // The receiver's host stops: the send is committed (and acknowledged) but its delivery
    // cannot finish; then the sender's host dies with it in hand.
    hosts[r_host].signal("-STOP");
    let v = hosts[s_host]
        .request(&sender, json!({"transfer": {"to": receiver, "amount": 7}}))
        .unwrap();
    let acked = vec![Acked {
        chain: sender.clone(),
        seq: v["seq"].as_u64().unwrap(),
        hash: v["hash"].as_str().unwrap().parse().unwrap(),
    }];
    hosts[s_host].kill9();
    // Both move (the receiver's host is past its lease by then); the new owner of the
    // sender delivers the credit. Then the stopped host wakes with the old delivery in hand.
    std::thread::sleep(Duration::from_millis(4000));
    hosts[r_host].signal("-CONT");
    let reported = settled(&hosts[0], &names);
    let chains = audit(&nats, "redeliver", &names, &acked, &reported);
    let credited = chains
        .iter()
        .find(|c| c.store.id().as_str() == receiver)
        .unwrap();
    let receipts = (0..credited.store.len())
        .filter(|&s| {
            credited
                .store
                .get(s)
                .unwrap()
                .refs()
                .iter()
                .any(|r| r.chain.as_str() == sender && r.seq == acked[0].seq)
        })
        .count();
    assert_eq!(receipts, 1, "the credit must be recorded exactly once");
}

#[test]
fn cluster_flags_come_together_and_a_host_file_says_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (_, manifests) = accounts(dir.path(), 1);
    // Half a cluster is refused, naming what is missing.
    let out = bin()
        .arg("run")
        .args(&manifests)
        .args(["--data-dir"])
        .arg(dir.path().join("x"))
        .args(["--cluster", "c"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--cluster NAME, --nats URL[,URL...] and --host NAME"),
        "{}",
        text(&out)
    );
    let out = bin()
        .args(["run", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(
        text(&out).contains("cannot read the host configuration"),
        "{}",
        text(&out)
    );

    let Some(nats) = NatsCluster::start(1) else {
        return;
    };
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "manifests = [\"acct-0.toml\"]\n\n[cluster]\nname = \"file\"\nnats = [{:?}]\nhost = \"from-file\"\nlease_ms = 2000\n",
            nats.servers[0].url()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut child = bin()
        .env_remove("THEATER_DATA_DIR")
        .args(["run", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let placed = loop {
        if data.join("admin.addr").exists() {
            let out = bin()
                .arg("ps")
                .arg("--data-dir")
                .arg(&data)
                .output()
                .unwrap();
            let ps = text(&out);
            if ps.contains("acct-0") && ps.contains("running") {
                break ps;
            }
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the host of the file never ran acct-0"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        placed.contains("from-file") && placed.contains("moves"),
        "{placed}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
