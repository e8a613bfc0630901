//! [`ActorRuntime`]: owns an actor's state and chain, and records every transition.

use std::time::{Duration, Instant};

use serde_json::Value;
use theater_chain::state::State;
use theater_chain::{ChainError, ChainRef, ChainStore, Hash, NewEntry, Payload, Snapshot};

use crate::replay::{CODE_KEY, ReplayError, resume};
use crate::{Actor, ActorError, ActorInput, ActorOutput, Effect, HostCalls, StateChange};

/// How an [`ActorRuntime`] keeps its chain.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// Save a snapshot of the state every this many entries (`None`: never), so a restart
    /// replays at most that many entries.
    pub snapshot_every: Option<u64>,
    /// Drop the entries before each new snapshot (the chain then verifies from it).
    pub prune_on_snapshot: bool,
    /// Keep snapshots to at most about 1/n of the time spent handling inputs (`None`: take
    /// one every [`RuntimeConfig::snapshot_every`] entries exactly). A snapshot costs
    /// O(state), so a large state is snapshotted less often than every `snapshot_every`
    /// entries, and an input's cost stays that of what it changes.
    pub snapshot_share: Option<u32>,
    /// References the genesis (init) entry records, when the chain is new: what a child
    /// actor's genesis names (its parent's spawning entry).
    pub genesis_refs: Vec<ChainRef>,
    /// Where to count inputs, failures and latencies (`None`: not counted).
    pub metrics: Option<std::sync::Arc<crate::ActorMetrics>>,
    /// What to keep behind the newest snapshot, applied after each snapshot (`None`: keep
    /// everything).
    pub retention: Option<crate::Retention>,
    /// What an entry records of an input that left the state unchanged (default: its
    /// output's digest). A request's answer is always recorded whole: the asking actor's
    /// chain is checked against it.
    pub reads: crate::Reads,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            snapshot_every: Some(1000),
            prune_on_snapshot: false,
            snapshot_share: Some(20),
            genesis_refs: Vec::new(),
            metrics: None,
            retention: None,
            reads: crate::Reads::Digest,
        }
    }
}

impl RuntimeConfig {
    /// Prunes as `policy` says after each snapshot (see [`crate::Retention`]).
    pub fn retention(mut self, policy: crate::Retention) -> Self {
        self.retention = Some(policy);
        self
    }

    /// Sets [`RuntimeConfig::reads`].
    pub fn reads(mut self, reads: crate::Reads) -> Self {
        self.reads = reads;
        self
    }

