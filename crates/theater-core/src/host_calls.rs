//! Recording non-deterministic host calls, and feeding them back during replay.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::json;
use theater_chain::{BlobStore, ChainRef, HostCall, Payload};

/// Work to run once the entry being built is recorded and durable; it is given a reference
/// to that entry (e.g. to deliver a message that names the entry that sent it).
pub type Effect = Box<dyn FnOnce(ChainRef) -> BoxFuture<'static, ()> + Send>;

/// A write to the world (a file, a database commit) to apply once the entry (whose seq it is
/// given) is durable, before the actor handles anything else; an error names what failed.
pub type Write = Box<dyn FnOnce(u64) -> BoxFuture<'static, Result<(), String>> + Send>;

/// The recorder an actor's host side uses for every call that reads the outside world.
///
/// Live, [`HostCalls::call`] performs the call and records its request and result in the
/// entry being built. During replay it performs nothing: it checks the request matches the
/// recording and returns the recorded result, so the actor sees exactly what it saw then.
#[derive(Default)]
pub struct HostCalls {
    /// Recorded calls to feed back, when replaying.
    replay: Option<Vec<HostCall>>,
    /// Calls made so far (live) or consumed so far (replay).
    done: Vec<HostCall>,
    /// Work for after the entry is durable (live only), each marked quick or not.
    effects: Vec<(Effect, bool)>,
    /// References to other chains' entries for the entry being built (live only).
    refs: Vec<ChainRef>,
    /// Writes to apply once the entry is durable (live only).
    writes: Vec<Write>,
    /// Writes to apply after those (live only).
    writes_last: Vec<Write>,
    /// Where large payloads go (live) or come from (replay).
    blobs: Option<Arc<dyn BlobStore>>,
    /// What capabilities keep for the input being handled (staged file writes, an open
    /// database unit...), one value per type: see [`HostCalls::scratch`].
    scratch: HashMap<TypeId, Box<dyn Any + Send>>,
    /// A snapshot is to follow the entry (live only): see [`HostCalls::snapshot_after`].
    snapshot_after: bool,
}

/// What one input recorded, for the runtime.
pub(crate) struct Recorded {
    pub(crate) snapshot_after: bool,
    pub(crate) calls: Vec<HostCall>,
    pub(crate) effects: Vec<(Effect, bool)>,
    pub(crate) refs: Vec<ChainRef>,
    pub(crate) writes: Vec<Write>,
}

impl std::fmt::Debug for HostCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCalls")
            .field("replaying", &self.replay.is_some())
            .field("calls", &self.done.len())
            .field("effects", &self.effects.len())
            .field("refs", &self.refs)
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

/// A host call that does not match the recording during replay.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostCallError {
    /// The actor made a different call than the one recorded at this position.
    #[error("call #{index} was {got:?} but the recording has {expected:?}")]
    Mismatch {
        /// Position of the call within the entry.
        index: usize,
        /// The recorded call's name.
        expected: String,
        /// The call the actor made.
        got: String,
    },
    /// The actor made the same call with other arguments.
    #[error("call #{index} ({name}) has other arguments than recorded")]
    Arguments {
        /// Position of the call within the entry.
        index: usize,
        /// The call's name.
        name: String,
    },
    /// The actor made more calls than were recorded.
    #[error("call #{index} ({name}) was never recorded")]
    Extra {
        /// Position of the call within the entry.
        index: usize,
        /// The call's name.
        name: String,
    },
    /// A large payload could not be stored beside the entry, or read back during replay.
    #[error("{0}")]
    Blob(String),
    /// A recorded result does not have the shape the call returns.
    #[error("recorded result of {name} is malformed")]
    Malformed {
        /// The call's name.
        name: String,
    },
    /// Replay needs something the recording deliberately left out (a secret's value) and
    /// whoever replays does not have it.
    #[error("{0}")]
    Unavailable(String),
}

/// Name of the clock read recorded by [`HostCalls::now_millis`].
pub const CLOCK_NOW: &str = "theater:clock/now";
/// Name of the randomness read recorded by [`HostCalls::random_bytes`].
pub const RANDOM_BYTES: &str = "theater:random/bytes";

