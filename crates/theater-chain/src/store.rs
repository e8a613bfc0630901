//! The API every chain store offers.

use crate::verify::{Progress, VerifyReport};
use crate::{ChainError, ChainId, Entry, Hash, NewEntry, Snapshot};

/// The last entry of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Its seq.
    pub seq: u64,
    /// Its hash.
    pub hash: Hash,
}

/// What [`ChainStore::append`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The new entry's seq.
    pub seq: u64,
    /// The new entry's hash.
    pub hash: Hash,
    /// Whether the entry is already durable under the store's [`Durability`]. With group
    /// commit it becomes durable at the next [`ChainStore::sync`].
    pub durable: bool,
}

/// When appended entries reach stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every append is written and fsynced before it returns.
    EveryEntry,
    /// Group commit: appends are buffered and share one write and one fsync, made by
    /// [`ChainStore::sync`] or automatically once `max_batch` entries are pending. An entry
    /// is acknowledged (durable) only after that fsync.
    Group {
        /// Pending entries that force a commit.
        max_batch: usize,
    },
    /// Every append is written to the operating system but never fsynced: it survives a
    /// crash of the process, not of the machine.
    None,
}

/// The snapshot a pruned chain starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The snapshot's seq: the first stored entry.
    pub seq: u64,
    /// That entry's hash, as the snapshot recorded it.
    pub entry_hash: Hash,
}

/// One stored record as raw bytes, as [`ChainStore::for_each_record`] yields it.
#[derive(Clone, Copy, Debug)]
pub struct RawRecord<'a> {
    /// The seq this record sits at (its position in the chain).
    pub seq: u64,
    /// Byte offset of the record in its file, for file stores.
    pub offset: Option<u64>,
    /// The entry's canonical encoding.
    pub body: &'a [u8],
    /// The hash stored beside it.
    pub hash: Hash,
}

impl RawRecord<'_> {
    /// Decodes the entry.
    pub fn entry(&self) -> Result<Entry, crate::DecodeError> {
        Entry::decode(self.body)
    }

    /// Decodes the entry after checking it as [`ChainStore::get`] does: its body hashes to
    /// the stored hash and it names the seq it sits at. Errors name `chain`'s record.
    pub fn checked_entry(&self, chain: &dyn ChainStore) -> Result<Entry, ChainError> {
        self.checked_entry_of(chain.id(), chain.path())
    }

    /// [`RawRecord::checked_entry`] for a record copied out of the store: errors name the
    /// chain `chain`, stored at `path`.
    pub fn checked_entry_of(
        &self,
        chain: &ChainId,
        path: Option<&std::path::Path>,
    ) -> Result<Entry, ChainError> {
        let corrupt = |problem| {
            ChainError::Corrupt(Box::new(crate::Corruption {
                chain: chain.clone(),
                path: path.map(std::path::Path::to_path_buf),
                seq: self.seq,
                offset: self.offset,
                problem,
            }))
        };
        let computed = Hash::digest(self.body);
        if computed != self.hash {
            return Err(corrupt(crate::Problem::HashMismatch {
                stored: self.hash,
                computed,
            }));
        }
        let entry = Entry::decode(self.body).map_err(|e| corrupt(crate::Problem::Decode(e)))?;
        if entry.seq() != self.seq {
            return Err(corrupt(crate::Problem::SeqMismatch {
                expected: self.seq,
                found: entry.seq(),
            }));
        }
        Ok(entry)
    }
}

/// Records copied out of a store (their bodies back to back in one buffer), to be checked or
/// decoded elsewhere, on another thread, as [`RawRecord`]s again.
#[derive(Debug, Default)]
pub struct CopiedRecords {
    data: Vec<u8>,
    /// (seq, offset in the store, end of its body in `data`, stored hash).
    records: Vec<(u64, Option<u64>, usize, Hash)>,
}

impl CopiedRecords {
    /// None yet, to be copied into `buffer` (what it holds is dropped; its room is kept).
    pub fn with_buffer(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        CopiedRecords {
            data: buffer,
            records: Vec::new(),
        }
    }

