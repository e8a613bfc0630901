//! Replay: re-run a chain's inputs against an actor, feeding back recorded host calls, and
//! compare every outcome and state hash with the recording.

use std::fmt;

use serde_json::Value;
use theater_chain::state::{State, StateScheme};
use theater_chain::{
    ChainError, ChainStore, CopiedRecords, Entry, Event, Hash, Head, Payload, Snapshot,
};

use crate::actor::FailureKind;
use crate::{Actor, ActorError, ActorInput, HostCalls, StateChange};

/// The key of a snapshot's host data that names the code in effect at its entry (hex
/// SHA-256): a resume from the snapshot runs the entries after it on that code.
pub const CODE_KEY: &str = "theater:code";

/// A chain that replayed exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayReport {
    /// The seq replay started from: 0, or the snapshot it started from (whose entry is
    /// checked against the snapshot, not re-run).
    pub from: u64,
    /// Entries re-run and checked.
    pub entries: u64,
    /// The state after the last entry (with its structural hash).
    pub state: State,
    /// The last entry's state hash (in that entry's scheme).
    pub state_hash: Hash,
    /// The last entry.
    pub head: Option<Head>,
    /// The code the chain names as handling what follows its last entry (an init's, an
    /// upgrade's, or the starting snapshot's); `None` if it names none.
    pub code: Option<Hash>,
}

/// Where a replay stopped matching the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// The first entry whose replay differs.
    pub seq: u64,
    /// How it differs.
    pub what: Mismatch,
}

/// How a replayed entry differs from the recorded one.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Mismatch {
    /// The state after the entry hashes differently.
    StateHash {
        /// Recorded.
        expected: Hash,
        /// Replayed.
        actual: Hash,
    },
    /// The actor answered other than the digest a read entry recorded.
    OutputDigest {
        /// Recorded.
        expected: Hash,
        /// The replayed output's digest.
        actual: Hash,
        /// The replayed output.
        replayed: Payload,
    },
    /// The actor answered differently.
    Output {
        /// Recorded.
        expected: Payload,
        /// Replayed.
        actual: Payload,
    },
    /// The input succeeded where it failed, or failed where it succeeded.
    Outcome {
        /// Recorded (`ok`, or the recorded error).
        expected: String,
        /// Replayed.
        actual: String,
    },
    /// The actor made fewer host calls than were recorded.
    UnusedHostCalls {
        /// How many recorded calls were not made.
        unused: usize,
    },
    /// The entry cannot be replayed (an undecodable input, an init entry out of place).
    Unreplayable(String),
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replay diverged at seq {}: ", self.seq)?;
        match &self.what {
            Mismatch::StateHash { expected, actual } => write!(
                f,
                "state hash {} expected, {} replayed",
                expected.short(),
                actual.short()
            ),
            Mismatch::Output { expected, actual } => write!(
                f,
                "output {} expected, {} replayed",
                expected.json, actual.json
            ),
            Mismatch::OutputDigest {
                expected,
                actual,
                replayed,
            } => write!(
                f,
                "output with digest {} expected, {} replayed (digest {})",
                expected.short(),
                replayed.json,
                actual.short()
            ),
            Mismatch::Outcome { expected, actual } => {
                write!(f, "recorded outcome {expected:?}, replayed {actual:?}")
            }
            Mismatch::UnusedHostCalls { unused } => {
                write!(f, "{unused} recorded host calls were not made")
            }
            Mismatch::Unreplayable(why) => f.write_str(why),
        }
    }
}

