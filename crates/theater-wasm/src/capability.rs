//! The capability contract: how an interface (files, timers, a database, messages, HTTP...)
//! plugs into the host, so that every one is a crate of the same shape and the host only
//! loops over a list.
//!
//! A [`Capability`] has a name (its `[interfaces.NAME]` manifest section), a typed config,
//! host functions it adds to the linker, and hooks with defaults. For each actor whose
//! manifest has its section it makes a [`Grant`]: what its host functions hold for that actor
//! (found with [`HostState::grant`]), with hooks of its own (re-apply writes after a crash,
//! what a snapshot carries, start serving once the actor runs). [`Capabilities`] is the list a
//! host runs with: it checks manifests, makes grants, and links every capability's imports.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;
use theater_chain::{BlobStore, ChainError, ChainStore, Entry};
use theater_core::ActorHandle;
use wasmtime::component::Linker;

use crate::{HostState, Manifest, ManifestError};

/// What one capability holds for one actor, and what it does beyond its host functions.
/// Every hook has a default that does nothing.
#[async_trait]
pub trait Grant: Any + Send + Sync + std::fmt::Debug {
    /// Applies again the writes to the world that `entry` (the chain's last) recorded, when
    /// the actor resumes on a chain whose last writes may not have been applied (the host
    /// stopped between making the entry durable and applying them). Must be idempotent.
    async fn reapply(&self, _entry: &Entry, _blobs: &dyn BlobStore) -> Result<(), String> {
        Ok(())
    }

    /// What a snapshot at the head of `chain` carries for this capability (under its name),
    /// so that pruning the entries before it loses nothing.
    fn snapshot(&self, _chain: &dyn ChainStore) -> Result<Option<Value>, ChainError> {
        Ok(None)
    }

    /// Starts serving the actor once it runs (an inbound capability: timers fire into it).
    fn start(&self, _actor: &ActorHandle) {}

    /// `text` (a line the guest logs) with every secret value this grant handed the guest
    /// replaced, or `None` if it holds none of them.
    fn redact(&self, _text: &str) -> Option<String> {
        None
    }
}

/// The grants of one actor, one per capability (by name), shared by its instances. Cheap to
/// clone. Host functions find theirs by type ([`Grants::get`]).
#[derive(Clone, Default)]
pub struct Grants {
    by_name: Arc<BTreeMap<&'static str, Arc<dyn Grant>>>,
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Grants {
    /// Adds (or replaces) the grant of capability `name`.
    pub fn insert<G: Grant>(&mut self, name: &'static str, grant: Arc<G>) {
        self.insert_dyn(name, grant);
    }

    fn insert_dyn(&mut self, name: &'static str, grant: Arc<dyn Grant>) {
        Arc::make_mut(&mut self.by_name).insert(name, grant);
    }

    /// The grant of type `G`, if the actor has one.
    pub fn get<G: Grant>(&self) -> Option<Arc<G>> {
        self.by_name.values().find_map(|grant| {
            let any: Arc<dyn Any + Send + Sync> = grant.clone();
            any.downcast().ok()
        })
    }

    /// Every grant, with its capability's name, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Arc<dyn Grant>)> {
        self.by_name.iter().map(|(n, g)| (*n, g))
    }

    /// `text` with every secret value any grant handed the guest replaced.
    pub fn redact(&self, text: String) -> String {
        self.by_name
            .values()
            .fold(text, |t, g| g.redact(&t).unwrap_or(t))
    }

    /// Whether the actor has no grant.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// What a capability is told of the actor it grants to.
#[derive(Clone, Copy)]
pub struct Setup<'a> {
    /// The actor's manifest (its name, limits, and where relative paths start).
    pub manifest: &'a Manifest,
    /// The host's data directory (absolute).
    pub data_dir: &'a Path,
    /// The actor's chain, as it is before the actor starts.
    pub chain: &'a dyn ChainStore,
    /// The secrets the actor may name: the host's and its manifest's, with the host's key.
    pub secrets: &'a crate::Secrets,
}

