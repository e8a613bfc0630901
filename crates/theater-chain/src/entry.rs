//! What one chain entry records.

use std::fmt;

use serde_json::Value;

use crate::Hash;

/// The name of a chain: in Theater, the id of the actor whose history it is.
///
/// 1 to 255 bytes of UTF-8 with no control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChainId(String);

impl TryFrom<String> for ChainId {
    type Error = InvalidChainId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ChainId::new(s)
    }
}

impl From<ChainId> for String {
    fn from(id: ChainId) -> String {
        id.0
    }
}

impl ChainId {
    /// Longest id in bytes.
    pub const MAX_LEN: usize = 255;

    /// Validates and wraps `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidChainId> {
        let id = id.into();
        if id.is_empty() || id.len() > Self::MAX_LEN || id.chars().any(char::is_control) {
            return Err(InvalidChainId(id));
        }
        Ok(ChainId(id))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A map keyed by `ChainId` can be looked up by `&str` without building (and checking) an id:
/// the id hashes and compares as its string.
impl std::borrow::Borrow<str> for ChainId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::str::FromStr for ChainId {
    type Err = InvalidChainId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChainId::new(s)
    }
}

/// A chain id that is empty, longer than 255 bytes, or holds control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chain id {0:?}: must be 1 to 255 bytes with no control characters")]
pub struct InvalidChainId(pub String);

/// Data carried by an entry: a JSON value and, beside it, raw bytes.
///
/// The JSON part holds structure (a message, an HTTP method and headers); the bytes part
/// holds binary payloads (an HTTP body, file contents) as they are, never inflated into
/// JSON. Either part may be empty (`null` / no bytes).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Payload {
    /// Structured part, hashed in canonical JSON form.
    pub json: Value,
    /// Binary part, hashed as raw bytes.
    pub bytes: Vec<u8>,
}

impl Payload {
    /// A payload with both parts.
    pub fn new(json: Value, bytes: impl Into<Vec<u8>>) -> Self {
        Payload {
            json,
            bytes: bytes.into(),
        }
    }

    /// A JSON-only payload.
    pub fn json(json: Value) -> Self {
        Payload {
            json,
            bytes: Vec::new(),
        }
    }

    /// A bytes-only payload (`json` is `null`).
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Payload {
            json: Value::Null,
            bytes: bytes.into(),
        }
    }

    /// The SHA-256 of the payload as an entry encodes it (the canonical JSON's length and
    /// bytes, then the binary part's): what an [`Event::Read`] records of its output.
    pub fn digest(&self) -> Hash {
        let mut encoded = Vec::with_capacity(64 + self.bytes.len());
        crate::codec::put_payload(&mut encoded, self);
        Hash::digest(&encoded)
    }
}

/// What happened in an entry.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The actor started; `params` is what it was initialised with.
    Init {
        /// Initialisation parameters (e.g. the manifest's initial state).
        params: Payload,
        /// The SHA-256 of the code that ran `init` and handles the entries after it until an
        /// [`Event::Upgrade`] (a wasm component's bytes); `None` in chains written before
        /// code was recorded.
        code: Option<Hash>,
    },
    /// An input was handled and produced `output`; the state moved to the entry's state hash.
    Input {
        /// What arrived.
        input: Payload,
        /// What the actor answered.
        output: Payload,
    },
    /// An input failed (the actor trapped, erred, or its new state was rejected); the state
    /// did not change.
    Failed {
        /// What arrived.
        input: Payload,
        /// Why it failed.
        error: String,
    },
    /// The actor's code changed: entries after this one are handled by `code`, which
    /// accepted the state as it is (unchanged by the upgrade).
    Upgrade {
        /// The SHA-256 of the new code.
        code: Hash,
        /// The code it replaced (`None`: not recorded, in a chain from before code was).
        from: Option<Hash>,
    },
    /// An input was handled and left the state as it was (a read), recorded with its
    /// output's [`Payload::digest`] in place of the output: replay recomputes the output and
    /// checks it against the digest.
    Read {
        /// What arrived.
        input: Payload,
        /// The digest of what the actor answered.
        output: Hash,
    },
}

