//! Errors of chain stores and verification.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::{ChainId, DecodeError, Hash};

/// Anything that can go wrong reading, writing or verifying a chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The operating system refused a read or write.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Stored data is damaged or does not form a valid chain.
    #[error("{0}")]
    Corrupt(Box<Corruption>),
    /// A file is not a chain file or snapshot this crate can read.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A chain was opened under an id other than the one it was created with.
    #[error("chain at {} has id {found:?}, expected {expected:?}", path.display())]
    WrongId {
        /// The chain's directory.
        path: PathBuf,
        /// The id asked for.
        expected: ChainId,
        /// The id stored.
        found: ChainId,
    },
    /// The seq was pruned away; the stored chain starts later.
    #[error("seq {seq} was pruned: chain {chain:?} starts at seq {start}")]
    Pruned {
        /// Which chain.
        chain: ChainId,
        /// The seq asked for.
        seq: u64,
        /// The first stored seq.
        start: u64,
    },
    /// The seq is past the head.
    #[error("seq {seq} is past the head of chain {chain:?} (it has {len} entries)")]
    NotFound {
        /// Which chain.
        chain: ChainId,
        /// The seq asked for.
        seq: u64,
        /// Number of entries (head seq + 1).
        len: u64,
    },
    /// An encoded entry is larger than [`crate::MAX_ENTRY_LEN`].
    #[error(
        "entry {seq} encodes to {len} bytes, over the {} byte limit",
        crate::MAX_ENTRY_LEN
    )]
    TooLarge {
        /// The entry's seq.
        seq: u64,
        /// Its encoded length.
        len: usize,
    },
    /// An entry to append names a format version this build cannot write.
    #[error(
        "entry {seq} has format version {version}; this build writes versions {}..={}",
        crate::MIN_FORMAT_VERSION,
        crate::FORMAT_VERSION
    )]
    UnknownVersion {
        /// The entry's seq.
        seq: u64,
        /// The version it named.
        version: u8,
    },
    /// The store was opened read-only.
    #[error("chain {0:?} is open read-only")]
    ReadOnly(ChainId),
    /// A blob an entry names is missing or damaged.
    #[error("blob {hash}: {reason}")]
    Blob {
        /// The hash the entry names.
        hash: Hash,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot does not match the chain it is for.
    #[error("snapshot at seq {seq} rejected: {reason}")]
    Snapshot {
        /// The snapshot's seq.
        seq: u64,
        /// Why it was rejected.
        reason: String,
    },
    /// The entries are durable here but could not be replicated, so they are not
    /// acknowledged (a cluster's chains are acknowledged once their replica has them).
    #[error("chain {chain:?} could not be replicated: {reason}")]
    Replication {
        /// The chain.
        chain: ChainId,
        /// Why.
        reason: String,
        /// Another writer extended the replica: this one must stop writing the chain for good.
        fenced: bool,
    },
    /// The entries are durable in the chain, but the host's audit log could not record
    /// them; they are added when the chain is next opened for the log.
    #[error("chain {chain:?}: the host log could not record its entries: {reason}")]
    HostLog {
        /// The chain.
        chain: ChainId,
        /// Why.
        reason: String,
    },
}

/// Where a chain is damaged and how: the first seq that cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain {chain:?}{}: {problem} at seq {seq}{}",
    path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default(),
    offset.map(|o| format!(", byte offset {o}")).unwrap_or_default())]
#[non_exhaustive]
pub struct Corruption {
    /// Which chain.
    pub chain: ChainId,
    /// The chain's directory, for file stores.
    pub path: Option<PathBuf>,
    /// The first seq that is not trustworthy.
    pub seq: u64,
    /// Where that seq's record starts in the log file, for file stores.
    pub offset: Option<u64>,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a damaged record or chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The record's bytes do not hash to the hash stored with them.
    HashMismatch {
        /// Hash stored beside the record.
        stored: Hash,
        /// Hash of the record's bytes.
        computed: Hash,
    },
    /// The entry's parent is not the previous entry's hash.
    BrokenLink {
        /// The previous entry's hash.
        expected: Hash,
        /// The parent the entry names.
        found: Hash,
    },
    /// The entry is not at the position its seq says (a missing or reordered record).
    SeqMismatch {
        /// The seq expected at this position.
        expected: u64,
        /// The seq the entry holds.
        found: u64,
    },
    /// The record's length field fails its check (a damaged frame).
    BadFrame,
    /// The file ends inside a record that is not the last one acknowledged.
    Truncated,
    /// The entry's bytes do not decode.
    Decode(DecodeError),
    /// The first stored entry does not match the snapshot the chain starts from.
    AnchorMismatch {
        /// Entry hash the snapshot records.
        snapshot: Hash,
        /// Hash of the stored entry.
        entry: Hash,
    },
    /// A snapshot exists for a seq past the end of the log: entries were lost.
    MissingEntries {
        /// The snapshot's seq.
        snapshot_seq: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::HashMismatch { stored, computed } => {
                // Short forms, unless the damage is past them (in the stored hash itself).
                let (stored, computed) = if stored.short() == computed.short() {
                    (stored.to_string(), computed.to_string())
                } else {
                    (stored.short(), computed.short())
                };
                write!(f, "hash mismatch (stored {stored}, computed {computed})")
            }
            Problem::BrokenLink { expected, found } => write!(
                f,
                "broken link (parent {} but previous entry is {})",
                found.short(),
                expected.short()
            ),
            Problem::SeqMismatch { expected, found } => write!(
                f,
                "out-of-order record (found seq {found} where seq {expected} belongs)"
            ),
            Problem::BadFrame => f.write_str("damaged record frame (length check failed)"),
            Problem::Truncated => f.write_str("file ends inside a record"),
            Problem::Decode(e) => write!(f, "undecodable entry ({e})"),
            Problem::AnchorMismatch { snapshot, entry } => write!(
                f,
                "entry does not match its snapshot anchor (snapshot names {}, entry is {})",
                snapshot.short(),
                entry.short()
            ),
            Problem::MissingEntries { snapshot_seq } => write!(
                f,
                "log ends before the snapshot at seq {snapshot_seq}: entries are missing"
            ),
        }
    }
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ChainError {
    let path = path.into();
    move |source| ChainError::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash mismatch names the hashes so that they differ where shown: the short forms, or
    /// the whole hashes when the damage is past the short form (in the stored hash itself).
    #[test]
    fn a_hash_mismatch_shows_where_the_hashes_differ() {
        let hash = |hex: &str| hex.parse::<Hash>().unwrap();
        let a = hash(&"ab".repeat(32));
        let late = hash(&format!("{}cd", "ab".repeat(31)));
        let early = hash(&format!("cd{}", "ab".repeat(31)));
        let text = Problem::HashMismatch {
            stored: a,
            computed: late,
        }
        .to_string();
        assert!(
            text.contains(&late.to_string()) && text.contains(&a.to_string()),
            "{text}"
        );
        let text = Problem::HashMismatch {
            stored: a,
            computed: early,
        }
        .to_string();
        assert_eq!(
            text,
            format!(
                "hash mismatch (stored {}, computed {})",
                a.short(),
                early.short()
            )
        );
    }
}
