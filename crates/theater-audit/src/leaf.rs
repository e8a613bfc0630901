//! A leaf of the host log: one chain entry, as a fixed binary encoding.

use theater_chain::{ChainId, Hash};

use crate::AuditError;

/// The version byte every leaf encoding starts with.
pub const LEAF_VERSION: u8 = 1;

/// One entry of one actor's chain, as the host log records it: which chain, which seq, the
/// entry's hash and its parent's. What the log commits to is [`Leaf::encode`]; the entry's
/// content is committed to by its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The actor (its chain's id).
    pub actor: ChainId,
    /// The entry's seq in that chain.
    pub seq: u64,
    /// The entry's hash.
    pub entry: Hash,
    /// The hash of the entry before it (zero for a chain's first entry).
    pub parent: Hash,
}

impl Leaf {
    /// The leaf's bytes: `u8` version (1), `u8` length of the actor id, its UTF-8 bytes,
    /// `u64` seq (big-endian), the entry hash, the parent hash. Never JSON: the same bytes on
    /// every machine.
    pub fn encode(&self) -> Vec<u8> {
        let id = self.actor.as_str().as_bytes();
        let mut out = Vec::with_capacity(2 + id.len() + 8 + 64);
        out.push(LEAF_VERSION);
        // A chain id is at most 255 bytes (`ChainId::MAX_LEN`).
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(self.entry.as_bytes());
        out.extend_from_slice(self.parent.as_bytes());
        out
    }

    /// Reads back what [`Leaf::encode`] wrote; anything else is an error naming the problem.
    pub fn decode(bytes: &[u8]) -> Result<Leaf, AuditError> {
        let bad = |why: &str| AuditError::Malformed(format!("leaf: {why}"));
        let (&version, rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
        if version != LEAF_VERSION {
            return Err(bad(&format!("version {version}, expected {LEAF_VERSION}")));
        }
        let (&len, rest) = rest.split_first().ok_or_else(|| bad("no actor id"))?;
        let len = usize::from(len);
        if rest.len() != len + 8 + 64 {
            return Err(bad(&format!(
                "{} bytes after the actor id's length, expected {}",
                rest.len(),
                len + 72
            )));
        }
        let id = std::str::from_utf8(&rest[..len]).map_err(|_| bad("actor id not UTF-8"))?;
        let actor = ChainId::new(id).map_err(|e| bad(&e.to_string()))?;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&rest[len..len + 8]);
        let mut entry = [0u8; 32];
        entry.copy_from_slice(&rest[len + 8..len + 40]);
        let mut parent = [0u8; 32];
        parent.copy_from_slice(&rest[len + 40..]);
        Ok(Leaf {
            actor,
            seq: u64::from_be_bytes(seq),
            entry: Hash::from_bytes(entry),
            parent: Hash::from_bytes(parent),
        })
    }

    /// The leaf's hash in the Merkle tree (RFC 9162: SHA-256 of `0x00` then the leaf).
    pub fn hash(&self) -> tlog_tiles::Hash {
        tlog_tiles::record_hash(&self.encode())
    }
}
