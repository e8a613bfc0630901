//! # theater-http
//!
//! Theater actors as HTTP servers, on hyper 1.x. Each request becomes an
//! [`ActorInput::HttpRequest`](theater_core::ActorInput) (method, path below the actor's
//! prefix, query, headers, body bytes) and the actor's
//! [`ActorOutput::HttpResponse`](theater_core::ActorOutput) is sent back: both are recorded in
//! the actor's chain, and the response names the entry in its `theater-entry` header
//! (`<seq> <hash>`).
//!
//! - [`Http`]: the capability of `[interfaces.http]` for a host: one server per address,
//!   serving every actor granted it at its prefix (an actor also granted files serves the
//!   files its responses name).
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

pub use config::{HttpConfig, HttpSection};
pub use interface::HttpInterface;
pub use served::FileStream;
pub use server::{Body, ENTRY_HEADER, HttpServer};
pub use ws::CONN_HEADER;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use theater_core::{ActorHandle, InterfaceError, Shutdown};
use theater_wasm::{Capability, FieldError, Grant, HostState, Manifest, Setup};
use wasmtime::component::Linker;

/// Where one actor is served: its config, the directory its file references name (if it is
/// granted files), and its handle once it runs.
#[derive(Debug)]
pub struct HttpGrant {
    actor: String,
    config: HttpConfig,
    files: Option<PathBuf>,
    routes: Arc<Mutex<Routes>>,
}

type Routes = BTreeMap<String, (HttpConfig, Option<PathBuf>, ActorHandle)>;

impl Grant for HttpGrant {
    fn start(&self, actor: &ActorHandle) {
        // Served from the next `serve` (the host's start, or after a restart).
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                self.actor.clone(),
                (self.config.clone(), self.files.clone(), actor.clone()),
            );
    }
}

struct Server {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), InterfaceError>>,
}

/// The HTTP capability of a host: actors granted `[interfaces.http]` are served, one server
/// per address, told apart by prefix. Its grant is an [`HttpGrant`].
#[derive(Clone, Default)]
pub struct Http {
    routes: Arc<Mutex<Routes>>,
    servers: Arc<tokio::sync::Mutex<Vec<Server>>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").finish_non_exhaustive()
    }
}

impl Http {
    /// No actor served yet.
    pub fn new() -> Self {
        Http::default()
    }
}

fn field_error(e: InterfaceError) -> FieldError {
    let field = ["addr", "prefix", "max_connections"]
        .into_iter()
        .find(|f| e.message.contains(f));
    FieldError {
        field: field.map(str::to_string),
        message: e.message,
    }
}

#[async_trait::async_trait]
impl Capability for Http {
    const NAME: &'static str = "http";
    type Config = HttpSection;

    fn add_to_linker(_: &mut Linker<HostState>) -> wasmtime::Result<()> {
        // Inbound only: no host functions.
        Ok(())
    }

    fn check(&self, config: &HttpSection, _: &Manifest) -> Result<(), FieldError> {
        HttpConfig::from_section(config.clone())
            .map(drop)
            .map_err(field_error)
    }

    fn grant(&self, config: &HttpSection, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>> {
        let m = setup.manifest;
        let files = match m.interfaces.get(theater_files::Files::NAME) {
            Some(section) => {
                let files: theater_files::FilesConfig = section.clone().try_into()?;
                files.dir.map(|dir| m.relative(dir))
            }
            None => None,
        };
        Ok(Arc::new(HttpGrant {
            actor: m.name.to_string(),
            config: HttpConfig::from_section(config.clone())?,
            files,
            routes: Arc::clone(&self.routes),
        }))
    }

    /// (Re)starts one server per address for every actor started so far.
    async fn serve(&self) -> anyhow::Result<()> {
        self.stop().await;
        let routes: Vec<_> = {
            let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
            routes
                .iter()
                .map(|(name, (c, f, h))| (name.clone(), c.clone(), f.clone(), h.clone()))
                .collect()
        };
        let mut by_addr: BTreeMap<SocketAddr, Vec<_>> = BTreeMap::new();
        for route in routes {
            by_addr.entry(route.1.addr).or_default().push(route);
        }
        let mut servers = self.servers.lock().await;
        for (asked, group) in by_addr {
            // The first actor's limits hold for the server.
            let mut server = HttpServer::bind(group[0].1.clone()).await?;
            // The bound address: the port a manifest's port 0 became.
            let addr = server.local_addr().unwrap_or(asked);
            for (name, config, files, handle) in group {
                let prefix = config.prefix;
                server = match files {
                    Some(dir) => server.route_with_files(&prefix, handle, &dir)?,
                    None => server.route(&prefix, handle)?,
                };
                println!(
                    "{name} serves HTTP at http://{addr}{}",
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

    async fn stop(&self) {
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
}
