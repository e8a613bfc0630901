//! Blobs: content-addressed bytes kept beside a chain, for payloads too large to sit inside
//! an entry (a file an actor read or wrote). The entry holds the blob's SHA-256 under the
//! key [`BLOB_KEY`] of a payload's JSON, so the chain still commits to every byte, and the
//! blob is stored (durably, under the chain's durability) before the entry that names it.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::error::io_err;
use crate::{ChainError, Hash, Payload};

/// The JSON key naming a blob: `{"$blob": "<sha256 hex>", ...}`.
///
/// Whether a payload goes beside the entry depends only on its size ([`BLOB_THRESHOLD`]),
/// so replay rebuilds the same recorded requests; the threshold is part of the recording
/// format and changes only with [`crate::FORMAT_VERSION`].
pub const BLOB_KEY: &str = "$blob";

/// Payload bytes above this size are stored as a blob rather than inside the entry.
pub const BLOB_THRESHOLD: usize = 16 * 1024;

/// Where a chain keeps its blobs.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` (durably, under the store's durability) and returns their hash. Storing
    /// bytes that are already there is cheap.
    fn put(&self, bytes: &[u8]) -> Result<Hash, ChainError>;

    /// The bytes stored under `hash`, checked against it.
    fn get(&self, hash: &Hash) -> Result<Vec<u8>, ChainError>;

    /// Deletes every blob not in `keep`; returns how many went. What pruning calls, with the
    /// blobs the remaining entries name.
    fn retain(&self, keep: &HashSet<Hash>) -> Result<usize, ChainError>;

    /// Whether the store surely holds no blob (so pruning need not look for the names of
    /// any). Default: not known, `false`.
    fn is_empty(&self) -> bool {
        false
    }
}

/// Blobs in memory, for [`crate::MemoryStore`].
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    blobs: Mutex<HashMap<Hash, Arc<[u8]>>>,
}

impl BlobStore for MemoryBlobs {
    fn put(&self, bytes: &[u8]) -> Result<Hash, ChainError> {
        let hash = Hash::digest(bytes);
        let mut blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        blobs.entry(hash).or_insert_with(|| Arc::from(bytes));
        Ok(hash)
    }

    fn get(&self, hash: &Hash) -> Result<Vec<u8>, ChainError> {
        let blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        blobs
            .get(hash)
            .map(|b| b.to_vec())
            .ok_or_else(|| missing(*hash, "no such blob".into()))
    }

    fn retain(&self, keep: &HashSet<Hash>) -> Result<usize, ChainError> {
        let mut blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        let before = blobs.len();
        blobs.retain(|h, _| keep.contains(h));
        Ok(before - blobs.len())
    }

