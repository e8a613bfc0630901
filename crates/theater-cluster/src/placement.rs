//! Where actors run: shards owned through leases in a JetStream KV bucket, and the catalog
//! of the cluster's actors.
//!
//! An actor belongs to shard `hash(name) % shards`. A host owns a shard while its key
//! (`shard.<n>`) in the bucket `theater-<cluster>-leases` holds the host's name: created
//! when free (`create` succeeds only if the key has no value), renewed with the revision
//! the host last wrote (`update`), and gone on its own once not renewed for the bucket's
//! `max_age`, on the servers' clock. Each live host also keeps a key `host.<name>`. A free
//! shard goes to the live host that ranks it highest (rendezvous hashing), or to any host
//! once it has stayed free for two ticks; a host that holds a shard another live host ranks
//! higher hands it over, so the shards spread as hosts join.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use theater_chain::Hash;

use crate::{Cluster, ClusterError};

/// The shard an actor belongs to, out of `shards`.
pub fn shard_of(actor: &str, shards: u32) -> u32 {
    let digest = Hash::digest(actor.as_bytes());
    let first: [u8; 8] = digest.as_bytes()[..8].try_into().expect("8 bytes");
    (u64::from_le_bytes(first) % u64::from(shards.max(1))) as u32
}

/// How much `host` wants `shard`: the highest-ranked live host takes it.
fn rank(shard: u32, host: &str) -> u64 {
    let digest = Hash::digest(format!("{shard}/{host}").as_bytes());
    u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn shard_key(shard: u32) -> String {
    format!("shard.{shard}")
}

fn js_err(what: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::JetStream(format!("{what}: {e}"))
}

/// The KV bucket `config` names, created as `config` says if it does not exist yet.
async fn bucket_of(
    js: &async_nats::jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, ClusterError> {
    match js.get_key_value(&config.bucket).await {
        Ok(kv) => Ok(kv),
        Err(_) => {
            let bucket = config.bucket.clone();
            js.create_key_value(config)
                .await
                .map_err(|e| js_err(&bucket, e))
        }
    }
}

/// What a [`Placement::tick`] changed for this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// This host now owns the shard: start its actors (from their replicas).
    Gained(u32),
    /// This host no longer owns the shard (another host has it, or the lease ran out):
    /// stop its actors now.
    Lost(u32),
    /// Another live host ranks the shard higher: stop its actors, then
    /// [`Placement::release`] it.
    Handoff(u32),
}

/// Who owns what, as the lease bucket says now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// The live hosts.
    pub hosts: BTreeSet<String>,
    /// Each owned shard's host.
    pub owners: BTreeMap<u32, String>,
}

/// This host's part in placing actors: its leases, renewed by [`Placement::tick`].
#[derive(Debug)]
pub struct Placement {
    kv: kv::Store,
    host: String,
    shards: u32,
    lease: Duration,
    /// The shards held, each with the revision this host last wrote.
    owned: BTreeMap<u32, u64>,
    /// When every lease held was last renewed.
    renewed: Option<Instant>,
    /// How many ticks each free shard has stayed free.
    free: HashMap<u32, u32>,
}

impl Placement {
    /// Joins the placement of `cluster`'s actors over `shards` shards, with leases of
    /// `lease` (the bucket is created on first use; its settings are the first host's).
    pub async fn join(
        cluster: &Cluster,
        shards: u32,
        lease: Duration,
    ) -> Result<Placement, ClusterError> {
        let c = cluster.config();
        let bucket = format!("theater-{}-leases", c.name);
        let config = kv::Config {
            bucket: bucket.clone(),
            description: format!("Theater cluster {}: shard leases and live hosts", c.name),
            history: 1,
            max_age: lease,
            num_replicas: c.replicas,
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let js = cluster.jetstream();
        let kv = bucket_of(js, config).await?;
        // Every host must shard alike and lease alike: the first one's settings are kept
        // in the bucket, and a host with others is refused.
        let settings =
            serde_json::json!({"shards": shards.max(1), "lease_ms": lease.as_millis() as u64});
        let key = "placement";
        let kept = bucket_of(
            js,
            kv::Config {
                bucket: format!("theater-{}-settings", c.name),
                description: format!("Theater cluster {}: settings every host shares", c.name),
                history: 1,
                num_replicas: c.replicas,
                storage: async_nats::jetstream::stream::StorageType::File,
                ..Default::default()
            },
        )
        .await?;
        match kept.create(key, settings.to_string().into()).await {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let found = kept.get(key).await.map_err(|e| js_err(key, e))?;
                let found: serde_json::Value = found
                    .and_then(|v| serde_json::from_slice(&v).ok())
                    .unwrap_or_default();
                if found != settings {
                    return Err(ClusterError::Config(format!(
                        "the cluster {:?} runs with {found} and this host with {settings}: \
                         every host needs the same --shards and --lease-ms",
                        c.name
                    )));
                }
            }
            Err(e) => return Err(js_err(key, e)),
        }
        Ok(Placement {
            kv,
            host: c.host.clone(),
            shards: shards.max(1),
            lease,
            owned: BTreeMap::new(),
            renewed: None,
            free: HashMap::new(),
        })
    }

