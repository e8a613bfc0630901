//! The running host behind `theater run`: actors from manifests, actors spawned while it
//! runs (by `theater spawn` or by a parent actor), families of actors activated on demand,
//! their chains in a data directory, the capabilities their manifests grant, and what the
//! management API acts on.
//!
//! An actor's name is its chain's directory (`chains/NAME`) and its address. A family
//! (`name = "room-*"`) makes every name with its prefix addressable: the first message to
//! one creates it, or activates it from its chain; an idle one is passivated (snapshot
//! saved, memory released). The actors spawned at run time are kept in `actors.json` so the
//! next start brings them back.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use theater_chain::{ChainId, ChainRef, ChainStore, Durability, FileStore, Hash};
use theater_core::{
    ActorConfig, ActorEvent, ActorHandle, ActorInput, ActorStatus, ChildEvent, RestartPolicy,
    RuntimeConfig, spawn,
};
use theater_msg::{Activator, Registry, TransportError, TransportErrorKind, pending_sends};
use theater_wasm::{
    ActorComponent, Capabilities, ComponentStore, Family, Manifest, Secrets, Setup, WasmConfig,
    WasmHost,
};
use tokio::sync::Mutex;

/// Where an actor came from: what starts it again and what its stop means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A manifest `theater run` was given.
    Manifest,
    /// `theater spawn` (kept in `actors.json`).
    Spawned,
    /// Spawned by the actor `parent` (kept in `actors.json`).
    Child { parent: String },
    /// A member of the family with this prefix, activated on demand.
    Member { prefix: String },
    /// A cluster's actor, running here because this host owns its shard.
    Placed,
}

/// One actor of the host (running, or stopped but still listed).
pub(crate) struct Actor {
    pub(crate) manifest: Manifest,
    pub(crate) handle: ActorHandle,
    pub(crate) origin: Origin,
}

/// A family of actors: its manifest (named by the pattern) and component.
struct FamilyDef {
    manifest: Manifest,
    family: Family,
    component: ActorComponent,
}

/// An actor started at run time, as `actors.json` keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    /// The actor's name, or a family's pattern.
    name: String,
    /// Its manifest (absolute).
    manifest: PathBuf,
    /// Init parameters given instead of the manifest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    init: Option<Value>,
    /// The actor that spawned it, for a child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
}

/// A family as [`Host::families`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyStatus {
    /// Its pattern (`room-*`).
    pub pattern: String,
    /// Members active now.
    pub active: usize,
    /// How long a member may be idle before it is passivated.
    pub idle: Duration,
    /// Most members active at once.
    pub max_active: usize,
}

/// An actor as `theater ps` lists it.
pub(crate) struct Listed {
    pub(crate) name: String,
    /// Running actors' handles; `None` for a passive member.
    pub(crate) handle: Option<ActorHandle>,
    pub(crate) origin: Option<Origin>,
}

/// What a host runs with beyond its manifests and data directory.
#[derive(Default)]
pub struct HostOptions {
    /// The cluster to join (none: one host on its own).
    pub cluster: Option<crate::cluster::ClusterOptions>,
    /// The secrets every actor may name (the host config's `[secrets]`).
    pub secrets: BTreeMap<String, theater_wasm::secrets::Source>,
    /// The PostgreSQL connections manifests may name (the host config's `[databases]`).
    pub databases: theater_db::Connections,
    /// Keep an audit log of every entry, with signed checkpoints (`--audit`, `[audit]`).
    pub audit: Option<crate::audit::AuditOptions>,
}

/// The actors of `theater run` and everything around them.
pub struct Host {
    wasm: WasmHost,
    capabilities: Capabilities,
    /// The host's secrets, with its key for versions; an actor's add its manifest's.
    secrets: Secrets,
    pub(crate) registry: Registry,
    pub(crate) data_dir: PathBuf,
    pub(crate) actors: Mutex<BTreeMap<String, Actor>>,
    /// Families by prefix.
    families: std::sync::RwLock<BTreeMap<String, Arc<FamilyDef>>>,
    /// One lock per name being activated or passivated, so the two never overlap.
    gates: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    records: std::sync::Mutex<Vec<Record>>,
    /// Children whose spawn is recorded but who are not started yet (their parent's entry
    /// is not durable yet), with when to stop waiting for them: messages to them wait.
    expected: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    /// Children being restarted by the management API: their stop is not told to the parent.
    quiet: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    stopping: Arc<AtomicBool>,
    /// In cluster mode: the cluster and the transport to its other hosts.
    cluster: Option<Arc<crate::cluster::ClusterState>>,
    transport: Option<Arc<crate::cluster::ClusterTransport>>,
    /// The audit log, when kept.
    pub(crate) audit: Option<Arc<crate::audit::HostAudit>>,
}

/// How long a message waits for a child whose spawn is recorded but not yet started.
const CHILD_START: Duration = Duration::from_secs(30);

/// The file the actors started at run time are kept in.
const RECORDS: &str = "actors.json";

/// The file of a chain's directory naming the manifest component the actor last adopted.
const MANIFEST_CODE: &str = "manifest-code";