    fn is_empty(&self) -> bool {
        self.blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

/// Blobs as files `<dir>/<sha256 hex>`, for [`crate::FileStore`].
#[derive(Debug)]
pub struct DirBlobs {
    dir: PathBuf,
    fsync: bool,
    read_only: bool,
}

impl DirBlobs {
    /// Blobs in `dir` (created on the first put); `fsync` makes each put durable before it
    /// returns.
    pub fn new(dir: impl Into<PathBuf>, fsync: bool, read_only: bool) -> Self {
        DirBlobs {
            dir: dir.into(),
            fsync,
            read_only,
        }
    }

    fn path(&self, hash: &Hash) -> PathBuf {
        self.dir.join(hash.to_string())
    }
}

fn missing(hash: Hash, reason: String) -> ChainError {
    ChainError::Blob { hash, reason }
}

impl BlobStore for DirBlobs {
    fn put(&self, bytes: &[u8]) -> Result<Hash, ChainError> {
        let hash = Hash::digest(bytes);
        let path = self.path(&hash);
        // Content-addressed: a complete file of the right length already holds these bytes
        // (blobs are renamed into place only once written and synced).
        if fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(hash);
        }
        if self.read_only {
            return Err(missing(hash, "the chain is open read-only".into()));
        }
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let tmp = self.dir.join(format!("{hash}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            if self.fsync {
                f.sync_all()?;
            }
            fs::rename(&tmp, &path)?;
            if self.fsync {
                File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(io_err(&path))?;
        Ok(hash)
    }

    fn get(&self, hash: &Hash) -> Result<Vec<u8>, ChainError> {
        let path = self.path(hash);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(missing(*hash, format!("{} is missing", path.display())));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let found = Hash::digest(&bytes);
        if found != *hash {
            return Err(missing(
                *hash,
                format!("{} is damaged (its bytes hash to {found})", path.display()),
            ));
        }
        Ok(bytes)
    }

    fn is_empty(&self) -> bool {
        // No directory, or nothing in it.
        fs::read_dir(&self.dir).map_or_else(
            |e| e.kind() == std::io::ErrorKind::NotFound,
            |mut entries| entries.next().is_none(),
        )
    }

    fn retain(&self, keep: &HashSet<Hash>) -> Result<usize, ChainError> {
        if self.read_only {
            return Ok(0);
        }
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry.map_err(io_err(&self.dir))?.path();
            // Blobs are named by their hash; anything else (a temp file) goes too.
            let named = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<Hash>().ok());
            if named.is_some_and(|h| keep.contains(&h)) {
                continue;
            }
            fs::remove_file(&path).map_err(io_err(&path))?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Calls `f` with each entry of `store` whose encoding mentions [`BLOB_KEY`]; the others are
/// not decoded.
fn for_each_naming_entry(
    store: &dyn crate::ChainStore,
    f: &mut dyn FnMut(crate::Entry) -> Result<(), ChainError>,
) -> Result<(), ChainError> {
    let finder = memchr::memmem::Finder::new(BLOB_KEY.as_bytes());
    store.for_each_record(store.start(), &mut |rec| {
        if finder.find(rec.body).is_none() {
            return Ok(());
        }
        f(rec.entry().map_err(|e| ChainError::Blob {
            hash: Hash::ZERO,
            reason: format!("entry {} does not decode: {e}", rec.seq),
        })?)
    })
}

/// Every blob the entries of `store` may name: any [`BLOB_KEY`] in any payload (more than
/// the host's own references, never fewer). What pruning keeps.
pub fn named_blobs(store: &dyn crate::ChainStore) -> Result<HashSet<Hash>, ChainError> {
    let mut named = HashSet::new();
    for_each_naming_entry(store, &mut |entry| {
        let mut payloads: Vec<&Payload> = entry
            .host_calls()
            .iter()
            .flat_map(|c| [&c.request, &c.result])
            .collect();
        match entry.event() {
            crate::Event::Input { input, output } => payloads.extend([input, output]),
            crate::Event::Failed { input, .. } | crate::Event::Read { input, .. } => {
                payloads.push(input)
            }
            crate::Event::Init { params, .. } => payloads.push(params),
            crate::Event::Upgrade { .. } => {}
        }
        named.extend(
            payloads
                .into_iter()
                .filter_map(|p| blob_of(p).ok().flatten()),
        );
        Ok(())
    })?;
    Ok(named)
}

/// A payload carrying `bytes` with `json` (an object): inside the entry if they are small, or
/// stored in `blobs` with their hash under [`BLOB_KEY`] if over [`BLOB_THRESHOLD`]. Without
/// `blobs` (replay), large bytes are only hashed: the result is what the recording holds.
pub fn stash(
    mut json: Map<String, Value>,
    bytes: Vec<u8>,
    blobs: Option<&dyn BlobStore>,
) -> Result<Payload, ChainError> {
    if bytes.len() <= BLOB_THRESHOLD {
        return Ok(Payload {
            json: Value::Object(json),
            bytes,
        });
    }
    let hash = match blobs {
        Some(b) => b.put(&bytes)?,
        None => Hash::digest(&bytes),
    };
    json.insert(BLOB_KEY.into(), Value::String(hash.to_string()));
    Ok(Payload::json(Value::Object(json)))
}

/// The bytes of a payload made by [`stash`]: its own, or its blob's (checked against the hash).
pub fn unstash(payload: &Payload, blobs: Option<&dyn BlobStore>) -> Result<Vec<u8>, ChainError> {
    let Some(named) = blob_of(payload)? else {
        return Ok(payload.bytes.clone());
    };
    match blobs {
        Some(b) => b.get(&named),
        None => Err(missing(named, "no blob store to read it from".into())),
    }
}

/// The blob a payload names, if any.
pub fn blob_of(payload: &Payload) -> Result<Option<Hash>, ChainError> {
    match payload.json.get(BLOB_KEY) {
        None => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| ChainError::Blob {
            hash: Hash::ZERO,
            reason: format!("{BLOB_KEY} holds {s:?}, not a SHA-256"),
        }),
        Some(other) => Err(ChainError::Blob {
            hash: Hash::ZERO,
            reason: format!("{BLOB_KEY} holds {other}, not a SHA-256"),
        }),
    }
}

/// A blob an entry names that is missing or damaged, found by [`check_blobs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobProblem {
    /// The entry naming it.
    pub seq: u64,
    /// The blob.
    pub hash: Hash,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for BlobProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seq {}: {}", self.seq, self.reason)
    }
}

/// Checks that every blob named by the host calls called one of `calls` (those that record
/// large payloads by hash, such as file reads and writes) is stored and hashes right, except
/// for calls whose result is an `error` (they stored nothing). Entries
/// that name no blob are not decoded, so this costs little on a chain with few blobs.
pub fn check_blobs(
    store: &dyn crate::ChainStore,
    calls: &[&str],
) -> Result<Vec<BlobProblem>, ChainError> {
    let blobs = store.blobs();
    let mut checked = HashSet::new();
    let mut problems = Vec::new();
    for_each_naming_entry(store, &mut |entry| {
        let payloads = entry
            .host_calls()
            .iter()
            .filter(|c| calls.contains(&c.name.as_str()))
            // A refused call (a write to a read-only directory, say) stored nothing.
            .filter(|c| c.result.json.get("error").is_none())
            .flat_map(|c| [&c.request, &c.result]);
        for p in payloads {
            let problem = match blob_of(p) {
                Ok(None) => continue,
                Ok(Some(named)) if !checked.insert(named) => continue,
                Ok(Some(named)) => match blobs.get(&named) {
                    Ok(_) => continue,
                    Err(e) => (named, e.to_string()),
                },
                Err(e) => (Hash::ZERO, e.to_string()),
            };
            problems.push(BlobProblem {
                seq: entry.seq(),
                hash: problem.0,
                reason: problem.1,
            });
        }
        Ok(())
    })?;
    Ok(problems)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn small_bytes_stay_inline_and_large_ones_go_beside() {
        let blobs = MemoryBlobs::default();
        let small = stash(Map::new(), vec![1; 10], Some(&blobs)).unwrap();
        assert_eq!(small.bytes, vec![1; 10]);
        assert_eq!(blob_of(&small).unwrap(), None);
        assert_eq!(unstash(&small, None).unwrap(), vec![1; 10]);

        let big = vec![7u8; BLOB_THRESHOLD + 1];
        let stored = stash(Map::new(), big.clone(), Some(&blobs)).unwrap();
        assert!(stored.bytes.is_empty());
        assert_eq!(blob_of(&stored).unwrap(), Some(Hash::digest(&big)));
        assert_eq!(unstash(&stored, Some(&blobs)).unwrap(), big);
        // Replay computes the same payload without storing anything.
        assert_eq!(stash(Map::new(), big, None).unwrap(), stored);
        assert!(matches!(
            unstash(&stored, None),
            Err(ChainError::Blob { .. })
        ));
    }

    #[test]
    fn dir_blobs_are_checked_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DirBlobs::new(dir.path().join("blobs"), true, false);
        let bytes = b"contents".repeat(5000);
        let h = blobs.put(&bytes).unwrap();
        assert_eq!(blobs.put(&bytes).unwrap(), h);
        assert_eq!(blobs.get(&h).unwrap(), bytes);
        let path = dir.path().join("blobs").join(h.to_string());
        let mut damaged = bytes.clone();
        damaged[3] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        let e = blobs.get(&h).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = blobs.get(&h).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        let ro = DirBlobs::new(dir.path().join("blobs"), true, true);
        assert!(ro.put(b"new").is_err());
    }

