//! A durable chain: an append-only log file per actor, with snapshots beside it.
//!
//! Layout of a chain directory:
//! ```text
//! chain.log               header + one framed record per entry (see `frame`)
//! snapshots/<seq>.snap    snapshots, seq zero-padded to 20 digits
//! blobs/<sha256>          large payloads named by entries (see `crate::blob`)
//! applied                 the last entry whose writes to the world were applied
//! LOCK                    held while a store has the chain open
//! ```

pub(crate) mod frame;
mod index;
mod scan;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use frame::{FRAME_HEAD, FrameError, FrameReader, LogHeader, split_frame};

use crate::blob::{BlobStore, DirBlobs};
use crate::error::Corruption;
use crate::error::io_err;
use crate::store::{
    Anchor, Appended, ChainStore, Durability, Head, RawRecord, check_range, check_snapshot,
};
use crate::{ChainError, ChainId, Entry, Hash, MAX_ENTRY_LEN, NewEntry, Problem, Snapshot};

const LOG: &str = "chain.log";
const SNAPSHOTS: &str = "snapshots";
const BLOBS: &str = "blobs";
const APPLIED: &str = "applied";

/// What opening a chain repaired: a record torn by a crash mid-write, cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Where the log now ends (the byte offset the torn record started at).
    pub cut_at: u64,
    /// How many bytes of the torn record were removed.
    pub bytes_cut: u64,
}

/// A chain stored in a directory, durable under its [`Durability`].
///
/// Opening scans the log: a record torn by a crash mid-write at the end is cut (and
/// reported by [`FileStore::recovery`]); any other damage is a [`ChainError::Corrupt`]
/// naming the seq and byte offset. Only one store may have a chain open at a time.
pub struct FileStore {
    id: ChainId,
    dir: PathBuf,
    log_path: PathBuf,
    file: File,
    /// The held lock; `None` for a read-only store.
    _lock: Option<File>,
    durability: Durability,
    start: u64,
    anchor: Option<Anchor>,
    /// Where records start (sparse: see `index.rs`).
    index: index::Index,
    head: Option<Head>,
    /// Bytes of the log file that are written.
    written: u64,
    /// Framed records not yet written (group commit), starting at `written`.
    pending: Vec<u8>,
    pending_count: usize,
    snapshot_seqs: Vec<u64>,
    recovery: Option<Recovery>,
    read_only: bool,
    failed: bool,
    /// Records written out without an fsync (by [`ChainStore::start_sync`], or a full group
    /// appended while a started sync is outstanding) and not yet covered by a finished one:
    /// a [`ChainStore::sync`] meanwhile must fsync, even with nothing pending.
    written_unsynced: bool,
    /// Writes made without an fsync, counted: a started sync covers those up to the count
    /// when it started, and only those.
    unsynced_writes: u64,
    /// The count when the outstanding started sync began, if one is outstanding.
    started_sync_covers: Option<u64>,
    /// Held across every fsync of the log, on this thread or a started sync's: they run one
    /// at a time, and a failure any of them sees (which the kernel reports to one caller
    /// only) is kept, so no later fsync of the same file can pass for a success.
    fsync_gate: Arc<std::sync::Mutex<bool>>,
    blobs: Arc<DirBlobs>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("id", &self.id)
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .field("start", &self.start)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

fn sync_dir(dir: &Path) -> Result<(), ChainError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes `bytes` to `path` atomically (see [`crate::fsio::write_durably`]).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ChainError> {
    crate::fsio::write_durably(path, bytes).map_err(io_err(path))
}

/// Where a new chain's log goes in `dir` (created if missing): an error if one is there.
fn new_log_path(dir: &Path) -> Result<PathBuf, ChainError> {
    let log_path = dir.join(LOG);
    fs::create_dir_all(dir.join(SNAPSHOTS)).map_err(io_err(dir))?;
    if log_path.exists() {
        return Err(ChainError::BadFile {
            path: log_path,
            reason: "a chain already exists here".into(),
        });
    }
    Ok(log_path)
}

fn snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(SNAPSHOTS).join(format!("{seq:020}.snap"))
}