impl HostCalls {
    /// A recorder that performs calls.
    pub fn live() -> Self {
        HostCalls::default()
    }

    /// A recorder that feeds back `recorded`.
    pub fn replaying(recorded: Vec<HostCall>) -> Self {
        HostCalls {
            replay: Some(recorded),
            ..HostCalls::default()
        }
    }

    /// Uses `blobs` for payloads too large for an entry (the chain's blob store).
    pub fn with_blobs(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// The blob store, if one was given.
    pub fn blobs(&self) -> Option<&dyn BlobStore> {
        self.blobs.as_deref()
    }

    /// The blob store, shared: for a call whose live work runs while the recorder waits.
    pub fn blob_store(&self) -> Option<Arc<dyn BlobStore>> {
        self.blobs.clone()
    }

    /// Whether calls are being fed back rather than performed.
    pub fn is_replaying(&self) -> bool {
        self.replay.is_some()
    }

    /// Performs (or, in replay, looks up) the call `name` with `request`.
    pub async fn call<F, Fut>(
        &mut self,
        name: &str,
        request: Payload,
        live: F,
    ) -> Result<Payload, HostCallError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Payload>,
    {
        if let Some(found) = self.next_recorded(name, &request)? {
            return Ok(found);
        }
        let result = live().await;
        self.done.push(HostCall {
            name: name.to_string(),
            request,
            result: result.clone(),
        });
        Ok(result)
    }

    /// [`HostCalls::call`] for a call that does not need to wait.
    pub fn call_sync(
        &mut self,
        name: &str,
        request: Payload,
        live: impl FnOnce() -> Payload,
    ) -> Result<Payload, HostCallError> {
        if let Some(found) = self.next_recorded(name, &request)? {
            return Ok(found);
        }
        let result = live();
        self.done.push(HostCall {
            name: name.to_string(),
            request,
            result: result.clone(),
        });
        Ok(result)
    }

    /// [`HostCalls::call_sync`] with typed request and answer: both recorded as their serde
    /// JSON, and the answer (live or recorded) read back as `A`. An answer that does not read
    /// as `A` is [`HostCallError::Malformed`]. (In replay `live` is not called.)
    pub fn call_typed<R, A>(
        &mut self,
        name: &str,
        request: &R,
        live: impl FnOnce() -> A,
    ) -> Result<A, HostCallError>
    where
        R: serde::Serialize,
        A: serde::Serialize + serde::de::DeserializeOwned,
    {
        let malformed = || HostCallError::Malformed {
            name: name.to_string(),
        };
        let request = serde_json::to_value(request).map_err(|_| malformed())?;
        let recorded = self.call_sync(name, Payload::json(request), || {
            Payload::json(serde_json::to_value(live()).unwrap_or_default())
        })?;
        serde_json::from_value(recorded.json).map_err(|_| malformed())
    }

    fn next_recorded(
        &mut self,
        name: &str,
        request: &Payload,
    ) -> Result<Option<Payload>, HostCallError> {
        let Some(recorded) = &self.replay else {
            return Ok(None);
        };
        let index = self.done.len();
        let Some(call) = recorded.get(index) else {
            return Err(HostCallError::Extra {
                index,
                name: name.to_string(),
            });
        };
        if call.name != name {
            return Err(HostCallError::Mismatch {
                index,
                expected: call.name.clone(),
                got: name.to_string(),
            });
        }
        if call.request != *request {
            return Err(HostCallError::Arguments {
                index,
                name: name.to_string(),
            });
        }
        let call = call.clone();
        let result = call.result.clone();
        self.done.push(call);
        Ok(Some(result))
    }

    /// Milliseconds since the Unix epoch, from the system clock (recorded).
    pub fn now_millis(&mut self) -> Result<u64, HostCallError> {
        let result = self.call_sync(CLOCK_NOW, Payload::default(), || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Payload::json(json!(now))
        })?;
        result.json.as_u64().ok_or(HostCallError::Malformed {
            name: CLOCK_NOW.into(),
        })
    }