    /// Copies `rec` in.
    pub fn push(&mut self, rec: &RawRecord<'_>) {
        self.data.extend_from_slice(rec.body);
        self.records
            .push((rec.seq, rec.offset, self.data.len(), rec.hash));
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The bytes of their bodies.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The records, in the order copied.
    pub fn iter(&self) -> impl Iterator<Item = RawRecord<'_>> {
        let starts = std::iter::once(0).chain(self.records.iter().map(|r| r.2));
        self.records
            .iter()
            .zip(starts)
            .map(|(&(seq, offset, end, hash), start)| RawRecord {
                seq,
                offset,
                body: &self.data[start..end],
                hash,
            })
    }

    /// The buffer, to use again.
    pub fn into_buffer(self) -> Vec<u8> {
        self.data
    }
}

/// The wait of a sync started by [`ChainStore::start_sync`]: run it on any thread.
pub type PendingSync = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// A chain of entries for one actor: append-only, hash-linked, verifiable.
///
/// [`crate::MemoryStore`] and [`crate::FileStore`] implement it.
pub trait ChainStore: Send + Sync {
    /// The chain's id.
    fn id(&self) -> &ChainId;

    /// The first stored seq: 0, or the snapshot seq the chain was pruned to.
    fn start(&self) -> u64;

    /// The snapshot anchor a pruned chain starts from (`None` if it starts at genesis).
    fn anchor(&self) -> Option<Anchor>;

    /// The last entry, if any.
    fn head(&self) -> Option<Head>;

    /// Number of entries ever appended: the next entry's seq.
    fn len(&self) -> u64 {
        self.head().map_or(self.start(), |h| h.seq + 1)
    }

    /// Whether nothing was ever appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `entry` after the head, filling its seq and parent hash.
    fn append(&mut self, entry: NewEntry) -> Result<Appended, ChainError>;

    /// Where payloads too large for an entry are kept (see [`crate::blob`]).
    fn blobs(&self) -> std::sync::Arc<dyn crate::BlobStore>;

    /// The last entry whose writes to the world (files) are known to be applied, as
    /// recorded by [`ChainStore::set_writes_applied`].
    fn writes_applied(&self) -> Option<u64>;

    /// Records that the writes of the entry at `seq` are applied. Not made durable: losing
    /// it only means they are applied again (idempotently) at the next start.
    fn set_writes_applied(&mut self, seq: u64) -> Result<(), ChainError>;

    /// Makes every appended entry durable (a no-op when all already are).
    fn sync(&mut self) -> Result<(), ChainError>;

    /// Starts a [`ChainStore::sync`] whose wait can run elsewhere: writes what is appended
    /// out and returns the wait (an fsync) for any thread to run, after which
    /// [`ChainStore::finish_sync`] must be told how it went. Entries may be appended (not
    /// synced) meanwhile; they are not covered. One started sync at a time: finish it before
    /// starting another. `None`: nothing is left to wait for.
    /// Default: syncs here.
    fn start_sync(&mut self) -> Result<Option<PendingSync>, ChainError> {
        self.sync()?;
        Ok(None)
    }

    /// Records how the wait [`ChainStore::start_sync`] returned went; an error makes the
    /// store refuse writes, as a failed [`ChainStore::sync`] does. A store that overrides
    /// `start_sync` overrides this too (the default only maps the error).
    fn finish_sync(&mut self, result: std::io::Result<()>) -> Result<(), ChainError> {
        result.map_err(|source| ChainError::Io {
            path: self
                .path()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default(),
            source,
        })
    }

    /// The entry at `seq`.
    fn get(&self, seq: u64) -> Result<Entry, ChainError>;

    /// The stored hash of the entry at `seq`, without decoding it.
    fn hash_at(&self, seq: u64) -> Result<Hash, ChainError>;