    /// Counts into `metrics` (see [`crate::ActorMetrics`]).
    pub fn metrics(mut self, metrics: std::sync::Arc<crate::ActorMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Sets [`RuntimeConfig::snapshot_every`].
    pub fn snapshot_every(mut self, every: Option<u64>) -> Self {
        self.snapshot_every = every;
        self
    }

    /// Sets [`RuntimeConfig::snapshot_share`].
    pub fn snapshot_share(mut self, share: Option<u32>) -> Self {
        self.snapshot_share = share;
        self
    }

    /// Sets [`RuntimeConfig::genesis_refs`].
    pub fn genesis_refs(mut self, refs: Vec<ChainRef>) -> Self {
        self.genesis_refs = refs;
        self
    }

    /// Sets [`RuntimeConfig::prune_on_snapshot`].
    pub fn prune_on_snapshot(mut self, prune: bool) -> Self {
        self.prune_on_snapshot = prune;
        self
    }
}

/// Why the runtime could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The actor's `init` failed or its initial state was rejected.
    #[error("actor init failed: {0}")]
    Init(ActorError),
    /// The actor reported itself broken ([`ActorError::Fatal`]); it must be restarted.
    #[error("actor crashed: {0}")]
    Crashed(ActorError),
    /// The chain could not be read or written.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The entry at `seq` is durable but a write it records could not be applied (the actor
    /// stops; a restart applies the entry's writes again).
    #[error("entry {seq} is recorded but its writes could not be applied: {reason}")]
    Apply {
        /// The entry.
        seq: u64,
        /// What failed.
        reason: String,
    },
    /// Rebuilding the state from the chain failed.
    #[error("resuming from the chain failed: {0}")]
    Resume(#[from] ReplayError),
    /// An upgrade was refused (the new code cannot run, or it rejects the state): nothing
    /// changed, and the actor runs its code as before.
    #[error("upgrade refused: {0}")]
    UpgradeRefused(String),
}

/// After a resume: if the actor runs other code than the chain names (the chain names none,
/// from before code was recorded; or the code of its newest snapshot is not here and no
/// entry after it needed it), records the code it runs as an upgrade, once that code has
/// accepted the state. Every entry after this one is then known to be handled by it.
async fn record_running_code<A: Actor>(
    actor: &mut A,
    chain: &mut dyn ChainStore,
    report: &crate::ReplayReport,
) -> Result<(), RuntimeError> {
    let Some(running) = actor.code() else {
        return Ok(());
    };
    if report.code == Some(running) {
        return Ok(());
    }
    let named = report
        .code
        .map_or_else(|| "no code".to_string(), |c| format!("code {}", c.short()));
    actor.verify_state(&report.state).await.map_err(|e| {
        RuntimeError::UpgradeRefused(format!(
            "the chain names {named}, which is not at hand, and the code here ({}) rejects the state: {e}",
            running.short()
        ))
    })?;
    chain.append(NewEntry::upgrade(running, report.code, report.state.hash()))?;
    chain.sync()?;
    tracing::info!(
        chain = %chain.id(),
        "the chain named {named}; recorded that {} runs from here on",
        running.short()
    );
    Ok(())
}

/// Returns `actor` to the code `from` after a refused upgrade.
async fn switch_back<A: Actor>(actor: &mut A, from: Option<Hash>) -> Result<(), RuntimeError> {
    if let Some(from) = from {
        actor.switch_code(from).await.map_err(|e| {
            RuntimeError::Crashed(ActorError::Fatal(format!(
                "could not return to code {} after a refused upgrade: {e}",
                from.short()
            )))
        })?;
    }
    Ok(())
}

/// What [`ActorRuntime::upgrade`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upgraded {
    /// The actor runs the new code from the entry after this upgrade entry on.
    To {
        /// The upgrade entry's seq.
        seq: u64,
        /// Its hash.
        hash: Hash,
        /// The code it replaced.
        from: Option<Hash>,
    },
    /// The actor runs that code already: nothing recorded.
    Already,
}

/// What handling one input recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Handled {
    /// The entry's seq.
    pub seq: u64,
    /// The entry's hash.
    pub hash: Hash,
    /// The output, or why the input failed (the state did not change).
    pub result: Result<ActorOutput, ActorError>,
}

/// An actor with its state and chain. Handles one input at a time; every input becomes an
/// entry: a transition, or a failure that leaves the state unchanged.
pub struct ActorRuntime<A> {
    actor: A,
    chain: Box<dyn ChainStore>,
    /// The state with its hash tree: a change rehashes only the paths it touched.
    state: State,
    config: RuntimeConfig,
    last_snapshot: u64,
    /// A host call asked for a snapshot after its entry, not yet taken.
    snapshot_owed: bool,
    /// Time spent handling inputs since the last snapshot, and what that snapshot took.
    busy: Duration,
    snapshot_cost: Duration,
    /// Effects of recorded entries, waiting for the commit that makes them durable.
    effects: Vec<(ChainRef, Effect, bool)>,
    /// An entry whose writes failed to apply: no input is handled until a restart applies
    /// them (a later entry would hide them from the repair, which looks at the head).
    unapplied: Option<(u64, String)>,
    /// The first entry other chains may refer to, once looked for (retention only).
    linked: Option<Option<u64>>,
    /// Retention has said at info level what it did or why it did nothing (once each run).
    retention_said: bool,
    /// Entries appended since the chain was last synced (what a commit's latency measures).
    unsynced: bool,
}

impl<A> std::fmt::Debug for ActorRuntime<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorRuntime")
            .field("chain", &self.chain.id())
            .field("len", &self.chain.len())
            .field("state_hash", &self.state.hash())
            .finish_non_exhaustive()
    }
}