impl Event {
    /// A short name for the kind of event: `init`, `input`, `read`, `failed` or `upgrade`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Init { .. } => "init",
            Event::Input { .. } => "input",
            Event::Read { .. } => "read",
            Event::Failed { .. } => "failed",
            Event::Upgrade { .. } => "upgrade",
        }
    }

    /// What arrived, for an event that handled an input (`input`, `read` or `failed`).
    pub fn input(&self) -> Option<&Payload> {
        match self {
            Event::Input { input, .. }
            | Event::Read { input, .. }
            | Event::Failed { input, .. } => Some(input),
            Event::Init { .. } | Event::Upgrade { .. } => None,
        }
    }

    /// The code this event says handles the entries after it: an init's or an upgrade's.
    pub fn code(&self) -> Option<Hash> {
        match self {
            Event::Init { code, .. } => *code,
            Event::Upgrade { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The result of one non-deterministic host call made while handling an entry's event
/// (a clock read, random bytes, a file read). Replay feeds `result` back instead of calling.
#[derive(Clone, Debug, PartialEq)]
pub struct HostCall {
    /// Which call, e.g. `theater:clock/now`.
    pub name: String,
    /// Its arguments.
    pub request: Payload,
    /// What it returned.
    pub result: Payload,
}

/// A reference from an entry to an entry of another chain (e.g. the send of a message
/// this entry received).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ChainRef {
    /// The other chain.
    pub chain: ChainId,
    /// The referenced entry's seq there.
    pub seq: u64,
    /// The referenced entry's hash.
    pub hash: Hash,
}

/// An entry before it is appended: everything but its seq and parent, which the chain fills.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEntry {
    pub(crate) version: u8,
    pub(crate) event: Event,
    pub(crate) state_hash: Hash,
    pub(crate) host_calls: Vec<HostCall>,
    pub(crate) refs: Vec<ChainRef>,
}

impl NewEntry {
    /// An init entry for an actor whose initial state hashes to `state_hash`.
    pub fn init(params: Payload, state_hash: Hash) -> Self {
        Self::from_event(Event::Init { params, code: None }, state_hash)
    }

    /// An init entry recording that `code` (its SHA-256) ran `init` and handles what follows.
    pub fn init_with_code(params: Payload, code: Hash, state_hash: Hash) -> Self {
        Self::from_event(
            Event::Init {
                params,
                code: Some(code),
            },
            state_hash,
        )
    }

    /// An upgrade entry: from here on `code` handles inputs, in place of `from`; the state
    /// (hashing to `state_hash`) is unchanged.
    pub fn upgrade(code: Hash, from: Option<Hash>, state_hash: Hash) -> Self {
        Self::from_event(Event::Upgrade { code, from }, state_hash)
    }

    /// A handled input that left the state hashing to `state_hash`.
    pub fn input(input: Payload, output: Payload, state_hash: Hash) -> Self {
        Self::from_event(Event::Input { input, output }, state_hash)
    }

    /// A handled input that left the state unchanged (hashing to `state_hash`), recorded
    /// with `output`'s digest only ([`Event::Read`]).
    pub fn read(input: Payload, output: &Payload, state_hash: Hash) -> Self {
        Self::from_event(
            Event::Read {
                input,
                output: output.digest(),
            },
            state_hash,
        )
    }

    /// A failed input; `state_hash` is the unchanged state's hash.
    pub fn failed(input: Payload, error: impl Into<String>, state_hash: Hash) -> Self {
        Self::from_event(
            Event::Failed {
                input,
                error: error.into(),
            },
            state_hash,
        )
    }

    /// An entry for any event.
    pub fn from_event(event: Event, state_hash: Hash) -> Self {
        NewEntry {
            version: crate::FORMAT_VERSION,
            event,
            state_hash,
            host_calls: Vec::new(),
            refs: Vec::new(),
        }
    }

    /// Sets the format version (default [`crate::FORMAT_VERSION`]): version 1 says the state
    /// hash is [`crate::state::StateScheme::Flat`], version 2
    /// [`crate::state::StateScheme::Tree`]. A store refuses versions it cannot read.
    pub fn with_version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }

    /// Refuses a format version outside [`crate::MIN_FORMAT_VERSION`]`..=`
    /// [`crate::FORMAT_VERSION`], which no reader could decode: what each store checks
    /// before it appends.
    pub(crate) fn check_version(&self, seq: u64) -> Result<(), crate::ChainError> {
        if (crate::MIN_FORMAT_VERSION..=crate::FORMAT_VERSION).contains(&self.version) {
            Ok(())
        } else {
            Err(crate::ChainError::UnknownVersion {
                seq,
                version: self.version,
            })
        }
    }

    /// Adds the recorded host calls made while handling the event.
    pub fn with_host_calls(mut self, calls: Vec<HostCall>) -> Self {
        self.host_calls = calls;
        self
    }

    /// Adds references to entries of other chains.
    pub fn with_refs(mut self, refs: Vec<ChainRef>) -> Self {
        self.refs = refs;
        self
    }
}

impl From<Entry> for NewEntry {
    /// Everything of `entry` but its seq and parent: for copying entries into another chain.
    fn from(entry: Entry) -> Self {
        NewEntry {
            version: entry.version,
            event: entry.event,
            state_hash: entry.state_hash,
            host_calls: entry.host_calls,
            refs: entry.refs,
        }
    }
}

/// One entry of a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub(crate) version: u8,
    pub(crate) seq: u64,
    pub(crate) parent: Hash,
    pub(crate) state_hash: Hash,
    pub(crate) refs: Vec<ChainRef>,
    pub(crate) event: Event,
    pub(crate) host_calls: Vec<HostCall>,
}

impl Entry {
    /// Builds the entry that `new` becomes at `seq` after `parent`.
    pub fn new(seq: u64, parent: Hash, new: NewEntry) -> Self {
        Entry {
            version: new.version,
            seq,
            parent,
            state_hash: new.state_hash,
            refs: new.refs,
            event: new.event,
            host_calls: new.host_calls,
        }
    }

    /// The entry's format version (1 or 2): it fixes how `state_hash` was computed.
    pub fn version(&self) -> u8 {
        self.version
    }
    /// How this entry's `state_hash` is computed from the state.
    pub fn state_scheme(&self) -> crate::state::StateScheme {
        crate::state::StateScheme::of_version(self.version)
            .unwrap_or(crate::state::StateScheme::Tree)
    }
    /// Position in the chain, from 0.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Hash of the previous entry ([`Hash::ZERO`] for seq 0).
    pub fn parent(&self) -> Hash {
        self.parent
    }
    /// Hash of the actor's state after this entry.
    pub fn state_hash(&self) -> Hash {
        self.state_hash
    }
    /// References to entries of other chains.
    pub fn refs(&self) -> &[ChainRef] {
        &self.refs
    }
    /// What happened.
    pub fn event(&self) -> &Event {
        &self.event
    }
    /// Recorded host-call results.
    pub fn host_calls(&self) -> &[HostCall] {
        &self.host_calls
    }
    /// The canonical, versioned byte encoding of this entry.
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode(self)
    }
    /// The entry's hash: SHA-256 of [`Entry::encode`].
    pub fn hash(&self) -> Hash {
        Hash::digest(&self.encode())
    }
    /// Decodes an entry from its canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::DecodeError> {
        crate::codec::decode(bytes)
    }
}
