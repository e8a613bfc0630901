//! [`WasmHost`]: one wasmtime engine, its linker, the compiled-component cache and the
//! epoch ticker that enforces CPU limits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use theater_chain::{ChainId, Hash};
use wasmtime::component::{Component, ComponentExportIndex, HasSelf, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::v1::ActorV1Pre;
use crate::bindings::{self, ActorSplitIndices};
use crate::host::HostState;
use crate::{Capabilities, Limits, LoadError, WasmActor};

/// How the host runs components.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WasmConfig {
    /// How often the epoch advances: the granularity of CPU limits.
    pub epoch_tick: Duration,
    /// Where compiled code is cached across runs (`None`: memory only).
    pub cache_dir: Option<PathBuf>,
    /// Pre-reserve slots for this many live instances (wasmtime's pooling allocator), or
    /// allocate on demand (`None`).
    pub pooling: Option<u32>,
    /// The largest memory limit any actor may be given (sizes the pooling slots).
    pub max_memory_bytes: usize,
    /// The capabilities whose host functions instances link (files, timers, ...): a
    /// component importing an interface no capability provides does not load.
    pub capabilities: Capabilities,
    /// Where components are found by hash (a chain's older code), and whether every
    /// component loaded is kept there too.
    pub components: Option<(crate::ComponentStore, bool)>,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            epoch_tick: Duration::from_millis(10),
            cache_dir: None,
            pooling: Some(2048),
            max_memory_bytes: 256 << 20,
            capabilities: Capabilities::new(),
            components: None,
        }
    }
}

impl WasmConfig {
    /// Caches compiled code in `dir` across runs.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Links the host functions of `capabilities` (see [`crate::capability`]).
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Finds components by hash in `store` ([`WasmHost::component`]); with `keep`, every
    /// component loaded is put there too (a host; replay tools only read).
    pub fn components(mut self, store: crate::ComponentStore, keep: bool) -> Self {
        self.components = Some((store, keep));
        self
    }

    /// Sets the pooling allocator's instance count (`None`: on-demand allocation).
    pub fn pooling(mut self, instances: Option<u32>) -> Self {
        self.pooling = instances;
        self
    }
}

/// A component checked against the `theater:actor` world and pre-linked, ready to
/// instantiate. Cheap to clone.
#[derive(Clone)]
pub struct ActorComponent {
    pub(crate) hash: Hash,
    pub(crate) pre: Pre,
}

/// A component of one of the worlds the host runs.
#[derive(Clone)]
pub(crate) enum Pre {
    /// World `actor` (0.1.1 and later): the guest keeps its state and reports changes.
    Current {
        /// The component, linked.
        pre: InstancePre<HostState>,
        /// The exports of `actor-split`, which every such component has.
        indices: ActorSplitIndices,
        /// `handle-verified`, which components built for 0.1.5 and later export.
        handle_verified: Option<ComponentExportIndex>,
    },
    /// World `actor-v1` (0.1.0): the whole state crosses on every input.
    V1(ActorV1Pre<HostState>),
}

impl ActorComponent {
    /// SHA-256 of the component's bytes.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The `theater:actor` world the component was built for: `"actor"` (0.1.1 and later, the guest
    /// keeps its state; see [`ActorComponent::handles_verified`]) or `"actor-v1"` (0.1.0, the
    /// whole state crosses on every input).
    pub fn world(&self) -> &'static str {
        match self.pre {
            Pre::Current { .. } => "actor",
            Pre::V1(_) => "actor-v1",
        }
    }
}

impl ActorComponent {
    /// Whether the component exports `handle-verified` (built for 0.1.5 and later): then an
    /// input that changes the state costs one call into the guest, otherwise two (`handle`,
    /// then `verify`).
    pub fn handles_verified(&self) -> bool {
        matches!(
            self.pre,
            Pre::Current {
                handle_verified: Some(_),
                ..
            }
        )
    }
}

impl std::fmt::Debug for ActorComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorComponent")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    linker: Linker<HostState>,
    cache: Mutex<HashMap<Hash, ActorComponent>>,
    pub(crate) config: WasmConfig,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The wasm side of a Theater host: compiles, caches and instantiates actor components.