impl<A: Actor> ActorRuntime<A> {
    /// Starts `actor` on `chain`: runs `init` on an empty chain, or rebuilds the state from
    /// a stored one (newest snapshot, then the entries after it).
    pub async fn start(
        mut actor: A,
        mut chain: Box<dyn ChainStore>,
        config: RuntimeConfig,
    ) -> Result<Self, RuntimeError> {
        let mut effects = Vec::new();
        let (state, last_snapshot) = if chain.is_empty() {
            let mut host = HostCalls::live().with_blobs(chain.blobs());
            let state = State::new(actor.init(&mut host).await.map_err(RuntimeError::Init)?);
            actor
                .verify_state(&state)
                .await
                .map_err(|e| RuntimeError::Init(rejected("initial", e)))?;
            let recorded = host.into_recorded();
            let mut refs = config.genesis_refs.clone();
            refs.extend(recorded.refs);
            let params = Payload::json(state.value().clone());
            let entry = match actor.code() {
                Some(code) => NewEntry::init_with_code(params, code, state.hash()),
                None => NewEntry::init(params, state.hash()),
            }
            .with_host_calls(recorded.calls)
            .with_refs(refs);
            let appended = chain.append(entry)?;
            chain.sync()?;
            apply_writes(&mut *chain, appended.seq, recorded.writes).await?;
            let at = ChainRef {
                chain: chain.id().clone(),
                seq: appended.seq,
                hash: appended.hash,
            };
            effects = recorded
                .effects
                .into_iter()
                .map(|(e, quick)| (at.clone(), e, quick))
                .collect();
            (state, 0)
        } else {
            let report = resume(&mut actor, &*chain).await?;
            reapply_last(&mut actor, &mut *chain).await?;
            record_running_code(&mut actor, &mut *chain, &report).await?;
            (report.state, report.from)
        };
        let snapshot_cost = estimate_snapshot_cost(&state);
        if let Some(m) = &config.metrics {
            m.chain_entries
                .store(chain.len(), std::sync::atomic::Ordering::Relaxed);
        }
        Ok(ActorRuntime {
            actor,
            chain,
            state,
            config,
            last_snapshot,
            snapshot_owed: false,
            busy: Duration::ZERO,
            snapshot_cost,
            effects,
            unapplied: None,
            linked: None,
            retention_said: false,
            unsynced: false,
        })
    }

    /// Replaces the actor with a fresh one and rebuilds the state from the chain: what a
    /// supervisor does after a crash. On failure the runtime is left as it was.
    pub async fn restart(&mut self, mut actor: A) -> Result<(), RuntimeError> {
        let report = resume(&mut actor, &*self.chain).await?;
        reapply_last(&mut actor, &mut *self.chain).await?;
        record_running_code(&mut actor, &mut *self.chain, &report).await?;
        self.actor = actor;
        self.snapshot_cost = estimate_snapshot_cost(&report.state);
        self.state = report.state;
        self.last_snapshot = report.from;
        self.busy = Duration::ZERO;
        self.unapplied = None;
        Ok(())
    }