/// Why a replay did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The actor's behaviour differs from the recording.
    #[error("{0}")]
    Diverged(Box<Divergence>),
    /// The chain could not be read.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The chain is pruned and its anchor snapshot is missing.
    #[error("chain starts at seq {start} but has no snapshot there to replay from")]
    NoSnapshot {
        /// The chain's first stored seq.
        start: u64,
    },
    /// The code the chain says handled entry `seq` is not at hand (a component not in the
    /// store): the chain may be fine, it cannot be re-run here.
    #[error("the chain says code {code} handles entry {seq} on, and it cannot run here: {reason}")]
    CodeUnavailable {
        /// The first entry that needs it.
        seq: u64,
        /// The code.
        code: Hash,
        /// Why it cannot run.
        reason: String,
    },
    /// Replay was asked to stop at a seq the chain does not hold.
    #[error("seq {seq} is not in the chain (it holds seq {start} to {last})")]
    OutOfRange {
        /// The seq asked for.
        seq: u64,
        /// The chain's first stored seq.
        start: u64,
        /// Its last seq.
        last: u64,
    },
}

impl ReplayError {
    fn diverged(seq: u64, what: Mismatch) -> Self {
        ReplayError::Diverged(Box::new(Divergence { seq, what }))
    }
}

/// Replays the whole stored chain (from genesis, or from the anchor snapshot of a pruned
/// chain) against `actor`.
pub async fn replay<A: Actor>(
    actor: &mut A,
    chain: &dyn ChainStore,
) -> Result<ReplayReport, ReplayError> {
    let last = chain.len().saturating_sub(1);
    replay_to(actor, chain, last, &mut |_, _| {}).await
}

/// Replays the stored chain up to and including entry `to` (from genesis, or from the anchor
/// snapshot of a pruned chain): the state the actor had right after it, checked at every
/// entry. `on_entry` is called after each entry re-run, with its seq and the state after it.
pub async fn replay_to<A: Actor>(
    actor: &mut A,
    chain: &dyn ChainStore,
    to: u64,
    on_entry: &mut (dyn FnMut(u64, &Value) + Send),
) -> Result<ReplayReport, ReplayError> {
    let start = in_range(chain, to)?;
    let mut report = if start == 0 {
        replay_from(actor, chain, 0, to + 1, None, on_entry, None).await?
    } else {
        let snapshot = chain
            .snapshot_at(start)?
            .ok_or(ReplayError::NoSnapshot { start })?;
        from_snapshot(actor, chain, snapshot, to + 1, on_entry).await?
    };
    report.head = Some(Head {
        seq: to,
        hash: chain.hash_at(to)?,
    });
    Ok(report)
}

/// The chain's first seq, if `to` is one of its entries.
fn in_range(chain: &dyn ChainStore, to: u64) -> Result<u64, ReplayError> {
    let start = chain.start();
    if to < start || to >= chain.len() {
        return Err(ReplayError::OutOfRange {
            seq: to,
            start,
            last: chain.len().saturating_sub(1),
        });
    }
    Ok(start)
}

/// The state right after entry `to`, re-running only what follows the newest stored snapshot
/// at or before `not_after` (at most `to`; from the chain's start when there is none): what a
/// look at one entry's state needs, without the whole history before it. The snapshot is
/// checked against its entry's state hash, and every entry after it is checked as
/// [`replay_to`] checks it. `on_entry` sees the snapshot's state first (with its seq), then
/// each entry re-run: with `not_after = to - 1`, it sees the state before `to` too.
pub async fn replay_to_nearest<A: Actor>(
    actor: &mut A,
    chain: &dyn ChainStore,
    to: u64,
    not_after: u64,
    on_entry: &mut (dyn FnMut(u64, &Value) + Send),
) -> Result<ReplayReport, ReplayError> {
    let start = in_range(chain, to)?;
    let last = not_after.clamp(start, to);
    let nearest = chain
        .snapshots()
        .into_iter()
        .map(|(seq, _)| seq)
        .filter(|seq| (start..=last).contains(seq) && *seq < chain.len())
        .max();
    // A pruned chain's anchor counts: its state is seen too.
    let Some(seq) = nearest else {
        return replay_to(actor, chain, to, on_entry).await;
    };
    let snapshot = chain
        .snapshot_at(seq)?
        .ok_or(ReplayError::NoSnapshot { start: seq })?;
    on_entry(seq, &snapshot.state);
    let mut report = from_snapshot(actor, chain, snapshot, to + 1, on_entry).await?;
    report.head = Some(Head {
        seq: to,
        hash: chain.hash_at(to)?,
    });
    Ok(report)
}

