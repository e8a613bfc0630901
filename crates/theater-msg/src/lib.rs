//! # theater-msg
//!
//! Actors talking to actors, with their chains linked:
//!
//! - [`Registry`]: the running actors of a host, by id and by name; [`InProcess`] carries
//!   messages between them.
//! - [`Messenger`]: what an actor's host side uses to [`Messenger::send`] (fire and forget)
//!   and [`Messenger::request`] (wait for a reply, with a timeout). Both are recorded host
//!   calls in the sender's chain, so replay needs no other actor. A sent message is
//!   delivered once the sending entry is durable, and the receiver's entry refers to it
//!   (chain id, seq, hash); a request's reply names the target's answering entry, and the
//!   requester's entry refers to it. An unknown or stopped target is an error to the sender.
//! - [`verify_links`]: given several chains, checks every link and reports each that does
//!   not hold, naming both actors and seqs.
//! - [`pending_sends`] + [`redeliver`] (through any [`Transport`]): after a host restart, the messages whose
//!   sending entries are durable but whose receivers never recorded them are delivered
//!   again, exactly those, so no message is lost or applied twice.
//! - [`Transport`]: how messages travel, with typed errors ([`TransportError`]);
//!   [`InProcess`] is the in-process one. Messages are plain data ([`Delivery`]) naming their
//!   sending entry, so another transport keeps chains linked.
//!
//! [`Messenger`] implements [`theater_core::Outbox`], which is what a wasm actor's `send` and
//! `request` imports call (granted by `[interfaces.msg]`: the [`Msg`] capability): native and
//! wasm actors talk to each other the same way.
//!
//! Delivery goes through each actor's bounded mailbox, so backpressure is real, and a
//! sender's messages to one target arrive in the order sent. A received message carries its
//! sender's id (`from`).
//!
//! ## Example
//!
//! ```
//! use async_trait::async_trait;
//! use serde_json::{Value, json};
//! use theater_chain::{ChainId, MemoryStore};
//! use theater_core::{Actor, ActorConfig, ActorError, ActorInput, ActorOutput, HostCalls, spawn};
//! use theater_msg::{Messenger, Registry};
//!
//! /// Forwards `{"to": id, "msg": v}` as a message; counts messages it receives.
//! struct Relay(Messenger);
//!
//! #[async_trait]
//! impl Actor for Relay {
//!     async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
//!         Ok(json!(0))
//!     }
//!     async fn handle_input(&mut self, input: &ActorInput, state: &Value, host: &mut HostCalls)
//!         -> Result<(ActorOutput, Value), ActorError> {
//!         let p = input.payload().cloned().unwrap_or_default();
//!         if let Some(to) = p["to"].as_str() {
//!             self.0.send(host, to, p["msg"].clone()).map_err(|e| ActorError::Failed(e.to_string()))?;
//!             return Ok((ActorOutput::None, state.clone()));
//!         }
//!         Ok((ActorOutput::None, json!(state.as_i64().unwrap_or(0) + 1)))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::new();
//! for name in ["a", "b"] {
//!     let m = registry.messenger(ChainId::new(name)?);
//!     let chain = Box::new(MemoryStore::new(ChainId::new(name)?));
//!     registry.register(spawn(move || Relay(m.clone()), chain, ActorConfig::default()).await?)?;
//! }
//! let a = registry.lookup("a").expect("registered");
//! a.call(ActorInput::request(json!({"to": "b", "msg": "hi"}))).await?;
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod host;
mod messenger;
mod registry;
mod transport;
mod verify;

pub use config::MsgConfig;
pub use error::MsgError;
pub use messenger::{
    MAX_REQUEST_TIMEOUT, Messenger, MsgRequest, REQUEST, RequestAnswer, SEND, SendAnswer,
};
pub use registry::{Activator, InProcess, Registry};
pub use transport::{
    Answer, Delivery, Redelivery, Transport, TransportError, TransportErrorKind, redeliver,
};
pub use verify::{LinkProblem, Pending, SPAWN_CHILD, pending_sends, verify_links};

use std::sync::Arc;

use theater_core::Outbox;
use theater_wasm::{Capability, Grant, HostState, Manifest, Setup};
use wasmtime::component::Linker;

/// Where one actor's `send` and `request` imports go.
#[derive(Clone, Debug)]
pub struct MsgGrant {
    /// A [`Messenger`] of the host's registry (live) or a detached one (replay).
    pub outbox: Arc<dyn Outbox>,
}

impl Grant for MsgGrant {}

/// The messaging capability, over a host's [`Registry`]. Its grant is a [`MsgGrant`].
#[derive(Clone, Debug)]
pub struct Msg {
    registry: Registry,
}

impl Msg {
    /// Messaging between the actors of `registry`.
    pub fn new(registry: Registry) -> Self {
        Msg { registry }
    }
}

impl Capability for Msg {
    const NAME: &'static str = "msg";
    type Config = MsgConfig;

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        theater_wasm::bindings::theater::actor::msg::add_to_linker::<_, host::Data>(
            linker,
            host::view,
        )
    }

    fn grant(&self, _: &MsgConfig, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>> {
        let messenger = self.registry.messenger(setup.manifest.name.clone());
        Ok(Arc::new(MsgGrant {
            outbox: Arc::new(messenger),
        }))
    }

    /// Replay answers from the recording, but only through an outbox (an ungranted actor's
    /// calls were never recorded): a detached one, which reaches no one.
    fn replay_grant(&self, _: &MsgConfig, manifest: &Manifest) -> Option<Arc<dyn Grant>> {
        Some(Arc::new(MsgGrant {
            outbox: Arc::new(Messenger::detached(manifest.name.clone())),
        }))
    }
}
