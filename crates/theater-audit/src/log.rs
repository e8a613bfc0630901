//! [`HostLog`]: the host's append-only Merkle tree over every actor's entries, on disk.
//!
//! Three files in its directory:
//! - `actors`: the actor ids leaves name, one per line (a leaf stores its actor's line number);
//! - `leaves`: one 76-byte record per leaf: `u32` actor number, `u64` seq, entry hash, parent
//!   hash (little-endian numbers; the Merkle leaf itself is [`Leaf::encode`]);
//! - `hashes`: the tree's stored hashes, 32 bytes each, at the indexes of Go's `tlog`
//!   (`stored_hash_index`): about two per leaf. Nothing of them is kept in memory.
//!
//! A leaf is written before its hashes, so after a crash the hashes are at most behind: open
//! recomputes the missing ones from the leaves (and cuts a record torn mid-write).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use theater_chain::{ChainId, Hash};
use tlog_tiles::{HashReader, stored_hash_count, stored_hashes};

use crate::{AuditError, Leaf};

const RECORD: u64 = 4 + 8 + 32 + 32;
const HASH: u64 = 32;

/// The host log. See the module docs for its files.
#[derive(Debug)]
pub struct HostLog {
    dir: PathBuf,
    actors: Vec<ChainId>,
    numbers: HashMap<ChainId, u32>,
    actors_file: File,
    leaves: File,
    hashes: File,
    size: u64,
    /// Stored hashes in `hashes` (the rest of a batch being appended is in `pending`).
    written_hashes: u64,
    /// Hashes computed for a batch not yet written.
    pending: Vec<tlog_tiles::Hash>,
    /// Each actor's newest leaf: its seq and entry hash (by actor number).
    heads: HashMap<u32, (u64, Hash)>,
    /// Opened read-only: nothing is written, nothing repaired.
    read_only: bool,
    /// Held while open for writing: one writer per log.
    _lock: Option<File>,
    /// What opening repaired (a torn record cut, hashes recomputed), to report.
    repaired: Vec<String>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |e| AuditError::Io(format!("{}: {e}", path.display()))
}

fn open_rw(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io(path))
}

impl HostLog {
    /// Opens (or creates) the log in `dir`, repairing what a crash can leave: a record torn
    /// mid-write is cut, hashes not yet written are computed from the leaves.
    pub fn open(dir: impl Into<PathBuf>) -> Result<HostLog, AuditError> {
        Self::open_with(dir.into(), false)
    }

    /// Opens the log in `dir` to read while a host may be appending to it: nothing is written;
    /// its size is the leaves whose hashes are all written.
    pub fn open_read_only(dir: impl Into<PathBuf>) -> Result<HostLog, AuditError> {
        Self::open_with(dir.into(), true)
    }