/// Rebuilds the state at the head: from the newest snapshot if there is one, re-running only
/// the entries after it. What a restart does.
pub async fn resume<A: Actor>(
    actor: &mut A,
    chain: &dyn ChainStore,
) -> Result<ReplayReport, ReplayError> {
    match chain.latest_snapshot()? {
        Some(snapshot) => from_snapshot(actor, chain, snapshot, chain.len(), &mut |_, _| {}).await,
        None => replay(actor, chain).await,
    }
}

/// Checks `snapshot` against its entry, then re-runs the entries after it.
async fn from_snapshot<A: Actor>(
    actor: &mut A,
    chain: &dyn ChainStore,
    snapshot: Snapshot,
    end: u64,
    on_entry: &mut (dyn FnMut(u64, &Value) + Send),
) -> Result<ReplayReport, ReplayError> {
    let anchor = chain.get(snapshot.seq)?;
    let hash = anchor.state_scheme().hash(&snapshot.state);
    if hash != anchor.state_hash() {
        return Err(ReplayError::diverged(
            snapshot.seq,
            Mismatch::StateHash {
                expected: anchor.state_hash(),
                actual: hash,
            },
        ));
    }
    // The code that handled the entries after the snapshot, until an upgrade says otherwise:
    // switched to only if there are such entries (with none, a host that lacks it can still
    // take the actor up, and the runtime records the code it runs instead).
    let code = match snapshot.host.get(CODE_KEY).and_then(Value::as_str) {
        None => None,
        Some(text) => Some(text.parse::<Hash>().map_err(|_| {
            ReplayError::diverged(
                snapshot.seq,
                Mismatch::Unreplayable(format!(
                    "the snapshot names code {text:?}, which is not a SHA-256"
                )),
            )
        })?),
    };
    if let Some(code) = code {
        if snapshot.seq + 1 < end.min(chain.len()) {
            switch(actor, code, snapshot.seq + 1).await?;
        } else if actor.code() != Some(code) {
            // Nothing to re-run: a code that cannot be had leaves the actor on its own.
            let _ = actor.switch_code(code).await;
        }
    }
    let mut report = replay_from(
        actor,
        chain,
        snapshot.seq + 1,
        end,
        Some((State::new(snapshot.state), anchor.state_scheme(), hash)),
        on_entry,
        code,
    )
    .await?;
    report.from = snapshot.seq;
    Ok(report)
}

