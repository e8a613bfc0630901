//! Spawning actors, their mailbox loop, and supervision: restart from the chain after a
//! crash, with limits and backoff, and a reported give-up.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use theater_chain::{ChainId, ChainRef, ChainStore};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::handle::{Activity, Command, Reply};
use crate::{
    Actor, ActorError, ActorEvent, ActorHandle, ActorRuntime, ActorStatus, CallError, Effect,
    Outcome, RuntimeConfig, RuntimeError,
};

/// How a crashed actor is restarted: at most `max_restarts` within `within`, waiting
/// `initial_backoff`, doubling up to `max_backoff`, between attempts. Past the limit the
/// supervisor gives up: the actor is stopped and [`ActorEvent::GaveUp`] says why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestartPolicy {
    /// Restarts allowed within the window.
    pub max_restarts: u32,
    /// The window.
    pub within: Duration,
    /// Wait before the first restart.
    pub initial_backoff: Duration,
    /// Longest wait between restarts.
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            within: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RestartPolicy {
    /// Never restart: the first crash stops the actor.
    pub fn never() -> Self {
        RestartPolicy {
            max_restarts: 0,
            ..Self::default()
        }
    }

    /// Allows `max_restarts` within `within`.
    pub fn limit(mut self, max_restarts: u32, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }

    /// Sets the backoff range.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// How a spawned actor runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ActorConfig {
    /// Mailbox capacity: senders wait (or `try_tell` fails) when it is full.
    pub mailbox: usize,
    /// Most inputs handled before one commit (with group commit, one fsync serves them all).
    pub max_batch: usize,
    /// Events kept for slow subscribers before they are told they lagged.
    pub events: usize,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Snapshots and pruning.
    pub runtime: RuntimeConfig,
}

impl Default for ActorConfig {
    fn default() -> Self {
        ActorConfig {
            mailbox: 256,
            max_batch: 64,
            events: 64,
            restart: RestartPolicy::default(),
            runtime: RuntimeConfig::default(),
        }
    }
}

impl ActorConfig {
    /// Sets the mailbox capacity.
    pub fn mailbox(mut self, capacity: usize) -> Self {
        self.mailbox = capacity;
        self
    }
    /// Sets the most inputs per commit.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }
    /// Sets how many events a slow subscriber may fall behind.
    pub fn events(mut self, n: usize) -> Self {
        self.events = n;
        self
    }
    /// Sets the restart policy.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = policy;
        self
    }
    /// Sets the runtime configuration.
    pub fn runtime(mut self, runtime: RuntimeConfig) -> Self {
        self.runtime = runtime;
        self
    }
}

/// Makes fresh actors: at spawn, and after every crash.
#[async_trait]
pub trait ActorFactory: Send + Sync + 'static {
    /// The actor type made.
    type Actor: Actor;
    /// A fresh actor (its state comes from the chain, not from here).
    async fn create(&self) -> Result<Self::Actor, ActorError>;
}

