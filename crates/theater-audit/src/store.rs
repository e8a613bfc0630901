//! [`Auditor`] and [`AuditedStore`]: every entry an actor commits becomes a leaf of the host
//! log, in commit order.
//!
//! A leaf is added once its entry is durable in its chain (at the chain's sync, or the
//! snapshot or prune that syncs it), never before: the log never names an entry a crash
//! could take back. What a crash leaves between the two (an entry durable, its leaf not) is
//! added when the actor's chain is next wrapped ([`Auditor::wrap`]), which also checks that
//! the chain still holds the entry the log last recorded for it.

use std::sync::{Arc, Mutex, MutexGuard};

use theater_chain::{
    Anchor, Appended, BlobStore, ChainError, ChainId, ChainStore, Entry, Hash, Head, NewEntry,
    RawRecord, Snapshot,
};

use crate::{AuditError, HostLog, Leaf};

/// The host log, shared by every actor's [`AuditedStore`].
#[derive(Debug)]
pub struct Auditor {
    log: Mutex<HostLog>,
    notes: Mutex<Vec<String>>,
}

/// Bytes before an encoded entry's parent hash (its version and seq).
const PARENT_AT: usize = 1 + 8;

impl Auditor {
    /// Opens (or creates) the host log in `dir`.
    pub fn open(dir: impl Into<std::path::PathBuf>) -> Result<Arc<Auditor>, AuditError> {
        Ok(Arc::new(Auditor {
            log: Mutex::new(HostLog::open(dir)?),
            notes: Mutex::new(Vec::new()),
        }))
    }

    /// What wrapping chains found worth saying (entries that were pruned before they were
    /// logged: a gap in the log), taken.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The log, locked (appends wait meanwhile: keep it short).
    pub fn log(&self) -> MutexGuard<'_, HostLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wraps `chain` so that its commits are logged. First checks that the chain holds the
    /// entry the log last recorded for it (a chain rewritten since is refused, naming the
    /// seq), and logs the entries it holds past that one.
    pub fn wrap(self: &Arc<Self>, chain: Box<dyn ChainStore>) -> Result<AuditedStore, AuditError> {
        let id = chain.id().clone();
        let mut log = self.log();
        let from = match log.head_of(&id) {
            None => chain.start(),
            Some((seq, hash)) => {
                if seq >= chain.start() && seq < chain.len() {
                    let held = chain
                        .hash_at(seq)
                        .map_err(|e| AuditError::Io(format!("chain {id}: {e}")))?;
                    if held != hash {
                        return Err(AuditError::Equivocation(format!(
                            "chain {id} holds entry {} at seq {seq}, but the host log recorded {}: the chain was rewritten after it was logged",
                            held.short(),
                            hash.short()
                        )));
                    }
                } else if seq >= chain.len() {
                    return Err(AuditError::Equivocation(format!(
                        "chain {id} ends at seq {}, but the host log recorded its entry at seq {seq}: the chain lost entries after they were logged",
                        chain.len().saturating_sub(1)
                    )));
                }
                if seq + 1 < chain.start() {
                    self.notes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!(
                            "chain {id}: entries {} to {} were pruned before the host log recorded them; the log goes on from seq {}",
                            seq + 1,
                            chain.start() - 1,
                            chain.start()
                        ));
                }
                (seq + 1).max(chain.start())
            }
        };
        let logged = log.head_of(&id);
        let mut missing = Vec::new();
        chain
            .for_each_record(from, &mut |rec: RawRecord<'_>| {
                let parent = rec
                    .body
                    .get(PARENT_AT..PARENT_AT + 32)
                    .and_then(|p| <[u8; 32]>::try_from(p).ok())
                    .map(Hash::from_bytes)
                    .ok_or_else(|| ChainError::HostLog {
                        chain: id.clone(),
                        reason: format!("entry {} is too short to hold its parent", rec.seq),
                    })?;
                // The first entry after the one logged must follow it.
                if let Some((seq, hash)) = logged
                    && rec.seq == seq + 1
                    && parent != hash
                {
                    return Err(ChainError::HostLog {
                        chain: id.clone(),
                        reason: format!(
                            "entry {} does not follow the entry the host log recorded at seq {seq}: the chain was rewritten after it was logged",
                            rec.seq
                        ),
                    });
                }
                missing.push(Leaf {
                    actor: id.clone(),
                    seq: rec.seq,
                    entry: rec.hash,
                    parent,
                });
                Ok(())
            })
            .map_err(|e| match e {
                ChainError::HostLog { reason, .. } => {
                    AuditError::Equivocation(format!("chain {id}: {reason}"))
                }
                e => AuditError::Io(format!("chain {id}: {e}")),
            })?;
        if !missing.is_empty() {
            log.append_all(&missing)?;
            log.sync()?;
        }
        drop(log);
        Ok(AuditedStore {
            inner: chain,
            auditor: Arc::clone(self),
            pending: Vec::new(),
        })
    }

    fn add(&self, leaves: &mut Vec<Leaf>) -> Result<(), ChainError> {
        let Some(first) = leaves.first() else {
            return Ok(());
        };
        let mut log = self.log();
        log.append_all(leaves).map_err(|e| ChainError::HostLog {
            chain: first.actor.clone(),
            reason: e.to_string(),
        })?;
        leaves.clear();
        Ok(())
    }
}

