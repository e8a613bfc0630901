//! [`Auditor`] and [`AuditedStore`]: every entry an actor commits becomes a leaf of the host
//! log, in commit order.
//!
//! A leaf is added once its entry is durable in its chain (at the chain's sync, or the
//! snapshot or prune that syncs it), never before: the log never names an entry a crash
//! could take back. What a crash leaves between the two (an entry durable, its leaf not) is
//! added when the actor's chain is next wrapped ([`Auditor::wrap`]), which also checks that
//! the chain still holds the entry the log last recorded for it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use theater_chain::{
    Anchor, Appended, BlobStore, ChainError, ChainId, ChainStore, Entry, Hash, Head, NewEntry,
    RawRecord, Snapshot,
};

use crate::{AuditError, HostLog, Leaf};

/// The host log, shared by every actor's [`AuditedStore`].
#[derive(Debug)]
pub struct Auditor {
    log: Mutex<HostLog>,
    /// Leaves of durable entries, in commit order, not yet in the log: a thread of the
    /// auditor's own hashes them in (off the actors' threads), and whoever reads the log
    /// takes them in first.
    queue: Mutex<Vec<Batch>>,
    wake: Condvar,
    /// Why the leaves queued could not be added, the last time it failed.
    failure: Mutex<Option<String>>,
    notes: Mutex<Vec<String>>,
}

/// Batches queued past which commits fail (the log has been failing to take them).
const MAX_QUEUED: usize = 1 << 16;

/// One chain's leaves, without the actor id in each (made into [`Leaf`]s off the actor's
/// thread): seq, entry hash, parent hash.
#[derive(Debug)]
struct Batch {
    actor: ChainId,
    leaves: Vec<(u64, Hash, Hash)>,
}

/// Bytes before an encoded entry's parent hash (its version and seq).
const PARENT_AT: usize = 1 + 8;

impl Auditor {
    /// Opens (or creates) the host log in `dir`.
    pub fn open(dir: impl Into<std::path::PathBuf>) -> Result<Arc<Auditor>, AuditError> {
        let auditor = Arc::new(Auditor {
            log: Mutex::new(HostLog::open(dir)?),
            queue: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            failure: Mutex::new(None),
            notes: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&auditor);
        std::thread::Builder::new()
            .name("theater-audit".into())
            .spawn(move || {
                while let Some(a) = weak.upgrade() {
                    {
                        let q = lock(&a.queue);
                        if q.is_empty() {
                            let _ = a.wake.wait_timeout(q, Duration::from_millis(50));
                        }
                    }
                    drop(a.log());
                }
            })
            .map_err(|e| AuditError::Io(format!("starting the audit thread: {e}")))?;
        Ok(auditor)
    }

    /// Why the log could not take the leaves queued, if it failed the last time it tried.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// What wrapping chains found worth saying (entries that were pruned before they were
    /// logged: a gap in the log), taken.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The log, locked (appends wait meanwhile: keep it short), with every leaf queued so
    /// far in it (unless adding them failed: see [`Auditor::failure`]).
    pub fn log(&self) -> MutexGuard<'_, HostLog> {
        let mut log = lock(&self.log);
        // Taken under the log's lock, so leaves go in in the order they were queued.
        let batches = std::mem::take(&mut *lock(&self.queue));
        if !batches.is_empty() {
            let leaves: Vec<Leaf> = batches
                .iter()
                .flat_map(|b| {
                    b.leaves.iter().map(|&(seq, entry, parent)| Leaf {
                        actor: b.actor.clone(),
                        seq,
                        entry,
                        parent,
                    })
                })
                .collect();
            match log.append_all(&leaves) {
                Ok(_) => *lock(&self.failure) = None,
                Err(e) => {
                    // Back at the front, for the next try.
                    let mut q = lock(&self.queue);
                    let later = std::mem::replace(&mut *q, batches);
                    q.extend(later);
                    *lock(&self.failure) = Some(e.to_string());
                }
            }
        }
        log
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
            last: chain.head().map_or(Hash::ZERO, |h| h.hash),
            inner: chain,
            auditor: Arc::clone(self),
            pending: Vec::with_capacity(BATCH),
        })
    }

    fn add(&self, actor: &ChainId, leaves: &mut Vec<(u64, Hash, Hash)>) -> Result<(), ChainError> {
        if leaves.is_empty() {
            return Ok(());
        }
        let mut q = lock(&self.queue);
        if q.len() > MAX_QUEUED {
            return Err(ChainError::HostLog {
                chain: actor.clone(),
                reason: format!(
                    "{} leaves wait for the host log, which fails to take them: {}",
                    q.len(),
                    self.failure().unwrap_or_default()
                ),
            });
        }
        q.push(Batch {
            actor: actor.clone(),
            leaves: std::mem::replace(leaves, Vec::with_capacity(BATCH)),
        });
        // The thread wakes for a good handful (or by itself every 50 ms): fewer wake-ups on
        // the actors' threads, bigger appends on its own.
        let wake = q.len() == WAKE_AT;
        drop(q);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Leaves of durable entries an [`AuditedStore`] gathers before queueing them (with a
/// store whose every append is durable); a sync queues whatever there is.
const BATCH: usize = 64;

/// Batches queued at which the auditor's thread is woken.
const WAKE_AT: usize = 16;

/// A chain whose committed entries become leaves of the host log (see the module docs).
pub struct AuditedStore {
    inner: Box<dyn ChainStore>,
    auditor: Arc<Auditor>,
    /// Appended, not yet durable: logged at the next sync.
    pending: Vec<(u64, Hash, Hash)>,
    /// The hash of the chain's newest entry (the next one's parent).
    last: Hash,
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
        self.auditor.add(self.inner.id(), &mut self.pending)
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
        let appended = self.inner.append(entry)?;
        self.pending.push((appended.seq, appended.hash, self.last));
        self.last = appended.hash;
        if appended.durable && self.pending.len() >= BATCH {
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
    fn for_each_record_in(
        &self,
        from: u64,
        end: u64,
        f: &mut dyn FnMut(RawRecord<'_>) -> Result<(), ChainError>,
    ) -> Result<(), ChainError> {
        self.inner.for_each_record_in(from, end, f)
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
