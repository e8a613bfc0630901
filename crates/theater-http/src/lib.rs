//! # theater-http
//!
//! Theater actors as HTTP servers, on hyper 1.x. Each request becomes an
//! [`ActorInput::HttpRequest`](theater_core::ActorInput) (method, path below the actor's
//! prefix, query, headers, body bytes) and the actor's
//! [`ActorOutput::HttpResponse`](theater_core::ActorOutput) is sent back: both are recorded in
//! the actor's chain, and the response names the entry in its `theater-entry` header
//! (`<seq> <hash>`).
//!
//! - [`HttpConfig`]: address (loopback by default), prefix and limits, from a manifest's
//!   `[interfaces.http]`.
//! - [`HttpServer`]: one socket, one or more actors by path prefix; HTTP/1.1 with keep-alive
//!   and HTTP/2 (prior knowledge); graceful shutdown.
//! - [`HttpInterface`]: the [`theater_core::ActorInterface`] for one actor.
//! - WebSocket: an upgrade request reaches the actor as a recorded HTTP request carrying the
//!   would-be connection's id in [`CONN_HEADER`]; the actor accepts by answering status 101.
//!   Then each message is a recorded `WebSocketMessage` input, the actor's `WebSocketReply`
//!   says what to send (on that connection or on another of its own), and a closed
//!   connection is a recorded `WebSocketClose` input.
//!
//! Bad input never reaches the actor and never stops the server: a body over the limit gets
//! 413, headers or a body that arrive too slowly get dropped or 408, a malformed request 400,
//! a connection over the limit 503. An actor that fails answers 500, one that runs out of time
//! 504, and in both cases its state is unchanged (the failure is recorded).
//!
//! ## Example
//!
//! ```no_run
//! use theater_chain::{ChainId, MemoryStore};
//! use theater_core::{ActorConfig, Shutdown, spawn};
//! use theater_http::{HttpConfig, HttpServer};
//! # use theater_core::{Actor, ActorError, ActorInput, ActorOutput, HostCalls, HttpResponse};
//! # use serde_json::{Value, json};
//! # struct Hello;
//! # #[async_trait::async_trait]
//! # impl Actor for Hello {
//! #     async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> { Ok(json!(0)) }
//! #     async fn handle_input(&mut self, _: &ActorInput, s: &Value, _: &mut HostCalls)
//! #         -> Result<(ActorOutput, Value), ActorError> {
//! #         let r = HttpResponse { status: 200, headers: vec![], body: b"hello".to_vec(), file: None };
//! #         Ok((ActorOutput::HttpResponse(r), s.clone()))
//! #     }
//! # }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let chain = Box::new(MemoryStore::new(ChainId::new("hello")?));
//! let actor = spawn(|| Hello, chain, ActorConfig::default()).await?;
//! let server = HttpServer::bind(HttpConfig::loopback(8080)).await?.route("/", actor)?;
//! let shutdown = Shutdown::new();
//! server.serve(shutdown).await?; // until shutdown.cancel()
//! # Ok(())
//! # }
//! ```

mod config;
mod interface;
mod served;
mod server;
mod ws;

pub use config::HttpConfig;
pub use interface::HttpInterface;
pub use served::FileStream;
pub use server::{Body, ENTRY_HEADER, HttpServer};
pub use ws::CONN_HEADER;