/// Re-runs entries `from..end` starting from `state` (with the scheme and hash its entry
/// recorded; `None`: from genesis, entry 0 must be init).
async fn replay_from<A: Actor>(
    actor: &mut A,
    chain: &dyn ChainStore,
    from: u64,
    end: u64,
    start: Option<(State, StateScheme, Hash)>,
    on_entry: &mut (dyn FnMut(u64, &Value) + Send),
    mut code: Option<Hash>,
) -> Result<ReplayReport, ReplayError> {
    let (mut state, mut last) = match start {
        Some((state, scheme, hash)) => (Some(state), Some((scheme, hash))),
        None => (None, None),
    };
    let mut entries = 0;
    let blobs = chain.blobs();
    // While one chunk is replayed, the next is checked and decoded on another thread.
    let mut chunks = Chunks::new(from, end.min(chain.len()));
    let mut next = chunks.read(chain).map(RawChunk::start);
    while let Some(decoding) = next.take() {
        let (mut batch, error) = decoding.finish().await;
        if error.is_none() {
            next = chunks.read(chain).map(RawChunk::start);
        }
        for (entry, input) in &mut batch {
            let seq = entry.seq();
            let changed = replay_entry(actor, entry, input.take(), &mut state, &blobs).await?;
            if let Some(c) = entry.event().code() {
                code = Some(c);
            }
            let Some(current) = &state else {
                return Err(ReplayError::diverged(
                    seq,
                    Mismatch::Unreplayable("the chain does not start with init".into()),
                ));
            };
            // Each entry's hash in its own scheme; a format-1 (flat) hash is recomputed only when
            // the state changed.
            let scheme = entry.state_scheme();
            let hash = match (scheme, last) {
                (StateScheme::Tree, _) => current.hash(),
                (s, Some((ls, lh))) if !changed && s == ls => lh,
                (s, _) => s.hash(current.value()),
            };
            if hash != entry.state_hash() {
                return Err(ReplayError::diverged(
                    seq,
                    Mismatch::StateHash {
                        expected: entry.state_hash(),
                        actual: hash,
                    },
                ));
            }
            on_entry(seq, current.value());
            last = Some((scheme, hash));
            entries += 1;
        }
        // The entries before a bad one are replayed first: a divergence among them is what
        // a replay reports.
        if let Some(e) = error {
            return Err(e.into());
        }
        // Freeing a large chunk's entries is work too: done off the replaying thread.
        if batch.len() >= RawChunk::ELSEWHERE
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn_blocking(move || drop(batch));
        }
    }
    let state = state.ok_or_else(|| {
        ReplayError::diverged(0, Mismatch::Unreplayable("the chain is empty".into()))
    })?;
    Ok(ReplayReport {
        from,
        entries,
        state_hash: last.map_or_else(|| state.hash(), |(_, h)| h),
        state,
        head: chain.head(),
        code,
    })
}

/// Reads a run of entries in chunks, each streamed from the store in one pass (finding each
/// entry on its own is what made a long replay slow).
struct Chunks {
    next: u64,
    end: u64,
}

impl Chunks {
    /// Entries per chunk at most...
    const MAX: u64 = 1024;
    /// ...and about this many bytes of them (a chunk holds at least one entry).
    const BYTES: usize = 4 << 20;

    fn new(from: u64, end: u64) -> Self {
        Chunks { next: from, end }
    }

    /// The next chunk's records, copied out of the store (not yet checked); `None` at the
    /// end. A read error ends the chunk, after the records read before it, and the run.
    fn read(&mut self, chain: &dyn ChainStore) -> Option<RawChunk> {
        if self.next >= self.end {
            return None;
        }
        let stop = (self.next + Self::MAX).min(self.end);
        let mut raw = RawChunk {
            chain: chain.id().clone(),
            path: chain.path().map(std::path::Path::to_path_buf),
            copied: CopiedRecords::default(),
            error: None,
        };
        let mut full = false;
        let read = chain.for_each_record_in(self.next, stop, &mut |rec| {
            if raw.copied.bytes() >= Self::BYTES {
                full = true;
                // Not an error: stops the read here.
                return Err(ChainError::NotFound {
                    chain: chain.id().clone(),
                    seq: rec.seq,
                    len: 0,
                });
            }
            raw.copied.push(&rec);
            Ok(())
        });
        let got = raw.copied.len() as u64;
        match read {
            Ok(()) if got != stop - self.next => {
                raw.error = Some(ChainError::NotFound {
                    chain: chain.id().clone(),
                    seq: self.next + got,
                    len: chain.len(),
                });
            }
            Ok(()) => {}
            Err(_) if full => {}
            Err(e) => raw.error = Some(e),
        }
        // After an error nothing more is read.
        self.next = if raw.error.is_some() {
            self.end
        } else {
            self.next + got
        };
        Some(raw)
    }
}

/// A chunk's records as read, to be checked (each body hashes to its stored hash and names
/// its seq, as [`ChainStore::get`] checks) and decoded, on any thread.
struct RawChunk {
    chain: theater_chain::ChainId,
    path: Option<std::path::PathBuf>,
    copied: CopiedRecords,
    /// The read error that ended the chunk, if one did.
    error: Option<ChainError>,
}