    #[test]
    fn pruning_drops_the_blobs_only_pruned_entries_named() {
        use crate::{ChainId, ChainStore, Durability, FileStore, HostCall, NewEntry, Snapshot};
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            FileStore::create(dir.path(), ChainId::new("b").unwrap(), Durability::None).unwrap();
        let state = serde_json::json!(0);
        let h = Hash::of_state(&state);
        store
            .append(NewEntry::init(Payload::json(state.clone()), h))
            .unwrap();
        let mut blobs_named = Vec::new();
        for i in 0..4u8 {
            let bytes = vec![i; BLOB_THRESHOLD + 1];
            let blobs = store.blobs();
            let request = stash(Map::new(), bytes.clone(), Some(&*blobs)).unwrap();
            blobs_named.push(Hash::digest(&bytes));
            let call = HostCall {
                name: "theater:files/write".into(),
                request,
                result: Payload::json(serde_json::json!({})),
            };
            store
                .append(
                    NewEntry::input(Payload::json(serde_json::json!(i)), Payload::default(), h)
                        .with_host_calls(vec![call]),
                )
                .unwrap();
        }
        // A blob no entry names (a failed input's).
        let orphan = store.blobs().put(&[9; BLOB_THRESHOLD + 1]).unwrap();
        assert_eq!(
            check_blobs(&store, &["theater:files/write"]).unwrap(),
            vec![]
        );
        let head = store.head().unwrap();
        store
            .save_snapshot(&Snapshot::new(3, store.hash_at(3).unwrap(), state.clone()))
            .unwrap();
        store.prune_before(3).unwrap();
        let left: Vec<bool> = blobs_named
            .iter()
            .map(|b| dir.path().join("blobs").join(b.to_string()).exists())
            .collect();
        assert_eq!(
            left,
            vec![false, false, true, true],
            "entries 1 and 2 were pruned"
        );
        assert!(store.blobs().get(&orphan).is_err());
        assert_eq!(store.head(), Some(head));
        assert_eq!(
            check_blobs(&store, &["theater:files/write"]).unwrap(),
            vec![]
        );
    }
}