    /// The number of shards.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The lease time.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Whether this host owns `shard` (as of the last tick).
    pub fn owns(&self, shard: u32) -> bool {
        self.owned.contains_key(&shard)
    }

    /// The shards this host owns.
    pub fn owned(&self) -> BTreeSet<u32> {
        self.owned.keys().copied().collect()
    }

    /// The live hosts and the shards' owners, read from the bucket.
    pub async fn view(&self) -> Result<View, ClusterError> {
        let mut view = View::default();
        let mut keys = self.kv.keys().await.map_err(|e| js_err("leases", e))?;
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            names.push(key.map_err(|e| js_err("leases", e))?);
        }
        for key in names {
            let Some(value) = self.kv.get(&key).await.map_err(|e| js_err(&key, e))? else {
                continue;
            };
            let value = String::from_utf8_lossy(&value).to_string();
            if let Some(host) = key.strip_prefix("host.") {
                view.hosts.insert(host.to_string());
            } else if let Some(shard) = key.strip_prefix("shard.").and_then(|s| s.parse().ok()) {
                view.owners.insert(shard, value);
            }
        }
        Ok(view)
    }

    /// Renews this host's leases and takes the free shards it should have; returns what
    /// changed. Call it every third of the lease time. A lease not renewed within the lease
    /// time is given up here first, whatever the servers say, so a host that was stopped
    /// (or cut off) past its lease stops its actors before anything else.
    pub async fn tick(&mut self) -> Result<Vec<Change>, ClusterError> {
        let started = Instant::now();
        let mut changes = Vec::new();
        if self
            .renewed
            .is_some_and(|at| started.duration_since(at) >= self.lease)
        {
            changes.extend(self.owned.keys().map(|&s| Change::Lost(s)));
            self.owned.clear();
        }
        // From here a failure still returns what was given up above: the caller stops
        // those actors whatever else went wrong.
        if let Err(e) = self.renew_and_claim(started, &mut changes).await {
            tracing::warn!("placement: {e}");
        }
        Ok(changes)
    }

    async fn renew_and_claim(
        &mut self,
        started: Instant,
        changes: &mut Vec<Change>,
    ) -> Result<(), ClusterError> {
        let me = serde_json::json!({"host": self.host}).to_string();
        self.kv
            .put(format!("host.{}", self.host), me.into())
            .await
            .map_err(|e| js_err("host key", e))?;
        let mut renewed = true;
        for (shard, revision) in self.owned.clone() {
            match self
                .kv
                .update(shard_key(shard), self.host.clone().into(), revision)
                .await
            {
                Ok(r) => {
                    self.owned.insert(shard, r);
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    // An earlier renewal may have landed with its answer lost: still ours
                    // if the key holds this host's name.
                    match self.kv.entry(shard_key(shard)).await {
                        Ok(Some(entry))
                            if entry.value.as_ref() == self.host.as_bytes()
                                && entry.operation == kv::Operation::Put =>
                        {
                            self.owned.insert(shard, entry.revision);
                        }
                        Ok(_) => {
                            self.owned.remove(&shard);
                            changes.push(Change::Lost(shard));
                        }
                        Err(_) => renewed = false,
                    }
                }
                // Not known either way: kept until the lease time says otherwise.
                Err(_) => renewed = false,
            }
        }
        if renewed {
            self.renewed = Some(started);
        }
        let view = self.view().await?;
        let mut live = view.hosts.clone();
        live.insert(self.host.clone());
        let first = |shard: u32| live.iter().max_by_key(|h| rank(shard, h)).cloned();
        for shard in 0..self.shards {
            if self.owned.contains_key(&shard) {
                if view.owners.get(&shard).is_some_and(|o| o != &self.host) {
                    self.owned.remove(&shard);
                    changes.push(Change::Lost(shard));
                } else if first(shard).is_some_and(|h| h != self.host) {
                    changes.push(Change::Handoff(shard));
                }
                continue;
            }
            if view.owners.contains_key(&shard) {
                self.free.remove(&shard);
                continue;
            }
            let waited = self.free.entry(shard).or_insert(0);
            *waited += 1;
            if first(shard).as_deref() != Some(self.host.as_str()) && *waited <= 2 {
                continue;
            }
            match self
                .kv
                .create(shard_key(shard), self.host.clone().into())
                .await
            {
                Ok(revision) => {
                    self.free.remove(&shard);
                    self.owned.insert(shard, revision);
                    if self.renewed.is_none() {
                        self.renewed = Some(started);
                    }
                    changes.push(Change::Gained(shard));
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(js_err("claiming a shard", e)),
            }
        }
        Ok(())
    }

    /// Gives `shard` up (after its actors stopped), so the host that ranks it higher takes
    /// it at once rather than after the lease time.
    pub async fn release(&mut self, shard: u32) -> Result<(), ClusterError> {
        let Some(revision) = self.owned.remove(&shard) else {
            return Ok(());
        };
        self.kv
            .delete_expect_revision(shard_key(shard), Some(revision))
            .await
            .map_err(|e| js_err("releasing a shard", e))
    }

    /// Gives up every shard held (a clean shutdown: the others take them at once).
    pub async fn leave(&mut self) -> Result<(), ClusterError> {
        for shard in self.owned() {
            self.release(shard).await?;
        }
        let _ = self.kv.delete(format!("host.{}", self.host)).await;
        Ok(())
    }
}

