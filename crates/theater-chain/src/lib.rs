//! # theater-chain
//!
//! The verifiable history under every Theater actor: one SHA-256 hash chain per actor,
//! in which entry `n` names the hash of entry `n - 1`, so changing, dropping or reordering
//! anything already recorded is detectable.
//!
//! This crate knows nothing of actors, wasm or async runtimes: it hashes, stores and
//! verifies entries.
//!
//! ## Concepts
//!
//! - An [`Entry`] holds its `seq`, its parent's [`Hash`](struct@Hash), what happened (an [`Event`]: init,
//!   an input with its output, or a failed input), the results of non-deterministic
//!   [`HostCall`]s made while handling it, references to entries of other chains
//!   ([`ChainRef`]), and the hash of the actor's state after it. Callers build a
//!   [`NewEntry`]; the store fills in `seq` and parent.
//! - An entry's hash is SHA-256 over its canonical, versioned byte encoding (see
//!   [`Entry::encode`]); JSON inside it is in canonical form ([`to_canonical_json`]), binary
//!   payloads are raw bytes. Same entry, same bytes, same hash, on every machine.
//! - A [`ChainStore`] appends, reads, streams, verifies, snapshots and prunes.
//!   [`MemoryStore`] keeps the chain in memory; [`FileStore`] keeps it in an append-only
//!   log with a chosen [`Durability`] and recovers from a crash mid-write on open.
//! - [`check_refs`] checks the references between several chains.
//! - Payloads too large for an entry (file contents) live beside it in the chain's
//!   [`BlobStore`], named by SHA-256 (module [`blob`]; [`blob::check_blobs`] checks them).
//!
//! ## Example
//!
//! ```
//! use serde_json::json;
//! use theater_chain::{ChainId, ChainStore, Durability, FileStore, Hash, NewEntry, Payload};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let id = ChainId::new("counter")?;
//! let mut chain = FileStore::create(dir.path(), id, Durability::EveryEntry)?;
//!
//! let state = json!({"count": 0});
//! let _ = chain.append(NewEntry::init(Payload::json(state.clone()), Hash::of_state(&state)))?;
//! let state = json!({"count": 1});
//! let appended = chain.append(NewEntry::input(
//!     Payload::json(json!({"add": 1})),
//!     Payload::json(json!({"ok": true})),
//!     Hash::of_state(&state),
//! ))?;
//! assert!(appended.durable);
//! drop(chain);
//!
//! // Reopen and verify every hash and link.
//! let chain = FileStore::open(dir.path(), Durability::EveryEntry)?;
//! let report = chain.verify()?;
//! assert_eq!(report.entries, 2);
//! assert_eq!(chain.get(1)?.state_hash(), Hash::of_state(&json!({"count": 1})));
//! # Ok(())
//! # }
//! ```
//!
//! ## Guarantees
//!
//! | situation | what happens |
//! |---|---|
//! | crash mid-append | on open the torn last record is cut ([`FileStore::recovery`] says so); every acknowledged entry is kept |
//! | a damaged byte, missing or reordered record, broken link | open or [`ChainStore::verify`] fails with [`ChainError::Corrupt`] naming seq and byte offset |
//! | a log cut short before a saved snapshot | open fails: entries are missing |
//! | pruned chain | verifies from the snapshot anchor; [`VerifyReport::anchor`] says where it starts |

pub mod blob;
mod canonical;
mod codec;
mod cross;
mod entry;
mod error;
mod file;
pub mod fsio;
mod hash;
mod memory;
mod snapshot;
pub mod state;
mod store;
mod verify;

pub use blob::BlobStore;
pub use canonical::to_canonical_json;
pub use codec::{DecodeError, FORMAT_VERSION, MAX_ENTRY_LEN, MIN_FORMAT_VERSION, has_refs};
pub use cross::{BrokenRef, RefProblem, check_refs};
pub use entry::{ChainId, ChainRef, Entry, Event, HostCall, InvalidChainId, NewEntry, Payload};
pub use error::{ChainError, Corruption, Problem};
pub use file::{FileStore, Recovery};
pub use hash::{Hash, ParseHashError};
pub use memory::MemoryStore;
pub use snapshot::Snapshot;
pub use store::{
    Anchor, Appended, ChainStore, CopiedRecords, Durability, Entries, Head, PendingSync, RawRecord,
};
pub use verify::{Progress, VerifyReport, verify_sequential};
