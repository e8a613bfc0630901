//! Cluster mode (`theater run --cluster NAME --nats URLS --host NAME`): the host's part in a
//! Theater cluster on NATS JetStream.
//!
//! - Every chain this host writes is a [`theater_cluster::ReplicatedStore`]: a group counts
//!   as committed once the cluster's stream has it, and a host that lost an actor is refused
//!   (fenced) at its next write.
//! - The manifests given are listed in the cluster's catalog. An actor whose grants are
//!   host-local (files, a database file, an HTTP port, children, a family) is pinned to this
//!   host; any other moves: it runs on the owner of its shard ([`theater_cluster::Placement`]),
//!   which resumes it from the replica of its chain (snapshot, then the tail).
//! - [`ClusterTransport`] carries messages and requests to actors on other hosts over NATS
//!   request/reply (`theater.<cluster>.actor.<name>.msg|req`). A message is delivered once
//!   its sending entry is acknowledged, retried while its receiver moves, and recorded at
//!   most once: each receiver drops a delivery it already recorded, by sending entry.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use theater_chain::{ChainId, ChainRef, ChainStore, FileStore, Hash, MemoryStore};
use theater_cluster::{
    Catalog, Change, Cluster, ClusterConfig, ClusterError, Listing, Placement, View, shard_of,
};
use theater_core::{ActorHandle, ActorInput, CallError, Outcome};
use theater_msg::{
    Answer, Delivery, InProcess, Registry, SEND, SendAnswer, Transport, TransportError,
    TransportErrorKind, pending_sends,
};
use theater_wasm::Manifest;

use crate::host::{Host, Origin};

/// How a host joins a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The cluster, its servers and this host's name.
    pub config: ClusterConfig,
    /// How many shards the actors are spread over (the same on every host).
    pub shards: u32,
    /// How long a host keeps its shards without renewing them.
    pub lease: Duration,
}

impl ClusterOptions {
    /// The defaults: 16 shards, 6-second leases.
    pub fn new(config: ClusterConfig) -> Self {
        ClusterOptions {
            config,
            shards: 16,
            lease: Duration::from_secs(6),
        }
    }
}

/// How long a message to an actor on another host is retried (it may be moving) before
/// it is left to the redelivery of its sender's next start.
const DELIVERY_PATIENCE: Duration = Duration::from_secs(120);
/// How long one attempt at a remote request waits for its answer.
const ATTEMPT: Duration = Duration::from_secs(30);
/// How long one attempt at a remote delivery waits for its answer.
const DELIVERY_ATTEMPT: Duration = Duration::from_secs(5);

/// How many received messages a running actor remembers, to drop redeliveries of them.
/// A delivery is sent again only while it is unacknowledged (a retry) or by a takeover that
/// found it missing from the receiver's replica: either way among the receiver's most recent.
const REMEMBERED: usize = 1 << 16;

/// A delivery's identity: the sender, its sending entry's seq, and which of that entry's
/// messages to this receiver it is.
type Key = (String, u64, u32);

/// Per receiver: the messages it recorded most recently, and those accepted but not yet
/// recorded.
#[derive(Debug, Default)]
pub(crate) struct Received {
    recorded: std::collections::HashSet<Key>,
    order: std::collections::VecDeque<Key>,
    in_flight: std::collections::HashSet<Key>,
}

impl Received {
    fn remember(&mut self, key: Key) {
        if self.recorded.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > REMEMBERED
                && let Some(old) = self.order.pop_front()
            {
                self.recorded.remove(&old);
            }
        }
    }

    fn forget(&mut self, key: &Key) {
        self.recorded.remove(key);
        self.order.retain(|k| k != key);
    }
}

/// What a host in cluster mode keeps.
pub(crate) struct ClusterState {
    pub(crate) cluster: Cluster,
    catalog: Catalog,
    placement: tokio::sync::Mutex<Placement>,
    /// The catalog as last read.
    known: std::sync::RwLock<BTreeMap<String, Listing>>,
    /// Who owns what, as last read.
    view: std::sync::RwLock<View>,
    /// The components of the manifests this host may run, compiled ahead (a takeover does
    /// not wait for a compile).
    components: std::sync::Mutex<HashMap<PathBuf, theater_wasm::ActorComponent>>,
    /// The running actors' tables of received messages.
    receivers: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Received>>>>,
    shards: u32,
    lease: Duration,
}

impl std::fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterState")
            .field("cluster", &self.cluster.config().name)
            .finish_non_exhaustive()
    }
}

