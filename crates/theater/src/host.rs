//! The running host behind `theater run`: actors from manifests, their chains in a data
//! directory, their interfaces (messages, files, HTTP), and what the management API acts on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use theater_chain::{ChainStore, Durability, FileStore};
use theater_core::{ActorConfig, ActorHandle, Shutdown, spawn, timers};
use theater_http::{HttpConfig, HttpServer};
use theater_msg::{Registry, pending_sends};
use theater_wasm::{ActorComponent, Manifest, WasmConfig, WasmHost};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// One actor of the host.
pub(crate) struct Actor {
    pub(crate) manifest: Manifest,
    component: ActorComponent,
    pub(crate) handle: ActorHandle,
}

/// One HTTP server (an address), serving one or more actors by prefix.
struct Server {
    addr: std::net::SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), theater_core::InterfaceError>>,
}

/// The actors of `theater run` and everything around them.
pub(crate) struct Host {
    wasm: WasmHost,
    pub(crate) registry: Registry,
    pub(crate) data_dir: PathBuf,
    pub(crate) actors: Mutex<BTreeMap<String, Actor>>,
    servers: Mutex<Vec<Server>>,
}

impl Host {
    /// Loads the manifests, opens (or creates) their chains under `data_dir`, starts the
    /// actors, delivers messages a previous run left undelivered, and starts their HTTP
    /// interfaces.
    pub(crate) async fn start(manifests: &[PathBuf], data_dir: &Path) -> anyhow::Result<Arc<Host>> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        // Everything below derives paths from it; absolute, they mean the same wherever the
        // process or a library it uses resolves them.
        let data_dir = &std::fs::canonicalize(data_dir)
            .with_context(|| format!("cannot resolve the data directory {}", data_dir.display()))?;
        let wasm = WasmHost::new(WasmConfig::default().cache_dir(data_dir.join("cache")))?;
        let host = Arc::new(Host {
            wasm,
            registry: Registry::new(),
            data_dir: data_dir.to_path_buf(),
            actors: Mutex::new(BTreeMap::new()),
            servers: Mutex::new(Vec::new()),
        });
        let mut loaded = Vec::new();
        for path in manifests {
            let m = Manifest::load(path)?;
            if loaded.iter().any(|o: &Manifest| o.name == m.name) {
                bail!("two manifests name the actor {:?}", m.name.as_str());
            }
            loaded.push(m);
        }
        for m in loaded {
            host.spawn_actor(m).await?;
        }
        host.redeliver().await?;
        host.start_http().await?;
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