impl std::fmt::Debug for Setup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("manifest", &self.manifest.path)
            .field("data_dir", &self.data_dir)
            .field("chain", &self.chain.id())
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// A capability: a manifest section, host functions and hooks. See the module docs.
#[async_trait]
pub trait Capability: Send + Sync + 'static {
    /// Its manifest section: `[interfaces.NAME]`.
    const NAME: &'static str;
    /// What the section holds (checked, unknown fields refused).
    type Config: DeserializeOwned + Send + Sync;

    /// Adds the capability's host functions to `linker`. Every instance links them; for an
    /// actor without a grant they answer an error (recorded, so its chain replays).
    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()>;

    /// Checks a manifest's section beyond its shape (a directory exists...): the error names
    /// the problem, and the field if it is about one.
    fn check(&self, _config: &Self::Config, _manifest: &Manifest) -> Result<(), FieldError> {
        Ok(())
    }

    /// The grant of a live actor whose manifest has the section.
    fn grant(&self, config: &Self::Config, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>>;

    /// What an actor whose manifest lacks the section holds instead, if anything: its hooks
    /// still run (the files capability refuses to resume on an entry whose writes may be
    /// lost because the directory is no longer granted). Its host functions see no grant.
    fn ungranted(&self) -> Option<Arc<dyn Grant>> {
        None
    }

    /// The grant of an actor replayed without the outside world, where one is needed at all:
    /// by default none (the host functions answer from the recording).
    fn replay_grant(&self, _config: &Self::Config, _manifest: &Manifest) -> Option<Arc<dyn Grant>> {
        None
    }

    /// The recorded calls whose payloads may be stored as blobs beside the entry (checked by
    /// `theater chain verify`).
    fn blob_calls(&self) -> &'static [&'static str] {
        &[]
    }

    /// The secrets the section names (a credential's, a password's...): each must be
    /// declared and readable when the actor starts, and `theater secret list` shows who uses
    /// them. Default: none.
    fn secrets_named(&self, _config: &Self::Config) -> Vec<String> {
        Vec::new()
    }

    /// Starts what serves every actor granted it, once all have started (an HTTP server per
    /// address...); called again after an actor restarts. The default serves nothing.
    async fn serve(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Stops what [`Capability::serve`] started, letting work in flight finish.
    async fn stop(&self) {}
}

/// A problem with a manifest section, and the field it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field (within the section), if the problem is about one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn at(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }
}

/// A capability as the host holds it: its config read from TOML.
#[async_trait]
trait Dyn: Send + Sync {
    fn name(&self) -> &'static str;
    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()>;
    fn check(&self, section: &toml::Value, manifest: &Manifest) -> Result<(), FieldError>;
    fn grant(&self, section: &toml::Value, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>>;
    fn ungranted(&self) -> Option<Arc<dyn Grant>>;
    fn replay_grant(&self, section: &toml::Value, manifest: &Manifest) -> Option<Arc<dyn Grant>>;
    fn blob_calls(&self) -> &'static [&'static str];
    fn secrets_named(&self, section: &toml::Value) -> Vec<String>;
    async fn serve(&self) -> anyhow::Result<()>;
    async fn stop(&self);
}

fn config<C: DeserializeOwned>(section: &toml::Value) -> Result<C, FieldError> {
    // Through text, so that an error has a position and so the field it is about. (A bare
    // `[interfaces.x]` is an empty table.)
    let text = toml::to_string(section).map_err(|e| FieldError {
        field: None,
        message: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        let message = crate::manifest::scrub(e.message());
        let field = crate::manifest::field_of(&e, &text);
        FieldError { field, message }
    })
}