impl ClusterState {
    /// Joins the cluster: connects (blocking), opens the catalog and the placement.
    pub(crate) async fn join(options: ClusterOptions) -> anyhow::Result<Arc<ClusterState>> {
        let config = options.config.clone();
        let cluster = tokio::task::spawn_blocking(move || Cluster::connect(config))
            .await
            .context("joining the cluster")??;
        let c = cluster.clone();
        let (catalog, placement) = cluster
            .run(async move {
                let catalog = Catalog::open(&c).await?;
                let placement = Placement::join(&c, options.shards, options.lease).await?;
                Ok::<_, ClusterError>((catalog, placement))
            })
            .await??;
        Ok(Arc::new(ClusterState {
            cluster,
            catalog,
            placement: tokio::sync::Mutex::new(placement),
            known: Default::default(),
            view: Default::default(),
            receivers: Default::default(),
            components: Default::default(),
            shards: options.shards,
            lease: options.lease,
        }))
    }

    /// This host's name.
    pub(crate) fn host(&self) -> &str {
        &self.cluster.config().host
    }

    /// The catalog's listing of `name`, as last read.
    pub(crate) fn listing(&self, name: &str) -> Option<Listing> {
        self.known.read().ok()?.get(name).cloned()
    }

    /// Every listed actor with the host it runs on (as last read).
    pub(crate) fn placed(&self) -> Vec<(String, Listing, Option<String>)> {
        let known = self.known.read().map(|k| k.clone()).unwrap_or_default();
        let view = self.view.read().map(|v| v.clone()).unwrap_or_default();
        known
            .into_iter()
            .map(|(name, listing)| {
                let host = match &listing.pinned {
                    Some(h) => Some(h.clone()),
                    None => view.owners.get(&shard_of(&name, self.shards)).cloned(),
                };
                (name, listing, host)
            })
            .collect()
    }

    fn receiver(&self, name: &str) -> Option<Arc<tokio::sync::Mutex<Received>>> {
        self.receivers.lock().ok()?.get(name).cloned()
    }

    fn subject(&self, name: &str, what: &str) -> String {
        format!(
            "theater.{}.actor.{}.{what}",
            self.cluster.config().name,
            theater_cluster::subject_token(name)
        )
    }

    /// Reads the catalog and the placement again.
    async fn refresh(&self) -> Result<(), ClusterError> {
        let known = self.catalog.list().await?;
        if let Ok(mut k) = self.known.write() {
            *k = known;
        }
        let view = self.placement.lock().await.view().await?;
        if let Ok(mut v) = self.view.write() {
            *v = view;
        }
        Ok(())
    }
}

/// Whether an actor of manifest `m` must stay on the host that has it: its grants are
/// host-local (a directory, an SQLite file, a port), or it has children or family members
/// (kept on their host). A PostgreSQL database (a url, or a connection every host's
/// configuration names) is reachable from every host.
pub(crate) fn pinned(m: &Manifest) -> bool {
    let sqlite = m.grants("db")
        && m.interfaces.get("db").is_none_or(|section| {
            section.get("url").is_none() && section.get("connection").is_none()
        });
    m.family.is_some() || sqlite || ["files", "http", "actors"].iter().any(|cap| m.grants(cap))
}

/// The received-messages table of a chain: its most recent receipts, each as (sender,
/// sending entry, which of that entry's messages to this chain).
pub(crate) fn received_by(chain: &dyn ChainStore) -> Received {
    let mut table = Received::default();
    let mut seen: HashMap<(String, u64), u32> = HashMap::new();
    for seq in chain.start()..chain.len() {
        let Ok(entry) = chain.get(seq) else { continue };
        let Some(input) = entry.event().input() else {
            continue;
        };
        if input.json["type"] != "message" {
            continue;
        }
        let Some(from) = input.json["from"].as_str() else {
            continue;
        };
        let Some(r) = entry.refs().iter().find(|r| r.chain.as_str() == from) else {
            continue;
        };
        let n = seen.entry((from.to_string(), r.seq)).or_insert(0);
        table.remember((from.to_string(), r.seq, *n));
        *n += 1;
    }
    table
}

/// A delivery accepted into a mailbox, its outcome still to come.
enum Accepted {
    /// Already recorded: nothing to do.
    Duplicate,
    /// Queued; if it is not recorded after all, the table forgets it, so a retry is taken.
    Queued {
        outcome: std::pin::Pin<Box<dyn Future<Output = Result<Outcome, CallError>> + Send>>,
        key: Key,
        table: Arc<tokio::sync::Mutex<Received>>,
    },
}