    /// Handles one input and records it. `refs` name entries of other chains this input
    /// came from. With group commit the entry is durable only after [`ActorRuntime::commit`].
    pub async fn handle(
        &mut self,
        input: ActorInput,
        refs: Vec<ChainRef>,
    ) -> Result<Handled, RuntimeError> {
        if let Some((seq, reason)) = &self.unapplied {
            return Err(RuntimeError::Apply {
                seq: *seq,
                reason: format!("{reason} (restart the actor to apply them again)"),
            });
        }
        let started = Instant::now();
        let mut host = HostCalls::live().with_blobs(self.chain.blobs());
        let result = self
            .actor
            .handle_change(&input, &self.state, &mut host)
            .await;
        // The change is applied to the state in place (rehashing only the paths it touched)
        // and undone if the input turns out to fail.
        let mut adopted = None;
        let (entry, result) = match result {
            Err(e) if e.is_fatal() => return Err(RuntimeError::Crashed(e)),
            Err(e) => (
                NewEntry::failed(input.to_payload(), e.to_string(), self.state.hash()),
                Err(e),
            ),
            Ok((output, change)) => {
                let undo = match change {
                    StateChange::Unchanged => Ok(None),
                    StateChange::Patch(p) if p.is_empty() => Ok(None),
                    StateChange::Patch(p) => self.state.apply(&p).map(Some).map_err(|e| {
                        ActorError::Failed(format!("the actor's change does not apply: {e}"))
                    }),
                    StateChange::Replaced(v) => Ok(Some(self.state.replace(v))),
                };
                match undo {
                    Err(e) => (
                        NewEntry::failed(input.to_payload(), e.to_string(), self.state.hash()),
                        Err(e),
                    ),
                    // An unchanged state (a read) needs no hashing, and it was verified when
                    // it was adopted: no second call into the actor.
                    Ok(None) => {
                        let recorded = output.to_payload();
                        let entry = if self.config.reads == crate::Reads::Digest
                            && !matches!(input, ActorInput::Request { .. })
                        {
                            NewEntry::read(input.to_payload(), &recorded, self.state.hash())
                        } else {
                            NewEntry::input(input.to_payload(), recorded, self.state.hash())
                        };
                        (entry, Ok(output))
                    }
                    Ok(Some(undo)) => match self.actor.verify_state(&self.state).await {
                        Ok(()) => {
                            let hash = self.state.hash();
                            adopted = Some(undo);
                            (
                                NewEntry::input(input.to_payload(), output.to_payload(), hash),
                                Ok(output),
                            )
                        }
                        Err(e) => {
                            self.state.undo(undo);
                            if e.is_fatal() {
                                return Err(RuntimeError::Crashed(e));
                            }
                            let e = rejected("new", e);
                            (
                                NewEntry::failed(
                                    input.to_payload(),
                                    e.to_string(),
                                    self.state.hash(),
                                ),
                                Err(e),
                            )
                        }
                    },
                }
            }
        };
        let recorded = host.into_recorded();
        let links = self.linked == Some(None)
            && (!refs.is_empty()
                || !recorded.refs.is_empty()
                || matches!(input, ActorInput::Request { .. })
                || recorded
                    .calls
                    .iter()
                    .any(|c| crate::retention::LINKED_CALLS.contains(&c.name.as_str())));
        let mut refs = refs;
        refs.extend(recorded.refs);
        let appended = match self
            .chain
            .append(entry.with_host_calls(recorded.calls).with_refs(refs))
        {
            Ok(appended) => appended,
            Err(e) => {
                // Not recorded: the state stays as the chain says.
                if let Some(undo) = adopted {
                    self.state.undo(undo);
                }
                return Err(e.into());
            }
        };
        if links {
            self.linked = Some(Some(appended.seq));
        }
        self.unsynced = true;
        let succeeded = result.is_ok();
        if succeeded {
            let at = ChainRef {
                chain: self.chain.id().clone(),
                seq: appended.seq,
                hash: appended.hash,
            };
            self.effects.extend(
                recorded
                    .effects
                    .into_iter()
                    .map(|(e, quick)| (at.clone(), e, quick)),
            );
        }
        if succeeded && !recorded.writes.is_empty() {
            // Writes need their entry durable first (a commit of its own under group
            // commit), and are applied before anything else happens.
            self.chain.sync()?;
            self.unsynced = false;
            if let Err(e) = apply_writes(&mut *self.chain, appended.seq, recorded.writes).await {
                if let RuntimeError::Apply { seq, reason } = &e {
                    self.unapplied = Some((*seq, reason.clone()));
                }
                return Err(e);
            }
        }
        let took = started.elapsed();
        self.busy += took;
        if let Some(m) = &self.config.metrics {
            crate::ActorMetrics::add(&m.inputs);
            if !succeeded {
                crate::ActorMetrics::add(&m.failures);
            }
            m.handle.observe(took);
            m.chain_entries
                .store(appended.seq + 1, std::sync::atomic::Ordering::Relaxed);
        }
        // The entry is recorded whatever happens to the snapshot: a failed snapshot is only
        // a longer replay on the next restart, and it is tried again at the next entry.
        // A snapshot asked for by a host call (failed inputs replay too) is owed until one
        // is taken.
        self.snapshot_owed |= recorded.snapshot_after;
        let snapshot = if self.snapshot_owed {
            self.snapshot()
        } else {
            self.maybe_snapshot()
        };
        if let Err(e) = snapshot {
            tracing::warn!(chain = %self.chain.id(), "snapshot failed, will retry: {e}");
        }
        Ok(Handled {
            seq: appended.seq,
            hash: appended.hash,
            result,
        })
    }