#[async_trait]
impl<A: Actor, F: Fn() -> A + Send + Sync + 'static> ActorFactory for F {
    type Actor = A;
    async fn create(&self) -> Result<A, ActorError> {
        Ok(self())
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// Starts an actor on `chain` (running `init` on an empty chain, or resuming a stored one)
/// and returns its handle. Must be called within a tokio runtime.
pub async fn spawn<F: ActorFactory>(
    factory: F,
    chain: Box<dyn ChainStore>,
    mut config: ActorConfig,
) -> Result<ActorHandle, RuntimeError> {
    let id = chain.id().clone();
    // Always counted: a few relaxed atomic adds per input (see the bench's metrics row).
    let metrics = Arc::clone(config.runtime.metrics.get_or_insert_with(Default::default));
    let actor = factory.create().await.map_err(RuntimeError::Init)?;
    let runtime = AssertUnwindSafe(ActorRuntime::start(actor, chain, config.runtime.clone()))
        .catch_unwind()
        .await
        .map_err(|p| RuntimeError::Init(ActorError::Fatal(panic_message(&*p))))??;
    let (tx, rx) = mpsc::channel(config.mailbox.max(1));
    let (events, _) = broadcast::channel(config.events.max(1));
    let (status_tx, status_rx) = watch::channel(ActorStatus::Running);
    let mut outbound = Outbound::default();
    let mut runtime = runtime;
    for effect in runtime.take_marked_effects() {
        // The init entry is already durable (start syncs it).
        outbound.send(effect);
    }
    let activity = Activity::new();
    let supervisor = Supervisor {
        in_flight: None,
        activity: activity.clone(),
        passivating: None,
        outbound,
        id: id.clone(),
        runtime,
        rx,
        backlog: VecDeque::new(),
        factory,
        config,
        events: events.clone(),
        status: status_tx,
        restarts: VecDeque::new(),
    };
    tokio::spawn(supervisor.run());
    Ok(ActorHandle {
        id,
        tx,
        events,
        status: status_rx,
        activity,
        metrics,
    })
}

/// How the actor's loop ends after the runtime failed with `e`, and why (as callers are
/// told).
fn exit_for(e: RuntimeError) -> (Exit, String) {
    let reason = e.to_string();
    let exit = match e {
        RuntimeError::Crashed(_) => Exit::Crashed(reason.clone()),
        // A restart applies the entry's writes again.
        RuntimeError::Apply { .. } => Exit::Crashed(reason.clone()),
        // The chain refused the entry: restarting on it cannot help.
        _ => Exit::ChainFailed(reason.clone()),
    };
    (exit, reason)
}

enum Exit {
    Stop(Option<tokio::sync::oneshot::Sender<()>>),
    Crashed(String),
    /// The chain cannot be written: a restart on it cannot help.
    ChainFailed(String),
}

/// Runs committed entries' effects in order, apart from the actor's loop: a delivery waiting
/// for room in another actor's mailbox waits here, and the actor keeps serving its own
/// mailbox. The queue is unbounded on purpose: if the loop waited for room in it, two actors
/// sending each other bursts would each wait on the other's full mailbox, for ever. The
/// actor's own bounded mailbox is what pushes back on whoever drives it.
///
/// Quick effects (a message into a mailbox with room) finish the first time they are polled.
/// So when nothing is queued ahead of one, the loop polls it once itself, and only if it has
/// to wait does it go to the task: a message costs no hop through another task.
/// The task is started at the first such effect: most actors never send anything, and a task
/// and a channel each cost a spawn.
#[derive(Default)]
struct Outbound {
    tx: Option<mpsc::UnboundedSender<futures_util::future::BoxFuture<'static, ()>>>,
    /// Effects handed to the task and not finished yet: while there are any, a new effect
    /// queues behind them (effects run in order).
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

impl Outbound {
    fn send(&mut self, (at, effect, quick): (ChainRef, Effect, bool)) {
        use std::sync::atomic::Ordering;
        use std::task::{Context, Poll, Waker};
        let mut effect = effect(at);
        // Only an effect marked quick (`after_commit_quick`): others may block the thread
        // before they first wait (a child's start compiles and syncs files).
        // Acquire: an effect the task finished (a message it delivered) comes before this one.
        if quick && self.queued.load(Ordering::Acquire) == 0 {
            // A noop waker is enough: an effect still pending moves to the task, whose poll
            // registers the waker that counts.
            let mut cx = Context::from_waker(Waker::noop());
            match std::panic::catch_unwind(AssertUnwindSafe(|| effect.as_mut().poll(&mut cx))) {
                Ok(Poll::Ready(())) => return,
                Ok(Poll::Pending) => {}
                Err(p) => {
                    tracing::error!("an entry's effect panicked: {}", panic_message(&*p));
                    return;
                }
            }
        }
        let queued = &self.queued;
        let tx = self.tx.get_or_insert_with(|| {
            let (tx, mut rx) =
                mpsc::unbounded_channel::<futures_util::future::BoxFuture<'static, ()>>();
            let queued = Arc::clone(queued);
            tokio::spawn(async move {
                while let Some(effect) = rx.recv().await {
                    if let Err(p) = AssertUnwindSafe(effect).catch_unwind().await {
                        tracing::error!("an entry's effect panicked: {}", panic_message(&*p));
                    }
                    queued.fetch_sub(1, Ordering::Release);
                }
            });
            tx
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        let _ = tx.send(effect);
    }
}

/// What a batch owes the world once its commit lands.
struct Batch {
    replies: Vec<(Reply, Result<Outcome, CallError>)>,
    state_replies: Vec<StateReply>,
    upgrade_replies: Vec<UpgradeReply>,
    events: Vec<ActorEvent>,
    effects: Vec<(ChainRef, Effect, bool)>,
}

type UpgradeReply = (
    tokio::sync::oneshot::Sender<Result<crate::Upgraded, CallError>>,
    Result<crate::Upgraded, CallError>,
);

type StateReply = (
    tokio::sync::oneshot::Sender<
        Result<(serde_json::Value, Option<theater_chain::Head>), CallError>,
    >,
    Result<(serde_json::Value, Option<theater_chain::Head>), CallError>,
);

/// A batch whose fsync runs on the blocking pool.
struct InFlight {
    wait: tokio::task::JoinHandle<std::io::Result<()>>,
    started: std::time::Instant,
    batch: Batch,
}

struct Supervisor<F: ActorFactory> {
    /// The previous batch, while its commit's fsync runs.
    in_flight: Option<InFlight>,
    activity: Activity,
    /// Set by a passivation: the mailbox is closed, and once it is drained the actor
    /// snapshots and stops, answering this.
    passivating: Option<tokio::sync::oneshot::Sender<()>>,
    outbound: Outbound,
    id: ChainId,
    runtime: ActorRuntime<F::Actor>,
    rx: mpsc::Receiver<Command>,
    /// Commands taken from the mailbox but not handled when the actor crashed.
    backlog: VecDeque<Command>,
    factory: F,
    config: ActorConfig,
    events: broadcast::Sender<ActorEvent>,
    status: watch::Sender<ActorStatus>,
    restarts: VecDeque<Instant>,
}

impl<F: ActorFactory> Supervisor<F> {
    async fn run(mut self) {
        loop {
            match self.serve().await {
                Exit::Stop(reply) => {
                    self.close(None);
                    let _ = self.status.send(ActorStatus::Stopped);
                    let _ = self.events.send(ActorEvent::Stopped);
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    return;
                }
                Exit::Crashed(reason) => {
                    if !self.restart(reason).await {
                        return;
                    }
                }
                Exit::ChainFailed(reason) => {
                    self.give_up(reason);
                    return;
                }
            }
        }
    }

    async fn next(&mut self) -> Option<Command> {
        match self.backlog.pop_front() {
            Some(c) => Some(c),
            None => self.rx.recv().await,
        }
    }

    fn try_next(&mut self) -> Option<Command> {
        self.backlog.pop_front().or_else(|| self.rx.try_recv().ok())
    }

    /// Handles commands a batch at a time: every input of the batch is recorded, then one
    /// commit makes them durable, then the callers get their answers and observers their events.
    async fn serve(&mut self) -> Exit {
        let max_batch = self.config.max_batch.max(1);
        loop {
            // While the previous batch's fsync runs, the next batch is taken and handled.
            let first = match self.in_flight.take() {
                None => self.next().await,
                Some(mut flight) => {
                    tokio::select! {
                        biased;
                        done = &mut flight.wait => {
                            if let Err(exit) = self.land(flight.started, done, flight.batch) {
                                return exit;
                            }
                            continue;
                        }
                        cmd = self.next() => {
                            self.in_flight = Some(flight);
                            cmd
                        }
                    }
                }
            };
            let Some(first) = first else {
                if let Some(flight) = self.in_flight.take() {
                    let done = flight.wait.await;
                    if let Err(exit) = self.land(flight.started, done, flight.batch) {
                        return exit;
                    }
                }
                if let Some(reply) = self.passivating.take() {
                    // Everything is committed; a failed snapshot is only a longer replay.
                    if let Err(e) = self.runtime.snapshot_at_head() {
                        tracing::warn!(actor = %self.id, "passivation snapshot failed: {e}");
                    }
                    return Exit::Stop(Some(reply));
                }
                return Exit::Stop(None);
            };
            let mut replies: Vec<(Reply, Result<Outcome, CallError>)> = Vec::new();
            let mut state_replies = Vec::new();
            let mut upgrade_replies = Vec::new();
            let mut events = Vec::new();
            let mut exit = None;
            let mut cmd = Some(first);
            let mut handled = 0;
            while let Some(c) = cmd.take() {
                match c {
                    // The caller stopped waiting (a request that timed out, a cancelled
                    // call): the input was never handled, so it is not recorded at all.
                    Command::Input {
                        reply: Some(reply), ..
                    } if reply.is_closed() => {
                        tracing::debug!(actor = %self.id, "skipping an input whose caller gave up");
                    }
                    Command::Input {
                        input,
                        refs,
                        reply,
                        caller,
                    } => {
                        if handled == 0 {
                            self.activity.busy(true);
                        }
                        handled += 1;
                        // One span per input, a child of the caller's (an HTTP request's,
                        // which carries its traceparent): what traces export.
                        let span = tracing::info_span!(
                            target: "theater::input",
                            parent: &caller,
                            "input",
                            actor = %self.id,
                            kind = input.kind(),
                            seq = tracing::field::Empty,
                            failed = tracing::field::Empty,
                        );
                        let result = AssertUnwindSafe(self.runtime.handle(input, refs))
                            .catch_unwind()
                            .instrument(span.clone())
                            .await;
                        let answer = match result {
                            Ok(Ok(h)) => {
                                let failed = h.result.as_ref().err().map(ToString::to_string);
                                span.record("seq", h.seq);
                                span.record("failed", failed.is_some());
                                events.push(ActorEvent::Entry {
                                    seq: h.seq,
                                    hash: h.hash,
                                    failed,
                                });
                                h.result
                                    .map(|output| Outcome {
                                        seq: h.seq,
                                        hash: h.hash,
                                        output,
                                    })
                                    .map_err(|e| CallError::Failed {
                                        actor: self.id.clone(),
                                        seq: h.seq,
                                        kind: e.kind(),
                                        error: e.to_string(),
                                    })
                            }
                            Ok(Err(e)) => {
                                let (why, reason) = exit_for(e);
                                exit = Some(why);
                                Err(self.crashed(reason))
                            }
                            Err(panic) => {
                                let reason = panic_message(&*panic);
                                exit = Some(Exit::Crashed(reason.clone()));
                                Err(self.crashed(reason))
                            }
                        };
                        if let Some(reply) = reply {
                            replies.push((reply, answer));
                        }
                    }
                    Command::State { reply } => {
                        let head = self.runtime.chain().head();
                        state_replies.push((reply, Ok((self.runtime.state().clone(), head))));
                    }
                    // Passivation: take nothing new, but handle everything already taken
                    // (a message in the mailbox was acknowledged to its sender), then stop.
                    Command::Stop {
                        reply,
                        snapshot: true,
                    } => {
                        self.rx.close();
                        self.passivating = Some(reply);
                    }
                    Command::Stop { reply, .. } => exit = Some(Exit::Stop(Some(reply))),
                    Command::Upgrade { code, reply } => {
                        let result = AssertUnwindSafe(self.runtime.upgrade(code))
                            .catch_unwind()
                            .await;
                        let answer = match result {
                            Ok(Ok(upgraded)) => {
                                if let crate::Upgraded::To { seq, hash, .. } = &upgraded {
                                    events.push(ActorEvent::Entry {
                                        seq: *seq,
                                        hash: *hash,
                                        failed: None,
                                    });
                                }
                                Ok(upgraded)
                            }
                            Ok(Err(RuntimeError::UpgradeRefused(reason))) => {
                                Err(CallError::Refused {
                                    actor: self.id.clone(),
                                    reason: format!("upgrade refused: {reason}"),
                                })
                            }
                            Ok(Err(e)) => {
                                let (why, reason) = exit_for(e);
                                exit = Some(why);
                                Err(self.crashed(reason))
                            }
                            Err(panic) => {
                                let reason = panic_message(&*panic);
                                exit = Some(Exit::Crashed(reason.clone()));
                                Err(self.crashed(reason))
                            }
                        };
                        upgrade_replies.push((reply, answer));
                    }
                }
                if exit.is_none() && handled < max_batch {
                    cmd = self.try_next();
                }
            }
            // Reading the state (`theater ps`) is not activity: only inputs keep it active.
            if handled > 0 {
                self.activity.busy(false);
            }
            let batch = Batch {
                replies,
                state_replies,
                upgrade_replies,
                events,
                effects: Vec::new(),
            };
            // One commit waits at a time, in order: the one before this batch's lands first.
            if let Some(flight) = self.in_flight.take() {
                let done = flight.wait.await;
                if let Err(failed) = self.land(flight.started, done, flight.batch) {
                    // Nothing after a failed commit is durable either.
                    let reason = match &failed {
                        Exit::ChainFailed(r) | Exit::Crashed(r) => r.clone(),
                        Exit::Stop(_) => "commit failed".into(),
                    };
                    self.release(batch, Err(reason.clone()));
                    return match exit {
                        Some(Exit::Stop(reply)) => Exit::Stop(reply),
                        _ => Exit::ChainFailed(reason),
                    };
                }
            }
            let mut batch = batch;
            match self.runtime.start_commit() {
                Ok(Some(started)) if exit.is_none() => {
                    // The fsync runs on the blocking pool; this loop takes the next batch.
                    batch.effects = self.runtime.take_marked_effects();
                    self.in_flight = Some(InFlight {
                        wait: tokio::task::spawn_blocking(started.wait),
                        started: started.started,
                        batch,
                    });
                }
                Ok(Some(started)) => {
                    // Leaving: wait here (not holding the worker's other tasks up).
                    let done = tokio::task::spawn_blocking(started.wait)
                        .await
                        .unwrap_or_else(|e| {
                            Err(std::io::Error::other(format!("the fsync task failed: {e}")))
                        });
                    let committed = self.runtime.finish_commit(started.started, done);
                    batch.effects = self.runtime.take_marked_effects();
                    let exit = exit.unwrap_or(Exit::Stop(None));
                    return match committed {
                        Ok(()) => {
                            self.release(batch, Ok(()));
                            exit
                        }
                        Err(e) => self.failed_commit(batch, e, exit),
                    };
                }
                Ok(None) => {
                    batch.effects = self.runtime.take_marked_effects();
                    self.release(batch, Ok(()));
                }
                Err(e) => {
                    batch.effects = self.runtime.take_marked_effects();
                    return self.failed_commit(
                        batch,
                        e,
                        exit.unwrap_or(Exit::ChainFailed(String::new())),
                    );
                }
            }
            if let Some(exit) = exit {
                return exit;
            }
        }
    }

    /// Ends a batch whose commit failed: no caller is told it is durable; a stop asked for
    /// is still a stop, anything else is a chain failure.
    fn failed_commit(&mut self, batch: Batch, e: RuntimeError, exit: Exit) -> Exit {
        let reason = format!("commit failed: {e}");
        self.release(batch, Err(reason.clone()));
        match exit {
            Exit::Stop(reply) => Exit::Stop(reply),
            _ => Exit::ChainFailed(reason),
        }
    }

    /// Ends a batch whose commit ran on the blocking pool, once it is done.
    fn land(
        &mut self,
        started: std::time::Instant,
        done: Result<std::io::Result<()>, tokio::task::JoinError>,
        batch: Batch,
    ) -> Result<(), Exit> {
        let done = done
            .unwrap_or_else(|e| Err(std::io::Error::other(format!("the fsync task failed: {e}"))));
        match self.runtime.finish_commit(started, done) {
            Ok(()) => {
                self.release(batch, Ok(()));
                Ok(())
            }
            Err(e) => Err(self.failed_commit(batch, e, Exit::ChainFailed(String::new()))),
        }
    }

    /// Answers a batch's callers, runs its effects and sends its events, once its commit
    /// went as `committed` says (on failure: nothing of it is known to be durable, so no
    /// caller is told otherwise, no state including it is shown, no effect runs).
    fn release(&mut self, mut batch: Batch, committed: Result<(), String>) {
        if let Err(reason) = &committed {
            for (_, answer) in &mut batch.replies {
                if answer.is_ok() {
                    *answer = Err(self.crashed(reason.clone()));
                }
            }
            for (_, state) in &mut batch.state_replies {
                *state = Err(self.crashed(reason.clone()));
            }
            batch.events.clear();
            batch.effects.clear();
        }
        for (reply, answer) in batch.replies {
            let _ = reply.send(answer);
        }
        for (reply, state) in batch.state_replies {
            let _ = reply.send(state);
        }
        // An upgrade made its own entry durable before answering (a later commit's
        // failure does not undo it).
        for (reply, answer) in batch.upgrade_replies {
            let _ = reply.send(answer);
        }
        for event in batch.events {
            // No subscribers is fine; a slow one lags, the actor never waits.
            let _ = self.events.send(event);
        }
        // After the answers: a quick effect runs here, and its callers need not wait for it.
        for effect in batch.effects {
            self.outbound.send(effect);
        }
    }

    fn crashed(&self, reason: String) -> CallError {
        CallError::Crashed {
            actor: self.id.clone(),
            reason,
        }
    }

    /// Restarts after a crash within the policy; returns false after giving up.
    async fn restart(&mut self, mut reason: String) -> bool {
        let policy = self.config.restart.clone();
        loop {
            let now = Instant::now();
            while self
                .restarts
                .front()
                .is_some_and(|t| now.duration_since(*t) > policy.within)
            {
                self.restarts.pop_front();
            }
            if self.restarts.len() as u32 >= policy.max_restarts {
                self.give_up(format!(
                    "gave up after {} restarts within {:?}: {reason}",
                    self.restarts.len(),
                    policy.within
                ));
                return false;
            }
            self.restarts.push_back(now);
            let attempt = self.restarts.len() as u32;
            let delay = policy.delay(attempt);
            tracing::warn!(actor = %self.id, attempt, ?delay, %reason, "actor crashed; restarting");
            let _ = self.status.send(ActorStatus::Restarting { attempt });
            let _ = self.events.send(ActorEvent::Restarting {
                attempt,
                reason: reason.clone(),
                delay,
            });
            tokio::time::sleep(delay).await;
            match self.try_restart().await {
                Ok(()) => {
                    if let Some(m) = &self.config.runtime.metrics {
                        crate::ActorMetrics::add(&m.restarts);
                    }
                    let _ = self.status.send(ActorStatus::Running);
                    let _ = self.events.send(ActorEvent::Restarted { attempt });
                    return true;
                }
                Err(e) => reason = e,
            }
        }
    }

    /// Stops for good: refuses what is queued, and says why in the status and an event.
    fn give_up(&mut self, reason: String) {
        tracing::error!(actor = %self.id, %reason, "actor failed");
        self.close(Some(reason.clone()));
        let _ = self.status.send(ActorStatus::Failed {
            reason: reason.clone(),
        });
        let _ = self.events.send(ActorEvent::GaveUp { reason });
    }

    async fn try_restart(&mut self) -> Result<(), String> {
        let actor = self
            .factory
            .create()
            .await
            .map_err(|e| format!("creating the actor failed: {e}"))?;
        match AssertUnwindSafe(self.runtime.restart(actor))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(panic_message(&*panic)),
        }
    }

    /// Refuses everything still queued: the actor is stopping (`reason` None) or failed.
    fn close(&mut self, reason: Option<String>) {
        self.rx.close();
        let stopped = || CallError::Stopped {
            actor: self.id.clone(),
            reason: reason.clone(),
        };
        while let Some(cmd) = self.backlog.pop_front().or_else(|| self.rx.try_recv().ok()) {
            match cmd {
                Command::Input {
                    reply: Some(reply), ..
                } => {
                    let _ = reply.send(Err(stopped()));
                }
                Command::Input { reply: None, .. } | Command::State { .. } => {}
                Command::Stop { reply, .. } => {
                    let _ = reply.send(());
                }
                Command::Upgrade { reply, .. } => {
                    let _ = reply.send(Err(stopped()));
                }
            }
        }
    }
}