/// Clone it freely; clones share the engine and the cache.
#[derive(Clone)]
pub struct WasmHost {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmHost")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl WasmHost {
    /// A host with `config`. Starts a thread that advances the engine's epoch.
    pub fn new(config: WasmConfig) -> Result<Self, LoadError> {
        let engine_err = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        let mut c = Config::new();
        c.wasm_component_model(true)
            // Determinism: the same inputs give the same bits on every machine. (Wasm
            // threads are off too: wasmtime's `threads` feature is not compiled in.)
            .cranelift_nan_canonicalization(true)
            .epoch_interruption(true);
        if let Some(dir) = &config.cache_dir {
            // wasmtime wants an absolute directory; a relative one is taken from the
            // working directory, as any path a user gives.
            let dir = std::path::absolute(dir).map_err(|e| {
                LoadError::Engine(format!("the cache directory {}: {e}", dir.display()))
            })?;
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            c.cache(Some(wasmtime::Cache::new(cache).map_err(engine_err)?));
        }
        if let Some(n) = config.pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(n)
                .total_core_instances(n.saturating_mul(4))
                .total_memories(n.saturating_mul(2))
                .total_tables(n.saturating_mul(4))
                // Each live store keeps its async stack between calls.
                .total_stacks(n)
                .max_memory_size(config.max_memory_bytes);
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&c).map_err(engine_err)?;
        let mut linker = Linker::new(&engine);
        crate::bindings::theater::actor::host::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(engine_err)?;
        config
            .capabilities
            .add_to_linker(&mut linker)
            .map_err(engine_err)?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), config.epoch_tick, Arc::clone(&stop_ticker));
        Ok(WasmHost {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache: Mutex::new(HashMap::new()),
                config,
                stop_ticker,
            }),
        })
    }

    /// Compiles (or finds in the cache) the component in `bytes`; `origin` names it in errors.
    pub fn load(&self, bytes: &[u8], origin: &str) -> Result<ActorComponent, LoadError> {
        let hash = Hash::digest(bytes);
        if let Some(found) = self.cached(&hash) {
            return Ok(found);
        }
        let origin = origin.to_string();
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(LoadError::NotWasm { origin });
        }
        // Core modules are version 1, layer 0; components carry layer 1.
        if bytes[4..8] == [1, 0, 0, 0] {
            return Err(LoadError::CoreModule { origin });
        }
        let component =
            Component::new(&self.inner.engine, bytes).map_err(|e| LoadError::Invalid {
                origin: origin.clone(),
                message: format!("{e:#}"),
            })?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            origin: origin.clone(),
            message: format!("{e:#}"),
        };
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = match ActorSplitIndices::new(&instance_pre) {
            Ok(indices) => Pre::Current {
                handle_verified: component.get_export_index(None, bindings::HANDLE_VERIFIED),
                indices,
                pre: instance_pre,
            },
            Err(current) => match ActorV1Pre::new(instance_pre) {
                Ok(pre) => Pre::V1(pre),
                // Name what the current world lacks: that is what an author targets.
                Err(_) => return Err(wrong_world(current)),
            },
        };
        let loaded = ActorComponent { hash, pre };
        if let Some((store, true)) = &self.inner.config.components {
            store.put(bytes).map_err(|e| {
                LoadError::Engine(format!(
                    "cannot keep {origin} in {}: {e}",
                    store.dir().display()
                ))
            })?;
        }
        if let Ok(mut cache) = self.inner.cache.lock() {
            cache.insert(hash, loaded.clone());
        }
        Ok(loaded)
    }

    /// The component whose bytes hash to `hash`: loaded already, or read from the store
    /// ([`WasmConfig::components`]).
    pub fn component(&self, hash: &Hash) -> Result<ActorComponent, String> {
        if let Some(found) = self.cached(hash) {
            return Ok(found);
        }
        let Some((store, _)) = &self.inner.config.components else {
            return Err(format!(
                "component {hash} is not loaded, and this host keeps no store of components"
            ));
        };
        let bytes = store.get(hash)?;
        self.load(&bytes, &store.path(hash).display().to_string())
            .map_err(|e| e.to_string())
    }

    fn cached(&self, hash: &Hash) -> Option<ActorComponent> {
        self.inner.cache.lock().ok()?.get(hash).cloned()
    }

    /// Reads and loads the component at `path`.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<ActorComponent, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.load(&bytes, &path.display().to_string())
    }

    /// A new actor of `component`, initialised with `init` and bounded by `limits`.
    pub fn actor(
        &self,
        component: &ActorComponent,
        id: &ChainId,
        init: Value,
        limits: Limits,
    ) -> WasmActor {
        WasmActor::new(self.clone(), component.clone(), id, init, limits)
    }

    /// The underlying wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}

fn spawn_ticker(engine: Engine, tick: Duration, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("theater-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        });
    if let Err(e) = spawned {
        // Without the ticker CPU limits cannot fire; say so loudly rather than hang later.
        tracing::error!("cannot start the epoch thread, CPU limits are off: {e}");
    }
}