    fn maybe_snapshot(&mut self) -> Result<(), RuntimeError> {
        let Some(every) = self.config.snapshot_every else {
            return Ok(());
        };
        let Some(head) = self.chain.head() else {
            return Ok(());
        };
        if head.seq - self.last_snapshot < every.max(1) {
            return Ok(());
        }
        if let Some(share) = self.config.snapshot_share
            && self.busy < self.snapshot_cost * share
        {
            return Ok(());
        }
        self.snapshot()
    }

    /// Saves a snapshot of the current state at the head (making the chain durable first),
    /// then prunes as the retention policy says.
    pub fn snapshot(&mut self) -> Result<(), RuntimeError> {
        let Some(head) = self.chain.head() else {
            return Ok(());
        };
        let started = Instant::now();
        // What the actor's capabilities keep beside the state (its pending timers...), so
        // that pruning the entries before it loses nothing.
        let mut host = self.actor.snapshot_host(&*self.chain)?;
        // The code in effect at the snapshot, so a resume from it (or a pruned chain) runs
        // the entries after it on the right code. Derived from the chain, as the rest is.
        if let (Some(code), Value::Object(map)) = (self.actor.code(), &mut host) {
            map.insert(CODE_KEY.into(), Value::String(code.to_string()));
        }
        self.chain.save_snapshot(
            &Snapshot::new(head.seq, head.hash, self.state.value().clone()).with_host(host),
        )?;
        // Saving it made the log durable first.
        self.unsynced = false;
        self.last_snapshot = head.seq;
        self.snapshot_owed = false;
        self.busy = Duration::ZERO;
        // What the snapshot cost, not the pruning after it (which is paid once per entry
        // dropped, not per snapshot): what `snapshot_share` weighs.
        self.snapshot_cost = started.elapsed();
        if self.config.prune_on_snapshot {
            self.chain.prune_before(head.seq)?;
        }
        if let Some(policy) = self.config.retention.clone()
            && let Err(e) = self.apply_retention(&policy)
        {
            tracing::warn!(chain = %self.chain.id(), "retention: pruning failed: {e}");
        }
        Ok(())
    }

    /// Prunes the chain as `policy` allows now (see [`crate::prune_point`]).
    fn apply_retention(&mut self, policy: &crate::Retention) -> Result<(), ChainError> {
        let linked = match self.linked {
            Some(l) => l,
            None => {
                let l = crate::retention::first_linked(&*self.chain)?;
                self.linked = Some(l);
                l
            }
        };
        let point = crate::prune_point(&*self.chain, policy, linked, std::time::SystemTime::now());
        match point {
            crate::PrunePoint::At(seq) => {
                let from = self.chain.start();
                let started = Instant::now();
                self.chain.prune_before(seq)?;
                let (kept, took) = (self.chain.len() - seq, started.elapsed());
                // Said once at info (a busy actor prunes every few seconds), then at debug.
                if self.retention_said {
                    tracing::debug!(
                        chain = %self.chain.id(),
                        "retention: dropped entries {from} to {}; the chain starts at {seq} ({kept} entries kept, in {took:.0?})",
                        seq - 1,
                    );
                } else {
                    tracing::info!(
                        chain = %self.chain.id(),
                        "retention: dropped entries {from} to {}; the chain starts at {seq} ({kept} entries kept, in {took:.0?}; later prunes are logged at debug level)",
                        seq - 1,
                    );
                }
                self.retention_said = true;
            }
            crate::PrunePoint::Nothing(why) if !self.retention_said => {
                tracing::info!(chain = %self.chain.id(), "retention: nothing to prune yet: {why}");
                self.retention_said = true;
            }
            crate::PrunePoint::Nothing(_) => {}
        }
        Ok(())
    }

