//! The running host behind `theater run`: actors from manifests, their chains in a data
//! directory, the capabilities their manifests grant, and what the management API acts on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use theater_chain::{ChainStore, Durability, FileStore};
use theater_core::{ActorConfig, ActorHandle, spawn};
use theater_msg::{Registry, pending_sends};
use theater_wasm::{ActorComponent, Capabilities, Manifest, Setup, WasmConfig, WasmHost};
use tokio::sync::Mutex;

/// One actor of the host.
pub(crate) struct Actor {
    pub(crate) manifest: Manifest,
    component: ActorComponent,
    pub(crate) handle: ActorHandle,
}

/// The actors of `theater run` and everything around them.
pub(crate) struct Host {
    wasm: WasmHost,
    capabilities: Capabilities,
    pub(crate) registry: Registry,
    pub(crate) data_dir: PathBuf,
    pub(crate) actors: Mutex<BTreeMap<String, Actor>>,
}

impl Host {
    /// Loads and checks the manifests, opens (or creates) their chains under `data_dir`,
    /// starts the actors with what their manifests grant, delivers messages a previous run
    /// left undelivered, and starts serving them (HTTP).
    pub(crate) async fn start(manifests: &[PathBuf], data_dir: &Path) -> anyhow::Result<Arc<Host>> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        // Everything below derives paths from it; absolute, they mean the same wherever the
        // process or a library it uses resolves them.
        let data_dir = &std::fs::canonicalize(data_dir)
            .with_context(|| format!("cannot resolve the data directory {}", data_dir.display()))?;
        let registry = Registry::new();
        let capabilities = crate::capabilities::all(&registry);
        let wasm = WasmHost::new(
            WasmConfig::default()
                .cache_dir(data_dir.join("cache"))
                .capabilities(capabilities.clone()),
        )?;
        let host = Arc::new(Host {
            wasm,
            capabilities,
            registry,
            data_dir: data_dir.to_path_buf(),
            actors: Mutex::new(BTreeMap::new()),
        });
        let mut loaded = Vec::new();
        for path in manifests {
            let m = Manifest::load(path)?;
            host.capabilities.check(&m)?;
            if loaded.iter().any(|o: &Manifest| o.name == m.name) {
                bail!("two manifests name the actor {:?}", m.name.as_str());
            }
            loaded.push(m);
        }
        for m in loaded {
            host.spawn_actor(m).await?;
        }
        host.redeliver().await?;
        host.capabilities.serve().await?;
        Ok(host)
    }

    fn chain_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join("chains").join(name)
    }

    async fn spawn_actor(&self, manifest: Manifest) -> anyhow::Result<()> {
        let component = self
            .wasm
            .load_file(&manifest.component)
            .with_context(|| format!("loading the actor {:?}", manifest.name.as_str()))?;
        let handle = self.spawn_handle(&manifest, &component).await?;
        self.registry.register(handle.clone())?;
        tracing::info!(actor = %manifest.name, "started");
        self.actors.lock().await.insert(
            manifest.name.to_string(),
            Actor {
                manifest,
                component,
                handle,
            },
        );
        Ok(())
    }

    async fn spawn_handle(
        &self,
        m: &Manifest,
        component: &ActorComponent,
    ) -> anyhow::Result<ActorHandle> {
        let chain: Box<dyn ChainStore> = Box::new(
            FileStore::open_or_create(
                self.chain_dir(m.name.as_str()),
                m.name.clone(),
                Durability::Group { max_batch: 64 },
            )
            .with_context(|| format!("opening the chain of {:?}", m.name.as_str()))?,
        );
        let grants = self.capabilities.grants(&Setup {
            manifest: m,
            data_dir: &self.data_dir,
            chain: &*chain,
        })?;
        let factory = {
            let (wasm, component, m) = (self.wasm.clone(), component.clone(), m.clone());
            let grants = grants.clone();
            move || {
                wasm.actor(&component, &m.name, m.init.clone(), m.limits)
                    .with_grants(grants.clone())
            }
        };
        let handle = spawn(factory, chain, ActorConfig::default()).await?;
        for (_, grant) in grants.iter() {
            grant.start(&handle);
        }
        Ok(handle)
    }

    /// Messages whose sending entries are durable but that their receivers never recorded
    /// (the host stopped in between): delivered now, before anything new arrives.
    async fn redeliver(&self) -> anyhow::Result<()> {
        let names: Vec<String> = self.actors.lock().await.keys().cloned().collect();
        let mut stores = Vec::new();
        for name in &names {
            stores.push(FileStore::open_read_only(self.chain_dir(name))?);
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

    /// Stops the actor `name` (its acknowledged entries are durable).
    pub(crate) async fn stop_actor(&self, name: String) -> anyhow::Result<()> {
        let handle = self
            .actors
            .lock()
            .await
            .get(&name)
            .map(|a| a.handle.clone())
            .with_context(|| format!("no actor named {name:?}"))?;
        handle.stop().await?;
        Ok(())
    }

    /// Stops the actor `name` if it runs, then starts it again from its chain. What serves
    /// it (HTTP) restarts with it: the handle it serves changes.
    pub(crate) async fn restart_actor(&self, name: String) -> anyhow::Result<()> {
        let (manifest, component, old) = {
            let actors = self.actors.lock().await;
            let a = actors
                .get(&name)
                .with_context(|| format!("no actor named {name:?}"))?;
            (a.manifest.clone(), a.component.clone(), a.handle.clone())
        };
        let _ = old.stop().await;
        self.registry.unregister(old.id());
        let handle = self.spawn_handle(&manifest, &component).await?;
        self.registry.register(handle.clone())?;
        if let Some(a) = self.actors.lock().await.get_mut(&name) {
            a.handle = handle;
        }
        // What serves it (HTTP) serves the new handle.
        self.capabilities.serve_granted(&manifest).await?;
        Ok(())
    }

    /// Stops what serves the actors (letting requests in flight finish), then every actor,
    /// so that everything acknowledged is durable.
    pub(crate) async fn shutdown(&self) {
        self.capabilities.stop().await;
        let handles: Vec<ActorHandle> = self
            .actors
            .lock()
            .await
            .values()
            .map(|a| a.handle.clone())
            .collect();
        for h in handles {
            let _ = h.stop().await;
        }
    }
}