/// A chunk being checked and decoded.
enum Decoding {
    Done(Vec<Decoded>, Option<ChainError>),
    Elsewhere(tokio::task::JoinHandle<(Vec<Decoded>, Option<ChainError>)>),
}

/// An entry, and its input when it has one and it reads.
type Decoded = (Entry, Option<ActorInput>);

impl RawChunk {
    /// Chunks smaller than this are decoded where they are read: handing them to another
    /// thread costs more than it saves (a restart replays a few entries after a snapshot).
    const ELSEWHERE: usize = 64;

    /// Starts checking and decoding: on the blocking pool when the chunk is large and a
    /// runtime is there to run it, else at once.
    fn start(self) -> Decoding {
        if self.copied.len() >= Self::ELSEWHERE
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            return Decoding::Elsewhere(rt.spawn_blocking(move || self.decode()));
        }
        let (entries, error) = self.decode();
        Decoding::Done(entries, error)
    }

    /// The entries up to the first bad record or read error, and that error.
    fn decode(self) -> (Vec<Decoded>, Option<ChainError>) {
        let mut entries = Vec::with_capacity(self.copied.len());
        for rec in self.copied.iter() {
            match rec.checked_entry_of(&self.chain, self.path.as_deref()) {
                Ok(entry) => {
                    // The input is read here too (off the replaying thread); one that does
                    // not read is read again there, to report it.
                    let input = match entry.event() {
                        Event::Input { input, .. }
                        | Event::Read { input, .. }
                        | Event::Failed { input, .. } => ActorInput::from_payload(input).ok(),
                        _ => None,
                    };
                    entries.push((entry, input));
                }
                Err(e) => return (entries, Some(e)),
            }
        }
        (entries, self.error)
    }
}

impl Decoding {
    async fn finish(self) -> (Vec<Decoded>, Option<ChainError>) {
        match self {
            Decoding::Done(entries, error) => (entries, error),
            Decoding::Elsewhere(handle) => handle.await.unwrap_or_else(|e| {
                // A panic is the replay's, as if it had happened here.
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
                let error = ChainError::Io {
                    path: std::path::PathBuf::new(),
                    source: std::io::Error::other(format!(
                        "checking entries for the replay failed: {e}"
                    )),
                };
                (Vec::new(), Some(error))
            }),
        }
    }
}

/// Makes `actor` run `code`, where the chain says it handled entry `seq` and those after it.
async fn switch<A: Actor>(actor: &mut A, code: Hash, seq: u64) -> Result<(), ReplayError> {
    if actor.code() == Some(code) {
        return Ok(());
    }
    actor
        .switch_code(code)
        .await
        .map_err(|e| ReplayError::CodeUnavailable {
            seq,
            code,
            reason: e.to_string(),
        })
}

/// Applies what an actor said it changed; `Ok(None)`: nothing.
fn apply_change(
    state: &mut State,
    change: StateChange,
) -> Result<Option<theater_chain::state::Undo>, String> {
    match change {
        StateChange::Unchanged => Ok(None),
        StateChange::Patch(p) if p.is_empty() => Ok(None),
        StateChange::Patch(p) => state
            .apply(&p)
            .map(Some)
            .map_err(|e| format!("error: the actor's change does not apply: {e}")),
        StateChange::Replaced(v) => Ok(Some(state.replace(v))),
    }
}