    /// Runs `code` from the next input on: the actor switches to it
    /// ([`Actor::switch_code`]) and checks the current state with it
    /// ([`Actor::verify_state`]); then an upgrade entry records the change (durable when
    /// this returns) and a snapshot is taken. If the new code cannot run or rejects the
    /// state, nothing is recorded and the actor keeps its code: the error says why.
    pub async fn upgrade(&mut self, code: Hash) -> Result<Upgraded, RuntimeError> {
        if let Some((seq, reason)) = &self.unapplied {
            return Err(RuntimeError::Apply {
                seq: *seq,
                reason: format!("{reason} (restart the actor to apply them again)"),
            });
        }
        let from = self.actor.code();
        if from == Some(code) {
            return Ok(Upgraded::Already);
        }
        if let Err(e) = self.actor.switch_code(code).await {
            switch_back(&mut self.actor, from).await?;
            return Err(RuntimeError::UpgradeRefused(format!(
                "code {} cannot run: {e}",
                code.short()
            )));
        }
        if let Err(e) = self.actor.verify_state(&self.state).await {
            switch_back(&mut self.actor, from).await?;
            return Err(RuntimeError::UpgradeRefused(format!(
                "code {} rejects the current state: {e}",
                code.short()
            )));
        }
        let appended = match self
            .chain
            .append(NewEntry::upgrade(code, from, self.state.hash()))
        {
            Ok(a) => a,
            Err(e) => {
                switch_back(&mut self.actor, from).await?;
                return Err(e.into());
            }
        };
        self.chain.sync()?;
        if let Some(m) = &self.config.metrics {
            crate::ActorMetrics::add(&m.upgrades);
            m.chain_entries
                .store(appended.seq + 1, std::sync::atomic::Ordering::Relaxed);
        }
        // A resume starts after it, on the new code, without replaying the old.
        if let Err(e) = self.snapshot() {
            self.snapshot_owed = true;
            tracing::warn!(chain = %self.chain.id(), "snapshot after an upgrade failed: {e}");
        }
        Ok(Upgraded::To {
            seq: appended.seq,
            hash: appended.hash,
            from,
        })
    }

    /// [`ActorRuntime::snapshot`], unless the newest snapshot is already at the head.
    pub fn snapshot_at_head(&mut self) -> Result<(), RuntimeError> {
        // A chain of its genesis alone replays as fast as a snapshot loads.
        match self.chain.head() {
            Some(head) if head.seq != 0 && head.seq != self.last_snapshot => self.snapshot(),
            _ => Ok(()),
        }
    }

    /// Starts a [`ActorRuntime::commit`] whose wait on storage runs elsewhere: everything
    /// recorded so far is written out, and the returned wait (an fsync) makes it durable;
    /// then [`ActorRuntime::finish_commit`]. `None`: it is durable already. Inputs handled
    /// meanwhile are recorded but not covered: they need a commit of their own.
    pub fn start_commit(&mut self) -> Result<Option<StartedCommit>, RuntimeError> {
        if !self.unsynced {
            return Ok(None);
        }
        let started = Instant::now();
        match self.chain.start_sync()? {
            None => {
                self.unsynced = false;
                if let Some(m) = &self.config.metrics {
                    m.commit.observe(started.elapsed());
                }
                Ok(None)
            }
            Some(wait) => {
                self.unsynced = false;
                Ok(Some(StartedCommit { wait, started }))
            }
        }
    }

    /// Records how a started commit's wait went (see [`ActorRuntime::start_commit`]).
    pub fn finish_commit(
        &mut self,
        started: Instant,
        result: std::io::Result<()>,
    ) -> Result<(), RuntimeError> {
        let done = self.chain.finish_sync(result);
        if let Some(m) = &self.config.metrics {
            m.commit.observe(started.elapsed());
        }
        if done.is_err() {
            self.unsynced = true;
        }
        Ok(done?)
    }

