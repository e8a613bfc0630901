//! [`ActorHandle`]: a cheap, cloneable way to reach a running actor through its bounded mailbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use theater_chain::{ChainId, ChainRef, Hash, Head};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::events::Subscription;
use crate::{ActorEvent, ActorInput, ActorOutput};

/// The answer to an input that was handled and recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The entry's seq.
    pub seq: u64,
    /// The entry's hash (what other chains refer to).
    pub hash: Hash,
    /// What the actor answered.
    pub output: ActorOutput,
}

/// Why a call to an actor got no [`Outcome`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The input failed; the failure is recorded at `seq` and the state is unchanged.
    #[error("actor {actor} failed input (seq {seq}): {error}")]
    Failed {
        /// The actor.
        actor: ChainId,
        /// The failed entry's seq.
        seq: u64,
        /// What kind of failure it was.
        kind: crate::FailureKind,
        /// Why it failed.
        error: String,
    },
    /// The actor crashed while handling the input; nothing was recorded, and the
    /// supervisor restarts it.
    #[error("actor {actor} crashed handling the input: {reason}")]
    Crashed {
        /// The actor.
        actor: ChainId,
        /// Why.
        reason: String,
    },
    /// The actor is stopped (or was given up on); nothing was delivered.
    #[error("actor {actor} is stopped{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Stopped {
        /// The actor.
        actor: ChainId,
        /// Why, if it did not stop normally.
        reason: Option<String>,
    },
    /// The mailbox is full (only from the `try_` methods).
    #[error("actor {actor}'s mailbox is full")]
    Full {
        /// The actor.
        actor: ChainId,
    },
    /// The actor refused what was asked of it (an upgrade); nothing changed.
    #[error("actor {actor}: {reason}")]
    Refused {
        /// The actor.
        actor: ChainId,
        /// Why.
        reason: String,
    },
}

/// An actor's lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorStatus {
    /// Handling inputs.
    Running,
    /// Crashed; being restarted from its chain.
    Restarting {
        /// Restart attempts within the policy window.
        attempt: u32,
    },
    /// Stopped normally.
    Stopped,
    /// Crashed too often; the supervisor gave up.
    Failed {
        /// Why.
        reason: String,
    },
}

pub(crate) type Reply = oneshot::Sender<Result<Outcome, CallError>>;

pub(crate) enum Command {
    Input {
        input: ActorInput,
        refs: Vec<ChainRef>,
        reply: Option<Reply>,
        /// The span the caller was in: the input's span is its child (a trace crosses).
        caller: tracing::Span,
    },
    State {
        reply: oneshot::Sender<Result<(Value, Option<Head>), CallError>>,
    },
    Stop {
        reply: oneshot::Sender<()>,
        /// Save a snapshot at the head before stopping (passivation).
        snapshot: bool,
    },
    Upgrade {
        code: Hash,
        reply: oneshot::Sender<Result<crate::Upgraded, CallError>>,
    },
}

/// The instant activity times count from (one per process).
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// When an actor last handled something, and whether it is handling inputs now, shared by
/// its handles and its loop.
#[derive(Clone, Debug, Default)]
pub(crate) struct Activity(Arc<AtomicU64>, Arc<std::sync::atomic::AtomicBool>);

impl Activity {
    pub(crate) fn new() -> Self {
        let a = Activity::default();
        a.touch();
        a
    }

    pub(crate) fn touch(&self) {
        let since = epoch().elapsed().as_millis() as u64;
        self.0.store(since, Ordering::Relaxed);
    }

    /// Marks the actor as handling inputs (`true`) or done with them.
    pub(crate) fn busy(&self, busy: bool) {
        self.1.store(busy, Ordering::Relaxed);
        if !busy {
            self.touch();
        }
    }

