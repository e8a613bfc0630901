//! WebSocket: an upgrade request is an ordinary recorded HTTP request that the actor accepts
//! by answering 101; then every message is a recorded [`ActorInput::WebSocketMessage`], the
//! actor's [`WebSocketReply`] says what to send (on this connection or another of its own),
//! and a closed connection is a recorded [`ActorInput::WebSocketClose`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use theater_chain::ChainId;
use theater_core::{ActorHandle, ActorInput, ActorOutput, WebSocketMessage, WebSocketReply};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::HttpConfig;

/// The request header that tells the actor which connection an upgrade would open.
pub const CONN_HEADER: &str = "theater-ws-conn";

/// The open WebSocket connections of a server: id → (owning actor, outgoing queue).
#[derive(Default)]
pub(crate) struct Sockets {
    open: Mutex<HashMap<String, (ChainId, mpsc::UnboundedSender<Message>)>>,
    prefix: String,
    next: std::sync::atomic::AtomicU64,
}

impl Sockets {
    pub(crate) fn new() -> Self {
        // A random prefix per server: ids stay unique across restarts, so an actor's state
        // naming connections of an earlier run never mixes them up with new ones.
        let mut seed = [0u8; 4];
        let _ = getrandom::fill(&mut seed);
        Sockets {
            prefix: format!("ws-{:08x}", u32::from_le_bytes(seed)),
            ..Sockets::default()
        }
    }

    pub(crate) fn new_id(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        format!("{}-{n}", self.prefix)
    }

    fn insert(&self, id: &str, actor: ChainId, tx: mpsc::UnboundedSender<Message>) {
        if let Ok(mut open) = self.open.lock() {
            open.insert(id.to_string(), (actor, tx));
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(id);
        }
    }

    /// Queues `message` on connection `to` if it is open and belongs to `actor`.
    fn send(&self, actor: &ChainId, to: &str, message: Message) -> bool {
        let Ok(open) = self.open.lock() else {
            return false;
        };
        match open.get(to) {
            Some((owner, tx)) if owner == actor => tx.send(message).is_ok(),
            _ => false,
        }
    }
}

/// Whether `headers` (of a GET) ask for a WebSocket upgrade we can do: returns the
/// `Sec-WebSocket-Accept` value to answer with.
pub(crate) fn upgrade_key(method: &http::Method, headers: &HeaderMap) -> Option<String> {
    let has = |name: &str, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if method != http::Method::GET
        || !has("upgrade", "websocket")
        || !has("connection", "upgrade")
        || !has("sec-websocket-version", "13")
    {
        return None;
    }
    let key = headers.get("sec-websocket-key")?;
    Some(tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// Runs one accepted connection until either side closes it or the server shuts down.
pub(crate) async fn run(
    upgrade: OnUpgrade,
    conn: String,
    actor: ActorHandle,
    sockets: Arc<Sockets>,
    config: HttpConfig,
    shutdown: theater_core::Shutdown,
) {
    let io = match upgrade.await {
        Ok(io) => TokioIo::new(io),
        Err(e) => {
            tracing::debug!(%conn, "WebSocket upgrade failed: {e}");
            let _ = actor.call(ActorInput::WebSocketClose { conn }).await;
            return;
        }
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_body_bytes))
        .max_frame_size(Some(config.max_body_bytes));
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config)).await;
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    sockets.insert(&conn, actor.id().clone(), tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => {
                let _ = tx.send(Message::Close(None));
                break;
            }
            m = stream.next() => m,
        };
        let message = match next {
            Some(Ok(Message::Text(t))) => WebSocketMessage {
                conn: conn.clone(),
                text: Some(t.to_string()),
                binary: Vec::new(),
            },
            Some(Ok(Message::Binary(b))) => WebSocketMessage {
                conn: conn.clone(),
                text: None,
                binary: b.to_vec(),
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | None => break,
            Some(Err(e)) => {
                tracing::debug!(%conn, "WebSocket read failed: {e}");
                break;
            }
        };
        let call = actor.call(ActorInput::WebSocketMessage(message));
        match tokio::time::timeout(config.request_timeout, call).await {
            Ok(Ok(outcome)) => dispatch(&sockets, actor.id(), &conn, &tx, outcome.output),
            Ok(Err(e)) => tracing::warn!(%conn, "the actor failed a WebSocket message: {e}"),
            Err(_) => tracing::warn!(%conn, "the actor did not answer a WebSocket message in time"),
        }
    }
    sockets.remove(&conn);
    let closed = actor
        .call(ActorInput::WebSocketClose { conn: conn.clone() })
        .await;
    if let Ok(outcome) = closed {
        dispatch(&sockets, actor.id(), &conn, &tx, outcome.output);
    }
    let _ = tx.send(Message::Close(None));
    drop(tx);
    let _ = writer.await;
}

/// Sends what the actor answered.
fn dispatch(
    sockets: &Sockets,
    actor: &ChainId,
    conn: &str,
    own: &mpsc::UnboundedSender<Message>,
    output: ActorOutput,
) {
    let reply: WebSocketReply = match output {
        ActorOutput::WebSocket(reply) => reply,
        ActorOutput::None => return,
        other => {
            tracing::warn!(
                %conn,
                "the actor answered {} to a WebSocket message; nothing sent",
                other.to_payload().json["type"]
            );
            return;
        }
    };
    for s in reply.send {
        let message = Message::text(s.text);
        match s.to.as_deref() {
            None | Some("") => {
                let _ = own.send(message);
            }
            Some(to) if to == conn => {
                let _ = own.send(message);
            }
            Some(to) => {
                if !sockets.send(actor, to, message) {
                    tracing::debug!(%to, "no such open WebSocket connection of this actor");
                }
            }
        }
    }
    if !reply.binary.is_empty() {
        let _ = own.send(Message::binary(reply.binary));
    }
    if reply.close {
        let _ = own.send(Message::Close(None));
    }
}