/// The largest component file `theater upgrade` reads.
const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Writes `bytes` to `path` at once (a temporary file, synced, renamed, the directory
/// synced).
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// What `theater upgrade` runs: a component file, or one the host has run before, by hash.
#[derive(Clone, Debug)]
pub(crate) enum UpgradeTo {
    /// A component file (the host reads it, and keeps it in its store).
    File(PathBuf),
    /// A component of the host's store.
    Code(Hash),
}

impl Host {
    /// Loads and checks the manifests, opens (or creates) their chains under `data_dir`,
    /// starts the actors with what their manifests grant (and those spawned at run time by
    /// an earlier run), delivers messages a previous run left undelivered, and starts serving
    /// them (HTTP).
    pub async fn start(manifests: &[PathBuf], data_dir: &Path) -> anyhow::Result<Arc<Host>> {
        Host::start_with(manifests, data_dir, HostOptions::default()).await
    }

    /// [`Host::start`], in the cluster `cluster` names when given: the manifests' actors
    /// are listed in the cluster's catalog; those with host-local grants start here (pinned),
    /// the others on whichever host owns their shard. Every chain is replicated.
    pub async fn start_with(
        manifests: &[PathBuf],
        data_dir: &Path,
        options: HostOptions,
    ) -> anyhow::Result<Arc<Host>> {
        let HostOptions {
            cluster,
            secrets,
            databases,
            audit,
        } = options;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        // Everything below derives paths from it; absolute, they mean the same wherever the
        // process or a library it uses resolves them.
        let data_dir = &std::fs::canonicalize(data_dir)
            .with_context(|| format!("cannot resolve the data directory {}", data_dir.display()))?;
        let secrets = Secrets::new(secrets).with_key_in(data_dir)?;
        // Every secret the host declares must be there at start, not at its first use.
        secrets.check_outside(data_dir)?;
        secrets.check_all()?;
        let registry = Registry::new();
        let children = crate::children::Actors::new();
        let capabilities = crate::capabilities::hosted(&registry, &children, Some(databases));
        let wasm = WasmHost::new(
            WasmConfig::default()
                .cache_dir(data_dir.join("cache"))
                .components(ComponentStore::in_data_dir(data_dir), true)
                .capabilities(capabilities.clone()),
        )?;
        let records = read_records(&data_dir.join(RECORDS))?;
        let audit = match (audit, &cluster) {
            (Some(_), Some(_)) => bail!(
                "the audit log is not kept in a cluster yet (each host would log the entries it committed): run without --audit or [audit]"
            ),
            (Some(options), None) => Some(crate::audit::HostAudit::open(data_dir, options)?),
            (None, _) => None,
        };
        let cluster = match cluster {
            Some(options) => Some(crate::cluster::ClusterState::join(options).await?),
            None => None,
        };
        let transport = cluster.as_ref().map(|state| {
            Arc::new(crate::cluster::ClusterTransport::new(
                registry.clone(),
                Arc::clone(state),
            ))
        });
        if let Some(t) = &transport {
            registry.set_transport(Arc::clone(t) as Arc<dyn theater_msg::Transport>);
        }
        let host = Arc::new(Host {
            wasm,
            capabilities,
            secrets,
            registry,
            data_dir: data_dir.to_path_buf(),
            actors: Mutex::new(BTreeMap::new()),
            families: std::sync::RwLock::new(BTreeMap::new()),
            gates: std::sync::Mutex::new(HashMap::new()),
            records: std::sync::Mutex::new(records.clone()),
            expected: std::sync::Mutex::new(HashMap::new()),
            quiet: Arc::default(),
            stopping: Arc::new(AtomicBool::new(false)),
            cluster,
            transport,
            audit,
        });
        children.bind(Arc::downgrade(&host));
        host.registry
            .set_activator(Arc::new(HostActivator(Arc::downgrade(&host))));
        let mut loaded = Vec::new();
        for path in manifests {
            let m = Manifest::load(path)?;
            host.capabilities.check(&m)?;
            if loaded.iter().any(|o: &Manifest| o.name == m.name) {
                bail!("two manifests name the actor {:?}", m.name.as_str());
            }
            loaded.push(m);
        }
        let (families, singles): (Vec<Manifest>, Vec<Manifest>) =
            loaded.into_iter().partition(|m| m.family.is_some());
        for m in families {
            host.add_family(m)?;
        }
        let mut listed = Vec::new();
        for m in singles {
            let pinned = crate::cluster::pinned(&m);
            if host.cluster.is_some() {
                listed.push((m.path.clone(), pinned, m.name.to_string()));
                if !pinned {
                    // Started by whichever host owns its shard.
                    continue;
                }
            }
            host.check_free(m.name.as_str()).await?;
            let name = m.name.to_string();
            host.start_actor(m, None, Origin::Manifest, Vec::new())
                .await?;
            host.spawn_redelivery(&name);
        }
        if let Some(state) = &host.cluster {
            host.list_in_catalog(state, &listed).await?;
        }
        for r in records {
            if let Err(e) = host.restore(&r).await {
                tracing::warn!(actor = %r.name, "not started again: {e:#}");
            }
        }
        host.reconcile_children().await?;
        if host.cluster.is_none() {
            // In a cluster, each actor's undelivered messages are delivered as it starts.
            host.redeliver().await?;
        }
        host.capabilities.serve().await?;
        tokio::spawn(sweep(Arc::downgrade(&host)));
        if let Some(audit) = &host.audit {
            tokio::spawn(Arc::clone(audit).run(Arc::clone(&host.stopping)));
        }
        if let Some(state) = &host.cluster {
            tokio::spawn(crate::cluster::place(
                Arc::downgrade(&host),
                Arc::clone(state),
            ));
        }
        Ok(host)
    }

    /// The registry the host's actors are reached through (it activates family members).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// In cluster mode, the cluster.
    pub(crate) fn cluster_state(&self) -> Option<Arc<crate::cluster::ClusterState>> {
        self.cluster.clone()
    }

    /// In cluster mode, the transport reaching the other hosts.
    pub(crate) fn cluster_transport(&self) -> Option<Arc<crate::cluster::ClusterTransport>> {
        self.transport.clone()
    }

    /// The wasm host (compiles and caches components).
    pub(crate) fn wasm(&self) -> &WasmHost {
        &self.wasm
    }

    /// The capabilities manifests may grant.
    pub(crate) fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Whether the host is shutting down.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(crate) fn chain_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join("chains").join(name)
    }

    /// Whether `name` has a chain on disk.
    /// The size on disk of actor `name`'s chain log, if it has one here.
    pub(crate) fn chain_bytes(&self, name: &str) -> Option<u64> {
        std::fs::metadata(self.chain_dir(name).join("chain.log"))
            .ok()
            .map(|m| m.len())
    }

    fn has_chain(&self, name: &str) -> bool {
        self.chain_dir(name).is_dir()
    }

    /// Adds the family `m` declares (its name is a pattern).
    fn add_family(&self, m: Manifest) -> anyhow::Result<String> {
        let family = m.family.clone().context("not a family")?;
        for cap in ["http", "timers"] {
            if m.grants(cap) {
                bail!(
                    "{}: a family's actors are passivated when idle, so [interfaces.{cap}] \
                     cannot be granted to them ({}); give it to an actor that forwards to them",
                    m.path.display(),
                    if cap == "http" {
                        "a passive actor serves no port"
                    } else {
                        "a passive actor's timers would not fire"
                    }
                );
            }
        }
        let component = self
            .wasm
            .load_file(&m.component)
            .with_context(|| format!("loading the family {:?}", m.name.as_str()))?;
        let mut families = self.families.write().expect("families lock");
        if let Some(other) = families
            .keys()
            .find(|p| p.starts_with(&family.prefix) || family.prefix.starts_with(p.as_str()))
        {
            bail!(
                "the family {:?} overlaps the family {:?}: a name would belong to both",
                m.name.as_str(),
                format!("{other}*")
            );
        }
        let covered = |n: &str| family.covers(n);
        let listed: Vec<String> = self
            .records
            .lock()
            .map(|r| r.iter().map(|r| r.name.clone()).collect())
            .unwrap_or_default();
        if let Some(n) = self
            .registry
            .ids()
            .iter()
            .map(|id| id.to_string())
            .chain(listed)
            .find(|n| covered(n))
        {
            bail!(
                "the family {:?} would cover the actor {n:?}, which is not one of its members",
                m.name.as_str()
            );
        }
        let pattern = m.name.to_string();
        tracing::info!(family = %pattern, idle = ?family.idle, max_active = family.max_active, "family ready");
        families.insert(
            family.prefix.clone(),
            Arc::new(FamilyDef {
                manifest: m,
                family,
                component,
            }),
        );
        Ok(pattern)
    }

    /// The family `name` belongs to.
    fn family_of(&self, name: &str) -> Option<Arc<FamilyDef>> {
        self.families
            .read()
            .ok()?
            .values()
            .find(|d| d.family.covers(name))
            .cloned()
    }

    /// An error unless `name` can be given to a new actor: not running or listed, not a
    /// family member's name.
    async fn check_free(&self, name: &str) -> anyhow::Result<()> {
        if let Some(d) = self.family_of(name) {
            bail!(
                "{name:?} belongs to the family {:?}: its actors are created by their first message",
                d.manifest.name.as_str()
            );
        }
        if let Some(parent) = self.genesis_parent(name) {
            bail!("{name:?} is a child of {parent:?}: only its parent spawns it");
        }
        if self.is_expected(name) {
            bail!("{name:?} is a child being started");
        }
        if let Some(a) = self.actors.lock().await.get(name) {
            match a.handle.status() {
                ActorStatus::Running | ActorStatus::Restarting { .. } => {
                    bail!("an actor named {name:?} is already running")
                }
                _ => bail!(
                    "an actor named {name:?} exists (stopped): `theater restart {name}` starts it again"
                ),
            }
        }
        Ok(())
    }

    /// Starts the actor `m` (creating its chain or resuming it), registers it and lists it.
    pub(crate) async fn start_actor(
        &self,
        m: Manifest,
        component: Option<ActorComponent>,
        origin: Origin,
        genesis: Vec<ChainRef>,
    ) -> anyhow::Result<ActorHandle> {
        let component = match component {
            Some(c) => c,
            None => self
                .wasm
                .load_file(&m.component)
                .with_context(|| format!("loading the actor {:?}", m.name.as_str()))?,
        };
        let handle = self.spawn_handle(&m, &component, &origin, genesis).await?;
        self.registry.register(handle.clone())?;
        self.serve_remote(m.name.as_str(), &handle);
        if let Origin::Child { parent } = &origin {
            // Subscribed now: a child that fails on its first input is still reported.
            let events = handle.subscribe();
            tokio::spawn(watch_child(
                self.registry.clone(),
                events,
                m.name.to_string(),
                parent.clone(),
                self.stopping_flag(),
                Arc::clone(&self.quiet),
            ));
        }
        tracing::debug!(actor = %m.name, ?origin, "started");
        self.actors.lock().await.insert(
            m.name.to_string(),
            Actor {
                manifest: m,
                handle: handle.clone(),
                origin,
            },
        );
        Ok(handle)
    }

    fn stopping_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stopping)
    }

    async fn spawn_handle(
        &self,
        m: &Manifest,
        component: &ActorComponent,
        origin: &Origin,
        genesis: Vec<ChainRef>,
    ) -> anyhow::Result<ActorHandle> {
        // Brought up to the replica when the host starts them; a placed actor was at its
        // takeover, and a family member's chain never leaves this host (its activations
        // read no replica).
        if let Some(state) = &self.cluster
            && !matches!(origin, Origin::Placed | Origin::Member { .. })
        {
            self.restore_chain(state, m.name.as_str())?;
        }
        let store = FileStore::open_or_create(
            self.chain_dir(m.name.as_str()),
            m.name.clone(),
            Durability::Group { max_batch: 64 },
        )
        .with_context(|| format!("opening the chain of {:?}", m.name.as_str()))?;
        let chain: Box<dyn ChainStore> = match (&self.cluster, &self.audit) {
            (Some(state), _) => self.cluster_chain(state, m.name.as_str(), store)?,
            (None, Some(audit)) => audit.wrap(Box::new(store))?,
            (None, None) => Box::new(store),
        };
        let secrets = self.secrets.and(&m.secrets)?;
        secrets.check_outside(&self.data_dir)?;
        for name in m.secrets.keys() {
            secrets.get(name)?;
        }
        let grants = self.capabilities.grants(&Setup {
            manifest: m,
            data_dir: &self.data_dir,
            chain: &*chain,
            secrets: &secrets,
        })?;
        let factory = {
            let (wasm, component, m) = (self.wasm.clone(), component.clone(), m.clone());
            let grants = grants.clone();
            move || {
                wasm.actor(&component, &m.name, m.init.clone(), m.limits)
                    .with_grants(grants.clone())
            }
        };
        let mut runtime = RuntimeConfig::default()
            .genesis_refs(genesis)
            .reads(m.reads);
        match (&m.retention, &self.cluster) {
            (Some(policy), None) => runtime = runtime.retention(policy.clone()),
            (Some(_), Some(_)) if m.retention_declared => tracing::warn!(
                actor = %m.name,
                "[retention] is not applied in a cluster (a replica keeps the whole chain)"
            ),
            _ => {}
        }
        let mut config = ActorConfig::default().runtime(runtime);
        if matches!(origin, Origin::Child { .. }) {
            // Its parent supervises it: told of the failure, it spawns it again.
            config = config.restart(RestartPolicy::never());
        }
        let handle = spawn(factory, chain, config).await?;
        if let Err(e) = self
            .adopt_manifest_code(m, component, origin, &handle)
            .await
        {
            let _ = handle.stop().await;
            return Err(e);
        }
        for (_, grant) in grants.iter() {
            grant.start(&handle);
        }
        Ok(handle)
    }

    /// Runs the manifest's component if it changed since the actor last adopted it (an
    /// upgrade entry, checked like `theater upgrade`); otherwise the actor keeps the code its
    /// chain says it runs, which `theater upgrade` may have changed. The component last
    /// adopted is kept in the chain's directory (`manifest-code`). A cluster's actor or a
    /// family's member, which `theater upgrade` does not change, always runs its manifest's.
    async fn adopt_manifest_code(
        &self,
        m: &Manifest,
        component: &ActorComponent,
        origin: &Origin,
        handle: &ActorHandle,
    ) -> anyhow::Result<()> {
        let file = self.chain_dir(m.name.as_str()).join(MANIFEST_CODE);
        let code = component.hash();
        let marked = !matches!(origin, Origin::Placed | Origin::Member { .. });
        if marked {
            let adopted = match std::fs::read_to_string(&file) {
                Ok(text) => Some(text.trim().parse::<Hash>().map_err(|_| {
                    anyhow::anyhow!(
                        "{} does not hold a SHA-256: remove it to adopt the manifest's component",
                        file.display()
                    )
                })?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => anyhow::bail!("cannot read {}: {e}", file.display()),
            };
            if adopted == Some(code) {
                return Ok(());
            }
        }
        match handle.upgrade(code).await {
            Ok(theater_core::Upgraded::To { seq, from, .. }) => tracing::info!(
                actor = %m.name,
                seq,
                "runs the manifest's component {} (was {})",
                code.short(),
                from.map_or("unrecorded".into(), |f| f.short())
            ),
            Ok(_) => {}
            Err(e) => anyhow::bail!(
                "{:?}: the manifest's component {} ({}) was not adopted, and the actor was not started: {e}",
                m.name.as_str(),
                m.component.display(),
                code.short()
            ),
        }
        if !marked {
            return Ok(());
        }
        // Durably (a lost mark would undo a `theater upgrade` at the next start); written
        // only when it changes.
        write_durably(&file, format!("{code}\n").as_bytes())
            .with_context(|| format!("cannot record the adopted component in {}", file.display()))
    }

    /// `theater upgrade`: the running actor `name` runs `component` from its next input on
    /// (an upgrade entry), if the component accepts its state; a refusal changes nothing.
    /// Upgrading back to an earlier component is the same. A cluster's actors and a family's
    /// members run their manifest's component: change that instead.
    pub(crate) async fn upgrade_actor(
        &self,
        name: &str,
        component: UpgradeTo,
    ) -> Result<Value, (u16, String)> {
        let (handle, origin) = {
            let actors = self.actors.lock().await;
            let a = actors
                .get(name)
                .ok_or_else(|| (404, format!("no actor named {name:?} runs here")))?;
            (a.handle.clone(), a.origin.clone())
        };
        match origin {
            Origin::Placed => {
                return Err((
                    409,
                    format!(
                        "{name:?} is a cluster's actor, which any host may run: change its manifest's component on every host and restart them"
                    ),
                ));
            }
            Origin::Member { prefix } => {
                return Err((
                    409,
                    format!(
                        "{name:?} is a member of the family {prefix}*, whose members run the family's component: change the family's manifest"
                    ),
                ));
            }
            _ => {}
        }
        // Compiling takes a while: off the async threads.
        let wasm = self.wasm.clone();
        let loaded = tokio::task::spawn_blocking(move || match &component {
            UpgradeTo::File(path) => {
                let meta = std::fs::metadata(path)
                    .map_err(|e| (400, format!("{}: {e}", path.display())))?;
                if !meta.is_file() {
                    return Err((400, format!("{} is not a file", path.display())));
                }
                if meta.len() > MAX_COMPONENT_BYTES {
                    return Err((
                        400,
                        format!(
                            "{} is {} bytes, more than a component may be ({MAX_COMPONENT_BYTES})",
                            path.display(),
                            meta.len()
                        ),
                    ));
                }
                wasm.load_file(path).map_err(|e| (400, e.to_string()))
            }
            UpgradeTo::Code(hash) => wasm.component(hash).map_err(|e| (400, e)),
        })
        .await
        .map_err(|e| (500, format!("loading the component: {e}")))??;
        let code = loaded.hash();
        match handle.upgrade(code).await {
            Ok(theater_core::Upgraded::To { seq, hash, from }) => Ok(serde_json::json!({
                "upgraded": name,
                "code": code.to_string(),
                "from": from.map(|f| f.to_string()),
                "world": loaded.world(),
                "seq": seq,
                "hash": hash.to_string(),
            })),
            Ok(_) => Ok(serde_json::json!({
                "unchanged": name,
                "code": code.to_string(),
            })),
            Err(theater_core::CallError::Refused { reason, .. }) => Err((409, reason)),
            Err(e) => Err((409, e.to_string())),
        }
    }

    /// Starts again an actor `actors.json` lists.
    async fn restore(&self, r: &Record) -> anyhow::Result<()> {
        let m = Manifest::load(&r.manifest)?;
        self.capabilities.check(&m)?;
        if m.family.is_some() {
            self.add_family(m)?;
            return Ok(());
        }
        let m = m
            .instance(&r.name, r.init.clone())
            .map_err(anyhow::Error::msg)?;
        let origin = match &r.parent {
            Some(parent) => Origin::Child {
                parent: parent.clone(),
            },
            None => Origin::Spawned,
        };
        self.start_actor(m, None, origin, Vec::new()).await?;
        Ok(())
    }

    /// `theater spawn`: starts the actor of the manifest at `path` as `name` (default: the
    /// manifest's), with `init` (default: the manifest's), or adds the family it declares.
    /// Kept in `actors.json`, so the next start brings it back. Returns its name.
    pub async fn spawn_manifest(
        &self,
        path: &Path,
        name: Option<String>,
        init: Option<Value>,
    ) -> anyhow::Result<String> {
        let path = std::fs::canonicalize(path)
            .with_context(|| format!("no manifest at {}", path.display()))?;
        let m = Manifest::load(&path)?;
        self.capabilities.check(&m)?;
        let record = |name: &str| Record {
            name: name.to_string(),
            manifest: path.clone(),
            init: init.clone(),
            parent: None,
        };
        if m.family.is_some() {
            if name.is_some() || init.is_some() {
                bail!(
                    "{} declares the family {:?}: its members are named by the messages that create them, and share its [init]",
                    path.display(),
                    m.name.as_str()
                );
            }
            let pattern = self.add_family(m)?;
            self.keep(record(&pattern))?;
            return Ok(pattern);
        }
        let name = name.unwrap_or_else(|| m.name.to_string());
        let m = m
            .instance(&name, init.clone())
            .map_err(anyhow::Error::msg)?;
        self.check_free(&name).await?;
        self.start_actor(m, None, Origin::Spawned, Vec::new())
            .await?;
        self.keep(record(&name))?;
        tracing::info!(actor = %name, "spawned");
        Ok(name)
    }

    /// Whether the actor `parent` may spawn a child named `name` now: a valid name, free, or
    /// the name of a child of `parent` that is not running (spawning it resumes it).
    pub(crate) fn check_child(&self, parent: &str, name: &str) -> Result<(), String> {
        theater_wasm::check_name(name)?;
        if self.family_of(name).is_some() {
            return Err(format!("{name:?} belongs to a family of actors"));
        }
        if self.registry.lookup(name).is_some_and(|h| {
            matches!(
                h.status(),
                ActorStatus::Running | ActorStatus::Restarting { .. }
            )
        }) {
            return Err(format!("an actor named {name:?} is already running"));
        }
        let mine = self.is_child_of(name, parent);
        if !mine && (self.has_chain(name) || self.registry.lookup(name).is_some()) {
            return Err(format!(
                "the name {name:?} is taken by an actor that is not a child of {parent:?}"
            ));
        }
        Ok(())
    }

    /// Marks `name` as a child about to start: until it does (or 30 s pass), messages
    /// to it wait for it instead of failing.
    pub(crate) fn expect_child(&self, name: &str) {
        if let Ok(mut e) = self.expected.lock() {
            e.insert(name.to_string(), std::time::Instant::now() + CHILD_START);
        }
    }

    fn is_expected(&self, name: &str) -> bool {
        self.expected.lock().is_ok_and(|mut e| {
            let now = std::time::Instant::now();
            e.retain(|_, until| *until > now);
            e.contains_key(name)
        })
    }

    /// Waits until the expected child `name` has started (or will not).
    async fn wait_for_child(&self, name: &str) -> Result<ActorHandle, TransportError> {
        while self.is_expected(name) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.registry
            .lookup(name)
            .filter(|h| h.status() == ActorStatus::Running)
            .ok_or_else(|| {
                TransportError::new(
                    TransportErrorKind::NotRunning,
                    format!("the child {name:?} did not start"),
                )
            })
    }

    /// Whether `name` is a child `parent` spawned.
    /// A stopped child is no longer in the records; its genesis still names its parent.
    pub(crate) fn is_child_of(&self, name: &str, parent: &str) -> bool {
        let recorded = self
            .records
            .lock()
            .map(|r| {
                r.iter()
                    .any(|r| r.name == name && r.parent.as_deref() == Some(parent))
            })
            .unwrap_or(false);
        recorded || self.genesis_parent(name).is_some_and(|p| p == parent)
    }

    /// The actor whose spawn created `name`: its genesis refers to an entry of that actor
    /// which recorded a successful spawn of exactly `name`.
    fn genesis_parent(&self, name: &str) -> Option<String> {
        theater_wasm::check_name(name).ok()?;
        let chain = FileStore::open_read_only(self.chain_dir(name)).ok()?;
        if chain.start() != 0 || chain.is_empty() {
            return None;
        }
        let genesis = chain.get(0).ok()?;
        genesis.refs().iter().find_map(|r| {
            let parent = FileStore::open_read_only(self.chain_dir(r.chain.as_str())).ok()?;
            let entry = parent.get(r.seq).ok()?;
            let spawned = entry.hash() == r.hash
                && entry.host_calls().iter().any(|c| {
                    c.name == theater_msg::SPAWN_CHILD
                        && c.request.json["name"] == name
                        && c.result.json["ok"] == true
                });
            spawned.then(|| r.chain.to_string())
        })
    }

    /// Starts the child `m` of `parent` once the parent's spawning entry `sent_by` is durable
    /// (its genesis refers to it). A failure is told to the parent as a recorded input.
    pub(crate) async fn start_child(&self, parent: String, m: Manifest, sent_by: ChainRef) {
        let name = m.name.to_string();
        let started = async {
            self.check_child(&parent, &name)
                .map_err(anyhow::Error::msg)?;
            // A restarted child keeps its place in the records.
            self.drop_record(&name)?;
            self.keep(Record {
                name: name.clone(),
                manifest: m.path.clone(),
                init: Some(m.init.clone()),
                parent: Some(parent.clone()),
            })?;
            {
                let mut actors = self.actors.lock().await;
                if let Some(old) = actors.remove(&name) {
                    self.registry.unregister(old.handle.id());
                }
            }
            self.start_actor(
                m,
                None,
                Origin::Child {
                    parent: parent.clone(),
                },
                vec![sent_by],
            )
            .await
        };
        let started = started.await;
        if let Ok(mut e) = self.expected.lock() {
            e.remove(&name);
        }
        if let Err(e) = started {
            tracing::warn!(%parent, child = %name, "child not started: {e:#}");
            tell_parent(
                &self.registry,
                &parent,
                &name,
                ChildEvent::Failed,
                Some(format!("{e:#}")),
            )
            .await;
        }
    }

    /// Stops the child `name` of `parent` (after the parent's stopping entry is durable).
    pub(crate) async fn stop_child(&self, parent: &str, name: &str) {
        if self.is_child_of(name, parent)
            && let Err(e) = self.stop_actor(name.to_string()).await
        {
            tracing::warn!(%parent, child = %name, "child not stopped: {e:#}");
        }
    }

    fn keep(&self, r: Record) -> anyhow::Result<()> {
        let mut records = self.records.lock().expect("records lock");
        records.retain(|o| o.name != r.name);
        records.push(r);
        write_records(&self.data_dir.join(RECORDS), &records)
    }

    fn drop_record(&self, name: &str) -> anyhow::Result<()> {
        let mut records = self.records.lock().expect("records lock");
        let before = records.len();
        records.retain(|o| o.name != name);
        if records.len() != before {
            write_records(&self.data_dir.join(RECORDS), &records)?;
        }
        Ok(())
    }

    fn gate(&self, name: &str) -> Arc<Mutex<()>> {
        let mut gates = self.gates.lock().expect("gates lock");
        Arc::clone(gates.entry(name.to_string()).or_default())
    }

    fn ungate(&self, name: &str, gate: Arc<Mutex<()>>) {
        let mut gates = self.gates.lock().expect("gates lock");
        // Ours and the table's: no one else waits on it.
        if Arc::strong_count(&gate) <= 2 {
            gates.remove(name);
        }
    }

    /// Brings the family member `name` up: created on an empty chain, or activated from its
    /// chain (its newest snapshot, then the entries after it).
    pub async fn activate(&self, name: &str) -> Result<ActorHandle, TransportError> {
        let unavailable = |e: String| TransportError::new(TransportErrorKind::Unavailable, e);
        if self.is_expected(name) {
            return self.wait_for_child(name).await;
        }
        let Some(def) = self.family_of(name) else {
            return Err(TransportError::new(
                TransportErrorKind::NoSuchActor,
                format!("no actor named {name:?}"),
            ));
        };
        if self.stopping.load(Ordering::SeqCst) {
            return Err(unavailable("the host is shutting down".into()));
        }
        // Room is made before this name's gate is taken, and only idle members are
        // passivated: a member busy with an input (perhaps a request to this one) is never
        // waited for, so activations cannot wait on each other in a cycle.
        if self.registry.lookup(name).is_none() {
            self.make_room(&def).await;
        }
        let gate = self.gate(name);
        let result = async {
            let _open = gate.lock().await;
            if self.stopping.load(Ordering::SeqCst) {
                return Err(unavailable("the host is shutting down".into()));
            }
            {
                let mut actors = self.actors.lock().await;
                if let Some(a) = actors.get(name) {
                    if matches!(
                        a.handle.status(),
                        ActorStatus::Running | ActorStatus::Restarting { .. }
                    ) {
                        return Ok(a.handle.clone());
                    }
                    // Failed for good last time: try again from its chain.
                    let old = actors.remove(name).expect("listed");
                    self.registry.unregister(old.handle.id());
                }
            }
            let m = def
                .manifest
                .instance(name, None)
                .map_err(|e| TransportError::new(TransportErrorKind::NoSuchActor, e))?;
            self.start_actor(
                m,
                Some(def.component.clone()),
                Origin::Member {
                    prefix: def.family.prefix.clone(),
                },
                Vec::new(),
            )
            .await
            .map_err(|e| unavailable(format!("activating {name:?} failed: {e:#}")))
        }
        .await;
        self.ungate(name, gate);
        result
    }

    /// Passivates the least recently active members of `def` until one more fits. Members
    /// handling an input or with inputs waiting are not candidates: when every member is
    /// busy, the family goes over `max_active` for a while rather than wait.
    async fn make_room(&self, def: &FamilyDef) {
        loop {
            let lru = {
                let actors = self.actors.lock().await;
                let members: Vec<(&String, &Actor)> = actors
                    .iter()
                    .filter(|(_, a)| {
                        matches!(&a.origin, Origin::Member { prefix } if *prefix == def.family.prefix)
                    })
                    .collect();
                if members.len() < def.family.max_active {
                    return;
                }
                members
                    .into_iter()
                    .filter(|(_, a)| a.handle.idle_for() > Duration::ZERO && a.handle.queued() == 0)
                    .max_by_key(|(_, a)| a.handle.idle_for())
                    .map(|(n, _)| n.clone())
            };
            match lru {
                Some(name) => self.passivate(&name).await,
                None => return,
            }
        }
    }

    /// Passivates the member `name`: unlisted, then its mailbox drained, a snapshot saved and
    /// its memory released. The next message activates it again.
    pub async fn passivate(&self, name: &str) {
        let gate = self.gate(name);
        {
            let _closed = gate.lock().await;
            let taken = {
                let mut actors = self.actors.lock().await;
                match actors.get(name) {
                    Some(a) if matches!(a.origin, Origin::Member { .. }) => actors.remove(name),
                    _ => None,
                }
            };
            if let Some(a) = taken {
                self.registry.unregister(a.handle.id());
                if let Err(e) = a.handle.passivate().await {
                    tracing::debug!(actor = %name, "passivated while stopping: {e}");
                }
                tracing::debug!(actor = %name, "passivated");
            }
        }
        self.ungate(name, gate);
    }

    /// Passivates the members idle longer than their family allows.
    async fn passivate_idle(&self) {
        let idle: Vec<String> = {
            let families = self.families.read().expect("families lock").clone();
            let actors = self.actors.lock().await;
            actors
                .iter()
                .filter_map(|(name, a)| {
                    let Origin::Member { prefix } = &a.origin else {
                        return None;
                    };
                    let def = families.get(prefix)?;
                    let idle = a.handle.idle_for();
                    (a.handle.status() == ActorStatus::Running
                        && a.handle.queued() == 0
                        && idle > Duration::ZERO
                        && idle >= def.family.idle)
                        .then(|| name.clone())
                })
                .collect()
        };
        for name in idle {
            self.passivate(&name).await;
        }
    }

    /// How often the idle sweep runs: a quarter of the shortest idle time, within 10 ms..1 s.
    fn sweep_every(&self) -> Option<Duration> {
        let families = self.families.read().ok()?;
        let shortest = families.values().map(|d| d.family.idle).min()?;
        Some((shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)))
    }

    /// The manifest the actor `name` runs with: a listed actor's, or its family's.
    pub(crate) async fn manifest_of(&self, name: &str) -> Option<Manifest> {
        if let Some(a) = self.actors.lock().await.get(name) {
            return Some(a.manifest.clone());
        }
        self.family_of(name).map(|f| f.manifest.clone())
    }

    /// Every actor: the listed ones, then the passive members (chains of a family's names
    /// that are not active), by name.
    pub(crate) async fn list(&self) -> Vec<Listed> {
        let mut out: BTreeMap<String, Listed> = self
            .actors
            .lock()
            .await
            .iter()
            .map(|(n, a)| {
                (
                    n.clone(),
                    Listed {
                        name: n.clone(),
                        handle: Some(a.handle.clone()),
                        origin: Some(a.origin.clone()),
                    },
                )
            })
            .collect();
        if !self.families.read().map(|f| f.is_empty()).unwrap_or(true)
            && let Ok(dir) = std::fs::read_dir(self.data_dir.join("chains"))
        {
            for entry in dir.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if out.contains_key(&name) {
                    continue;
                }
                if let Some(def) = self.family_of(&name) {
                    out.insert(
                        name.clone(),
                        Listed {
                            name,
                            handle: None,
                            origin: Some(Origin::Member {
                                prefix: def.family.prefix.clone(),
                            }),
                        },
                    );
                }
            }
        }
        out.into_values().collect()
    }

    /// The families and how many of their members are active.
    pub async fn families(&self) -> Vec<FamilyStatus> {
        let defs: Vec<Arc<FamilyDef>> = self
            .families
            .read()
            .map(|f| f.values().cloned().collect())
            .unwrap_or_default();
        let actors = self.actors.lock().await;
        defs.iter()
            .map(|d| {
                let active = actors
                    .values()
                    .filter(|a| matches!(&a.origin, Origin::Member { prefix } if *prefix == d.family.prefix))
                    .count();
                FamilyStatus {
                    pattern: d.manifest.name.to_string(),
                    active,
                    idle: d.family.idle,
                    max_active: d.family.max_active,
                }
            })
            .collect()
    }

    /// What the parents' chains say of their children, made so where the host stopped before
    /// acting on it: a child whose spawn is durable in its parent's chain but that never
    /// started (no chain) is started now, and one running although its parent's last word on
    /// it is a stop is stopped.
    async fn reconcile_children(&self) -> anyhow::Result<()> {
        let parents: Vec<(String, Manifest)> = self
            .actors
            .lock()
            .await
            .iter()
            .filter(|(_, a)| a.manifest.grants("actors"))
            .map(|(n, a)| (n.clone(), a.manifest.clone()))
            .collect();
        for (parent, pm) in parents {
            let chain = FileStore::open_read_only(self.chain_dir(&parent))?;
            // Per child, the parent's last spawn (kind, init, entry) or stop (None).
            let mut last: BTreeMap<String, Option<(String, Option<Value>, ChainRef)>> =
                BTreeMap::new();
            for seq in chain.start()..chain.len() {
                let entry = chain.get(seq)?;
                // A failed input's calls took no effect.
                if matches!(entry.event(), theater_chain::Event::Failed { .. }) {
                    continue;
                }
                for c in entry.host_calls() {
                    let Some(name) = c.request.json["name"].as_str() else {
                        continue;
                    };
                    if c.result.json["ok"] != true {
                        continue;
                    }
                    if c.name == crate::children::SPAWN {
                        let kind = c.request.json["kind"].as_str().unwrap_or("").to_string();
                        let init = c.request.json.get("init").cloned();
                        let at = ChainRef {
                            chain: chain.id().clone(),
                            seq,
                            hash: entry.hash(),
                        };
                        last.insert(name.to_string(), Some((kind, init, at)));
                    } else if c.name == crate::children::STOP {
                        last.insert(name.to_string(), None);
                    }
                }
            }
            for (name, word) in last {
                let running = self.registry.lookup(&name).is_some_and(|h| {
                    matches!(
                        h.status(),
                        ActorStatus::Running | ActorStatus::Restarting { .. }
                    )
                });
                // A child whose chain exists has started before: `actors.json` (or a stop by
                // the management API) decides whether it runs. One without never started.
                let started_before =
                    FileStore::open_read_only(self.chain_dir(&name)).is_ok_and(|c| !c.is_empty());
                match word {
                    Some((kind, init, at)) if !running && !started_before => {
                        let Some(path) = crate::children::kind_manifest(&pm, &kind) else {
                            tracing::warn!(%parent, child = %name, %kind, "the kind is no longer granted");
                            continue;
                        };
                        let m = match Manifest::load(&path)
                            .map_err(anyhow::Error::from)
                            .and_then(|m| m.instance(&name, init).map_err(anyhow::Error::msg))
                        {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(%parent, child = %name, "not started: {e:#}");
                                continue;
                            }
                        };
                        tracing::info!(%parent, child = %name, "starting a child its parent spawned before the host stopped");
                        self.start_child(parent.clone(), m, at).await;
                    }
                    None if running && self.is_child_of(&name, &parent) => {
                        tracing::info!(%parent, child = %name, "stopping a child its parent stopped before the host stopped");
                        self.stop_child(&parent, &name).await;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Messages whose sending entries are durable but that their receivers never recorded
    /// (the host stopped in between): delivered now, before anything new arrives. Every
    /// chain on disk takes part: passive members and removed actors sent messages too.
    async fn redeliver(&self) -> anyhow::Result<()> {
        let mut names: Vec<String> = Vec::new();
        if let Ok(dir) = std::fs::read_dir(self.data_dir.join("chains")) {
            for entry in dir.flatten() {
                if entry.path().is_dir()
                    && let Ok(name) = entry.file_name().into_string()
                    && theater_wasm::check_name(&name).is_ok()
                {
                    names.push(name);
                }
            }
        }
        names.sort();
        let mut stores = Vec::new();
        for name in &names {
            match FileStore::open_read_only(self.chain_dir(name)) {
                Ok(s) => stores.push(s),
                Err(e) => tracing::warn!(chain = %name, "not read for redelivery: {e}"),
            }
        }
        let dyns: Vec<&dyn ChainStore> = stores.iter().map(|s| s as &dyn ChainStore).collect();
        let pending = pending_sends(&dyns)?;
        if pending.is_empty() {
            return Ok(());
        }
        let report = self.registry.redeliver(pending).await;
        tracing::info!(
            delivered = report.delivered,
            "delivered messages a previous run had left undelivered"
        );
        for (p, reason) in &report.undelivered {
            tracing::warn!(to = %p.to, "still undelivered: {reason}");
        }
        Ok(())
    }

    /// Stops the actor `name` (its acknowledged entries are durable). One spawned at run time
    /// is no longer started by the next run; a family member is passivated.
    pub async fn stop_actor(&self, name: String) -> anyhow::Result<()> {
        let (handle, origin) = self
            .actors
            .lock()
            .await
            .get(&name)
            .map(|a| (a.handle.clone(), a.origin.clone()))
            .with_context(|| format!("no actor named {name:?}"))?;
        match origin {
            Origin::Member { .. } => {
                self.passivate(&name).await;
                return Ok(());
            }
            Origin::Spawned | Origin::Child { .. } => self.drop_record(&name)?,
            Origin::Manifest => {}
            Origin::Placed => self.unlist(&name).await?,
        }
        handle.stop().await?;
        Ok(())
    }

    /// Stops the actor `name` if it runs, then starts it again from its chain. What serves
    /// it (HTTP) restarts with it: the handle it serves changes. A family member is
    /// passivated and activated again; an actor spawned at run time is kept again.
    pub async fn restart_actor(&self, name: String) -> anyhow::Result<()> {
        let (manifest, old, origin) = {
            let actors = self.actors.lock().await;
            let a = actors
                .get(&name)
                .with_context(|| format!("no actor named {name:?}"))?;
            (a.manifest.clone(), a.handle.clone(), a.origin.clone())
        };
        match &origin {
            Origin::Member { .. } => {
                self.passivate(&name).await;
                self.activate(&name).await?;
                return Ok(());
            }
            Origin::Child { parent } => {
                if let Ok(mut q) = self.quiet.lock() {
                    q.insert(name.clone());
                }
                self.keep(Record {
                    name: name.clone(),
                    manifest: manifest.path.clone(),
                    init: Some(manifest.init.clone()),
                    parent: Some(parent.clone()),
                })?;
            }
            Origin::Spawned => self.keep(Record {
                name: name.clone(),
                manifest: manifest.path.clone(),
                init: Some(manifest.init.clone()),
                parent: None,
            })?,
            Origin::Manifest | Origin::Placed => {}
        }
        let gate = self.gate(&name);
        let result = async {
            let _open = gate.lock().await;
            let _ = old.stop().await;
            self.registry.unregister(old.id());
            // The component file is read again: a new build there is adopted at this start.
            self.start_actor(manifest.clone(), None, origin, Vec::new())
                .await?;
            // What serves it (HTTP) serves the new handle.
            self.capabilities.serve_granted(&manifest).await
        }
        .await;
        self.ungate(&name, gate);
        result
    }

    /// Stops what serves the actors (letting requests in flight finish), then every actor,
    /// so that everything acknowledged is durable. Members are passivated (their snapshots
    /// make the next activation quick).
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.capabilities.stop().await;
        let all: Vec<(ActorHandle, bool)> = self
            .actors
            .lock()
            .await
            .values()
            .map(|a| (a.handle.clone(), matches!(a.origin, Origin::Member { .. })))
            .collect();
        for (h, member) in all {
            // In a cluster, a passivated actor's snapshot is replicated: the host that
            // takes it over replays only what follows.
            let _ = if member || self.cluster.is_some() {
                h.passivate().await
            } else {
                h.stop().await
            };
        }
        if let Some(audit) = &self.audit {
            // What the actors committed last, under a checkpoint.
            if let Err(e) = audit.checkpoint().await {
                tracing::warn!("audit: the last checkpoint failed: {e:#}");
            }
        }
        self.leave_cluster().await;
    }
}

/// The registry's way to bring up family members.
#[derive(Debug)]
struct HostActivator(Weak<Host>);

#[async_trait]
impl Activator for HostActivator {
    fn covers(&self, name: &str) -> Option<ChainId> {
        let host = self.0.upgrade()?;
        if host.family_of(name).is_none() && !host.is_expected(name) {
            return None;
        }
        ChainId::new(name).ok()
    }

    async fn activate(&self, name: &str) -> Result<ActorHandle, TransportError> {
        let host = self.0.upgrade().ok_or_else(|| {
            TransportError::new(TransportErrorKind::Unavailable, "the host has stopped")
        })?;
        host.activate(name).await
    }
}

/// Passivates idle members while the host lives.
async fn sweep(host: Weak<Host>) {
    loop {
        let every = match host.upgrade() {
            Some(h) if !h.stopping.load(Ordering::SeqCst) => {
                h.sweep_every().unwrap_or(Duration::from_secs(1))
            }
            _ => return,
        };
        tokio::time::sleep(every).await;
        let Some(h) = host.upgrade() else { return };
        h.passivate_idle().await;
    }
}

/// Tells `parent` what happened to its child `name`, as a recorded input.
async fn tell_parent(
    registry: &Registry,
    parent: &str,
    name: &str,
    event: ChildEvent,
    reason: Option<String>,
) {
    let input = ActorInput::Child {
        name: name.to_string(),
        event,
        reason,
    };
    let told = match registry.resolve(parent).await {
        Ok(h) => h.tell(input).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = told {
        tracing::warn!(%parent, child = %name, ?event, "parent not told: {e}");
    }
}

/// Tells the parent of `child` of its crashes, restarts, failure and stop.
async fn watch_child(
    registry: Registry,
    mut events: theater_core::Subscription,
    name: String,
    parent: String,
    stopping: Arc<AtomicBool>,
    quiet: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
) {
    while let Ok(e) = events.recv().await {
        let (event, reason, last) = match e {
            ActorEvent::Restarting { reason, .. } => (ChildEvent::Restarting, Some(reason), false),
            ActorEvent::Restarted { .. } => (ChildEvent::Restarted, None, false),
            ActorEvent::GaveUp { reason } => (ChildEvent::Failed, Some(reason), true),
            ActorEvent::Stopped => (ChildEvent::Stopped, None, true),
            _ => continue,
        };
        // A host shutting down stops every actor, and a restart stops the old instance: not
        // news for the parent's chain.
        let restarted =
            event == ChildEvent::Stopped && quiet.lock().is_ok_and(|mut q| q.remove(&name));
        if !stopping.load(Ordering::SeqCst) && !restarted {
            tell_parent(&registry, &parent, &name, event, reason).await;
        }
        if last {
            return;
        }
    }
}

fn read_records(path: &Path) -> anyhow::Result<Vec<Record>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a list of actors", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the records durably: a new file, synced, renamed over the old one.
fn write_records(path: &Path, records: &[Record]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(records)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
