//! Replication against real `nats-server` processes (a 3-server JetStream cluster on
//! loopback). Skipped, saying so, without a server ≥ 2.12, unless `THEATER_REQUIRE_NATS=1`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

use serde_json::json;
use theater_chain::{
    ChainError, ChainId, ChainStore, Hash, MemoryStore, NewEntry, Payload, Snapshot,
};
use theater_cluster::{Cluster, ClusterConfig, ClusterError};
use theater_test_support::nats::NatsCluster;

fn connect(nats: &NatsCluster, cluster: &str, host: &str) -> Cluster {
    Cluster::connect(ClusterConfig::new(cluster, nats.urls(), host).unwrap()).unwrap()
}

fn entry(n: i64) -> NewEntry {
    let state = json!(n);
    NewEntry::input(
        Payload::json(json!({"add": 1})),
        Payload::json(json!(null)),
        theater_chain::state::State::new(state).hash(),
    )
}

fn genesis() -> NewEntry {
    NewEntry::init(
        Payload::json(json!(0)),
        theater_chain::state::State::new(json!(0)).hash(),
    )
}

fn hashes(store: &dyn ChainStore) -> Vec<Hash> {
    (store.start()..store.len())
        .map(|s| store.hash_at(s).unwrap())
        .collect()
}

fn local(name: &str) -> Box<MemoryStore> {
    Box::new(MemoryStore::new(ChainId::new(name).unwrap()))
}

#[test]
fn committed_groups_are_in_the_stream_with_the_same_hashes() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let cluster = connect(&nats, "t1", "h1");
    let mut chain = cluster.replicate(local("counter.eu")).unwrap();
    chain.append(genesis()).unwrap();
    chain.sync().unwrap();
    for n in 1..=60 {
        let appended = chain.append(entry(n)).unwrap();
        assert!(!appended.durable, "acknowledged only at the sync");
        if n % 7 == 0 {
            chain.sync().unwrap();
            assert_eq!(chain.replicated(), chain.len());
        }
    }
    // Not yet synced: not in the replica.
    let before = cluster.read_chain_blocking("counter.eu").unwrap();
    assert_eq!(before.store.len(), 57);
    chain.sync().unwrap();
    let copy = cluster.read_chain_blocking("counter.eu").unwrap();
    assert_eq!(hashes(&copy.store), hashes(&chain));
    assert_eq!(copy.store.verify().unwrap().entries, 61);
    assert_eq!(copy.hosts.iter().collect::<Vec<_>>(), ["h1"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(cluster.actors()).unwrap(), ["counter.eu"]);
    // Three replicas, even for a host that lists one server of the three.
    let one =
        Cluster::connect(ClusterConfig::new("t1", nats.servers[0].url(), "h2").unwrap()).unwrap();
    assert_eq!(one.config().replicas, 3);
    let js = one.jetstream().clone();
    let replicas = rt.block_on(async move {
        js.get_stream("THEATER_t1")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .config
            .num_replicas
    });
    assert_eq!(replicas, 3);
}

#[test]
fn a_second_writer_fences_the_first_and_the_chain_never_forks() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let (a, b) = (connect(&nats, "t2", "a"), connect(&nats, "t2", "b"));
    let mut on_a = a.replicate(local("acct")).unwrap();
    on_a.append(genesis()).unwrap();
    for n in 1..=5 {
        on_a.append(entry(n)).unwrap();
    }
    on_a.sync().unwrap();

    // Host b takes the actor over: its copy comes from the replica.
    let mut copy = local("acct");
    let restored = b.restore(&mut *copy).unwrap();
    assert_eq!(restored.entries, 6);
    let mut on_b = b.replicate(copy).unwrap();
    on_b.append(entry(6)).unwrap();
    on_b.sync().unwrap();

    // Host a, not knowing, writes on: its group is refused and it is fenced for good.
    on_a.append(entry(6)).unwrap();
    on_a.append(entry(7)).unwrap();
    match on_a.sync() {
        Err(ChainError::Replication { fenced: true, .. }) => {}
        other => panic!("expected a fence, got {other:?}"),
    }
    assert!(on_a.fenced().is_some());
    assert!(matches!(
        on_a.append(entry(8)),
        Err(ChainError::Replication { fenced: true, .. })
    ));

    // The replica is b's chain: a's unacknowledged entries are nowhere in it.
    let replica = b.read_chain_blocking("acct").unwrap();
    assert_eq!(hashes(&replica.store), hashes(&on_b));
    assert_eq!(replica.hosts.iter().collect::<Vec<_>>(), ["a", "b"]);

    // a's local copy has diverged: restoring it is refused, naming the seq.
    let mut stale = local("acct");
    for e in (0..=7).map(|n| if n == 0 { genesis() } else { entry(n) }) {
        stale.append(e).unwrap();
    }
    match a.restore(&mut *stale) {
        Err(ClusterError::Diverged { actor, seq }) => {
            assert_eq!((actor.as_str(), seq), ("acct", 7));
        }
        other => panic!("expected divergence, got {other:?}"),
    }
    // Opening a diverged local chain for replication is refused too.
    let mut stale = local("acct");
    for e in (0..=7).map(|n| if n == 0 { genesis() } else { entry(n + 100) }) {
        stale.append(e).unwrap();
    }
    assert!(matches!(
        a.replicate(stale),
        Err(ClusterError::Diverged { .. })
    ));
}