fn call_error(e: &CallError) -> TransportError {
    let kind = match e {
        CallError::Failed { .. } | CallError::Crashed { .. } => TransportErrorKind::Failed,
        CallError::Stopped { .. } => TransportErrorKind::NotRunning,
        _ => TransportErrorKind::Unavailable,
    };
    TransportError::new(kind, e.to_string())
}

/// Queues `d` for `handle` unless the receiver recorded it already. A copy of a delivery
/// still being recorded is refused (to be sent again), never answered as done before it is.
async fn accept(
    handle: &ActorHandle,
    table: Arc<tokio::sync::Mutex<Received>>,
    d: Delivery,
    nth: u32,
) -> Result<Accepted, TransportError> {
    let mut t = table.lock().await;
    let key: Key = (d.from.to_string(), d.sent_by.seq, nth);
    if t.in_flight.contains(&key) {
        return Err(TransportError::new(
            TransportErrorKind::Unavailable,
            "an earlier copy of this message is being recorded",
        ));
    }
    if t.recorded.contains(&key) {
        return Ok(Accepted::Duplicate);
    }
    let input = ActorInput::message_from(d.from.as_str(), d.payload);
    let outcome = handle
        .submit_with_refs(input, vec![d.sent_by])
        .await
        .map_err(|e| call_error(&e))?;
    t.in_flight.insert(key.clone());
    drop(t);
    Ok(Accepted::Queued {
        outcome: Box::pin(outcome),
        key,
        table,
    })
}

/// Waits until an accepted delivery is recorded (committed): a failed input is recorded
/// too.
async fn settle(accepted: Accepted) -> Result<(), TransportError> {
    let Accepted::Queued {
        outcome,
        key,
        table,
    } = accepted
    else {
        return Ok(());
    };
    let result = outcome.await;
    let mut t = table.lock().await;
    t.in_flight.remove(&key);
    match result {
        Ok(_) | Err(CallError::Failed { .. }) => {
            t.remember(key);
            Ok(())
        }
        Err(e) => {
            t.forget(&key);
            Err(call_error(&e))
        }
    }
}

/// A message on the wire between hosts.
#[derive(Serialize, Deserialize)]
struct Wire {
    from: ChainId,
    payload: Value,
    sent_by: ChainRef,
    nth: u32,
}

/// What a remote delivery or request answers.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum WireAnswer {
    Error {
        error: String,
        retry: bool,
    },
    Answered {
        reply: Value,
        chain: ChainId,
        seq: u64,
        hash: Hash,
    },
    Ok {
        ok: bool,
    },
}

/// The transport of a host in a cluster: its own actors in process, the others over NATS.
#[derive(Debug)]
pub(crate) struct ClusterTransport {
    local: InProcess,
    registry: Registry,
    state: Arc<ClusterState>,
    /// For each (sender, receiver): the last sending entry delivered and how many of its
    /// messages, to number the next.
    nth: std::sync::Mutex<HashMap<(String, String), (u64, u32)>>,
}

impl ClusterTransport {
    pub(crate) fn new(registry: Registry, state: Arc<ClusterState>) -> Self {
        ClusterTransport {
            local: InProcess::new(registry.clone()),
            registry,
            state,
            nth: Default::default(),
        }
    }

    fn next_nth(&self, from: &str, to: &str, seq: u64) -> u32 {
        let mut map = self.nth.lock().expect("nth lock");
        let slot = map
            .entry((from.to_string(), to.to_string()))
            .or_insert((seq, 0));
        if slot.0 != seq {
            *slot = (seq, 0);
        }
        let n = slot.1;
        slot.1 += 1;
        n
    }

