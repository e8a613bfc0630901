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
    /// What the host derives from the entries up to `seq` and needs once they are pruned
    /// (the timers still pending, for one); `null` if nothing. Not covered by the chain's
    /// hashes: it can always be rebuilt from the entries while they exist.
    pub host: Value,
}

/// Version 1 (state only) is still read; version 2 adds `host`.
const MAGIC_V1: &[u8; 8] = b"THSNAP\n\x01";
const MAGIC: &[u8; 8] = b"THSNAP\n\x02";

impl Snapshot {
    /// A snapshot of `state` after the entry `seq` whose hash is `entry_hash`, with no host
    /// data.
    pub fn new(seq: u64, entry_hash: Hash, state: Value) -> Self {
        Snapshot {
            seq,
            entry_hash,
            state,
            host: Value::Null,
        }
    }

    /// Sets [`Snapshot::host`].
    pub fn with_host(mut self, host: Value) -> Self {
        self.host = host;
        self
    }

    /// Encodes the snapshot for storage: magic, seq, entry hash, length-prefixed canonical
    /// state and host data, then a SHA-256 of everything before it.
    pub fn encode(&self) -> Vec<u8> {
        let state = crate::to_canonical_json(&self.state);
        let host = crate::to_canonical_json(&self.host);
        let mut out = Vec::with_capacity(state.len() + host.len() + 104);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(self.entry_hash.as_bytes());
        for part in [&state, &host] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        let check = Hash::digest(&out);
        out.extend_from_slice(check.as_bytes());
        out
    }

    /// Decodes what [`Snapshot::encode`] wrote (or version 1); `Err` names what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let fixed = MAGIC.len() + 8 + 32;
        if bytes.len() < fixed + 8 + 32 {
            return Err(format!("too short ({} bytes)", bytes.len()));
        }
        let v1 = &bytes[..8] == MAGIC_V1;
        if !v1 && &bytes[..8] != MAGIC {
            return Err("not a snapshot file (bad magic)".into());
        }
        let (body, check) = bytes.split_at(bytes.len() - 32);
        if Hash::digest(body).as_bytes()[..] != check[..] {
            return Err("checksum mismatch: the file is damaged".into());
        }
        let u64_at = |i: usize| -> Option<u64> {
            let a: [u8; 8] = body.get(i..i + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(a))
        };
        let seq = u64_at(8).ok_or("too short")?;
        let mut h = [0u8; 32];
        h.copy_from_slice(&body[16..48]);
        // Length-prefixed JSON parts: the state, then (version 2) the host data.
        let mut at = fixed;
        let mut parts = Vec::new();
        for _ in 0..if v1 { 1 } else { 2 } {
            let len = u64_at(at).ok_or("too short")?;
            let start = at + 8;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .filter(|&e| e <= body.len())
                .ok_or("a length does not match the file")?;
            parts.push(
                serde_json::from_slice::<Value>(&body[start..end])
                    .map_err(|e| format!("not valid JSON: {e}"))?,
            );
            at = end;
        }
        if at != body.len() {
            return Err("a length does not match the file".into());
        }
        let host = if v1 {
            Value::Null
        } else {
            parts.pop().unwrap_or(Value::Null)
        };
        let state = parts.pop().unwrap_or(Value::Null);
        Ok(Snapshot {
            seq,
            entry_hash: Hash::from_bytes(h),
            state,
            host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_detects_damage() {
        let s = Snapshot::new(
            42,
            Hash::digest(b"e"),
            json!({"count": 3, "names": ["a", "b"]}),
        )
        .with_host(json!({"timers": [{"name": "t", "due_ms": 5}]}));
        let bytes = s.encode();
        assert_eq!(Snapshot::decode(&bytes), Ok(s.clone()));
        // Version 1 files (no host data) still read.
        let state = crate::to_canonical_json(&s.state);
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&42u64.to_le_bytes());
        v1.extend_from_slice(s.entry_hash.as_bytes());
        v1.extend_from_slice(&(state.len() as u64).to_le_bytes());
        v1.extend_from_slice(&state);
        let check = Hash::digest(&v1);
        v1.extend_from_slice(check.as_bytes());
        assert_eq!(
            Snapshot::decode(&v1),
            Ok(Snapshot::new(42, s.entry_hash, s.state.clone()))
        );
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Snapshot::decode(&b).is_err(), "flip at {i} undetected");
        }
        assert!(Snapshot::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