    /// `n` random bytes from the operating system (recorded).
    pub fn random_bytes(&mut self, n: usize) -> Result<Vec<u8>, HostCallError> {
        let result = self.call_sync(RANDOM_BYTES, Payload::json(json!(n)), || {
            let mut buf = vec![0u8; n];
            // The OS source failing is unrecoverable for any caller; zeros would be a
            // silent lie, so it is recorded as an empty result and reported below.
            if getrandom::fill(&mut buf).is_err() {
                buf.clear();
            }
            Payload::bytes(buf)
        })?;
        if result.bytes.len() != n {
            return Err(HostCallError::Malformed {
                name: RANDOM_BYTES.into(),
            });
        }
        Ok(result.bytes)
    }

    /// Runs `effect` once the entry being built is recorded and durable, in the order
    /// effects were registered. Never runs during replay (the world already saw it), and
    /// never for an input that fails (a failed input has no effects).
    pub fn after_commit<F, Fut>(&mut self, effect: F)
    where
        F: FnOnce(ChainRef) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.push_effect(effect, false);
    }

    /// [`HostCalls::after_commit`] for an effect that does little before it first waits
    /// (a message into a mailbox, a command into a channel): the actor's loop may poll it
    /// once itself, which saves a hop through another task. It must not block the thread:
    /// no file or network I/O, no compiling, before its first wait.
    pub fn after_commit_quick<F, Fut>(&mut self, effect: F)
    where
        F: FnOnce(ChainRef) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.push_effect(effect, true);
    }

    /// Keeps `effect` for after the entry is durable (live only), marked quick or not.
    fn push_effect<F, Fut>(&mut self, effect: F, quick: bool)
    where
        F: FnOnce(ChainRef) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.replay.is_none() {
            self.effects
                .push((Box::new(move |r| Box::pin(effect(r))), quick));
        }
    }

    /// Applies `write` once the entry being built is durable, before the actor handles its
    /// next input and before the caller is answered; writes apply in the order given. Never
    /// runs during replay, nor for an input that fails. If a write fails the actor stops (its
    /// chain says the write happened), and a restart applies the entry's writes again.
    pub fn on_commit(&mut self, write: impl FnOnce(u64) -> Result<(), String> + Send + 'static) {
        if self.replay.is_none() {
            self.writes
                .push(Box::new(move |seq| Box::pin(async move { write(seq) })));
        }
    }

    /// [`HostCalls::on_commit`] for a write applied after every other write of the input,
    /// whenever it was registered (the input's files go after its database commit: if the
    /// commit fails, nothing of the input reaches the disk before the repair).
    pub fn on_commit_last(
        &mut self,
        write: impl FnOnce(u64) -> Result<(), String> + Send + 'static,
    ) {
        if self.replay.is_none() {
            self.writes_last
                .push(Box::new(move |seq| Box::pin(async move { write(seq) })));
        }
    }

    /// [`HostCalls::on_commit`] for a write that waits (a database commit over the network).
    pub fn on_commit_async<F, Fut>(&mut self, write: F)
    where
        F: FnOnce(u64) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        if self.replay.is_none() {
            self.writes.push(Box::new(move |seq| Box::pin(write(seq))));
        }
    }

    /// Adds a reference to another chain's entry to the entry being built (e.g. the entry
    /// that answered a request). During replay the recorded entry already holds it.
    pub fn refer(&mut self, to: ChainRef) {
        if self.replay.is_none() {
            self.refs.push(to);
        }
    }

    /// What a capability keeps for the input being handled, one value of each type `T`
    /// (created with `T::default()` on first use, dropped with the input): writes staged
    /// until the entry is durable, whether a database unit is open, ...
    pub fn scratch<T: Any + Send + Default>(&mut self) -> &mut T {
        let slot = self
            .scratch
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()));
        match slot.downcast_mut::<T>() {
            Some(t) => t,
            // The map is keyed by the value's own type.
            None => unreachable!("scratch slot of another type"),
        }
    }

    /// The value of type `T` kept for this input by [`HostCalls::scratch`], if there is one.
    pub fn peek<T: Any + Send>(&self) -> Option<&T> {
        self.scratch.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// Calls recorded (live) or consumed (replay) so far.
    pub fn calls(&self) -> &[HostCall] {
        &self.done
    }

    /// Recorded calls that replay has not consumed.
    pub fn unconsumed(&self) -> usize {
        self.replay
            .as_ref()
            .map_or(0, |r| r.len().saturating_sub(self.done.len()))
    }

    /// What the entry being recorded needs.
    /// Asks for a snapshot right after this input's entry (failed or not), so that no later
    /// resume has to run the input again: for a call whose answer cannot be had again (a
    /// secret's value, which the chain does not hold and which may have been rotated since).
    pub fn snapshot_after(&mut self) {
        if !self.is_replaying() {
            self.snapshot_after = true;
        }
    }

    pub(crate) fn into_recorded(self) -> Recorded {
        let mut writes = self.writes;
        writes.extend(self.writes_last);
        Recorded {
            snapshot_after: self.snapshot_after,
            calls: self.done,
            effects: self.effects,
            refs: self.refs,
            writes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Ask {
        n: u32,
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Told {
        No { error: String },
        Yes { doubled: u32 },
    }

    #[test]
    fn typed_calls_record_their_json_and_read_it_back() {
        let mut live = HostCalls::live();
        let told = live
            .call_typed("test:double", &Ask { n: 21 }, || Told::Yes { doubled: 42 })
            .unwrap();
        assert_eq!(told, Told::Yes { doubled: 42 });
        let no = live
            .call_typed("test:double", &Ask { n: 0 }, || Told::No {
                error: "zero".into(),
            })
            .unwrap();
        assert_eq!(
            no,
            Told::No {
                error: "zero".into()
            }
        );
        let recorded = live.into_recorded().calls;
        assert_eq!(recorded[0].request.json, json!({"n": 21}));
        assert_eq!(recorded[0].result.json, json!({"doubled": 42}));
        assert_eq!(recorded[1].result.json, json!({"error": "zero"}));

        let mut replay = HostCalls::replaying(recorded.clone());
        let again: Told = replay
            .call_typed("test:double", &Ask { n: 21 }, || {
                unreachable!("replay performs nothing")
            })
            .unwrap();
        assert_eq!(again, Told::Yes { doubled: 42 });
        // A recorded answer of another shape is malformed, not misread.
        let mut odd = recorded[0].clone();
        odd.result = Payload::json(json!({"tripled": 63}));
        let mut replay = HostCalls::replaying(vec![odd]);
        let r: Result<Told, _> =
            replay.call_typed("test:double", &Ask { n: 21 }, || Told::Yes { doubled: 0 });
        assert!(matches!(r, Err(HostCallError::Malformed { .. })), "{r:?}");
    }

    #[test]
    fn replay_feeds_back_recorded_results() {
        let mut live = HostCalls::live();
        let t = live.now_millis().unwrap();
        let r = live.random_bytes(16).unwrap();
        let recorded = live.into_recorded().calls;
        assert_eq!(recorded.len(), 2);

        let mut replay = HostCalls::replaying(recorded.clone());
        assert!(replay.is_replaying());
        assert_eq!(replay.now_millis().unwrap(), t);
        assert_eq!(replay.random_bytes(16).unwrap(), r);
        assert_eq!(replay.unconsumed(), 0);

        let mut wrong = HostCalls::replaying(recorded.clone());
        assert!(matches!(
            wrong.random_bytes(16),
            Err(HostCallError::Mismatch { index: 0, .. })
        ));
        let mut args = HostCalls::replaying(recorded[1..].to_vec());
        assert!(matches!(
            args.random_bytes(8),
            Err(HostCallError::Arguments { .. })
        ));
        let mut extra = HostCalls::replaying(vec![]);
        assert!(matches!(
            extra.now_millis(),
            Err(HostCallError::Extra { index: 0, .. })
        ));
    }
}