    /// One SQLite file per actor under the data directory, unless the manifest names one.
    fn database_for(&self, m: &Manifest) -> anyhow::Result<Option<Arc<theater_db::Sqlite>>> {
        let Some(section) = m.interfaces.get("db") else {
            return Ok(None);
        };
        let file = match section.get("file").and_then(|f| f.as_str()) {
            Some(f) => m.path.parent().unwrap_or(Path::new(".")).join(f),
            None => self.data_dir.join("db").join(format!("{}.sqlite", m.name)),
        };
        // A request may take no longer than the input it is part of.
        let db = theater_db::Sqlite::open(&file)
            .map_err(|e| anyhow::anyhow!("the database of {:?}: {e}", m.name.as_str()))?
            .with_time_limit(m.limits.cpu);
        Ok(Some(Arc::new(db)))
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
        let (timers, scheduler) = match m.grants("timers") {
            true => {
                let (t, s) = timers::timers(Arc::new(timers::SystemClock));
                (Some(t), Some(s))
            }
            false => (None, None),
        };
        // What the chain left scheduled (timers set before a restart of the host).
        let pending = match &scheduler {
            Some(_) => timers::pending_timers(&*chain)?,
            None => Vec::new(),
        };
        let database = self.database_for(m)?;
        if let Some(grant) = m.files.as_ref().filter(|g| g.writable) {
            std::fs::create_dir_all(&grant.dir).with_context(|| {
                format!("creating the directory granted to {:?}", m.name.as_str())
            })?;
        }
        let factory = {
            let (wasm, component, m) = (self.wasm.clone(), component.clone(), m.clone());
            let messenger = m
                .grants("msg")
                .then(|| Arc::new(self.registry.messenger(m.name.clone())));
            move || {
                let mut actor = wasm.actor(&component, &m.name, m.init.clone(), m.limits);
                if let Some(messenger) = &messenger {
                    actor = actor.with_outbox(messenger.clone());
                }
                if let Some(grant) = &m.files {
                    actor = actor.with_file_grant(grant.clone());
                }
                if let Some(t) = &timers {
                    actor = actor.with_timers(t.clone());
                }
                if let Some(db) = &database {
                    actor =
                        actor.with_database(Arc::clone(db) as Arc<dyn theater_core::db::Database>);
                }
                actor
            }
        };
        let handle = spawn(factory, chain, ActorConfig::default()).await?;
        if let Some(scheduler) = scheduler {
            if !pending.is_empty() {
                tracing::info!(actor = %m.name, timers = pending.len(), "timers resumed from the chain");
            }
            scheduler.run(handle.clone(), pending);
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

    /// One server per address; actors sharing an address are told apart by prefix.
    async fn start_http(&self) -> anyhow::Result<()> {
        let actors = self.actors.lock().await;
        let mut by_addr: BTreeMap<std::net::SocketAddr, (HttpConfig, Vec<&Actor>)> =
            BTreeMap::new();
        for actor in actors.values() {
            let Some(section) = actor.manifest.interfaces.get("http") else {
                continue;
            };
            let config = HttpConfig::from_toml(section)
                .with_context(|| format!("in {}", actor.manifest.path.display()))?;
            by_addr
                .entry(config.addr)
                .or_insert_with(|| (config.clone(), Vec::new()))
                .1
                .push(actor);
        }
        let mut servers = self.servers.lock().await;
        for (asked, (config, group)) in by_addr {
            let mut server = HttpServer::bind(config).await?;
            // The bound address: the port a manifest's port 0 became.
            let addr = server.local_addr().unwrap_or(asked);
            for actor in group {
                let section = &actor.manifest.interfaces["http"];
                let prefix = HttpConfig::from_toml(section)?.prefix;
                server = match &actor.manifest.files {
                    Some(grant) => {
                        server.route_with_files(&prefix, actor.handle.clone(), &grant.dir)?
                    }
                    None => server.route(&prefix, actor.handle.clone())?,
                };
                println!(
                    "{} serves HTTP at http://{addr}{}",
                    actor.manifest.name,
                    if prefix == "/" { "" } else { &prefix }
                );
            }
            let shutdown = Shutdown::new();
            let task = tokio::spawn(server.serve(shutdown.clone()));
            servers.push(Server {
                addr,
                shutdown,
                task,
            });
        }
        Ok(())
    }

    async fn stop_http(&self) {
        let servers: Vec<Server> = std::mem::take(&mut *self.servers.lock().await);
        for s in servers {
            s.shutdown.cancel();
            match s.task.await {
                Ok(Err(e)) => tracing::warn!(addr = %s.addr, "HTTP server: {e}"),
                Err(e) => tracing::warn!(addr = %s.addr, "HTTP server task: {e}"),
                Ok(Ok(())) => {}
            }
        }
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

    /// Stops the actor `name` if it runs, then starts it again from its chain. Its HTTP
    /// server restarts with it (the handle it serves changes).
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
        if manifest.grants("http") {
            self.stop_http().await;
            self.start_http().await?;
        }
        Ok(())
    }

    /// Stops the HTTP servers (letting requests in flight finish), then every actor, so that
    /// everything acknowledged is durable.
    pub(crate) async fn shutdown(&self) {
        self.stop_http().await;
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
