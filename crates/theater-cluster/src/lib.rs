//! # theater-cluster
//!
//! Theater across hosts, on NATS JetStream: every actor's chain is replicated to a stream
//! before its entries count as acknowledged, and read back from there for a takeover or an
//! audit.
//!
//! - [`Cluster`]: a connection to the NATS servers of one Theater cluster (by name), with
//!   the streams it needs created on first use: `THEATER_<NAME>` (each actor's chain, one
//!   message per committed group of entries, on `theater.<name>.chain.<actor>`) and
//!   `THEATER_<NAME>_SNAPSHOTS` (the newest snapshot of each actor).
//! - [`ReplicatedStore`]: a [`theater_chain::ChainStore`] that wraps the local store of one actor. Its
//!   `sync` makes the group durable locally, then publishes it, naming the stream sequence of
//!   the chain's previous group (`Nats-Expected-Last-Subject-Sequence`): if another host has
//!   extended the chain since, the publish is refused and the store is fenced. Every later
//!   write fails, so the actor stops and acknowledges nothing more.
//! - [`Cluster::read_chain`] rebuilds a chain from its replica, checking every hash and link,
//!   and [`Cluster::restore`] brings a local store up to its replica (the takeover of an
//!   actor by another host).
//!
//! The client is [`async_nats`]. A `Cluster` runs it on a runtime of its own, so
//! [`theater_chain::ChainStore::sync`], which is synchronous, can wait on the network from any thread.
//!
//! ## Example
//!
//! ```no_run
//! use theater_chain::{ChainId, ChainStore, MemoryStore, NewEntry, Payload};
//! use theater_cluster::{Cluster, ClusterConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = Cluster::connect(ClusterConfig::new("demo", "nats://127.0.0.1:4222", "host-a")?)?;
//! let local = MemoryStore::new(ChainId::new("counter")?);
//! let mut chain = cluster.replicate(Box::new(local))?;
//! let state = Payload::json(serde_json::json!(0));
//! chain.append(NewEntry::init(state.clone(), theater_chain::Hash::of_json(&state.json)))?;
//! chain.sync()?; // durable here and in the stream: acknowledged
//! let copy = cluster.read_chain_blocking("counter")?;
//! assert_eq!(copy.store.head(), chain.head());
//! # Ok(())
//! # }
//! ```

mod names;
mod placement;
mod read;
mod replica;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

pub use names::{check_cluster_name, subject_token, token_name};
pub use placement::{Catalog, Change, Listing, Placement, View, shard_of};
pub use read::{ReplicaChain, Restored, Written};
pub use replica::ReplicatedStore;

/// Where a host finds its cluster, and who it is in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The cluster's name: its streams and subjects are named after it.
    pub name: String,
    /// The NATS servers, comma-separated (`nats://127.0.0.1:4222,nats://...`).
    pub servers: String,
    /// This host's name, unique in the cluster.
    pub host: String,
    /// Replicas of each stream and bucket: 3 on a cluster of three or more servers, else one
    /// per server. [`ClusterConfig::new`] counts the servers listed; [`Cluster::connect`]
    /// raises it to the servers the one it reached knows of (at most 3).
    pub replicas: usize,
    /// How long a publish may keep being retried (a server down, a leader being elected)
    /// before the group it carries is given up as not acknowledged.
    pub publish_patience: Duration,
}

impl ClusterConfig {
    /// A host named `host` of the cluster `name` on `servers` (comma-separated URLs), with
    /// one replica per server listed, up to three.
    pub fn new(
        name: impl Into<String>,
        servers: impl Into<String>,
        host: impl Into<String>,
    ) -> Result<Self, ClusterError> {
        let (name, servers, host) = (name.into(), servers.into(), host.into());
        check_cluster_name(&name).map_err(ClusterError::Config)?;
        names::check_host_name(&host).map_err(ClusterError::Config)?;
        let count = server_addrs(&servers)?.len();
        Ok(ClusterConfig {
            name,
            servers,
            host,
            replicas: count.min(3),
            publish_patience: Duration::from_secs(15),
        })
    }

    /// Sets [`ClusterConfig::replicas`].
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// Sets [`ClusterConfig::publish_patience`].
    pub fn publish_patience(mut self, patience: Duration) -> Self {
        self.publish_patience = patience;
        self
    }

    /// The stream of the chains.
    pub fn chain_stream(&self) -> String {
        format!("THEATER_{}", self.name)
    }

    /// The stream of the snapshots.
    pub fn snapshot_stream(&self) -> String {
        format!("THEATER_{}_SNAPSHOTS", self.name)
    }

    /// The subject an actor's chain is published on.
    pub fn chain_subject(&self, actor: &str) -> String {
        format!("theater.{}.chain.{}", self.name, subject_token(actor))
    }

    /// The subject an actor's newest snapshot is published on.
    pub fn snapshot_subject(&self, actor: &str) -> String {
        format!("theater.{}.snap.{}", self.name, subject_token(actor))
    }
}

/// The servers of a comma-separated list, each checked.
fn server_addrs(servers: &str) -> Result<Vec<async_nats::ServerAddr>, ClusterError> {
    let addrs = servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<async_nats::ServerAddr>()
                .map_err(|e| ClusterError::Config(format!("NATS server {s:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(ClusterError::Config("no NATS server given".into()));
    }
    Ok(addrs)
}

/// What went wrong talking to the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The configuration is not usable.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// The NATS servers could not be reached.
    #[error("cannot connect to NATS at {servers}: {reason}")]
    Connect {
        /// The servers tried.
        servers: String,
        /// Why.
        reason: String,
    },
    /// JetStream refused or failed a request.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// A replicated chain does not hold together.
    #[error("replica of {actor:?}: {reason}")]
    Replica {
        /// The actor.
        actor: String,
        /// What is wrong.
        reason: String,
    },
    /// The local chain has entries the replica does not: another host took the actor over
    /// after this one wrote them (they were never acknowledged).
    #[error(
        "the local chain of {actor:?} differs from its replica at seq {seq}: it was taken over by another host"
    )]
    Diverged {
        /// The actor.
        actor: String,
        /// The first seq that differs.
        seq: u64,
    },
    /// A chain error.
    #[error(transparent)]
    Chain(#[from] theater_chain::ChainError),
}