    fn idle(&self) -> Duration {
        if self.1.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let now = epoch().elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

/// A handle to a running actor. Clones share one mailbox; when every handle is dropped the
/// actor stops. Interfaces (messages, HTTP, timers) each hold one.
#[derive(Clone, Debug)]
pub struct ActorHandle {
    pub(crate) id: ChainId,
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<ActorEvent>,
    pub(crate) status: watch::Receiver<ActorStatus>,
    pub(crate) activity: Activity,
    pub(crate) metrics: Arc<crate::ActorMetrics>,
}

impl ActorHandle {
    /// The actor's id (its chain's id).
    pub fn id(&self) -> &ChainId {
        &self.id
    }

    /// What the actor's runtime counts (inputs, failures, latencies...).
    pub fn metrics(&self) -> &Arc<crate::ActorMetrics> {
        &self.metrics
    }

    /// Commands waiting in the actor's mailbox now.
    pub fn mailbox_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    fn stopped(&self) -> CallError {
        let reason = match &*self.status.borrow() {
            ActorStatus::Failed { reason } => Some(reason.clone()),
            _ => None,
        };
        CallError::Stopped {
            actor: self.id.clone(),
            reason,
        }
    }

    async fn enqueue(&self, cmd: Command) -> Result<(), CallError> {
        self.tx.send(cmd).await.map_err(|_| self.stopped())
    }

    /// Sends `input` and waits for it to be handled and durably recorded. Waits for mailbox
    /// space first (backpressure).
    pub async fn call(&self, input: ActorInput) -> Result<Outcome, CallError> {
        self.call_with_refs(input, Vec::new()).await
    }

    /// [`ActorHandle::call`], recording references to the entries of other chains the input
    /// came from.
    pub async fn call_with_refs(
        &self,
        input: ActorInput,
        refs: Vec<ChainRef>,
    ) -> Result<Outcome, CallError> {
        self.submit_with_refs(input, refs).await?.await
    }

    /// Queues `input` with `refs` (waiting for mailbox space) and, once it is queued, returns
    /// a future of its outcome: inputs queued one after another are handled in that order,
    /// and their outcomes awaited apart. Dropping the future before the input is handled
    /// withdraws it (it is never recorded), as with a cancelled [`ActorHandle::call`].
    pub async fn submit_with_refs(
        &self,
        input: ActorInput,
        refs: Vec<ChainRef>,
    ) -> Result<
        impl std::future::Future<Output = Result<Outcome, CallError>> + Send + 'static,
        CallError,
    > {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Command::Input {
            input,
            refs,
            reply: Some(tx),
            caller: tracing::Span::current(),
        })
        .await?;
        let handle = self.clone();
        Ok(async move { rx.await.map_err(|_| handle.stopped())? })
    }

    /// Queues `input` without waiting for it to be handled; waits only for mailbox space.
    pub async fn tell(&self, input: ActorInput) -> Result<(), CallError> {
        self.enqueue(Command::Input {
            input,
            refs: Vec::new(),
            reply: None,
            caller: tracing::Span::current(),
        })
        .await
    }

    /// [`ActorHandle::tell`], recording references to the entries of other chains the input
    /// came from.
    pub async fn tell_with_refs(
        &self,
        input: ActorInput,
        refs: Vec<ChainRef>,
    ) -> Result<(), CallError> {
        self.enqueue(Command::Input {
            input,
            refs,
            reply: None,
            caller: tracing::Span::current(),
        })
        .await
    }

    /// Queues `input` if the mailbox has room; never waits.
    pub fn try_tell(&self, input: ActorInput) -> Result<(), CallError> {
        self.tx
            .try_send(Command::Input {
                input,
                refs: Vec::new(),
                reply: None,
                caller: tracing::Span::current(),
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => CallError::Full {
                    actor: self.id.clone(),
                },
                mpsc::error::TrySendError::Closed(_) => self.stopped(),
            })
    }

    /// The current state and chain head (after every input queued before this call).
    pub async fn state(&self) -> Result<(Value, Option<Head>), CallError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Command::State { reply: tx }).await?;
        rx.await.map_err(|_| self.stopped())?
    }

    /// Runs the code `code` from the next input on, after the inputs queued before this
    /// call (see [`crate::ActorRuntime::upgrade`]): the upgrade entry is durable when this
    /// returns. A refusal ([`CallError::Refused`]) changed nothing.
    pub async fn upgrade(&self, code: Hash) -> Result<crate::Upgraded, CallError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Command::Upgrade { code, reply: tx }).await?;
        rx.await.map_err(|_| self.stopped())?
    }

    /// Stops the actor after the inputs queued before this call; returns once it has stopped
    /// with every entry durable.
    pub async fn stop(&self) -> Result<(), CallError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Command::Stop {
            reply: tx,
            snapshot: false,
        })
        .await?;
        rx.await.map_err(|_| self.stopped())
    }

    /// Passivates the actor: stops it after the inputs queued before this call, saving a
    /// snapshot at its head first (unless one is there already), so that starting it again
    /// reads the snapshot instead of replaying its history. Nothing of its chain changes:
    /// replay cannot tell a passivated-then-activated actor from one that stayed up. A
    /// snapshot that cannot be saved is only a longer replay later (logged).
    pub async fn passivate(&self) -> Result<(), CallError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Command::Stop {
            reply: tx,
            snapshot: true,
        })
        .await?;
        rx.await.map_err(|_| self.stopped())
    }

    /// How long since the actor last handled an input (or started); zero while it is
    /// handling one.
    pub fn idle_for(&self) -> Duration {
        self.activity.idle()
    }

    /// Inputs and requests waiting in the mailbox (not yet taken up).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The actor's status now.
    pub fn status(&self) -> ActorStatus {
        self.status.borrow().clone()
    }

    /// Waits until the actor is stopped or given up on, and returns that status.
    pub async fn wait_stopped(&self) -> ActorStatus {
        let mut rx = self.status.clone();
        let done = rx
            .wait_for(|s| matches!(s, ActorStatus::Stopped | ActorStatus::Failed { .. }))
            .await;
        match done {
            Ok(s) => s.clone(),
            Err(_) => ActorStatus::Stopped,
        }
    }

    /// Subscribes to the actor's events from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.events.subscribe(),
        }
    }
}