/// A chain whose committed entries become leaves of the host log (see the module docs).
pub struct AuditedStore {
    inner: Box<dyn ChainStore>,
    auditor: Arc<Auditor>,
    /// Appended, not yet durable: logged at the next sync.
    pending: Vec<Leaf>,
}

impl std::fmt::Debug for AuditedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditedStore")
            .field("chain", self.inner.id())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl AuditedStore {
    fn logged(&mut self) -> Result<(), ChainError> {
        self.auditor.add(&mut self.pending)
    }
}

impl ChainStore for AuditedStore {
    fn id(&self) -> &ChainId {
        self.inner.id()
    }
    fn start(&self) -> u64 {
        self.inner.start()
    }
    fn anchor(&self) -> Option<Anchor> {
        self.inner.anchor()
    }
    fn head(&self) -> Option<Head> {
        self.inner.head()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn append(&mut self, entry: NewEntry) -> Result<Appended, ChainError> {
        let parent = self.inner.head().map_or(Hash::ZERO, |h| h.hash);
        let appended = self.inner.append(entry)?;
        self.pending.push(Leaf {
            actor: self.inner.id().clone(),
            seq: appended.seq,
            entry: appended.hash,
            parent,
        });
        if appended.durable {
            self.logged()?;
        }
        Ok(appended)
    }
    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.inner.blobs()
    }
    fn writes_applied(&self) -> Option<u64> {
        self.inner.writes_applied()
    }
    fn set_writes_applied(&mut self, seq: u64) -> Result<(), ChainError> {
        self.inner.set_writes_applied(seq)
    }
    fn sync(&mut self) -> Result<(), ChainError> {
        self.inner.sync()?;
        self.logged()
    }
    fn get(&self, seq: u64) -> Result<Entry, ChainError> {
        self.inner.get(seq)
    }
    fn hash_at(&self, seq: u64) -> Result<Hash, ChainError> {
        self.inner.hash_at(seq)
    }
    fn for_each_record(
        &self,
        from: u64,
        f: &mut dyn FnMut(RawRecord<'_>) -> Result<(), ChainError>,
    ) -> Result<(), ChainError> {
        self.inner.for_each_record(from, f)
    }
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), ChainError> {
        self.inner.save_snapshot(snapshot)?;
        // Saving it made the chain durable.
        self.logged()
    }
    fn latest_snapshot(&self) -> Result<Option<Snapshot>, ChainError> {
        self.inner.latest_snapshot()
    }
    fn snapshot_at(&self, seq: u64) -> Result<Option<Snapshot>, ChainError> {
        self.inner.snapshot_at(seq)
    }
    fn snapshots(&self) -> Vec<(u64, Option<std::time::SystemTime>)> {
        self.inner.snapshots()
    }
    fn prune_before(&mut self, seq: u64) -> Result<(), ChainError> {
        // Durable first (a prune that has nothing to do may not sync).
        self.inner.sync()?;
        self.logged()?;
        self.inner.prune_before(seq)
    }
    fn path(&self) -> Option<&std::path::Path> {
        self.inner.path()
    }
}