    /// Delivers `d` as the `nth` message of its sending entry to `to`: into the mailbox here,
    /// or over NATS to the host running `to`, retried while it moves (for as long as the
    /// cluster lists it; two minutes for an actor it does not).
    pub(crate) async fn deliver_nth(
        &self,
        to: &str,
        d: Delivery,
        nth: u32,
    ) -> Result<(), TransportError> {
        let deadline = Instant::now() + DELIVERY_PATIENCE;
        let mut backoff = Duration::from_millis(20);
        loop {
            match self.try_deliver(to, d.clone(), nth).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind == TransportErrorKind::Failed => return Err(e),
                Err(e) if Instant::now() >= deadline && self.state.listing(to).is_none() => {
                    return Err(e);
                }
                Err(e) => tracing::debug!(%to, "delivery retried: {e}"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// One attempt at [`ClusterTransport::deliver_nth`].
    async fn try_deliver(&self, to: &str, d: Delivery, nth: u32) -> Result<(), TransportError> {
        if let (Some(table), Some(handle)) = (self.state.receiver(to), self.registry.lookup(to)) {
            return settle(accept(&handle, table, d, nth).await?).await;
        }
        if self.local.reachable(to).is_ok() && self.state.listing(to).is_none() {
            // An actor of this host alone (a family member, a spawned one).
            return self.local.deliver(to, d).await;
        }
        let body = serde_json::to_vec(&Wire {
            from: d.from,
            payload: d.payload,
            sent_by: d.sent_by,
            nth,
        })
        .map_err(|e| TransportError::new(TransportErrorKind::Failed, e.to_string()))?;
        let unavailable = |m: String| TransportError::new(TransportErrorKind::Unavailable, m);
        // Short: a delivery is safe to send again (the receiver drops copies), and a host
        // that stalled while holding the receiver never answers.
        let subject = self.state.subject(to, "msg");
        match self.remote(&subject, body, DELIVERY_ATTEMPT).await? {
            WireAnswer::Ok { .. } => Ok(()),
            WireAnswer::Error {
                error,
                retry: false,
            } => Err(TransportError::new(TransportErrorKind::Failed, error)),
            WireAnswer::Error { error, .. } => Err(unavailable(error)),
            WireAnswer::Answered { .. } => Err(unavailable("an unexpected answer".into())),
        }
    }

    /// One NATS request to `subject` with `body`, waiting `wait` at most; its answer.
    async fn remote(
        &self,
        subject: &str,
        body: Vec<u8>,
        wait: Duration,
    ) -> Result<WireAnswer, TransportError> {
        let request = async_nats::Request::new()
            .payload(body.into())
            .timeout(Some(wait));
        let unavailable = |m: String| TransportError::new(TransportErrorKind::Unavailable, m);
        let answer = self
            .state
            .cluster
            .client()
            .send_request(subject.to_string(), request)
            .await
            .map_err(|e| {
                let kind = match e.kind() {
                    // Nobody runs it now (it is moving): safe to ask again.
                    async_nats::RequestErrorKind::NoResponders => TransportErrorKind::NotRunning,
                    // It may have been taken: not to be asked again blindly.
                    _ => TransportErrorKind::Unavailable,
                };
                TransportError::new(kind, format!("{subject}: {e}"))
            })?;
        serde_json::from_slice(&answer.payload)
            .map_err(|e| unavailable(format!("{subject}: an answer that does not parse: {e}")))
    }
}

#[async_trait]
impl Transport for ClusterTransport {
    fn reachable(&self, to: &str) -> Result<ChainId, TransportError> {
        match self.local.reachable(to) {
            Ok(id) => Ok(id),
            Err(e) => match self.state.listing(to) {
                Some(_) => ChainId::new(to).map_err(|e| {
                    TransportError::new(TransportErrorKind::NoSuchActor, e.to_string())
                }),
                None => Err(e),
            },
        }
    }

    async fn deliver(&self, to: &str, delivery: Delivery) -> Result<(), TransportError> {
        let nth = self.next_nth(delivery.from.as_str(), to, delivery.sent_by.seq);
        self.deliver_nth(to, delivery, nth).await
    }

    async fn ask(&self, to: &str, payload: Value) -> Result<Answer, TransportError> {
        if self.local.reachable(to).is_ok() {
            return self.local.ask(to, payload).await;
        }
        let body = serde_json::to_vec(&payload)
            .map_err(|e| TransportError::new(TransportErrorKind::Failed, e.to_string()))?;
        let subject = self.state.subject(to, "req");
        // No deadline here: the requester's timeout bounds the wait (dropping this future
        // withdraws the request from this side; the target may still handle it).
        let mut backoff = Duration::from_millis(20);
        loop {
            match self.remote(&subject, body.clone(), ATTEMPT).await {
                // Not running anywhere now (moving): asked again.
                Err(e) if e.kind == TransportErrorKind::NotRunning => {}
                // A timeout: the request may have been handled; the requester is told.
                Err(e) => {
                    return Err(TransportError::new(
                        TransportErrorKind::Unavailable,
                        format!("{e} (the request may or may not have been handled)"),
                    ));
                }
                Ok(WireAnswer::Answered {
                    reply,
                    chain,
                    seq,
                    hash,
                }) => {
                    return Ok(Answer {
                        reply,
                        answered_by: ChainRef { chain, seq, hash },
                    });
                }
                Ok(WireAnswer::Error {
                    error,
                    retry: false,
                }) => {
                    return Err(TransportError::new(TransportErrorKind::Failed, error));
                }
                // Refused before it was taken (the actor stopping there): asked again.
                Ok(WireAnswer::Error { .. }) => {}
                Ok(WireAnswer::Ok { .. }) => {
                    return Err(TransportError::new(
                        TransportErrorKind::Failed,
                        "an unexpected answer",
                    ));
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}

/// Answers the NATS messages and requests to the actor `name` running here, until it stops.
async fn serve_actor(state: Arc<ClusterState>, name: String, handle: ActorHandle) {
    let client = state.cluster.client().clone();
    let subject = state.subject(&name, "*");
    // Not a queue group: while an actor moves, the host that lost it (stalled, say) may
    // still listen, and the one that has it must hear everything too. Only the host that
    // sealed the chain can commit, so a message is never applied by both.
    let mut sub = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(actor = %name, "cannot take messages from other hosts: {e}");
            return;
        }
    };
    let Some(table) = state.receiver(&name) else {
        return;
    };
    loop {
        let message = tokio::select! {
            m = sub.next() => match m { Some(m) => m, None => break },
            _ = handle.wait_stopped() => break,
        };
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let answer = {
            let client = client.clone();
            move |a: WireAnswer| {
                let client = client.clone();
                let reply = reply.clone();
                async move {
                    let body = serde_json::to_vec(&a).unwrap_or_default();
                    let _ = client.publish(reply, body.into()).await;
                }
            }
        };
        if message.subject.ends_with(".msg") {
            let wire: Wire = match serde_json::from_slice(&message.payload) {
                Ok(w) => w,
                Err(e) => {
                    answer(WireAnswer::Error {
                        error: format!("not a delivery: {e}"),
                        retry: false,
                    })
                    .await;
                    continue;
                }
            };
            let d = Delivery {
                from: wire.from,
                payload: wire.payload,
                sent_by: wire.sent_by,
            };
            // Accepted here, in arrival order; answered once recorded.
            match accept(&handle, Arc::clone(&table), d, wire.nth).await {
                Ok(accepted) => {
                    tokio::spawn(async move {
                        answer(match settle(accepted).await {
                            Ok(()) => WireAnswer::Ok { ok: true },
                            Err(e) => WireAnswer::Error {
                                error: e.message,
                                retry: true,
                            },
                        })
                        .await;
                    });
                }
                Err(e) => {
                    answer(WireAnswer::Error {
                        error: e.message,
                        retry: true,
                    })
                    .await
                }
            }
        } else if message.subject.ends_with(".req") {
            let payload: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
            let handle = handle.clone();
            tokio::spawn(async move {
                answer(match handle.call(ActorInput::request(payload)).await {
                    Ok(out) => WireAnswer::Answered {
                        reply: out.output.to_payload().json["payload"].clone(),
                        chain: handle.id().clone(),
                        seq: out.seq,
                        hash: out.hash,
                    },
                    // Handled and failed: recorded, so not to be asked again.
                    Err(e @ CallError::Failed { .. }) => WireAnswer::Error {
                        error: e.to_string(),
                        retry: false,
                    },
                    // The actor stopped here (it moved, or was fenced): another host may be
                    // answering this very request, so no answer from here (asked again, it
                    // could be handled twice); the requester's timeout covers the rest.
                    Err(CallError::Stopped { .. }) => return,
                    Err(_)
                        if !matches!(
                            handle.status(),
                            theater_core::ActorStatus::Running
                                | theater_core::ActorStatus::Restarting { .. }
                        ) =>
                    {
                        return;
                    }
                    Err(e) => WireAnswer::Error {
                        error: e.to_string(),
                        retry: false,
                    },
                })
                .await;
            });
        }
    }
    let _ = sub.unsubscribe().await;
    if let Ok(mut r) = state.receivers.lock()
        && r.get(&name).is_some_and(|t| Arc::ptr_eq(t, &table))
    {
        r.remove(&name);
    }
}

/// See [`Host::spawn_redelivery`].
async fn redeliver_sent(
    state: &ClusterState,
    transport: &ClusterTransport,
    dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<()> {
    let local = FileStore::open_read_only(dir)?;
    // A copy that starts at a snapshot does not show the sends before it: the replica does.
    let whole;
    let chain: &dyn ChainStore = if local.start() > 0 {
        whole = state.cluster.read_chain(name).await?.store;
        &whole
    } else {
        &local
    };
    let mut receivers: Vec<String> = Vec::new();
    for seq in chain.start()..chain.len() {
        let entry = chain.get(seq)?;
        for call in entry.host_calls().iter().filter(|c| c.name == SEND) {
            if let Ok(SendAnswer::Sent { id: Some(id), .. }) =
                serde_json::from_value(call.result.json.clone())
                && !receivers.contains(&id.to_string())
            {
                receivers.push(id.to_string());
            }
        }
    }
    let mut copies: Vec<MemoryStore> = Vec::new();
    for r in receivers.iter().filter(|r| r.as_str() != name) {
        copies.push(state.cluster.read_chain(r).await?.store);
    }
    let mut all: Vec<&dyn ChainStore> = vec![chain];
    all.extend(copies.iter().map(|c| c as &dyn ChainStore));
    let pending: Vec<_> = pending_sends(&all)?
        .into_iter()
        .filter(|p| p.sent_by.chain.as_str() == name)
        .collect();
    for p in pending {
        let to = p.to.to_string();
        let d = Delivery {
            from: p.sent_by.chain.clone(),
            payload: p.payload,
            sent_by: p.sent_by,
        };
        match transport.deliver_nth(&to, d, p.nth).await {
            Ok(()) => tracing::info!(actor = %name, %to, "delivered a message left undelivered"),
            Err(e) => {
                tracing::warn!(actor = %name, %to, "a message it sent is still undelivered: {e}")
            }
        }
    }
    Ok(())
}

/// Runs the placement: every third of the lease, renews this host's shards and takes free
/// ones; a second task starts and stops the actors that follow them, so a slow start (a
/// component to compile, a long replica to read) never delays a renewal.
pub(crate) async fn place(host: Weak<Host>, state: Arc<ClusterState>) {
    let every = state.lease / 3;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(follow(host.clone(), Arc::clone(&state), rx));
    loop {
        if host.upgrade().is_none_or(|h| h.is_stopping()) {
            return;
        }
        let changes = state.placement.lock().await.tick().await;
        match changes {
            Ok(changes) => {
                if tx.send(changes).is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!("placement: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Applies what each round of placement changed, in order.
async fn follow(
    host: Weak<Host>,
    state: Arc<ClusterState>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<Change>>,
) {
    while let Some(mut changes) = rx.recv().await {
        // Rounds that piled up while this one was busy are applied together.
        while let Ok(more) = rx.try_recv() {
            changes.extend(more);
        }
        let Some(h) = host.upgrade() else { return };
        if h.is_stopping() {
            return;
        }
        h.place_once(&state, changes).await;
    }
}

impl Host {
    /// Applies one round of placement (see [`place`]).
    async fn place_once(&self, state: &Arc<ClusterState>, changes: Vec<Change>) {
        for change in &changes {
            match *change {
                Change::Lost(shard) => {
                    tracing::warn!(shard, "lost the shard: stopping its actors");
                    self.drop_shard(state, shard, false).await;
                }
                Change::Handoff(shard) => {
                    tracing::info!(shard, "handing the shard over");
                    self.drop_shard(state, shard, true).await;
                    if let Err(e) = state.placement.lock().await.release(shard).await {
                        tracing::warn!(shard, "releasing: {e}");
                    }
                }
                Change::Gained(shard) => tracing::info!(shard, "took the shard"),
            }
        }
        if let Err(e) = state.refresh().await {
            tracing::warn!("reading the catalog: {e}");
            return;
        }
        let owned = state.placement.lock().await.owned();
        // Placed actors that stopped (fenced, or their replication failed) are dropped, to
        // be taken over again while this host owns their shard; those whose shard it no
        // longer owns are stopped (a round whose changes were lost says so only here).
        let gone = self
            .take_placed(|n, h| {
                !matches!(
                    h.status(),
                    theater_core::ActorStatus::Running
                        | theater_core::ActorStatus::Restarting { .. }
                ) || !owned.contains(&shard_of(n, state.shards))
            })
            .await;
        for (name, handle) in gone {
            let _ = handle.stop().await;
            tracing::info!(actor = %name, "no longer runs here");
        }
        let running: Vec<String> = self.actors.lock().await.keys().cloned().collect();
        for (name, listing, _) in state.placed() {
            if listing.pinned.is_some()
                || !owned.contains(&shard_of(&name, state.shards))
                || running.contains(&name)
            {
                continue;
            }
            if let Err(e) = self.take_over(state, &name, &listing).await {
                tracing::warn!(actor = %name, "not started here: {e:#}");
            }
        }
    }

    /// Takes the placed actors `which` picks out of the host's table and registry (the
    /// caller stops them).
    async fn take_placed(
        &self,
        which: impl Fn(&str, &ActorHandle) -> bool,
    ) -> Vec<(String, ActorHandle)> {
        let taken: Vec<(String, ActorHandle)> = {
            let mut actors = self.actors.lock().await;
            let names: Vec<String> = actors
                .iter()
                .filter(|(n, a)| matches!(a.origin, Origin::Placed) && which(n, &a.handle))
                .map(|(n, _)| n.clone())
                .collect();
            names
                .into_iter()
                .filter_map(|n| actors.remove(&n).map(|a| (n, a.handle)))
                .collect()
        };
        for (_, handle) in &taken {
            self.registry.unregister(handle.id());
        }
        taken
    }

    /// Stops the actors of `shard` running here: passivated (committed, snapshot
    /// replicated) when handing over, stopped at once when the shard is lost.
    async fn drop_shard(&self, state: &ClusterState, shard: u32, graceful: bool) {
        let taken = self
            .take_placed(|n, _| shard_of(n, state.shards) == shard)
            .await;
        for (name, handle) in taken {
            let stopped = if graceful {
                handle.passivate().await
            } else {
                handle.stop().await
            };
            if let Err(e) = stopped {
                tracing::debug!(actor = %name, "stopped: {e}");
            }
        }
    }

    /// Starts the listed actor `name` here (this host owns its shard): its chain brought up
    /// to the replica first, and the messages it sent that their receivers never recorded
    /// delivered before it takes any input.
    async fn take_over(
        &self,
        state: &Arc<ClusterState>,
        name: &str,
        listing: &Listing,
    ) -> anyhow::Result<()> {
        let m = Manifest::load(&listing.manifest)?;
        self.capabilities().check(&m)?;
        let m = if m.name.as_str() != name || listing.init.is_some() {
            m.instance(name, listing.init.clone())
                .map_err(anyhow::Error::msg)?
        } else {
            m
        };
        let started = Instant::now();
        let component = state
            .components
            .lock()
            .ok()
            .and_then(|c| c.get(&listing.manifest).cloned());
        // Only while this host still owns the shard: a seal by a host that lost it would
        // fence the rightful owner.
        if !state
            .placement
            .lock()
            .await
            .owns(shard_of(name, state.shards))
        {
            return Ok(());
        }
        self.restore_chain(state, name)?;
        self.start_actor(m, component, Origin::Placed, Vec::new())
            .await?;
        self.spawn_redelivery(name);
        tracing::info!(actor = %name, took = ?started.elapsed(), "resumed here");
        Ok(())
    }

    /// Brings the local chain of `name` up to its replica; a local chain with entries the
    /// replica lacks (written here before another host took the actor over, never
    /// acknowledged) is set aside under `diverged/`.
    pub(crate) fn restore_chain(&self, state: &ClusterState, name: &str) -> anyhow::Result<()> {
        let dir = self.chain_dir(name);
        let open = || {
            FileStore::open_or_create(
                &dir,
                ChainId::new(name)?,
                theater_chain::Durability::EveryEntry,
            )
            .with_context(|| format!("opening the chain of {name:?}"))
        };
        // No copy here: the replica's snapshot and what follows it are enough.
        let fresh = || -> anyhow::Result<bool> {
            let id = ChainId::new(name)?;
            let durability = theater_chain::Durability::EveryEntry;
            Ok(state.cluster.restore_at(&dir, id, durability)?.is_some())
        };
        if !dir.exists() && fresh()? {
            return Ok(());
        }
        let mut store = open()?;
        match state.cluster.restore(&mut store) {
            Ok(_) => Ok(()),
            Err(ClusterError::Diverged { seq, .. }) => {
                drop(store);
                let aside = self.data_dir.join("diverged").join(format!(
                    "{name}.{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0)
                ));
                std::fs::create_dir_all(aside.parent().expect("has a parent"))?;
                std::fs::rename(&dir, &aside)?;
                tracing::warn!(actor = %name, seq, aside = %aside.display(),
                    "the local chain has entries the cluster never acknowledged: set aside");
                if fresh()? {
                    return Ok(());
                }
                let mut store = open()?;
                state.cluster.restore(&mut store)?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Delivers, in the background, the messages `name`'s chain sent that its receivers'
    /// replicas do not record (its previous host, or this one before a restart, stopped
    /// between committing and delivering them). Receivers drop what they already have, so
    /// this may run beside the actor's new messages.
    pub(crate) fn spawn_redelivery(&self, name: &str) {
        let (Some(state), Some(transport)) = (self.cluster_state(), self.cluster_transport())
        else {
            return;
        };
        let (dir, name) = (self.chain_dir(name), name.to_string());
        tokio::spawn(async move {
            if let Err(e) = redeliver_sent(&state, &transport, &dir, &name).await {
                tracing::warn!(actor = %name, "redelivery: {e:#}");
            }
        });
    }

    /// In cluster mode, what starting `name` adds: the chain wrapped to replicate, and its
    /// table of received messages.
    pub(crate) fn cluster_chain(
        &self,
        state: &ClusterState,
        name: &str,
        store: FileStore,
    ) -> anyhow::Result<Box<dyn ChainStore>> {
        let table = received_by(&store);
        let replicated = state
            .cluster
            .replicate(Box::new(store))
            .with_context(|| format!("replicating the chain of {name:?}"))?;
        if let Ok(mut r) = state.receivers.lock() {
            r.insert(name.to_string(), Arc::new(tokio::sync::Mutex::new(table)));
        }
        Ok(Box::new(replicated))
    }

    /// In cluster mode, takes messages and requests to `name` from other hosts.
    pub(crate) fn serve_remote(&self, name: &str, handle: &ActorHandle) {
        if let Some(state) = self.cluster_state() {
            tokio::spawn(serve_actor(state, name.to_string(), handle.clone()));
        }
    }

    /// Lists the manifests' actors in the cluster's catalog: the pinned ones as this host's.
    pub(crate) async fn list_in_catalog(
        &self,
        state: &ClusterState,
        manifests: &[(PathBuf, bool, String)],
    ) -> anyhow::Result<()> {
        for (path, pin, name) in manifests {
            let path = &std::fs::canonicalize(path)
                .with_context(|| format!("resolving {}", path.display()))?;
            if !pin {
                let m = Manifest::load(path)?;
                let component = self
                    .wasm()
                    .load_file(&m.component)
                    .with_context(|| format!("loading the actor {name:?}"))?;
                if let Ok(mut c) = state.components.lock() {
                    c.insert(path.clone(), component);
                }
            }
            if let Some(other) = state.catalog.get(name).await?.and_then(|l| l.pinned)
                && other != state.host()
            {
                anyhow::bail!(
                    "{name:?} is pinned to host {other:?} (its grants are host-local, so its chain is that host's): \
                     give its manifest to one host only, or `theater stop {name}` there first"
                );
            }
            let listing = Listing {
                manifest: path.clone(),
                init: None,
                pinned: pin.then(|| state.host().to_string()),
            };
            state.catalog.put(name, &listing).await?;
        }
        state.refresh().await?;
        Ok(())
    }

    /// Forwards a request from the management API to `name` on another host.
    pub(crate) async fn ask_remote(&self, name: &str, payload: Value) -> Option<Value> {
        let transport = self.cluster_transport()?;
        self.cluster_state()?.listing(name)?;
        let wait = tokio::time::timeout(Duration::from_secs(60), transport.ask(name, payload));
        Some(match wait.await {
            Ok(Ok(a)) => json!({"reply": a.reply, "seq": a.answered_by.seq,
                                "hash": a.answered_by.hash.to_string(), "chain": a.answered_by.chain}),
            Ok(Err(e)) => json!({"error": e.message}),
            Err(_) => json!({"error": format!("no reply from {name:?} within 60 s")}),
        })
    }

    /// Takes `name` off the cluster's catalog (`theater stop` of a placed actor).
    pub(crate) async fn unlist(&self, name: &str) -> anyhow::Result<()> {
        if let Some(state) = self.cluster_state() {
            state.catalog.remove(name).await?;
            if let Ok(mut k) = state.known.write() {
                k.remove(name);
            }
        }
        Ok(())
    }

    /// Leaves the cluster on a clean shutdown: every shard released, so the other hosts
    /// take them at once.
    pub(crate) async fn leave_cluster(&self) {
        if let Some(state) = self.cluster_state() {
            let mut placement = state.placement.lock().await;
            if let Err(e) = placement.leave().await {
                tracing::warn!("leaving the cluster: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_on_postgresql_may_move_one_on_sqlite_may_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("shop.wasm"), b"").unwrap();
        let m = |db: &str| {
            let text = format!("name = \"shop\"\ncomponent = \"shop.wasm\"\n{db}");
            Manifest::parse(&text, &dir.path().join("shop.toml")).unwrap()
        };
        assert!(!pinned(&m("")));
        assert!(pinned(&m("[interfaces.db]\n")));
        assert!(pinned(&m("[interfaces.db]\nfile = \"shop.sqlite\"\n")));
        assert!(!pinned(&m(
            "[interfaces.db]\nurl = \"postgres://theater@10.0.0.5/shop\"\n"
        )));
        assert!(!pinned(&m("[interfaces.db]\nconnection = \"main\"\n")));
    }
}
