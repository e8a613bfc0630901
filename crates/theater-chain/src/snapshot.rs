//! Snapshots: an actor's state at a seq, so a restart need not replay from genesis.

use serde_json::Value;

use crate::Hash;

/// The state after the entry at `seq`, with that entry's hash.
///
/// A store accepts a snapshot only if `entry_hash` is the stored entry's hash and the state
/// hashes to the entry's state hash; entries before `seq` can then be pruned, and the chain
/// verifies from this anchor.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The entry the state is after.
    pub seq: u64,
    /// That entry's hash.
    pub entry_hash: Hash,
    /// The actor's state.
    pub state: Value,
}

const MAGIC: &[u8; 8] = b"THSNAP\n\x01";

impl Snapshot {
    /// Encodes the snapshot for storage: magic, seq, entry hash, canonical state, then a
    /// SHA-256 of everything before it.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let state = crate::to_canonical_json(&self.state);
        let mut out = Vec::with_capacity(state.len() + 96);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(self.entry_hash.as_bytes());
        out.extend_from_slice(&(state.len() as u64).to_le_bytes());
        out.extend_from_slice(&state);
        let check = Hash::digest(&out);
        out.extend_from_slice(check.as_bytes());
        out
    }

    /// Decodes what [`Snapshot::encode`] wrote; `Err` names what is wrong.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let fixed = MAGIC.len() + 8 + 32 + 8;
        if bytes.len() < fixed + 32 {
            return Err(format!("too short ({} bytes)", bytes.len()));
        }
        if &bytes[..8] != MAGIC {
            return Err("not a snapshot file (bad magic)".into());
        }
        let (body, check) = bytes.split_at(bytes.len() - 32);
        if Hash::digest(body).as_bytes()[..] != check[..] {
            return Err("checksum mismatch: the file is damaged".into());
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&body[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let seq = u64_at(8);
        let mut h = [0u8; 32];
        h.copy_from_slice(&body[16..48]);
        let len = u64_at(48);
        if len != (body.len() - fixed) as u64 {
            return Err("state length does not match the file".into());
        }
        let state = serde_json::from_slice(&body[fixed..])
            .map_err(|e| format!("state is not valid JSON: {e}"))?;
        Ok(Snapshot {
            seq,
            entry_hash: Hash::from_bytes(h),
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_detects_damage() {
        let s = Snapshot {
            seq: 42,
            entry_hash: Hash::digest(b"e"),
            state: json!({"count": 3, "names": ["a", "b"]}),
        };
        let bytes = s.encode();
        assert_eq!(Snapshot::decode(&bytes), Ok(s));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Snapshot::decode(&b).is_err(), "flip at {i} undetected");
        }
        assert!(Snapshot::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