/// A connection to one Theater cluster's NATS servers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClusterConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which a runtime's own threads may not do.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Cluster {
    /// Connects to the servers of `config` and creates the cluster's streams if they do not
    /// exist yet. Blocks (call it before or outside async code, or in `spawn_blocking`).
    pub fn connect(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        Cluster::open(config, true)
    }

    fn open(config: ClusterConfig, create: bool) -> Result<Cluster, ClusterError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("theater-nats")
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Config(format!("no runtime for NATS: {e}")))?;
        let cfg = config.clone();
        let (client, js, replicas) = block_on(&runtime, async move {
            let client = async_nats::ConnectOptions::new()
                .name(format!("theater {} {}", cfg.name, cfg.host))
                .connection_timeout(Duration::from_secs(5))
                .connect(server_addrs(&cfg.servers)?)
                .await
                .map_err(|e| ClusterError::Connect {
                    servers: cfg.servers.clone(),
                    reason: e.to_string(),
                })?;
            // One URL of a bigger NATS cluster still gets three replicas: the server tells
            // of its peers.
            let info = client.server_info();
            let me = format!("{}:{}", info.host, info.port);
            let listed = info.connect_urls.len();
            let peers = if info.connect_urls.contains(&me) {
                listed
            } else {
                listed + 1
            };
            let mut cfg = cfg;
            if cfg.replicas < 3 && peers > cfg.replicas {
                cfg.replicas = peers.min(3);
            }
            let js = jetstream::new(client.clone());
            if create {
                ensure_streams(&js, &cfg).await?;
            } else {
                let stream = cfg.chain_stream();
                js.get_stream(&stream).await.map_err(|e| {
                    ClusterError::Config(format!(
                        "no cluster named {:?} on these servers (stream {stream}: {e})",
                        cfg.name
                    ))
                })?;
            }
            Ok::<_, ClusterError>((client, js, cfg.replicas))
        })??;
        let mut config = config;
        config.replicas = replicas;
        Ok(Cluster {
            inner: Arc::new(Inner {
                config,
                client,
                js,
                runtime: Some(runtime),
            }),
        })
    }

    /// Connects to the servers of `config` for reading only: the cluster's streams must
    /// exist already (a mistyped cluster name is an error, not a new empty cluster).
    pub fn connect_existing(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        Cluster::open(config, false)
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// The NATS client (on the cluster's own runtime).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// Runs `fut` on the cluster's runtime and waits for it, from async code.
    pub async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, ClusterError> {
        self.runtime()
            .spawn(fut)
            .await
            .map_err(|e| ClusterError::JetStream(format!("cluster task failed: {e}")))
    }

    /// Runs `fut` on the cluster's runtime and blocks until it is done: for synchronous
    /// callers (a chain store's `sync`). Inside a multi-threaded tokio runtime the worker
    /// hands its other tasks off while it waits.
    pub fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, ClusterError> {
        block_on(self.runtime(), fut)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        // Only `Drop` takes it.
        self.inner
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the cluster")
    }

    /// Wraps `local`, an actor's chain, so that its groups are replicated before they are
    /// acknowledged. The local chain must agree with the replica (restore it first with
    /// [`Cluster::restore`]); entries it has beyond the replica are published at the next
    /// `sync`.
    pub fn replicate(
        &self,
        local: Box<dyn theater_chain::ChainStore>,
    ) -> Result<ReplicatedStore, ClusterError> {
        ReplicatedStore::open(self.clone(), local)
    }
}

/// Runs `fut` on `runtime` and blocks this thread until it is done. Inside a
/// multi-threaded tokio runtime the worker hands its other tasks off while it waits; on any
/// other thread it just waits (the work happens on `runtime`'s threads, not this one).
fn block_on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, ClusterError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let recv = || rx.recv();
    let got = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(recv),
        _ => recv(),
    };
    got.map_err(|_| ClusterError::JetStream("the cluster's runtime stopped".into()))
}

async fn ensure_streams(js: &jetstream::Context, cfg: &ClusterConfig) -> Result<(), ClusterError> {
    use jetstream::stream::{Config, StorageType};
    let chains = Config {
        name: cfg.chain_stream(),
        subjects: vec![format!("theater.{}.chain.*", cfg.name)],
        storage: StorageType::File,
        num_replicas: cfg.replicas,
        allow_direct: true,
        description: Some(format!("Theater cluster {}: actors' chains", cfg.name)),
        ..Default::default()
    };
    let snapshots = Config {
        name: cfg.snapshot_stream(),
        subjects: vec![format!("theater.{}.snap.*", cfg.name)],
        storage: StorageType::File,
        num_replicas: cfg.replicas,
        max_messages_per_subject: 1,
        allow_direct: true,
        description: Some(format!("Theater cluster {}: newest snapshots", cfg.name)),
        ..Default::default()
    };
    for config in [chains, snapshots] {
        let name = config.name.clone();
        // A server that just (re)joined may not answer for JetStream at once.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(_) => break,
                Err(e) if std::time::Instant::now() >= deadline => {
                    return Err(ClusterError::JetStream(format!("stream {name}: {e}")));
                }
                Err(e) => {
                    tracing::debug!("stream {name}: {e}; trying again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
    Ok(())
}