#[test]
fn snapshots_replicate_so_a_takeover_replays_only_the_tail() {
    let Some(nats) = NatsCluster::start(1) else {
        return;
    };
    let cluster = connect(&nats, "t3", "h1");
    let mut chain = cluster.replicate(local("big")).unwrap();
    chain.append(genesis()).unwrap();
    for n in 1..=10 {
        chain.append(entry(n)).unwrap();
    }
    // Taken before its entries are replicated: published once they are.
    let head = chain.head().unwrap();
    chain
        .save_snapshot(&Snapshot::new(head.seq, head.hash, json!(10)))
        .unwrap();
    assert!(
        cluster
            .read_chain_blocking("big")
            .unwrap()
            .snapshot
            .is_none()
    );
    chain.sync().unwrap();
    chain.append(entry(11)).unwrap();
    chain.sync().unwrap();
    let replica = cluster.read_chain_blocking("big").unwrap();
    assert_eq!(replica.snapshot.as_ref().map(|s| s.seq), Some(10));

    let mut copy = local("big");
    let restored = cluster.restore(&mut *copy).unwrap();
    assert_eq!(restored.entries, 12);
    assert_eq!(restored.snapshot, Some(10));
    assert_eq!(copy.latest_snapshot().unwrap().unwrap().state, json!(10));
}

#[test]
fn replication_goes_on_when_a_server_is_killed_and_it_rejoins() {
    let Some(mut nats) = NatsCluster::start(3) else {
        return;
    };
    let cluster = connect(&nats, "t4", "h1");
    let mut chain = cluster.replicate(local("steady")).unwrap();
    chain.append(genesis()).unwrap();
    chain.sync().unwrap();
    let mut n = 0;
    for round in 0..3 {
        // Whichever server leads the stream, one of the three goes down mid-flow.
        nats.kill(round);
        for _ in 0..20 {
            n += 1;
            chain.append(entry(n)).unwrap();
            chain.sync().unwrap();
        }
        nats.restart(round);
    }
    let replica = cluster.read_chain_blocking("steady").unwrap();
    assert_eq!(replica.store.len(), 61);
    assert_eq!(hashes(&replica.store), hashes(&chain));
}