/// An actor of the cluster, as its catalog lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    /// Its manifest (the same path on every host that may run it).
    pub manifest: std::path::PathBuf,
    /// Its init parameters, when not the manifest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<serde_json::Value>,
    /// The host it must run on (its grants are host-local), if any: otherwise it runs on
    /// its shard's owner and moves with the shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
}

/// The cluster's actors by name, in the KV bucket `theater-<cluster>-actors`.
#[derive(Clone, Debug)]
pub struct Catalog {
    kv: kv::Store,
}

impl Catalog {
    /// The catalog of `cluster` (the bucket is created on first use).
    pub async fn open(cluster: &Cluster) -> Result<Catalog, ClusterError> {
        let c = cluster.config();
        let config = kv::Config {
            bucket: format!("theater-{}-actors", c.name),
            description: format!("Theater cluster {}: its actors", c.name),
            history: 1,
            num_replicas: c.replicas,
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        };
        Ok(Catalog {
            kv: bucket_of(cluster.jetstream(), config).await?,
        })
    }

    /// Lists `name`.
    pub async fn put(&self, name: &str, listing: &Listing) -> Result<(), ClusterError> {
        let value = serde_json::to_vec(listing).map_err(|e| js_err(name, e))?;
        self.kv
            .put(name, value.into())
            .await
            .map_err(|e| js_err(name, e))?;
        Ok(())
    }

    /// The listing of `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<Listing>, ClusterError> {
        let value = self.kv.get(name).await.map_err(|e| js_err(name, e))?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Takes `name` off the list.
    pub async fn remove(&self, name: &str) -> Result<(), ClusterError> {
        self.kv.delete(name).await.map_err(|e| js_err(name, e))
    }

    /// Every listed actor.
    pub async fn list(&self) -> Result<BTreeMap<String, Listing>, ClusterError> {
        let mut keys = self.kv.keys().await.map_err(|e| js_err("catalog", e))?;
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            names.push(key.map_err(|e| js_err("catalog", e))?);
        }
        let mut out = BTreeMap::new();
        for name in names {
            if let Some(value) = self.kv.get(&name).await.map_err(|e| js_err(&name, e))?
                && let Ok(listing) = serde_json::from_slice(&value)
            {
                out.insert(name, listing);
            }
        }
        Ok(out)
    }
}
