//! # theater-wasm
//!
//! Runs Theater actors that are WebAssembly components of the `theater:actor` world
//! (`wit/actor.wit`) on wasmtime.
//!
//! - [`WasmHost`] owns the engine: deterministic settings (NaN canonicalisation, no
//!   threads), a cache of compiled components keyed by the SHA-256 of their bytes (in
//!   memory, and on disk with [`WasmConfig::cache_dir`]), pre-linked instances, and
//!   wasmtime's pooling allocator.
//! - [`WasmActor`] implements [`theater_core::Actor`]: state crosses the boundary as
//!   canonical JSON bytes, payload bodies as raw bytes; clock and randomness imports go
//!   through [`theater_core::HostCalls`], so they are recorded and replayed.
//! - [`Limits`] bound memory and CPU: a looping actor is stopped with a timeout error, a
//!   memory bomb with a limit error, and a trap is a recorded failure; in every case the
//!   state stays as it was and the next input gets a fresh instance.
//! - [`Manifest`] reads an actor's TOML manifest; errors name the file, field and problem.
//!
//! ## Example
//!
//! ```no_run
//! use theater_chain::MemoryStore;
//! use theater_core::{ActorConfig, ActorInput, spawn};
//! use theater_wasm::{Manifest, WasmConfig, WasmHost};
//!
//! # async fn run() -> anyhow::Result<()> {
//! let manifest = Manifest::load("examples/counter/counter.toml")?;
//! let host = WasmHost::new(WasmConfig::default())?;
//! let component = host.load_file(&manifest.component)?;
//! let factory = {
//!     let (host, m) = (host.clone(), manifest.clone());
//!     move || host.actor(&component, &m.name, m.init.clone(), m.limits)
//! };
//! let chain = Box::new(MemoryStore::new(manifest.name.clone()));
//! let counter = spawn(factory, chain, ActorConfig::default()).await?;
//! let out = counter.call(ActorInput::request(serde_json::json!({"add": 1}))).await?;
//! println!("{:?}", out.output);
//! # Ok(())
//! # }
//! ```

mod actor;
pub mod bindings;
pub mod capability;
mod components;
mod engine;
mod error;
mod host;
mod manifest;
pub mod secrets;

pub use actor::WasmActor;
pub use capability::{Capabilities, Capability, FieldError, Grant, Grants, Setup};
pub use components::{COMPONENTS_DIR, ComponentStore};
pub use engine::{ActorComponent, WasmConfig, WasmHost};
pub use error::{LoadError, ManifestError};
pub use host::HostState;
pub use manifest::scrub as scrub_error;
pub use manifest::{Family, Limits, MAX_NAME_LEN, Manifest, check_name};
pub use secrets::{Secret, SecretError, Secrets};
