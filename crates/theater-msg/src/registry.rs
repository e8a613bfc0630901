//! [`Registry`]: running actors by id and by name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use theater_chain::ChainId;
use theater_core::ActorHandle;

use crate::{Messenger, MsgError};

/// The actors one host runs, addressable by id and by any names given to them. Cheap to
/// clone; clones share the table.
#[derive(Clone, Default, Debug)]
pub struct Registry {
    inner: Arc<RwLock<Table>>,
}

#[derive(Default, Debug)]
struct Table {
    by_id: HashMap<ChainId, ActorHandle>,
    names: HashMap<String, ChainId>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a running actor under its id.
    pub fn register(&self, actor: ActorHandle) -> Result<(), MsgError> {
        let mut t = self.inner.write().map_err(|_| MsgError::Poisoned)?;
        if t.by_id.contains_key(actor.id()) {
            return Err(MsgError::Duplicate(actor.id().to_string()));
        }
        t.by_id.insert(actor.id().clone(), actor);
        Ok(())
    }

    /// Makes `name` address the actor `id` too.
    pub fn alias(&self, name: &str, id: &ChainId) -> Result<(), MsgError> {
        let mut t = self.inner.write().map_err(|_| MsgError::Poisoned)?;
        if t.names.contains_key(name) || t.by_id.keys().any(|k| k.as_str() == name) {
            return Err(MsgError::Duplicate(name.to_string()));
        }
        t.names.insert(name.to_string(), id.clone());
        Ok(())
    }

    /// Removes the actor `id` and its names.
    pub fn unregister(&self, id: &ChainId) {
        if let Ok(mut t) = self.inner.write() {
            t.by_id.remove(id);
            t.names.retain(|_, v| v != id);
        }
    }

    /// The actor addressed by `to` (an id or a name).
    pub fn lookup(&self, to: &str) -> Option<ActorHandle> {
        let t = self.inner.read().ok()?;
        let id = match t.names.get(to) {
            Some(id) => id.clone(),
            None => ChainId::new(to).ok()?,
        };
        t.by_id.get(&id).cloned()
    }

    /// A messenger sending as the actor `me`.
    pub fn messenger(&self, me: ChainId) -> Messenger {
        Messenger::new(self.clone(), me)
    }
}
