//! # theater-core
//!
//! The heart of Theater: actors as sequential state machines over a JSON state, with every
//! transition recorded in the actor's hash chain ([`theater_chain`]). It knows nothing of
//! wasm, HTTP or sockets: a native Rust actor runs here as it is.
//!
//! ## Concepts
//!
//! | item | role |
//! |---|---|
//! | [`ActorInput`] / [`ActorOutput`] | explicit enums of what reaches an actor and what it answers |
//! | [`Actor`] | `init`, `handle_input`, `verify_state` |
//! | [`HostCalls`] | records clock, randomness and other outside reads; feeds them back in replay |
//! | [`ActorRuntime`] | owns state and chain, one input at a time, failures leave the state unchanged |
//! | [`replay`] / [`resume`] | re-run a chain and compare every outcome and state hash |
//! | [`spawn`] → [`ActorHandle`] | a bounded mailbox in front of the runtime, cloneable, with backpressure |
//! | [`RestartPolicy`] | restarts from the chain after a crash, with limits and backoff |
//! | [`ActorInterface`] | how interfaces (messages, HTTP, ...) attach to a handle |
//! | [`Outbox`] | how an actor's host side sends to other actors (implemented by `theater-msg`) |
//! | [`Subscription`] | events for observers; a slow one lags, the actor never waits |
//!
//! ## Example
//!
//! ```
//! use async_trait::async_trait;
//! use serde_json::{Value, json};
//! use theater_chain::{ChainId, MemoryStore};
//! use theater_core::{
//!     Actor, ActorConfig, ActorError, ActorInput, ActorOutput, HostCalls, spawn,
//! };
//!
//! struct Counter;
//!
//! #[async_trait]
//! impl Actor for Counter {
//!     async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
//!         Ok(json!({"count": 0}))
//!     }
//!     async fn handle_input(
//!         &mut self,
//!         input: &ActorInput,
//!         state: &Value,
//!         _: &mut HostCalls,
//!     ) -> Result<(ActorOutput, Value), ActorError> {
//!         let add = input.payload().and_then(|p| p["add"].as_i64())
//!             .ok_or_else(|| ActorError::Failed("expected {\"add\": n}".into()))?;
//!         let count = state["count"].as_i64().unwrap_or(0) + add;
//!         Ok((ActorOutput::reply(json!(count)), json!({"count": count})))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let chain = Box::new(MemoryStore::new(ChainId::new("counter")?));
//! let counter = spawn(|| Counter, chain, ActorConfig::default()).await?;
//! let outcome = counter.call(ActorInput::request(json!({"add": 2}))).await?;
//! assert_eq!(outcome.seq, 1); // entry 0 is init
//! // A bad input fails, is recorded, and leaves the state as it was.
//! assert!(counter.call(ActorInput::request(json!("oops"))).await.is_err());
//! assert_eq!(counter.state().await?.0, json!({"count": 2}));
//! # Ok(())
//! # }
//! ```

mod actor;
mod events;
mod handle;
mod host_calls;
mod interface;
mod io;
pub mod metrics;
mod outbox;
mod replay;
pub mod retention;
mod runtime;
mod supervisor;

pub use actor::{Actor, ActorError, FailureKind, StateChange};
pub use events::{ActorEvent, RecvError, Subscription};
pub use handle::{ActorHandle, ActorStatus, CallError, Outcome};
pub use host_calls::{CLOCK_NOW, Effect, HostCallError, HostCalls, RANDOM_BYTES, Write};
pub use interface::{ActorInterface, InterfaceError, Shutdown};
pub use io::{
    ActorInput, ActorOutput, ChildEvent, FileRef, HttpRequest, HttpResponse, PayloadError,
    WebSocketMessage, WebSocketReply, WebSocketSend,
};
pub use metrics::{ActorMetrics, Histogram};
pub use outbox::Outbox;
pub use replay::{
    CODE_KEY, Divergence, Mismatch, ReplayError, ReplayReport, replay, replay_to,
    replay_to_nearest, resume,
};
pub use retention::{PrunePoint, Reads, Retention, prune_point};
pub use runtime::{ActorRuntime, Handled, RuntimeConfig, RuntimeError, StartedCommit, Upgraded};
pub use supervisor::{ActorConfig, ActorFactory, RestartPolicy, spawn};
pub use theater_chain::state::{Patch, PatchError, State};