    /// Makes every recorded entry durable: what acknowledges them under group commit.
    pub fn commit(&mut self) -> Result<(), RuntimeError> {
        match &self.config.metrics {
            Some(m) if self.unsynced => {
                let started = Instant::now();
                let synced = self.chain.sync();
                m.commit.observe(started.elapsed());
                self.unsynced = synced.is_err();
                Ok(synced?)
            }
            _ => {
                self.chain.sync()?;
                self.unsynced = false;
                Ok(())
            }
        }
    }

    /// The effects of the entries recorded so far, each with a reference to its entry, in
    /// order. Run them only after [`ActorRuntime::commit`] succeeded.
    pub fn take_effects(&mut self) -> Vec<(ChainRef, Effect)> {
        self.take_marked_effects()
            .into_iter()
            .map(|(at, e, _)| (at, e))
            .collect()
    }

    /// [`ActorRuntime::take_effects`], each marked quick or not
    /// ([`HostCalls::after_commit_quick`]).
    pub(crate) fn take_marked_effects(&mut self) -> Vec<(ChainRef, Effect, bool)> {
        std::mem::take(&mut self.effects)
    }

    /// The current state.
    pub fn state(&self) -> &Value {
        self.state.value()
    }

    /// The current state's hash.
    pub fn state_hash(&self) -> Hash {
        self.state.hash()
    }

    /// The chain.
    pub fn chain(&self) -> &dyn ChainStore {
        &*self.chain
    }

    /// The actor.
    pub fn actor(&self) -> &A {
        &self.actor
    }

    /// Gives back the actor and the chain.
    pub fn into_parts(self) -> (A, Box<dyn ChainStore>) {
        (self.actor, self.chain)
    }
}

/// What a failed `verify_state` is recorded as: a plain rejection says which state it was;
/// any other error (a timeout, a trap) keeps its kind.
pub(crate) fn rejected(which: &str, e: ActorError) -> ActorError {
    match e {
        ActorError::Failed(reason) => {
            ActorError::Failed(format!("the {which} state is rejected: {reason}"))
        }
        other => other,
    }
}

/// A first estimate of what a snapshot of `state` costs, before one has been taken: the time
/// to serialise it, the larger part of a snapshot. (Timing the whole start would count the
/// replay too, and each restart would space snapshots further apart.)
fn estimate_snapshot_cost(state: &State) -> Duration {
    let started = Instant::now();
    // Serialising a Value into a sink cannot fail.
    let _ = serde_json::to_writer(std::io::sink(), state.value());
    started.elapsed()
}

/// Applies a durable entry's writes in order, then marks them applied.
async fn apply_writes(
    chain: &mut dyn ChainStore,
    seq: u64,
    writes: Vec<crate::Write>,
) -> Result<(), RuntimeError> {
    if writes.is_empty() {
        return Ok(());
    }
    for write in writes {
        write(seq)
            .await
            .map_err(|reason| RuntimeError::Apply { seq, reason })?;
    }
    chain.set_writes_applied(seq)?;
    Ok(())
}

/// On resuming: the last entry's writes may not have been applied if the host stopped right
/// after making it durable, so the actor applies them again (idempotently).
async fn reapply_last<A: Actor>(
    actor: &mut A,
    chain: &mut dyn ChainStore,
) -> Result<(), RuntimeError> {
    let Some(head) = chain.head() else {
        return Ok(());
    };
    if chain.writes_applied() == Some(head.seq) {
        return Ok(());
    }
    let entry = chain.get(head.seq)?;
    if entry.host_calls().is_empty() {
        return Ok(());
    }
    let blobs = chain.blobs();
    actor
        .reapply(&entry, &*blobs)
        .await
        .map_err(|reason| RuntimeError::Apply {
            seq: head.seq,
            reason,
        })?;
    chain
        .set_writes_applied(head.seq)
        .map_err(RuntimeError::from)
}

/// A commit whose wait on storage is to run off the actor's loop (see
/// [`ActorRuntime::start_commit`]).
pub struct StartedCommit {
    /// The wait: run it on any thread, then pass its result to
    /// [`ActorRuntime::finish_commit`].
    pub wait: theater_chain::PendingSync,
    /// When the commit started (for the commit-time metric).
    pub started: Instant,
}

impl std::fmt::Debug for StartedCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedCommit")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}
