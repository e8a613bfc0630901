//! History a third party can check: a host log over every actor's entries, signed
//! checkpoints, proofs and witnesses, in the formats transparency logs use.
//!
//! - [`HostLog`]: one append-only Merkle tree per host (RFC 9162 hashing: leaves
//!   `SHA-256(0x00 ‖ leaf)`, nodes `SHA-256(0x01 ‖ left ‖ right)`), whose leaves are chain
//!   entries in commit order, each a fixed binary [`Leaf`] (actor id, seq, entry hash, parent
//!   hash). Inclusion and consistency proofs are logarithmic in its size.
//! - [`Checkpointer`]: signs checkpoints (C2SP `tlog-checkpoint` in a C2SP `signed-note`,
//!   Ed25519) and never two that disagree: the size and root it signs are durable first, and
//!   a log that is not an extension of the last one signed is refused.
//! - [`Bundle`]: an offline proof that one entry is in a signed checkpoint, checked with the
//!   log's verifier key alone (and, with a quorum, its witnesses').
//! - [`Witness`]: C2SP `tlog-witness` logic: cosigns (C2SP `tlog-cosignature`) only a
//!   checkpoint consistent with the last one it cosigned for that log.
//!
//! The primitives are Cloudflare's ports of Go's `sumdb/tlog` and `sumdb/note`
//! (`tlog_tiles`, `signed_note`) over `ed25519-dalek`; this crate is the glue.
//!
//! ```
//! use theater_audit::{Bundle, Checkpointer, HostLog, Key, Leaf};
//! use theater_chain::{ChainId, Hash};
//!
//! let dir = tempfile::tempdir()?;
//! let mut log = HostLog::open(dir.path().join("log"))?;
//! let counter = ChainId::new("counter")?;
//! let mut parent = Hash::ZERO;
//! for seq in 0..10 {
//!     let entry = Hash::digest(format!("entry {seq}").as_bytes());
//!     log.append(&Leaf { actor: counter.clone(), seq, entry, parent })?;
//!     parent = entry;
//! }
//! log.sync()?;
//! let key = Key::load_or_create(&dir.path().join("log.key"), "theater.example/host-1")?;
//! let vkey = key.vkey().to_string();
//! let mut signer = Checkpointer::open(key, dir.path().join("signed"))?;
//! let checkpoint = signer.sign(&log)?;
//! let bundle = Bundle::prove(&log, 3, &checkpoint, None)?;
//! let verified = bundle.verify(&vkey, &[], 0)?;
//! assert_eq!((verified.size, bundle.seq), (10, 3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bundle;
mod checkpoint;
mod keys;
mod leaf;
mod log;
mod store;
mod witness;

pub use bundle::{BUNDLE_FORMAT, Bundle, Verified, check_signed, parse_checkpoint, split_view};
pub use checkpoint::{Checkpointer, Signed, consistent};
pub use keys::{Key, verifier};
pub use leaf::{LEAF_VERSION, Leaf};
pub use log::HostLog;
pub use store::{AuditedStore, Auditor};
/// A node or root hash of the host log's tree (`tlog_tiles`'s; `Display` is base64).
pub use tlog_tiles::Hash as TreeHash;
pub use witness::{CosignatureVerifier, Witness, WitnessRefusal};

/// What went wrong, naming the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// Bytes that are not what they should be (a leaf, a state file, a bundle's field).
    #[error("malformed: {0}")]
    Malformed(String),
    /// A key that cannot be used.
    #[error("key: {0}")]
    Key(String),
    /// A signature that does not verify, or is missing.
    #[error("signature: {0}")]
    Signature(String),
    /// A proof that does not verify.
    #[error("proof: {0}")]
    Proof(String),
    /// Asked for a leaf or a tree the log does not have.
    #[error("not in the log: {0}")]
    NotInLog(String),
    /// Signing would show a second history.
    #[error("refused: {0}")]
    Equivocation(String),
}