/// Re-runs one entry against `state` (changing it in place, or setting it for init).
/// Returns whether the state changed.
async fn replay_entry<A: Actor>(
    actor: &mut A,
    entry: &Entry,
    decoded: Option<ActorInput>,
    state: &mut Option<State>,
    blobs: &std::sync::Arc<dyn theater_chain::BlobStore>,
) -> Result<bool, ReplayError> {
    let seq = entry.seq();
    let mut host = HostCalls::replaying(entry.host_calls().to_vec()).with_blobs(blobs.clone());
    let diverged = |what| ReplayError::diverged(seq, what);
    let unreplayable = |why: String| ReplayError::diverged(seq, Mismatch::Unreplayable(why));
    let outcome = |expected: &str, actual: String| {
        ReplayError::diverged(
            seq,
            Mismatch::Outcome {
                expected: expected.to_string(),
                actual,
            },
        )
    };
    // The input as the chunk's reader decoded it, or read here (to report one that does not
    // read).
    let input_of = |recorded: &Payload| match decoded {
        Some(input) => Ok(input),
        None => ActorInput::from_payload(recorded).map_err(|e| unreplayable(e.to_string())),
    };
    let changed = match (entry.event(), state.as_mut()) {
        (Event::Init { code, .. }, None) => {
            if let Some(code) = code {
                switch(actor, *code, seq).await?;
            }
            let s = actor
                .init(&mut host)
                .await
                .map_err(|e| outcome("ok", e.to_string()))?;
            *state = Some(State::new(s));
            true
        }
        (Event::Init { .. }, Some(_)) => {
            return Err(unreplayable("an init entry after the chain's start".into()));
        }
        (_, None) => return Err(unreplayable("the chain does not start with init".into())),
        (Event::Upgrade { code, from }, Some(state)) => {
            if let (Some(from), Some(running)) = (from, actor.code())
                && *from != running
            {
                return Err(unreplayable(format!(
                    "an upgrade from code {} where the chain ran {}",
                    from.short(),
                    running.short()
                )));
            }
            switch(actor, *code, seq).await?;
            // The new code accepted the state live; it must again.
            if let Err(e) = actor.verify_state(state).await {
                return Err(outcome(
                    "ok",
                    format!("code {} rejects the state: {e}", code.short()),
                ));
            }
            false
        }
        (event @ (Event::Input { input, .. } | Event::Read { input, .. }), Some(state)) => {
            let input = input_of(input)?;
            let (out, change) = actor
                .handle_change(&input, state, &mut host)
                .await
                .map_err(|e| outcome("ok", e.to_string()))?;
            let undo = apply_change(state, change).map_err(|e| outcome("ok", e))?;
            // As in the runtime: an unchanged state is not verified again.
            if undo.is_some()
                && let Err(e) = actor.verify_state(state).await
            {
                return Err(outcome(
                    "ok",
                    crate::runtime::rejected("new", e).to_string(),
                ));
            }
            let out = out.to_payload();
            match event {
                Event::Input { output, .. } if out != *output => {
                    return Err(diverged(Mismatch::Output {
                        expected: output.clone(),
                        actual: out,
                    }));
                }
                Event::Read { output, .. } if out.digest() != *output => {
                    return Err(diverged(Mismatch::OutputDigest {
                        expected: *output,
                        actual: out.digest(),
                        replayed: out,
                    }));
                }
                _ => {}
            }
            undo.is_some()
        }
        (Event::Failed { input, error }, Some(state)) => {
            if !FailureKind::of_recorded(error).is_reproducible() {
                return Ok(false);
            }
            let input = input_of(input)?;
            match actor.handle_change(&input, state, &mut host).await {
                Err(ActorError::HostCall(e)) => {
                    return Err(outcome(error, format!("host call: {e}")));
                }
                Err(_) => {}
                Ok((_, change)) => match apply_change(state, change) {
                    // A change that does not apply fails the input again.
                    Err(_) => {}
                    Ok(None) => return Err(outcome(error, "ok".into())),
                    Ok(Some(undo)) => {
                        let accepted = actor.verify_state(state).await.is_ok();
                        state.undo(undo);
                        if accepted {
                            return Err(outcome(error, "ok".into()));
                        }
                    }
                },
            }
            false
        }
        (other, _) => return Err(unreplayable(format!("unknown event kind {}", other.kind()))),
    };
    let unused = host.unconsumed();
    if unused > 0 {
        return Err(diverged(Mismatch::UnusedHostCalls { unused }));
    }
    Ok(changed)
}
