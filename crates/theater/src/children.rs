//! The `actors` capability: an actor spawns and stops child actors.
//!
//! ```toml
//! [interfaces.actors.children]        # the kinds of children it may spawn
//! worker = "../worker/worker.toml"    # kind = a manifest, relative to this one
//! ```
//!
//! `spawn(kind, name, init)` and `stop(name)` are recorded host calls
//! ([`SPAWN`], [`STOP`]); the spawn or stop happens once the input is durable, and the
//! child's genesis entry refers to the parent's spawning entry. A child's crashes, restarts,
//! failure and stop reach the parent as recorded inputs (`ActorInput::Child`). A child is
//! not restarted by the host: its parent, told it failed, spawns it again, which resumes it
//! from its chain. The host lives in the theater binary: spawning needs the host's actor
//! table, which the capability crates do not see.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use theater_chain::{ChainId, ChainRef};
use theater_wasm::bindings::theater::actor::actors::Host as WitHost;
use theater_wasm::{Capability, FieldError, Grant, HostState, Manifest, Setup};
use wasmtime::component::Linker;

use crate::host::Host;

/// Name of a recorded spawn: request [`SpawnRequest`], answer [`ChildAnswer`] (the child's
/// genesis refers to the entry: `verify_links` checks the link).
pub(crate) const SPAWN: &str = theater_msg::SPAWN_CHILD;
/// The manifest of the kind of child `kind` that `parent`'s manifest grants, if it does.
pub(crate) fn kind_manifest(parent: &Manifest, kind: &str) -> Option<PathBuf> {
    let path = parent
        .interfaces
        .get(Actors::NAME)?
        .get("children")?
        .get(kind)?
        .as_str()?;
    Some(parent.relative(path))
}

/// Name of a recorded stop: request `{"name"}`, answer [`ChildAnswer`].
pub(crate) const STOP: &str = "theater:actors/stop";

/// What `[interfaces.actors]` holds.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActorsConfig {
    /// Kinds of children, each a manifest (relative to the parent's).
    #[serde(default)]
    children: BTreeMap<String, PathBuf>,
}

/// A recorded spawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpawnRequest {
    kind: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    init: Option<Value>,
}

/// A recorded stop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct StopRequest {
    name: String,
}

/// What a recorded spawn or stop answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum ChildAnswer {
    /// Refused, and why.
    Refused { error: String },
    /// Accepted: takes effect once the input is durable.
    Accepted { ok: bool, name: String },
}

/// One actor's grant: the kinds it may spawn, and the host that spawns them.
#[derive(Debug)]
struct ActorsGrant {
    parent: ChainId,
    kinds: BTreeMap<String, PathBuf>,
    host: Weak<Host>,
}

impl Grant for ActorsGrant {}

/// The capability; bound to its host once the host exists.
#[derive(Clone, Debug, Default)]
pub(crate) struct Actors {
    host: Arc<OnceLock<Weak<Host>>>,
}

impl Actors {
    pub(crate) fn new() -> Self {
        Actors::default()
    }

    /// The host that spawns the children.
    pub(crate) fn bind(&self, host: Weak<Host>) {
        let _ = self.host.set(host);
    }
}

impl Capability for Actors {
    const NAME: &'static str = "actors";
    type Config = ActorsConfig;

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        theater_wasm::bindings::theater::actor::actors::add_to_linker::<_, Data>(linker, view)
    }

    fn check(&self, config: &ActorsConfig, manifest: &Manifest) -> Result<(), FieldError> {
        for (kind, path) in &config.children {
            let field = format!("children.{kind}");
            let path = manifest.relative(path);
            let child =
                Manifest::load(&path).map_err(|e| FieldError::at(&field, format!("{e}")))?;
            if child.family.is_some() {
                return Err(FieldError::at(
                    &field,
                    format!("{} declares a family; a child is one actor", path.display()),
                ));
            }
        }
        Ok(())
    }

    fn grant(&self, config: &ActorsConfig, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>> {
        let kinds = config
            .children
            .iter()
            .map(|(k, p)| {
                let p = setup.manifest.relative(p);
                (k.clone(), std::fs::canonicalize(&p).unwrap_or(p))
            })
            .collect();
        Ok(Arc::new(ActorsGrant {
            parent: setup.manifest.name.clone(),
            kinds,
            host: self.host.get().cloned().unwrap_or_default(),
        }))
    }
}