#[async_trait]
impl<C: Capability> Dyn for C {
    fn name(&self) -> &'static str {
        C::NAME
    }
    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        C::add_to_linker(linker)
    }
    fn check(&self, section: &toml::Value, manifest: &Manifest) -> Result<(), FieldError> {
        Capability::check(self, &config::<C::Config>(section)?, manifest)
    }
    fn grant(&self, section: &toml::Value, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>> {
        let config = config::<C::Config>(section).map_err(|e| anyhow::anyhow!(e.message))?;
        Capability::grant(self, &config, setup)
    }
    fn ungranted(&self) -> Option<Arc<dyn Grant>> {
        Capability::ungranted(self)
    }
    fn replay_grant(&self, section: &toml::Value, manifest: &Manifest) -> Option<Arc<dyn Grant>> {
        Capability::replay_grant(self, &config::<C::Config>(section).ok()?, manifest)
    }
    fn blob_calls(&self) -> &'static [&'static str] {
        Capability::blob_calls(self)
    }
    fn secrets_named(&self, section: &toml::Value) -> Vec<String> {
        config::<C::Config>(section)
            .map(|c| Capability::secrets_named(self, &c))
            .unwrap_or_default()
    }
    async fn serve(&self) -> anyhow::Result<()> {
        Capability::serve(self).await
    }
    async fn stop(&self) {
        Capability::stop(self).await
    }
}

/// The capabilities a host runs with: the one place that lists them.
#[derive(Clone, Default)]
pub struct Capabilities {
    list: Vec<Arc<dyn Dyn>>,
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Capabilities {
    /// No capabilities: actors get only the clock, randomness and logging.
    pub fn new() -> Self {
        Capabilities::default()
    }

    /// Adds `capability` (a later one of the same name replaces it).
    pub fn with<C: Capability>(mut self, capability: C) -> Self {
        self.list.retain(|c| c.name() != C::NAME);
        self.list.push(Arc::new(capability));
        self
    }

    /// Their names, in the order added.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.list.iter().map(|c| c.name())
    }

    pub(crate) fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        self.list.iter().try_for_each(|c| c.add_to_linker(linker))
    }

    /// Checks every `[interfaces.X]` section of `manifest`: X must be a capability of this
    /// list, and its section must be valid. The error names the file, the field and the
    /// problem.
    pub fn check(&self, manifest: &Manifest) -> Result<(), ManifestError> {
        for (name, section) in &manifest.interfaces {
            let Some(c) = self.list.iter().find(|c| c.name() == name) else {
                let known: Vec<_> = self.names().collect();
                return Err(ManifestError {
                    path: manifest.path.clone(),
                    field: Some(format!("interfaces.{name}")),
                    message: format!(
                        "no interface is called {name:?} (this host has: {})",
                        known.join(", ")
                    ),
                });
            };
            c.check(section, manifest).map_err(|e| ManifestError {
                path: manifest.path.clone(),
                field: Some(match e.field {
                    Some(f) => format!("interfaces.{name}.{f}"),
                    None => format!("interfaces.{name}"),
                }),
                message: e.message,
            })?;
        }
        Ok(())
    }

    /// The secrets `manifest`'s sections name, each with the capability that names it.
    pub fn secrets_named(&self, manifest: &Manifest) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for c in &self.list {
            if let Some(section) = manifest.interfaces.get(c.name()) {
                for name in c.secrets_named(section) {
                    if !out.iter().any(|(k, n)| *k == c.name() && *n == name) {
                        out.push((c.name(), name));
                    }
                }
            }
        }
        out
    }

    /// The grants of a live actor: one per section of its manifest (and what capabilities
    /// not granted keep: see [`Capability::ungranted`]). Every secret a section names must
    /// be declared and readable first.
    pub fn grants(&self, setup: &Setup<'_>) -> anyhow::Result<Grants> {
        for (capability, name) in self.secrets_named(setup.manifest) {
            setup.secrets.get(&name).map_err(|e| {
                anyhow::anyhow!(
                    "{:?}: [interfaces.{capability}] uses {e}",
                    setup.manifest.name.as_str()
                )
            })?;
        }
        let mut grants = Grants::default();
        for c in &self.list {
            let Some(section) = setup.manifest.interfaces.get(c.name()) else {
                if let Some(ungranted) = c.ungranted() {
                    grants.insert_dyn(c.name(), ungranted);
                }
                continue;
            };
            let grant = c.grant(section, setup).map_err(|e| {
                e.context(format!(
                    "granting [interfaces.{}] to {:?}",
                    c.name(),
                    setup.manifest.name.as_str()
                ))
            })?;
            grants.insert_dyn(c.name(), grant);
        }
        Ok(grants)
    }

    /// The grants of an actor replayed without the outside world.
    pub fn replay_grants(&self, manifest: &Manifest) -> Grants {
        let mut grants = Grants::default();
        for c in &self.list {
            if let Some(section) = manifest.interfaces.get(c.name())
                && let Some(grant) = c.replay_grant(section, manifest)
            {
                grants.insert_dyn(c.name(), grant);
            }
        }
        grants
    }

    /// Every recorded call whose payloads may be blobs.
    pub fn blob_calls(&self) -> Vec<&'static str> {
        self.list
            .iter()
            .flat_map(|c| c.blob_calls())
            .copied()
            .collect()
    }

    /// Starts what serves the actors (see [`Capability::serve`]).
    pub async fn serve(&self) -> anyhow::Result<()> {
        for c in &self.list {
            c.serve().await?;
        }
        Ok(())
    }

    /// Starts again what serves the actor of `manifest` (after a restart: its handle
    /// changed), for the capabilities its manifest grants.
    pub async fn serve_granted(&self, manifest: &Manifest) -> anyhow::Result<()> {
        for c in &self.list {
            if manifest.interfaces.contains_key(c.name()) {
                c.serve().await?;
            }
        }
        Ok(())
    }

    /// Stops what [`Capabilities::serve`] started.
    pub async fn stop(&self) {
        for c in &self.list {
            c.stop().await;
        }
    }
}