impl FileStore {
    /// Creates a new, empty chain in `dir` (created if missing). Fails if one exists there.
    pub fn create(
        dir: impl AsRef<Path>,
        id: ChainId,
        durability: Durability,
    ) -> Result<Self, ChainError> {
        let dir = dir.as_ref();
        let log_path = new_log_path(dir)?;
        let header = LogHeader { start: 0, id };
        write_atomic(&log_path, &header.encode())?;
        Self::open_inner(dir, None, Some(durability))
    }

    /// Creates a chain in `dir` that starts at `snapshot`, as a pruned chain does: its first
    /// stored entry is the one the snapshot is at (`body`, encoded as stored, with its
    /// `hash`), and it verifies from that anchor. What a host taking an actor over copies
    /// from a replica: the snapshot and the entries after it, not the whole history.
    pub fn create_at(
        dir: impl AsRef<Path>,
        id: ChainId,
        snapshot: &Snapshot,
        body: &[u8],
        hash: Hash,
        durability: Durability,
    ) -> Result<Self, ChainError> {
        let dir = dir.as_ref();
        let reject = |reason: String| ChainError::Snapshot {
            seq: snapshot.seq,
            reason,
        };
        if Hash::digest(body) != hash || hash != snapshot.entry_hash {
            return Err(reject(format!(
                "it names entry {} but the entry given hashes to {}",
                snapshot.entry_hash,
                Hash::digest(body)
            )));
        }
        let entry = Entry::decode(body).map_err(|e| reject(format!("its entry: {e}")))?;
        if entry.seq() != snapshot.seq {
            return Err(reject(format!("the entry given is seq {}", entry.seq())));
        }
        if entry.state_scheme().hash(&snapshot.state) != entry.state_hash() {
            return Err(reject(
                "its state does not hash to the entry's state hash".into(),
            ));
        }
        let log_path = new_log_path(dir)?;
        let mut log = LogHeader {
            start: snapshot.seq,
            id,
        }
        .encode();
        let mut head = [0u8; frame::FRAME_HEAD];
        frame::fill_frame_head(&mut head, body.len());
        log.extend_from_slice(&head);
        log.extend_from_slice(body);
        log.extend_from_slice(hash.as_bytes());
        // The snapshot first: a log that starts past genesis is only readable with it.
        write_atomic(&snapshot_path(dir, snapshot.seq), &snapshot.encode())?;
        write_atomic(&log_path, &log)?;
        Self::open_inner(dir, None, Some(durability))
    }

    /// Opens the chain in `dir`, recovering from a crash mid-write.
    pub fn open(dir: impl AsRef<Path>, durability: Durability) -> Result<Self, ChainError> {
        Self::open_inner(dir.as_ref(), None, Some(durability))
    }

