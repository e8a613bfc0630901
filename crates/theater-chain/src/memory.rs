//! A chain kept in memory: for tests, replays and actors that need no durability.

use std::sync::Arc;

use crate::blob::{BlobStore, MemoryBlobs};
use crate::error::Corruption;
use crate::store::{Anchor, Appended, ChainStore, Head, RawRecord, check_range, check_snapshot};
use crate::{ChainError, ChainId, Entry, Hash, MAX_ENTRY_LEN, NewEntry, Snapshot};

struct Record {
    body: Vec<u8>,
    hash: Hash,
}

/// An in-memory chain. Entries are kept encoded, exactly as a file store keeps them.
pub struct MemoryStore {
    id: ChainId,
    start: u64,
    anchor: Option<Anchor>,
    records: Vec<Record>,
    snapshots: Vec<Snapshot>,
    blobs: Arc<MemoryBlobs>,
    applied: Option<u64>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("id", &self.id)
            .field("start", &self.start)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty chain.
    pub fn new(id: ChainId) -> Self {
        MemoryStore {
            id,
            start: 0,
            anchor: None,
            records: Vec::new(),
            snapshots: Vec::new(),
            blobs: Arc::default(),
            applied: None,
        }
    }

    /// Damages the stored bytes of `seq` with `f`, for tests of verification.
    #[doc(hidden)]
    pub fn tamper(&mut self, seq: u64, f: impl FnOnce(&mut Vec<u8>, &mut Hash)) {
        if let Some(i) = seq.checked_sub(self.start)
            && let Some(r) = self.records.get_mut(i as usize)
        {
            f(&mut r.body, &mut r.hash);
        }
    }

    fn record(&self, seq: u64) -> Result<&Record, ChainError> {
        check_range(self, seq)?;
        Ok(&self.records[(seq - self.start) as usize])
    }
}

impl ChainStore for MemoryStore {
    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }

    fn writes_applied(&self) -> Option<u64> {
        self.applied
    }

    fn set_writes_applied(&mut self, seq: u64) -> Result<(), ChainError> {
        self.applied = Some(seq);
        Ok(())
    }

    fn id(&self) -> &ChainId {
        &self.id
    }

    fn start(&self) -> u64 {
        self.start
    }

    fn anchor(&self) -> Option<Anchor> {
        self.anchor
    }

    fn head(&self) -> Option<Head> {
        self.records.last().map(|r| Head {
            seq: self.start + self.records.len() as u64 - 1,
            hash: r.hash,
        })
    }

    fn append(&mut self, new: NewEntry) -> Result<Appended, ChainError> {
        let seq = self.len();
        new.check_version(seq)?;
        let parent = self.head().map_or(Hash::ZERO, |h| h.hash);
        let body = Entry::new(seq, parent, new).encode();
        // Kept as encoded: the spare capacity of the estimate is cheaper than a shrink.
        if body.len() > MAX_ENTRY_LEN {
            return Err(ChainError::TooLarge {
                seq,
                len: body.len(),
            });
        }
        let hash = Hash::digest(&body);
        self.records.push(Record { body, hash });
        Ok(Appended {
            seq,
            hash,
            durable: true,
        })
    }

    fn sync(&mut self) -> Result<(), ChainError> {
        Ok(())
    }

    fn get(&self, seq: u64) -> Result<Entry, ChainError> {
        let r = self.record(seq)?;
        Entry::decode(&r.body).map_err(|e| {
            ChainError::Corrupt(Box::new(Corruption {
                chain: self.id.clone(),
                path: None,
                seq,
                offset: None,
                problem: crate::Problem::Decode(e),
            }))
        })
    }

    fn hash_at(&self, seq: u64) -> Result<Hash, ChainError> {
        Ok(self.record(seq)?.hash)
    }

    fn for_each_record_in(
        &self,
        from: u64,
        end: u64,
        f: &mut dyn FnMut(RawRecord<'_>) -> Result<(), ChainError>,
    ) -> Result<(), ChainError> {
        let skip = from.saturating_sub(self.start) as usize;
        let take = end
            .saturating_sub(self.start)
            .min(self.records.len() as u64) as usize;
        for (i, r) in self.records.iter().enumerate().take(take).skip(skip) {
            f(RawRecord {
                seq: self.start + i as u64,
                offset: None,
                body: &r.body,
                hash: r.hash,
            })?;
        }
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), ChainError> {
        check_snapshot(self, snapshot)?;
        self.snapshots.retain(|s| s.seq != snapshot.seq);
        self.snapshots.push(snapshot.clone());
        self.snapshots.sort_by_key(|s| s.seq);
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<Snapshot>, ChainError> {
        Ok(self.snapshots.last().cloned())
    }

    fn snapshot_at(&self, seq: u64) -> Result<Option<Snapshot>, ChainError> {
        Ok(self.snapshots.iter().find(|s| s.seq == seq).cloned())
    }

    fn snapshots(&self) -> Vec<(u64, Option<std::time::SystemTime>)> {
        self.snapshots.iter().map(|s| (s.seq, None)).collect()
    }

    fn prune_before(&mut self, seq: u64) -> Result<(), ChainError> {
        if seq <= self.start {
            return Ok(());
        }
        let Some(snap) = self.snapshots.iter().find(|s| s.seq == seq) else {
            return Err(ChainError::Snapshot {
                seq,
                reason: "cannot prune before a seq that has no saved snapshot".into(),
            });
        };
        self.anchor = Some(Anchor {
            seq,
            entry_hash: snap.entry_hash,
        });
        self.records.drain(..(seq - self.start) as usize);
        self.snapshots.retain(|s| s.seq >= seq);
        self.start = seq;
        // Blobs only pruned entries (or failed inputs) named go too.
        let keep = crate::blob::named_blobs(self)?;
        self.blobs.retain(&keep)?;
        Ok(())
    }
}