/// What each grant of `grants` carries in a snapshot at the head of `chain`, by capability.
pub(crate) fn snapshot_host(grants: &Grants, chain: &dyn ChainStore) -> Result<Value, ChainError> {
    let mut host = BTreeMap::new();
    for (name, grant) in grants.iter() {
        if let Some(part) = grant.snapshot(chain)? {
            host.insert(name.to_string(), part);
        }
    }
    Ok(Value::Object(host.into_iter().collect()))
}

/// Declares, in a capability crate's `host.rs`, the view of [`HostState`] its host functions
/// implement their WIT interface's generated `Host` trait on: `View<'a>` (wrapping
/// `&'a mut HostState`), `Data` (what the generated `add_to_linker` takes) and `view` (the
/// getter to give it). The crate must depend on `wasmtime`.
#[macro_export]
macro_rules! host_view {
    () => {
        /// What this capability's imports see of an instance's store.
        pub(crate) struct View<'a>(pub(crate) &'a mut $crate::HostState);

        /// Selects [`View`] for the linker.
        pub(crate) struct Data;

        impl ::wasmtime::component::HasData for Data {
            type Data<'a> = View<'a>;
        }

        /// The view of `state`.
        pub(crate) fn view(state: &mut $crate::HostState) -> View<'_> {
            View(state)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Held;
    impl Grant for Held {}

    #[derive(Debug)]
    struct Instead;
    impl Grant for Instead {}

    #[test]
    fn a_grant_replaces_the_one_of_the_same_capability_and_is_found_by_type() {
        let mut grants = Grants::default();
        grants.insert("files", Arc::new(Instead));
        assert!(grants.get::<Instead>().is_some());
        // A later grant of the same capability replaces what it held, whatever its type.
        grants.insert("files", Arc::new(Held));
        assert!(grants.get::<Instead>().is_none());
        assert!(grants.get::<Held>().is_some());
        grants.insert("timers", Arc::new(Instead));
        let names: Vec<_> = grants.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["files", "timers"]);
    }
}