theater_wasm::host_view!();

const NOT_GRANTED: &str =
    "child actors are not granted to this actor (add [interfaces.actors.children] to its manifest)";

/// The grant and its host, for a live call: refused if not granted or the host is gone.
fn live(grant: Option<&ActorsGrant>) -> Result<(&ActorsGrant, Arc<Host>), String> {
    let grant = grant.ok_or(NOT_GRANTED)?;
    let host = grant.host.upgrade().ok_or("the host is stopping")?;
    Ok((grant, host))
}

impl ActorsGrant {
    /// The child's manifest, if `parent` may spawn `name` of `kind` now.
    fn prepare(&self, request: &SpawnRequest, host: &Host) -> Result<Manifest, String> {
        let path = self.kinds.get(&request.kind).ok_or_else(|| {
            let kinds: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
            format!(
                "no kind of child named {:?} (granted: {})",
                request.kind,
                kinds.join(", ")
            )
        })?;
        let m = Manifest::load(path).map_err(|e| e.to_string())?;
        let m = m.instance(&request.name, request.init.clone())?;
        host.check_child(self.parent.as_str(), &request.name)?;
        Ok(m)
    }
}

impl WitHost for View<'_> {
    async fn spawn(
        &mut self,
        kind: String,
        name: String,
        init: Vec<u8>,
    ) -> wasmtime::Result<Result<String, String>> {
        let init = if init.is_empty() {
            None
        } else {
            match serde_json::from_slice(&init) {
                Ok(v) => Some(v),
                Err(e) => return Ok(Err(format!("the init parameters are not JSON: {e}"))),
            }
        };
        let grant = self.0.grant::<ActorsGrant>();
        let request = SpawnRequest { kind, name, init };
        let mut prepared = None;
        let r = self.0.calls().call_typed(SPAWN, &request, || {
            let (grant, host) = match live(grant.as_deref()) {
                Ok(live) => live,
                Err(error) => return ChildAnswer::Refused { error },
            };
            match grant.prepare(&request, &host) {
                Ok(m) => {
                    // Messages to it wait for it from now on (this input's too).
                    host.expect_child(&request.name);
                    prepared = Some((host, grant.parent.to_string(), m));
                    ChildAnswer::Accepted {
                        ok: true,
                        name: request.name.clone(),
                    }
                }
                Err(error) => ChildAnswer::Refused { error },
            }
        });
        match self.0.record(r)? {
            ChildAnswer::Refused { error } => Ok(Err(error)),
            ChildAnswer::Accepted { name, .. } => {
                if let Some((host, parent, m)) = prepared {
                    self.0
                        .calls()
                        .after_commit(move |sent_by: ChainRef| async move {
                            host.start_child(parent, m, sent_by).await;
                        });
                }
                Ok(Ok(name))
            }
        }
    }

    async fn stop(&mut self, name: String) -> wasmtime::Result<Result<(), String>> {
        let grant = self.0.grant::<ActorsGrant>();
        let request = StopRequest { name };
        let mut accepted = None;
        let r = self.0.calls().call_typed(STOP, &request, || {
            let (grant, host) = match live(grant.as_deref()) {
                Ok(live) => live,
                Err(error) => return ChildAnswer::Refused { error },
            };
            if !host.is_child_of(&request.name, grant.parent.as_str()) {
                return ChildAnswer::Refused {
                    error: format!("{:?} is not a child of this actor", request.name),
                };
            }
            accepted = Some((host, grant.parent.to_string()));
            ChildAnswer::Accepted {
                ok: true,
                name: request.name.clone(),
            }
        });
        match self.0.record(r)? {
            ChildAnswer::Refused { error } => Ok(Err(error)),
            ChildAnswer::Accepted { name, .. } => {
                if let Some((host, parent)) = accepted {
                    self.0.calls().after_commit(move |_: ChainRef| async move {
                        host.stop_child(&parent, &name).await;
                    });
                }
                Ok(Ok(()))
            }
        }
    }
}