    fn open_with(dir: PathBuf, read_only: bool) -> Result<HostLog, AuditError> {
        if read_only {
            if !dir.join("leaves").is_file() {
                return Err(AuditError::Io(format!(
                    "{}: no host log here (is auditing on for this host?)",
                    dir.display()
                )));
            }
        } else {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let lock = if read_only {
            None
        } else {
            Some(lock_dir(&dir)?)
        };
        let existed = dir.join("leaves").is_file();
        let actors_path = dir.join("actors");
        let actors_file = if read_only {
            File::open(&actors_path).map_err(io(&actors_path))?
        } else {
            open_rw(&actors_path)?
        };
        let text = std::fs::read_to_string(&actors_path).map_err(io(&actors_path))?;
        let mut actors = Vec::new();
        let mut numbers = HashMap::new();
        let mut complete = 0;
        for line in text.split_inclusive('\n') {
            let Some(id) = line.strip_suffix('\n') else {
                break; // torn: the leaf naming it was never written either
            };
            let id = ChainId::new(id)
                .map_err(|e| AuditError::Malformed(format!("{}: {e}", actors_path.display())))?;
            numbers.insert(id.clone(), actors.len() as u32);
            actors.push(id);
            complete += line.len();
        }
        let mut repaired = Vec::new();
        if complete < text.len() && !read_only {
            actors_file
                .set_len(complete as u64)
                .map_err(io(&actors_path))?;
            repaired.push("a torn actor id was cut".to_string());
        }
        let leaves_path = dir.join("leaves");
        let hashes_path = dir.join("hashes");
        let (leaves, hashes) = if read_only {
            (
                File::open(&leaves_path).map_err(io(&leaves_path))?,
                File::open(&hashes_path).map_err(io(&hashes_path))?,
            )
        } else {
            (open_rw(&leaves_path)?, open_rw(&hashes_path)?)
        };
        let len = leaves.metadata().map_err(io(&leaves_path))?.len();
        if len % RECORD != 0 && !read_only {
            leaves
                .set_len(len - len % RECORD)
                .map_err(io(&leaves_path))?;
            repaired.push("a torn leaf was cut".to_string());
        }
        if !read_only && !existed {
            // The files just made survive a power loss with the directory.
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&dir))?;
        }
        let hashes_len = hashes.metadata().map_err(io(&hashes_path))?.len();
        if hashes_len % HASH != 0 && !read_only {
            // Part of a hash: cut it (it is computed again below).
            hashes
                .set_len(hashes_len - hashes_len % HASH)
                .map_err(io(&hashes_path))?;
        }
        let written_hashes = hashes_len / HASH;
        let mut log = HostLog {
            dir,
            actors,
            numbers,
            actors_file,
            leaves,
            hashes,
            size: len / RECORD,
            written_hashes,
            pending: Vec::new(),
            heads: HashMap::new(),
            read_only,
            _lock: lock,
            repaired,
        };
        if read_only {
            // The leaves whose hashes are all there (a host may be between the two writes).
            while log.size > 0 && stored_hash_count(log.size) > written_hashes {
                log.size -= 1;
            }
        }
        if let Some(bad) = log.scan_heads()? {
            // Leaves whose actor's line a crash lost (it is written first, but the disk may
            // keep the later write): never under a checkpoint (signing syncs every file
            // first), so they go; their entries are logged again from their chains.
            if read_only {
                log.size = bad;
            } else {
                log.leaves.set_len(bad * RECORD).map_err(io(&leaves_path))?;
                log.repaired.push(format!(
                    "{} leaves naming an actor the log lost were cut",
                    log.size - bad
                ));
                log.size = bad;
            }
        }
        if !read_only {
            log.repair_hashes()?;
        }
        Ok(log)
    }

    /// Reads every leaf once for each actor's newest; returns the index of the first leaf
    /// naming an actor the `actors` file does not have (reading stops there).
    fn scan_heads(&mut self) -> Result<Option<u64>, AuditError> {
        const CHUNK: u64 = 4096;
        let mut buf = vec![0u8; (CHUNK * RECORD) as usize];
        let mut at = 0;
        while at < self.size {
            let n = CHUNK.min(self.size - at);
            let bytes = &mut buf[..(n * RECORD) as usize];
            self.leaves
                .read_exact_at(bytes, at * RECORD)
                .map_err(io(&self.dir.join("leaves")))?;
            for (i, r) in bytes.chunks_exact(RECORD as usize).enumerate() {
                let (number, seq, entry) = record_head(r);
                if number as usize >= self.actors.len() {
                    return Ok(Some(at + i as u64));
                }
                self.heads.insert(number, (seq, entry));
            }
            at += n;
        }
        Ok(None)
    }

    /// The newest leaf of `actor`: its seq and entry hash.
    pub fn head_of(&self, actor: &ChainId) -> Option<(u64, Hash)> {
        self.heads.get(self.numbers.get(actor)?).copied()
    }

    /// Brings `hashes` to exactly what the leaves need: cut past it, computed up to it.
    fn repair_hashes(&mut self) -> Result<(), AuditError> {
        let path = self.dir.join("hashes");
        let have = self.written_hashes;
        let want = stored_hash_count(self.size);
        if have == want {
            return Ok(());
        }
        // The most leaves whose hashes are all there.
        let mut done = if have > want { self.size } else { 0 };
        if have < want {
            let (mut lo, mut hi) = (0, self.size);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if stored_hash_count(mid) <= have {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            done = lo;
        }
        self.hashes
            .set_len(stored_hash_count(done) * HASH)
            .map_err(io(&path))?;
        self.written_hashes = stored_hash_count(done);
        for n in done..self.size {
            let leaf = self.leaf(n)?;
            let new = stored_hashes(n, &leaf.encode(), &*self).map_err(tlog)?;
            self.pending.extend(new);
        }
        self.flush_hashes()?;
        self.repaired.push(format!(
            "hashes of {} leaves were computed again",
            self.size - done
        ));
        Ok(())
    }

    /// What opening repaired, if anything (for the host to log).
    pub fn repaired(&self) -> &[String] {
        &self.repaired
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `leaf`; returns its index. Durable after [`HostLog::sync`].
    pub fn append(&mut self, leaf: &Leaf) -> Result<u64, AuditError> {
        self.append_all(std::slice::from_ref(leaf))
    }

    /// Appends `leaves` in order, with one write for their records and one for their hashes;
    /// returns the first one's index. Durable after [`HostLog::sync`].
    pub fn append_all(&mut self, leaves: &[Leaf]) -> Result<u64, AuditError> {
        if self.read_only {
            return Err(AuditError::Io(format!(
                "{}: opened read-only",
                self.dir.display()
            )));
        }
        let first = self.size;
        let hashes_before = self.written_hashes;
        let heads_before = self.heads.clone();
        let appended = self.append_unchecked(leaves);
        if let Err(e) = appended {
            // Back to what was there, so that a retry appends at the right places.
            self.pending.clear();
            self.size = first;
            self.written_hashes = hashes_before;
            self.heads = heads_before;
            let cut = self
                .leaves
                .set_len(first * RECORD)
                .and_then(|()| self.hashes.set_len(hashes_before * HASH));
            if let Err(cut) = cut {
                self.read_only = true;
                return Err(AuditError::Io(format!(
                    "{e}; and undoing the partial append failed ({cut}): the log takes no more appends until it is opened again"
                )));
            }
            return Err(e);
        }
        Ok(first)
    }

    fn append_unchecked(&mut self, leaves: &[Leaf]) -> Result<(), AuditError> {
        let mut records = Vec::with_capacity(leaves.len() * RECORD as usize);
        for leaf in leaves {
            let number = self.number(leaf)?;
            records.extend_from_slice(&number.to_le_bytes());
            records.extend_from_slice(&leaf.seq.to_le_bytes());
            records.extend_from_slice(leaf.entry.as_bytes());
            records.extend_from_slice(leaf.parent.as_bytes());
        }
        let path = self.dir.join("leaves");
        self.leaves.write_all(&records).map_err(io(&path))?;
        for leaf in leaves {
            let new = stored_hashes(self.size, &leaf.encode(), &*self).map_err(tlog)?;
            self.pending.extend(new);
            self.size += 1;
            let number = self.numbers[&leaf.actor];
            self.heads.insert(number, (leaf.seq, leaf.entry));
        }
        self.flush_hashes()
    }

    fn flush_hashes(&mut self) -> Result<(), AuditError> {
        let mut bytes = Vec::with_capacity(self.pending.len() * HASH as usize);
        for h in &self.pending {
            bytes.extend_from_slice(&h.0);
        }
        let path = self.dir.join("hashes");
        let written = self.hashes.write_all(&bytes).map_err(io(&path));
        if written.is_ok() {
            self.written_hashes += self.pending.len() as u64;
        }
        self.pending.clear();
        written
    }

    fn number(&mut self, leaf: &Leaf) -> Result<u32, AuditError> {
        Ok(match self.numbers.get(&leaf.actor) {
            Some(&n) => n,
            None => {
                let n = self.actors.len() as u32;
                let path = self.dir.join("actors");
                let line = format!("{}\n", leaf.actor);
                // Durable before any leaf names it (new actors are rare).
                self.actors_file
                    .write_all(line.as_bytes())
                    .and_then(|()| self.actors_file.sync_data())
                    .map_err(io(&path))?;
                self.numbers.insert(leaf.actor.clone(), n);
                self.actors.push(leaf.actor.clone());
                n
            }
        })
    }

    /// Makes everything appended durable.
    pub fn sync(&self) -> Result<(), AuditError> {
        for (file, name) in [
            (&self.actors_file, "actors"),
            (&self.leaves, "leaves"),
            (&self.hashes, "hashes"),
        ] {
            file.sync_data().map_err(io(&self.dir.join(name)))?;
        }
        Ok(())
    }

    /// The leaf at `index`.
    pub fn leaf(&self, index: u64) -> Result<Leaf, AuditError> {
        if index >= self.size {
            return Err(AuditError::NotInLog(format!(
                "leaf {index}: the log has {} leaves",
                self.size
            )));
        }
        let mut record = [0u8; RECORD as usize];
        self.leaves
            .read_exact_at(&mut record, index * RECORD)
            .map_err(io(&self.dir.join("leaves")))?;
        let number = u32::from_le_bytes([record[0], record[1], record[2], record[3]]) as usize;
        let actor = self.actors.get(number).cloned().ok_or_else(|| {
            AuditError::Malformed(format!("leaf {index} names actor number {number}, unknown"))
        })?;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&record[4..12]);
        let mut entry = [0u8; 32];
        entry.copy_from_slice(&record[12..44]);
        let mut parent = [0u8; 32];
        parent.copy_from_slice(&record[44..76]);
        Ok(Leaf {
            actor,
            seq: u64::from_le_bytes(seq),
            entry: Hash::from_bytes(entry),
            parent: Hash::from_bytes(parent),
        })
    }

    /// The index of the leaf for `actor`'s entry `seq`, searched from the newest leaf back
    /// (`None`: not in the log).
    pub fn find(&self, actor: &ChainId, seq: u64) -> Result<Option<u64>, AuditError> {
        let Some(&number) = self.numbers.get(actor) else {
            return Ok(None);
        };
        const CHUNK: u64 = 4096;
        let mut end = self.size;
        let mut buf = vec![0u8; (CHUNK * RECORD) as usize];
        while end > 0 {
            let start = end.saturating_sub(CHUNK);
            let bytes = &mut buf[..((end - start) * RECORD) as usize];
            self.leaves
                .read_exact_at(bytes, start * RECORD)
                .map_err(io(&self.dir.join("leaves")))?;
            for i in (0..end - start).rev() {
                let r = &bytes[(i * RECORD) as usize..((i + 1) * RECORD) as usize];
                if u32::from_le_bytes([r[0], r[1], r[2], r[3]]) == number {
                    let mut s = [0u8; 8];
                    s.copy_from_slice(&r[4..12]);
                    let s = u64::from_le_bytes(s);
                    if s == seq {
                        return Ok(Some(start + i));
                    }
                    if s < seq {
                        // An actor's leaves are in seq order: it is not further back.
                        return Ok(None);
                    }
                }
            }
            end = start;
        }
        Ok(None)
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<tlog_tiles::Hash, AuditError> {
        self.check_size(size)?;
        tlog_tiles::tree_hash(size, self).map_err(tlog)
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn prove_inclusion(
        &self,
        index: u64,
        size: u64,
    ) -> Result<Vec<tlog_tiles::Hash>, AuditError> {
        self.check_size(size)?;
        if index >= size {
            return Err(AuditError::NotInLog(format!(
                "leaf {index} is not in a tree of {size} leaves"
            )));
        }
        tlog_tiles::prove_record(size, index, self).map_err(tlog)
    }

    /// The proof that the tree of the first `new` leaves extends that of the first `old`.
    pub fn prove_consistency(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Vec<tlog_tiles::Hash>, AuditError> {
        self.check_size(new)?;
        if old > new {
            return Err(AuditError::NotInLog(format!(
                "a tree of {old} leaves cannot be a prefix of one of {new}"
            )));
        }
        if old == 0 || old == new {
            // Every tree extends the empty one, and each itself: nothing to prove.
            return Ok(Vec::new());
        }
        tlog_tiles::prove_tree(new, old, self).map_err(tlog)
    }

    fn check_size(&self, size: u64) -> Result<(), AuditError> {
        if size > self.size {
            return Err(AuditError::NotInLog(format!(
                "a tree of {size} leaves: the log has {}",
                self.size
            )));
        }
        Ok(())
    }
}

/// Takes the log directory's `LOCK` (one writer at a time).
fn lock_dir(dir: &Path) -> Result<File, AuditError> {
    let path = dir.join("LOCK");
    theater_chain::fsio::lock_file(&path)
        .map_err(io(&path))?
        .ok_or_else(|| {
            AuditError::Io(format!(
                "{}: the host log is open in another process (another host on this data directory?)",
                dir.display()
            ))
        })
}

pub(crate) fn tlog(e: tlog_tiles::Error) -> AuditError {
    AuditError::Proof(e.to_string())
}

/// A leaf record's actor number, seq and entry hash.
fn record_head(r: &[u8]) -> (u32, u64, Hash) {
    let number = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&r[4..12]);
    let mut entry = [0u8; 32];
    entry.copy_from_slice(&r[12..44]);
    (number, u64::from_le_bytes(seq), Hash::from_bytes(entry))
}

impl HashReader for HostLog {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                if i >= self.written_hashes {
                    let at = (i - self.written_hashes) as usize;
                    return self.pending.get(at).copied().ok_or_else(|| {
                        tlog_tiles::Error::InvalidInput(format!("stored hash {i} not yet made"))
                    });
                }
                let mut h = [0u8; 32];
                self.hashes
                    .read_exact_at(&mut h, i * HASH)
                    .map(|()| tlog_tiles::Hash(h))
                    .map_err(|e| tlog_tiles::Error::InvalidInput(format!("stored hash {i}: {e}")))
            })
            .collect()
    }
}