    /// Opens the chain in `dir` for reading only: nothing on disk is changed (a torn tail is
    /// left in place and reported by [`FileStore::recovery`] as what a writer would cut),
    /// no lock is taken, and every write fails with [`ChainError::ReadOnly`]. For
    /// inspecting and verifying chains, even while an actor appends to them.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self, ChainError> {
        let dir = dir.as_ref();
        // A writer pruning at this very moment may delete the snapshot this open is about to
        // read; the next attempt sees the pruned log.
        let mut attempts = 0;
        loop {
            match Self::open_inner(dir, None, None) {
                Err(ChainError::Io { path, source })
                    if attempts < 3
                        && source.kind() == std::io::ErrorKind::NotFound
                        && path.extension().is_some_and(|e| e == "snap") =>
                {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    /// Opens the chain in `dir` if there is one (it must have id `id`), else creates it.
    pub fn open_or_create(
        dir: impl AsRef<Path>,
        id: ChainId,
        durability: Durability,
    ) -> Result<Self, ChainError> {
        let dir = dir.as_ref();
        if dir.join(LOG).exists() {
            Self::open_inner(dir, Some(&id), Some(durability))
        } else {
            Self::create(dir, id, durability)
        }
    }

    /// Bytes of memory its index of record offsets holds: about 8 per 64 entries (one offset
    /// kept per 64 records), whatever the chain's length.
    pub fn index_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    /// What opening it found and repaired, if anything.
    pub fn recovery(&self) -> Option<Recovery> {
        self.recovery
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Whether the store was opened with [`FileStore::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// `durability` is `None` for a read-only store.
    fn open_inner(
        dir: &Path,
        expect_id: Option<&ChainId>,
        durability: Option<Durability>,
    ) -> Result<Self, ChainError> {
        let log_path = dir.join(LOG);
        let read_only = durability.is_none();
        let lock = if read_only {
            None
        } else {
            Some(lock_dir(dir)?)
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let (header, data_start) =
            LogHeader::read(&mut frame::ReadAt::new(&file)).map_err(|reason| {
                ChainError::BadFile {
                    path: log_path.clone(),
                    reason,
                }
            })?;
        if let Some(expected) = expect_id
            && *expected != header.id
        {
            return Err(ChainError::WrongId {
                path: dir.to_path_buf(),
                expected: expected.clone(),
                found: header.id,
            });
        }
        // Snapshots first, the log's length after: a snapshot is only written once the log
        // holds its entry, so a writer working meanwhile cannot make them disagree.
        let snapshot_seqs = list_snapshots(dir, header.start, !read_only)?;
        let file_len = file.metadata().map_err(io_err(&log_path))?.len();
        let anchor = if header.start > 0 {
            let snap = read_snapshot(dir, header.start)?;
            Some(Anchor {
                seq: snap.seq,
                entry_hash: snap.entry_hash,
            })
        } else {
            None
        };
        let found = scan::scan(&scan::ScanInput {
            file: &file,
            path: &log_path,
            id: &header.id,
            start: header.start,
            anchor,
            data_start,
            file_len,
        })?;
        let mut recovery = None;
        if found.end < file_len {
            if !read_only {
                file.set_len(found.end).map_err(io_err(&log_path))?;
                file.sync_all().map_err(io_err(&log_path))?;
            }
            recovery = Some(Recovery {
                cut_at: found.end,
                bytes_cut: file_len - found.end,
            });
        }
        let next = found.head.map_or(header.start, |h| h.seq + 1);
        if let Some(&last) = snapshot_seqs.last()
            && last >= next
        {
            return Err(ChainError::Corrupt(Box::new(Corruption {
                chain: header.id,
                path: Some(log_path),
                seq: next,
                offset: Some(found.end),
                problem: Problem::MissingEntries { snapshot_seq: last },
            })));
        }
        if header.start > 0 && found.head.is_none() {
            return Err(ChainError::Corrupt(Box::new(Corruption {
                chain: header.id,
                path: Some(log_path),
                seq: header.start,
                offset: Some(found.end),
                problem: Problem::Truncated,
            })));
        }
        let durability = durability.unwrap_or(Durability::None);
        let blobs = Arc::new(DirBlobs::new(
            dir.join(BLOBS),
            durability != Durability::None,
            read_only,
        ));
        Ok(FileStore {
            id: header.id,
            dir: dir.to_path_buf(),
            log_path,
            file,
            _lock: lock,
            durability,
            read_only,
            blobs,
            start: header.start,
            anchor,
            index: found.index,
            head: found.head,
            written: found.end,
            pending: Vec::new(),
            pending_count: 0,
            snapshot_seqs,
            recovery,
            failed: false,
            written_unsynced: false,
            unsynced_writes: 0,
            started_sync_covers: None,
            fsync_gate: Arc::default(),
        })
    }

    fn check_usable(&self) -> Result<(), ChainError> {
        if self.read_only {
            return Err(ChainError::ReadOnly(self.id.clone()));
        }
        if self.failed {
            return Err(ChainError::Io {
                path: self.log_path.clone(),
                source: std::io::Error::other(
                    "an earlier write or fsync failed; reopen the chain to recover",
                ),
            });
        }
        Ok(())
    }

    /// Writes and fsyncs pending records. On failure the store refuses further writes:
    /// after a failed fsync nothing about the file's state can be assumed.
    fn commit(&mut self, fsync: bool) -> Result<(), ChainError> {
        let result = (|| {
            if !self.pending.is_empty() {
                self.file.write_all_at(&self.pending, self.written)?;
                self.written += self.pending.len() as u64;
                self.pending.clear();
                self.pending_count = 0;
                self.index.commit();
            }
            if fsync {
                gated_fsync(&self.fsync_gate, &self.file)?;
                self.written_unsynced = false;
            }
            Ok(())
        })();
        result.map_err(|e| {
            self.failed = true;
            io_err(&self.log_path)(e)
        })
    }

    /// The byte range of the record at `seq`.
    fn range(&self, seq: u64) -> Result<(u64, u64), ChainError> {
        check_range(self, seq)?;
        let i = seq - self.start;
        match self.index.locate(i, &self.file, self.written) {
            Ok((start, Some(end))) => Ok((start, end)),
            Ok((start, None)) => {
                let end = self
                    .index
                    .pending_offset(i + 1)
                    .unwrap_or(self.written + self.pending.len() as u64);
                Ok((start, end))
            }
            Err(index::Walk::Io(e)) => Err(io_err(&self.log_path)(e)),
            Err(index::Walk::Bad { index, offset }) => {
                Err(self.corrupt(self.start + index, offset, Problem::BadFrame))
            }
            Err(index::Walk::Missing) => Err(ChainError::Io {
                path: self.log_path.clone(),
                source: std::io::Error::other(
                    "the store lost track of its records (a prune failed half way); reopen the chain",
                ),
            }),
        }
    }

    /// Indexes the written log anew from `from` (its first record), reading frame heads.
    fn reindex(&mut self, from: u64) -> Result<(), ChainError> {
        self.index.clear();
        let mut pos = from;
        // Frame heads read through a window of the log, not one read each (small enough that
        // a log of large frames reads little more than their heads).
        let mut window = vec![0u8; 64 << 10];
        let (mut window_at, mut window_len) = (0u64, 0usize);
        while pos < self.written {
            let in_window =
                pos >= window_at && pos + FRAME_HEAD as u64 <= window_at + window_len as u64;
            if !in_window {
                let n = ((self.written - pos) as usize).clamp(FRAME_HEAD, window.len());
                self.file
                    .read_exact_at(&mut window[..n], pos)
                    .map_err(io_err(&self.log_path))?;
                (window_at, window_len) = (pos, n);
            }
            let at = (pos - window_at) as usize;
            let mut head = [0u8; FRAME_HEAD];
            head.copy_from_slice(&window[at..at + FRAME_HEAD]);
            let seq = self.start + self.index.len();
            let len =
                frame::frame_len(&head).ok_or_else(|| self.corrupt(seq, pos, Problem::BadFrame))?;
            self.index.push_written(pos);
            pos += (FRAME_HEAD + len + frame::FRAME_TAIL) as u64;
        }
        if pos != self.written || self.start + self.index.len() != self.len() {
            return Err(self.corrupt(self.start + self.index.len(), pos, Problem::BadFrame));
        }
        Ok(())
    }

    fn corrupt(&self, seq: u64, offset: u64, problem: Problem) -> ChainError {
        ChainError::Corrupt(Box::new(Corruption {
            chain: self.id.clone(),
            path: Some(self.log_path.clone()),
            seq,
            offset: Some(offset),
            problem,
        }))
    }

    /// Reads the framed record at `seq` and checks its body against its stored hash.
    fn read_record(&self, seq: u64) -> Result<(Vec<u8>, Hash), ChainError> {
        let (start, end) = self.range(seq)?;
        let mut buf = vec![0u8; (end - start) as usize];
        if start >= self.written {
            let at = (start - self.written) as usize;
            let n = buf.len();
            buf.copy_from_slice(&self.pending[at..at + n]);
        } else {
            self.file
                .read_exact_at(&mut buf, start)
                .map_err(io_err(&self.log_path))?;
        }
        let (body, stored) =
            split_frame(&buf).ok_or_else(|| self.corrupt(seq, start, Problem::BadFrame))?;
        let computed = Hash::digest(body);
        if computed != stored {
            return Err(self.corrupt(seq, start, Problem::HashMismatch { stored, computed }));
        }
        let body = body.to_vec();
        Ok((body, stored))
    }
}

/// fsyncs `file` under `gate` (see `FileStore::fsync_gate`): fails if any fsync of it
/// failed before.
fn gated_fsync(gate: &std::sync::Mutex<bool>, file: &File) -> std::io::Result<()> {
    let mut failed = gate.lock().unwrap_or_else(|e| e.into_inner());
    if *failed {
        return Err(std::io::Error::other("an earlier fsync of the log failed"));
    }
    file.sync_data().inspect_err(|_| *failed = true)
}

fn lock_dir(dir: &Path) -> Result<File, ChainError> {
    let path = dir.join("LOCK");
    match crate::fsio::lock_file(&path) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(ChainError::Io {
            path,
            source: std::io::Error::other("the chain is open in another store or process"),
        }),
        Err(e) => Err(io_err(&path)(e)),
    }
}

fn list_snapshots(dir: &Path, start: u64, clean: bool) -> Result<Vec<u64>, ChainError> {
    let snap_dir = dir.join(SNAPSHOTS);
    let mut seqs = Vec::new();
    let entries = match fs::read_dir(&snap_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(seqs),
        Err(e) => return Err(io_err(&snap_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(&snap_dir))?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".snap"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if seq < start {
            // Left behind by a prune interrupted after its rename; no longer anchored.
            if clean {
                let _ = fs::remove_file(entry.path());
            }
            continue;
        }
        seqs.push(seq);
    }
    seqs.sort_unstable();
    Ok(seqs)
}

fn read_snapshot(dir: &Path, seq: u64) -> Result<Snapshot, ChainError> {
    let path = snapshot_path(dir, seq);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let snap = Snapshot::decode(&bytes).map_err(|reason| ChainError::BadFile {
        path: path.clone(),
        reason,
    })?;
    if snap.seq != seq {
        return Err(ChainError::BadFile {
            path,
            reason: format!("holds the snapshot of seq {}", snap.seq),
        });
    }
    Ok(snap)
}

impl ChainStore for FileStore {
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
        self.head
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.dir)
    }

    fn append(&mut self, new: NewEntry) -> Result<Appended, ChainError> {
        self.check_usable()?;
        let seq = self.len();
        new.check_version(seq)?;
        let parent = self.head.map_or(Hash::ZERO, |h| h.hash);
        // Encode straight into the write buffer: frame head, body, then its hash.
        let at = self.pending.len();
        let entry = Entry::new(seq, parent, new);
        self.pending.extend_from_slice(&[0; FRAME_HEAD]);
        crate::codec::encode_into(&entry, &mut self.pending);
        let len = self.pending.len() - at - FRAME_HEAD;
        if len > MAX_ENTRY_LEN {
            self.pending.truncate(at);
            return Err(ChainError::TooLarge { seq, len });
        }
        let hash = Hash::digest(&self.pending[at + FRAME_HEAD..]);
        frame::fill_frame_head(&mut self.pending[at..at + FRAME_HEAD], len);
        self.pending.extend_from_slice(hash.as_bytes());
        self.index.push_pending(self.written + at as u64);
        self.pending_count += 1;
        self.head = Some(Head { seq, hash });
        let durable = match self.durability {
            Durability::EveryEntry => {
                self.commit(true)?;
                true
            }
            Durability::None => {
                self.commit(false)?;
                true
            }
            Durability::Group { max_batch } => {
                if self.pending_count < max_batch.max(1) {
                    false
                } else if self.started_sync_covers.is_some() {
                    // A started sync is outstanding, and whoever started it syncs again
                    // for what came after: write the group out, without waiting for the disk.
                    self.commit(false)?;
                    self.written_unsynced = true;
                    self.unsynced_writes += 1;
                    false
                } else {
                    self.commit(true)?;
                    true
                }
            }
        };
        Ok(Appended { seq, hash, durable })
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }

    fn writes_applied(&self) -> Option<u64> {
        fs::read_to_string(self.dir.join(APPLIED))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn set_writes_applied(&mut self, seq: u64) -> Result<(), ChainError> {
        self.check_usable()?;
        // Not fsynced: a marker lost in a crash only makes the next start apply the last
        // entry's writes again, which changes nothing.
        let path = self.dir.join(APPLIED);
        fs::write(&path, seq.to_string()).map_err(io_err(&path))
    }

    fn start_sync(&mut self) -> Result<Option<crate::PendingSync>, ChainError> {
        self.check_usable()?;
        if self.pending.is_empty() && !self.written_unsynced {
            return Ok(None);
        }
        if self.durability == Durability::None {
            return self.commit(false).map(|()| None);
        }
        self.commit(false)?;
        self.written_unsynced = true;
        self.unsynced_writes += 1;
        self.started_sync_covers = Some(self.unsynced_writes);
        // The fsync covers everything written so far, on a handle of its own.
        let file = self.file.try_clone().map_err(|e| {
            self.failed = true;
            io_err(&self.log_path)(e)
        })?;
        let gate = Arc::clone(&self.fsync_gate);
        Ok(Some(Box::new(move || gated_fsync(&gate, &file))))
    }

    fn finish_sync(&mut self, result: std::io::Result<()>) -> Result<(), ChainError> {
        match result {
            // A failure seen meanwhile (by an fsync on this thread) counts for it too.
            Ok(()) if self.failed => {
                self.started_sync_covers = None;
                Err(ChainError::Io {
                    path: self.log_path.clone(),
                    source: std::io::Error::other("an fsync of the log failed"),
                })
            }
            Ok(()) => {
                // Writes after the sync started are not covered by it.
                if self.started_sync_covers.take() == Some(self.unsynced_writes) {
                    self.written_unsynced = false;
                }
                Ok(())
            }
            Err(e) => {
                self.started_sync_covers = None;
                self.failed = true;
                Err(io_err(&self.log_path)(e))
            }
        }
    }

    fn sync(&mut self) -> Result<(), ChainError> {
        self.check_usable()?;
        if self.pending.is_empty() && !self.written_unsynced {
            return Ok(());
        }
        let fsync = self.durability != Durability::None;
        self.commit(fsync)
    }

    fn get(&self, seq: u64) -> Result<Entry, ChainError> {
        let (body, _) = self.read_record(seq)?;
        Entry::decode(&body).map_err(|e| {
            let offset = self.range(seq).map_or(0, |(start, _)| start);
            self.corrupt(seq, offset, Problem::Decode(e))
        })
    }

    fn hash_at(&self, seq: u64) -> Result<Hash, ChainError> {
        if let Some(h) = self.head
            && h.seq == seq
        {
            return Ok(h.hash);
        }
        let (_, end) = self.range(seq)?;
        let mut hash = [0u8; 32];
        if end - 32 >= self.written {
            let at = (end - 32 - self.written) as usize;
            hash.copy_from_slice(&self.pending[at..at + 32]);
        } else {
            self.file
                .read_exact_at(&mut hash, end - 32)
                .map_err(io_err(&self.log_path))?;
        }
        Ok(Hash::from_bytes(hash))
    }

    /// Hashes on every core: the written log is read in runs of whole frames (cut where the
    /// index marks records), one read each, and each run is checked by a worker.
    fn verify_with_progress(
        &self,
        progress: &mut dyn FnMut(crate::verify::Progress),
    ) -> Result<crate::VerifyReport, ChainError> {
        let workers = crate::verify::workers();
        let marks = self.index.marks();
        if workers <= 1 || marks.len() < 4 {
            return crate::verify::records(self, progress);
        }
        let v =
            crate::verify::Verifier::new(self.id.clone(), self.start, self.anchor, Some(&self.dir));
        let (first, first_prev) = v.next();
        v.run_parallel(
            workers,
            &mut |buffers, send| {
                let (mut k, mut prev) = (0usize, first_prev);
                while k < marks.len() {
                    let at = marks[k];
                    let mut j = k + 1;
                    while j < marks.len() && marks[j] - at < crate::verify::BATCH_BYTES as u64 {
                        j += 1;
                    }
                    let end = marks.get(j).copied().unwrap_or(self.written);
                    // The stored hash that ends the run is the next run's parent.
                    let mut tail = [0u8; 32];
                    let next_prev = match end.checked_sub(32) {
                        Some(t) if t >= at => {
                            self.file
                                .read_exact_at(&mut tail, t)
                                .map_err(io_err(&self.log_path))?;
                            Some(Hash::from_bytes(tail))
                        }
                        _ => None,
                    };
                    let seq = first + k as u64 * index::STRIDE;
                    let len = (end - at) as usize;
                    send(crate::verify::Batch::frames_in(
                        &self.file,
                        seq,
                        prev,
                        at,
                        len,
                        buffers.take(),
                    ))?;
                    prev = next_prev;
                    k = j;
                }
                // Records still in the group-commit buffer: one more run of frames.
                let pending_from = self.start + self.index.first_pending();
                if pending_from < self.len() {
                    let (at, _) = self.range(pending_from)?;
                    let mut data = buffers.take();
                    data.clear();
                    data.extend_from_slice(&self.pending[(at - self.written) as usize..]);
                    send(crate::verify::Batch::frames(pending_from, prev, at, data))?;
                }
                Ok(())
            },
            progress,
        )
    }

    fn for_each_record_in(
        &self,
        from: u64,
        end: u64,
        f: &mut dyn FnMut(RawRecord<'_>) -> Result<(), ChainError>,
    ) -> Result<(), ChainError> {
        let from = from.max(self.start);
        let end = end.min(self.len());
        if from >= end {
            return Ok(());
        }
        let mut seq = from;
        let first = self.range(from)?.0;
        if first < self.written {
            let mut reader = FrameReader::new(&self.file, first, self.written);
            let mut body = Vec::new();
            while seq < end {
                let at = reader.pos();
                match reader.next(&mut body) {
                    Ok(Some((offset, hash))) => f(RawRecord {
                        seq,
                        offset: Some(offset),
                        body: &body,
                        hash,
                    })?,
                    Ok(None) => break,
                    Err(FrameError::Torn) => return Err(self.corrupt(seq, at, Problem::Truncated)),
                    Err(FrameError::Bad) => return Err(self.corrupt(seq, at, Problem::BadFrame)),
                    Err(FrameError::Io(e)) => return Err(io_err(&self.log_path)(e)),
                }
                seq += 1;
            }
        }
        // Records still in the group-commit buffer.
        let first_pending = self.index.first_pending();
        let skip = from - self.start;
        for i in first_pending.max(skip)..(end - self.start) {
            let seq = self.start + i;
            let (start, end) = self.range(seq)?;
            let at = (start - self.written) as usize;
            let frame = &self.pending[at..at + (end - start) as usize];
            let (body, hash) =
                split_frame(frame).ok_or_else(|| self.corrupt(seq, start, Problem::BadFrame))?;
            f(RawRecord {
                seq,
                offset: Some(start),
                body,
                hash,
            })?;
        }
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), ChainError> {
        self.check_usable()?;
        // Whatever the durability mode, the log must be on disk before a snapshot that
        // vouches for it: a snapshot past the log's end makes the chain unopenable.
        self.commit(true)?;
        check_snapshot(self, snapshot)?;
        write_atomic(&snapshot_path(&self.dir, snapshot.seq), &snapshot.encode())?;
        if let Err(i) = self.snapshot_seqs.binary_search(&snapshot.seq) {
            self.snapshot_seqs.insert(i, snapshot.seq);
        }
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<Snapshot>, ChainError> {
        match self.snapshot_seqs.last() {
            None => Ok(None),
            Some(&seq) => read_snapshot(&self.dir, seq).map(Some),
        }
    }

    fn snapshot_at(&self, seq: u64) -> Result<Option<Snapshot>, ChainError> {
        if self.snapshot_seqs.binary_search(&seq).is_err() {
            return Ok(None);
        }
        read_snapshot(&self.dir, seq).map(Some)
    }

    fn snapshots(&self) -> Vec<(u64, Option<std::time::SystemTime>)> {
        self.snapshot_seqs
            .iter()
            .map(|&seq| {
                let saved = fs::metadata(snapshot_path(&self.dir, seq))
                    .and_then(|m| m.modified())
                    .ok();
                (seq, saved)
            })
            .collect()
    }

    fn prune_before(&mut self, seq: u64) -> Result<(), ChainError> {
        self.check_usable()?;
        if seq <= self.start {
            return Ok(());
        }
        self.sync()?;
        if self.snapshot_seqs.binary_search(&seq).is_err() {
            return Err(ChainError::Snapshot {
                seq,
                reason: "cannot prune before a seq that has no saved snapshot".into(),
            });
        }
        let snap = read_snapshot(&self.dir, seq)?;
        check_snapshot(self, &snap)?;
        let cut = self.range(seq)?.0;
        let header = LogHeader {
            start: seq,
            id: self.id.clone(),
        }
        .encode();
        let tmp = self.log_path.with_extension("tmp");
        let copy = || -> std::io::Result<()> {
            let mut out = File::create(&tmp)?;
            std::io::Write::write_all(&mut out, &header)?;
            let src = frame::ReadAt::at(&self.file, cut);
            std::io::copy(&mut std::io::Read::take(src, self.written - cut), &mut out)?;
            out.sync_all()?;
            fs::rename(&tmp, &self.log_path)
        };
        if let Err(e) = copy() {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&self.log_path)(e));
        }
        // The pruned log is in place: from here the old handle and offsets are stale, so any
        // failure leaves the store refusing writes rather than writing to the unlinked file,
        // and reads refusing rather than finding old records under new seqs.
        self.index.clear();
        let shift = header.len() as u64;
        let reopened = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.log_path)
            .map_err(io_err(&self.log_path))
            .and_then(|f| sync_dir(&self.dir).map(|()| f));
        match reopened {
            Ok(f) => self.file = f,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        }
        self.written = self.written - cut + shift;
        self.start = seq;
        self.anchor = Some(Anchor {
            seq,
            entry_hash: snap.entry_hash,
        });
        if let Err(e) = self.reindex(shift) {
            self.failed = true;
            return Err(e);
        }
        for old in self.snapshot_seqs.drain(..).collect::<Vec<_>>() {
            if old < seq {
                let _ = fs::remove_file(snapshot_path(&self.dir, old));
            } else {
                self.snapshot_seqs.push(old);
            }
        }
        // Blobs only pruned entries (or failed inputs) named go too (none to look for when
        // there are none).
        if !self.blobs.is_empty() {
            let keep = crate::blob::named_blobs(self)?;
            self.blobs.retain(&keep)?;
        }
        Ok(())
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        // Best effort: pending group-commit entries were never acknowledged, but keeping
        // them costs nothing.
        if !self.failed && !self.pending.is_empty() {
            let _ = self.commit(self.durability != Durability::None);
        }
    }
}