    /// Streams stored records from `from` to the head, reading them back from storage.
    /// Memory stays flat: each record's bytes are only borrowed for the call.
    fn for_each_record(
        &self,
        from: u64,
        f: &mut dyn FnMut(RawRecord<'_>) -> Result<(), ChainError>,
    ) -> Result<(), ChainError> {
        self.for_each_record_in(from, u64::MAX, f)
    }

    /// Streams stored records `from..end` (clamped to what is stored), reading them back
    /// sequentially: the way to read a run of entries, where [`ChainStore::get`] finds
    /// each one on its own.
    fn for_each_record_in(
        &self,
        from: u64,
        end: u64,
        f: &mut dyn FnMut(RawRecord<'_>) -> Result<(), ChainError>,
    ) -> Result<(), ChainError>;

    /// Stores a snapshot of the state at `snapshot.seq`. It must match the stored entry there.
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), ChainError>;

    /// The newest stored snapshot.
    fn latest_snapshot(&self) -> Result<Option<Snapshot>, ChainError>;

    /// The stored snapshot at `seq`, if there is one.
    fn snapshot_at(&self, seq: u64) -> Result<Option<Snapshot>, ChainError>;

    /// The seqs of the stored snapshots, oldest first, each with when it was saved where the
    /// store knows (a file's modification time). Default: none listed (a retention policy
    /// then prunes nothing).
    fn snapshots(&self) -> Vec<(u64, Option<std::time::SystemTime>)> {
        Vec::new()
    }

    /// Drops every entry before `seq`, which must have a saved snapshot; the chain then
    /// starts (and verifies) from that snapshot's anchor.
    fn prune_before(&mut self, seq: u64) -> Result<(), ChainError>;

    /// Recomputes every stored hash and link; reports the first bad seq and why.
    fn verify(&self) -> Result<VerifyReport, ChainError> {
        self.verify_with_progress(&mut |_| {})
    }

    /// [`ChainStore::verify`], calling `progress` about every mebibyte.
    fn verify_with_progress(
        &self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<VerifyReport, ChainError> {
        crate::verify::records(self, progress)
    }

    /// The directory of a file store, for messages.
    fn path(&self) -> Option<&std::path::Path> {
        None
    }

    /// Iterates decoded entries from `from` to the head.
    fn entries(&self, from: u64) -> Entries<'_, Self>
    where
        Self: Sized,
    {
        Entries {
            store: self,
            next: from.max(self.start()),
        }
    }
}

/// Iterator over decoded entries, from [`ChainStore::entries`].
#[derive(Debug)]
pub struct Entries<'a, S> {
    store: &'a S,
    next: u64,
}

impl<S: ChainStore> Iterator for Entries<'_, S> {
    type Item = Result<Entry, ChainError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.store.len() {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        Some(self.store.get(seq))
    }
}

pub(crate) fn check_range(store: &dyn ChainStore, seq: u64) -> Result<(), ChainError> {
    if seq < store.start() {
        return Err(ChainError::Pruned {
            chain: store.id().clone(),
            seq,
            start: store.start(),
        });
    }
    if seq >= store.len() {
        return Err(ChainError::NotFound {
            chain: store.id().clone(),
            seq,
            len: store.len(),
        });
    }
    Ok(())
}

/// Checks that `snapshot` matches the stored entry at its seq.
pub(crate) fn check_snapshot(
    store: &dyn ChainStore,
    snapshot: &Snapshot,
) -> Result<(), ChainError> {
    let reject = |reason: String| ChainError::Snapshot {
        seq: snapshot.seq,
        reason,
    };
    check_range(store, snapshot.seq).map_err(|e| reject(e.to_string()))?;
    let entry = store.get(snapshot.seq)?;
    let stored = store.hash_at(snapshot.seq)?;
    if stored != snapshot.entry_hash {
        return Err(reject(format!(
            "it names entry {} but the stored entry is {}",
            snapshot.entry_hash, stored
        )));
    }
    // Hashed as the entry's format says: chains written before the structural hash keep
    // taking snapshots of their old entries.
    let state_hash = entry.state_scheme().hash(&snapshot.state);
    if state_hash != entry.state_hash() {
        return Err(reject(format!(
            "its state hashes to {} but the entry records {}",
            state_hash,
            entry.state_hash()
        )));
    }
    Ok(())
}