#[test]
fn bad_configurations_are_refused_with_the_reason() {
    assert!(ClusterConfig::new("a.b", "nats://127.0.0.1:1", "h").is_err());
    assert!(ClusterConfig::new("ok", "", "h").is_err());
    assert!(ClusterConfig::new("ok", "nats://127.0.0.1:1", "h h").is_err());
    let port = theater_test_support::nats::free_port();
    let err = Cluster::connect(
        ClusterConfig::new("ok", format!("nats://127.0.0.1:{port}"), "h").unwrap(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot connect to NATS"), "{err}");
}

#[test]
fn a_takeover_fences_the_old_writer_even_before_the_new_one_writes() {
    let Some(nats) = NatsCluster::start(1) else {
        return;
    };
    let (a, b) = (connect(&nats, "t5", "a"), connect(&nats, "t5", "b"));
    let mut on_a = a.replicate(local("quiet")).unwrap();
    on_a.append(genesis()).unwrap();
    on_a.sync().unwrap();
    // b takes over (as after a's lease ran out while it was stopped) and writes nothing.
    let mut copy = local("quiet");
    b.restore(&mut *copy).unwrap();
    let on_b = b.replicate(copy).unwrap();
    // a wakes up and commits: refused.
    on_a.append(entry(1)).unwrap();
    assert!(matches!(
        on_a.sync(),
        Err(ChainError::Replication { fenced: true, .. })
    ));
    let replica = b.read_chain_blocking("quiet").unwrap();
    assert_eq!(hashes(&replica.store), hashes(&on_b));
    // Two seals and one group: the chain reads back whole.
    assert_eq!(replica.store.len(), 1);
}

#[test]
fn shards_spread_over_live_hosts_and_move_when_a_lease_runs_out() {
    use std::collections::BTreeSet;
    use std::time::Duration;
    use theater_cluster::{Change, Placement};
    let Some(nats) = NatsCluster::start(1) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = (connect(&nats, "t6", "a"), connect(&nats, "t6", "b"));
    let lease = Duration::from_secs(2);
    let (mut pa, mut pb) = rt.block_on(async {
        (
            Placement::join(&a, 8, lease).await.unwrap(),
            Placement::join(&b, 8, lease).await.unwrap(),
        )
    });
    rt.block_on(async {
        for _ in 0..4 {
            for p in [&mut pa, &mut pb] {
                for change in p.tick().await.unwrap() {
                    if let Change::Handoff(s) = change {
                        p.release(s).await.unwrap();
                    }
                }
            }
        }
    });
    // A host sharding otherwise would map actors to other shards: refused, naming both.
    let c = connect(&nats, "t6", "c");
    let err = rt.block_on(Placement::join(&c, 4, lease)).unwrap_err();
    assert!(err.to_string().contains("--shards"), "{err}");
    // Reading a cluster that does not exist is an error, not a new empty one.
    let typo = Cluster::connect_existing(ClusterConfig::new("t6typo", nats.urls(), "v").unwrap());
    assert!(typo.unwrap_err().to_string().contains("no cluster named"));
    let (oa, ob) = (pa.owned(), pb.owned());
    assert!(oa.is_disjoint(&ob), "{oa:?} {ob:?}");
    assert_eq!(
        oa.union(&ob).copied().collect::<BTreeSet<_>>(),
        (0..8).collect()
    );
    assert!(
        !oa.is_empty() && !ob.is_empty(),
        "both hosts hold shards: {oa:?} {ob:?}"
    );
    let view = rt.block_on(pb.view()).unwrap();
    assert_eq!(view.hosts.len(), 2);

    // a stops renewing (killed, or stopped): within the lease time plus a few ticks, b has
    // every shard.
    let started = std::time::Instant::now();
    rt.block_on(async {
        while pb.owned().len() < 8 {
            assert!(started.elapsed() < Duration::from_secs(20), "no takeover");
            pb.tick().await.unwrap();
            tokio::time::sleep(lease / 3).await;
        }
    });
    // a wakes up: its leases ran out, so it gives up every shard before anything else.
    let changes = rt.block_on(pa.tick()).unwrap();
    let lost: BTreeSet<u32> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Lost(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(lost, oa);
    assert!(pa.owned().is_empty());
}

#[test]
fn a_takeover_with_no_copy_reads_the_snapshot_and_the_tail_only() {
    use theater_chain::{Durability, FileStore};
    let Some(nats) = NatsCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (connect(&nats, "t8", "a"), connect(&nats, "t8", "b"));
    let id = ChainId::new("tail").unwrap();
    let durability = Durability::Group { max_batch: 64 };
    // No snapshot yet: nothing to start from but the whole chain.
    assert!(
        a.restore_at(&dir.path().join("none"), id.clone(), durability)
            .unwrap()
            .is_none()
    );
    let local = FileStore::create(dir.path().join("a"), id.clone(), durability).unwrap();
    let mut on_a = a.replicate(Box::new(local)).unwrap();
    on_a.append(genesis()).unwrap();
    on_a.sync().unwrap();
    for n in 1..=10 {
        on_a.append(entry(n)).unwrap();
        on_a.sync().unwrap();
    }
    let head = on_a.head().unwrap();
    on_a.save_snapshot(&Snapshot::new(head.seq, head.hash, json!(10)))
        .unwrap();
    for n in 11..=15 {
        on_a.append(entry(n)).unwrap();
    }
    on_a.sync().unwrap();

    let (copy, restored) = b
        .restore_at(&dir.path().join("b"), id.clone(), durability)
        .unwrap()
        .expect("a snapshot to start from");
    // Six entries read (seq 10 to 15), not sixteen; the copy verifies from the snapshot.
    assert_eq!(restored.entries, 6);
    assert_eq!(restored.snapshot, Some(10));
    assert_eq!(copy.start(), 10);
    assert_eq!(copy.head(), on_a.head());
    assert_eq!(copy.verify().unwrap().entries, 6);
    assert_eq!(copy.latest_snapshot().unwrap().unwrap().state, json!(10));
    // b carries on from it, and the replica stays one chain.
    let mut on_b = b.replicate(Box::new(copy)).unwrap();
    on_b.append(entry(16)).unwrap();
    on_b.sync().unwrap();
    on_a.append(entry(16)).unwrap();
    assert!(matches!(
        on_a.sync(),
        Err(ChainError::Replication { fenced: true, .. })
    ));
    let replica = b.read_chain_blocking("tail").unwrap();
    assert_eq!(replica.store.len(), 17);
    assert_eq!(replica.store.head(), on_b.head());
}
