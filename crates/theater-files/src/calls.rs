//! An actor's file operations, recorded in the entry being built and answered from the
//! recording during replay (which then needs neither the grant nor the files).
//!
//! Each returns `Ok(Err(message))` for what the actor should see (not granted, an escape, a
//! missing file, a read-only grant) and `Err` only for a recorder or replay error, which
//! fails the input.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use theater_chain::blob::{BLOB_THRESHOLD, stash, unstash};
use theater_chain::{BlobStore, Entry, Event, Hash, Payload};

use crate::{
    DirEntry, FILES_DELETE, FILES_LIST, FILES_READ, FILES_STAT, FILES_WRITE, FileError, FileGrant,
    FileInfo, MAX_READ_BYTES, NOT_GRANTED, Staged, apply, content_type, normalize,
    writable_path_past,
};
use theater_core::{HostCallError, HostCalls};

type Answer<T> = Result<Result<T, String>, HostCallError>;

const READ_ONLY: &str =
    "the granted directory is read-only (set writable = true under [interfaces.files])";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The request of a recorded stat, read, list or delete: the path as the actor gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRequest {
    /// The path.
    pub path: String,
}

/// The request of a recorded write; the contents are beside it (or under `$blob`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRequest {
    /// The path.
    pub path: String,
    /// The size of the contents.
    pub size: usize,
}

/// What a recorded file call answered: the error the actor saw, or the call's answer (`T`:
/// [`FileInfo`] for a stat, [`ReadAnswer`] for a read, [`ListAnswer`] for a listing,
/// [`Done`] for a write or delete).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FileAnswer<T> {
    /// Refused: not granted, an escape, a missing file, a read-only grant...
    Refused {
        /// What the actor was told.
        error: String,
    },
    /// The call's answer.
    Answered(T),
}

/// A recorded read's answer; the contents are beside it (or under `$blob`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadAnswer {
    /// The size of the contents.
    pub size: u64,
}

/// A recorded listing's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListAnswer {
    /// The entries, by name.
    pub entries: Vec<DirEntry>,
}

/// A recorded write's or delete's answer: done (staged, applied once durable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

fn encode<T: Serialize>(value: &T) -> Map<String, Value> {
    object(serde_json::to_value(value).unwrap_or_default())
}

fn error(e: impl std::fmt::Display) -> Payload {
    let refused: FileAnswer<Done> = FileAnswer::Refused {
        error: e.to_string(),
    };
    Payload::json(Value::Object(encode(&refused)))
}

/// The answer recorded in `result` (its `$blob`, if any, aside).
fn answer<T: DeserializeOwned>(name: &str, result: &Payload) -> Answer<T> {
    let mut json = result.json.clone();
    if let Some(m) = json.as_object_mut() {
        m.remove(theater_chain::blob::BLOB_KEY);
    }
    match serde_json::from_value::<FileAnswer<T>>(json) {
        Ok(FileAnswer::Answered(t)) => Ok(Ok(t)),
        Ok(FileAnswer::Refused { error }) => Ok(Err(error)),
        Err(_) => Err(malformed(name)),
    }
}

fn blob_error(e: theater_chain::ChainError) -> HostCallError {
    HostCallError::Blob(e.to_string())
}

/// Records the call `name`: live, `perform` runs with the grant (it may stage writes in
/// `host`) and its result, an answer or an error the actor sees, is recorded (without a grant,
/// the error that says so); in replay the recorded result is returned.
fn recorded(
    grant: Option<&FileGrant>,
    host: &mut HostCalls,
    name: &str,
    request: Payload,
    perform: impl FnOnce(&FileGrant, &mut HostCalls) -> Payload,
) -> Result<Payload, HostCallError> {
    let live = (!host.is_replaying()).then(|| match grant {
        Some(grant) => perform(grant, host),
        None => error(NOT_GRANTED),
    });
    host.call_sync(name, request, move || live.unwrap_or_default())
}

fn malformed(name: &str) -> HostCallError {
    HostCallError::Malformed { name: name.into() }
}

/// What this input staged at `path`: `Some(Some(bytes))` written, `Some(None)` deleted.
fn staged(host: &HostCalls, path: &str) -> Option<Option<Arc<Vec<u8>>>> {
    let key = normalize(path).ok()?;
    staged_files(host).get(&key).cloned()
}

fn current(grant: &FileGrant, host: &HostCalls, path: &str) -> Result<Vec<u8>, FileError> {
    match staged(host, path) {
        Some(Some(bytes)) => Ok(bytes.to_vec()),
        Some(None) => Err(FileError::NotFound(path.to_string())),
        None => crate::read_at_most(&grant.dir, path, MAX_READ_BYTES),
    }
}

/// Size, SHA-256 and content type of the file at `path`.
pub fn stat(grant: Option<&FileGrant>, host: &mut HostCalls, path: &str) -> Answer<FileInfo> {
    let request = path_request(path);
    let result = recorded(grant, host, FILES_STAT, request, |grant, host| {
        let info = match staged(host, path) {
            Some(Some(bytes)) => Ok(FileInfo {
                size: bytes.len() as u64,
                sha256: Hash::digest(&bytes),
                content_type: content_type(path).to_string(),
            }),
            Some(None) => Err(FileError::NotFound(path.to_string())),
            None => crate::stat(&grant.dir, path),
        };
        match info {
            Ok(info) => Payload::json(Value::Object(encode(&info))),
            Err(e) => error(e),
        }
    })?;
    answer::<FileInfo>(FILES_STAT, &result)
}

fn path_request(path: &str) -> Payload {
    Payload::json(Value::Object(encode(&PathRequest {
        path: path.to_string(),
    })))
}

/// The contents of the file at `path`.
pub fn read(grant: Option<&FileGrant>, host: &mut HostCalls, path: &str) -> Answer<Vec<u8>> {
    let request = path_request(path);
    // Live, the bytes read are handed back as they are; replay reads them from the recording.
    let mut read_live = None;
    let result = recorded(grant, host, FILES_READ, request, |grant, host| {
        let bytes = match current(grant, host, path) {
            Ok(b) => b,
            Err(e) => return error(e),
        };
        let meta = encode(&ReadAnswer {
            size: bytes.len() as u64,
        });
        let stored = match stash(meta, bytes.clone(), host.blobs()) {
            Ok(p) => p,
            Err(e) => return error(format!("cannot record the contents: {e}")),
        };
        read_live = Some(bytes);
        stored
    })?;
    let read = match answer::<ReadAnswer>(FILES_READ, &result)? {
        Ok(read) => read,
        Err(e) => return Ok(Err(e)),
    };
    let bytes = match read_live {
        Some(b) => b,
        None => unstash(&result, host.blobs()).map_err(blob_error)?,
    };
    if read.size != bytes.len() as u64 {
        return Err(malformed(FILES_READ));
    }
    Ok(Ok(bytes))
}

/// The entries of the directory at `path` (`""` or `/` for the granted directory), by name,
/// including what this input wrote or deleted.
pub fn list(grant: Option<&FileGrant>, host: &mut HostCalls, path: &str) -> Answer<Vec<DirEntry>> {
    let request = path_request(path);
    let result = recorded(
        grant,
        host,
        FILES_LIST,
        request,
        |grant, host| match listing(grant, host, path) {
            Ok(entries) => Payload::json(Value::Object(encode(&ListAnswer { entries }))),
            Err(e) => error(e),
        },
    )?;
    Ok(answer::<ListAnswer>(FILES_LIST, &result)?.map(|l| l.entries))
}

fn listing(grant: &FileGrant, host: &HostCalls, path: &str) -> Result<Vec<DirEntry>, FileError> {
    let key = normalize(path)?;
    let prefix = if key.is_empty() {
        String::new()
    } else {
        format!("{key}/")
    };
    let staged_files = staged_files(host);
    let staged_below = staged_files.iter().filter(|(k, _)| k.starts_with(&prefix));
    let mut entries: std::collections::BTreeMap<String, DirEntry> =
        match crate::list(&grant.dir, path) {
            Ok(found) => found.into_iter().map(|e| (e.name.clone(), e)).collect(),
            // A directory this input created by writing into it.
            Err(FileError::NotFound(_))
                if staged_files
                    .iter()
                    .any(|(k, v)| k.starts_with(&prefix) && v.is_some()) =>
            {
                Default::default()
            }
            Err(e) => return Err(e),
        };
    for (k, v) in staged_below {
        let rest = &k[prefix.len()..];
        match (rest.split_once('/'), v) {
            // A directory this input wrote into (it stays when the file is deleted again), or
            // one holding a file it deleted.
            (Some((dir, _)), _) => {
                entries.entry(dir.to_string()).or_insert_with(|| DirEntry {
                    name: dir.to_string(),
                    dir: true,
                    size: 0,
                });
            }
            (None, Some(bytes)) => {
                entries.insert(
                    rest.to_string(),
                    DirEntry {
                        name: rest.to_string(),
                        dir: false,
                        size: bytes.len() as u64,
                    },
                );
            }
            (None, None) => {
                entries.remove(rest);
            }
        }
    }
    Ok(entries.into_values().collect())
}

/// Where a write or delete of `path` goes, if this grant allows it; also refuses paths that
/// clash with what this input already staged (a file where a directory is needed).
fn check_writable(grant: &FileGrant, host: &HostCalls, path: &str) -> Result<String, FileError> {
    let key = normalize(path)?;
    if !grant.writable {
        return Err(FileError::Refused {
            path: path.to_string(),
            reason: READ_ONLY.into(),
        });
    }
    // A file this input deleted may be on the way (it makes way for a directory): what is
    // on disk matters only up to it.
    let staged_files = staged_files(host);
    let deleted_on_way = key
        .match_indices('/')
        .map(|(i, _)| &key[..i])
        .find(|prefix| matches!(staged_files.get(*prefix), Some(None)));
    writable_path_past(&grant.dir, &key, deleted_on_way)?;
    let refused = |reason: &str| FileError::Refused {
        path: path.to_string(),
        reason: reason.into(),
    };
    let below = format!("{key}/");
    for (k, v) in &staged_files {
        if v.is_some() && key.starts_with(&format!("{k}/")) {
            return Err(refused("a directory on the way was written as a file"));
        }
        // Writing below it made it a directory, even if that file was deleted since.
        if k.starts_with(&below) {
            return Err(refused("is a directory"));
        }
    }
    Ok(key)
}

/// Writes `contents` to the file at `path` (replacing it, creating missing directories),
/// once this input's entry is durable. Later calls of this input see the new contents.
pub fn write(
    grant: Option<&FileGrant>,
    host: &mut HostCalls,
    path: &str,
    contents: Vec<u8>,
) -> Answer<()> {
    let size = contents.len();
    // The request names large contents by hash, live and in replay alike; live, they are
    // stored beside the entry once the write is allowed.
    let request = stash(
        encode(&WriteRequest {
            path: path.to_string(),
            size,
        }),
        contents.clone(),
        None,
    )
    .map_err(blob_error)?;
    let contents = Arc::new(contents);
    let result = recorded(grant, host, FILES_WRITE, request, |grant, host| {
        let key = match check_writable(grant, host, path) {
            Ok(k) => k,
            Err(e) => return error(e),
        };
        if size > BLOB_THRESHOLD {
            let stored = match host.blobs() {
                Some(blobs) => blobs.put(&contents).map(|_| ()).map_err(|e| e.to_string()),
                None => Err("no blob store".into()),
            };
            if let Err(e) = stored {
                return error(format!("cannot record the contents: {e}"));
            }
        }
        stage(host, grant, key, Some(contents.clone()));
        Payload::json(Value::Object(encode(&Done {})))
    })?;
    Ok(answer::<Done>(FILES_WRITE, &result)?.map(drop))
}

/// Deletes the file at `path`, once this input's entry is durable.
pub fn delete(grant: Option<&FileGrant>, host: &mut HostCalls, path: &str) -> Answer<()> {
    let request = path_request(path);
    let result = recorded(grant, host, FILES_DELETE, request, |grant, host| {
        let key = match check_writable(grant, host, path) {
            Ok(k) => k,
            Err(e) => return error(e),
        };
        // It must be there (staged, or a file on disk): existence only, nothing is read.
        let there = match staged(host, path) {
            Some(contents) => contents
                .map(drop)
                .ok_or_else(|| FileError::NotFound(path.to_string())),
            None => crate::resolve(&grant.dir, path).map(drop),
        };
        if let Err(e) = there {
            return error(e);
        }
        stage(host, grant, key, None);
        Payload::json(Value::Object(encode(&Done {})))
    })?;
    Ok(answer::<Done>(FILES_DELETE, &result)?.map(drop))
}

/// Stages a write (`Some`) or delete (`None`) of `key`: later calls of this input see it, and
/// it is applied with the rest of the input's files once its entry is durable.
fn stage(host: &mut HostCalls, grant: &FileGrant, key: String, contents: Option<Arc<Vec<u8>>>) {
    let staging = host.scratch::<Staging>();
    lock(&staging.files).insert(key, contents);
    if staging.root.is_some() {
        return;
    }
    // The first write of the input: its final effect on the directory is applied once the
    // entry is durable.
    staging.root = Some(grant.dir.clone());
    let (root, files) = (grant.dir.clone(), Arc::clone(&staging.files));
    host.on_commit_last(move |_| {
        apply(&root, &lock(&files))
            .map(drop)
            .map_err(|e| e.to_string())
    });
}

/// What the input being handled staged (see [`stage`]).
#[derive(Default)]
struct Staging {
    /// Files written or deleted (`None`) so far, by normalised path.
    files: Arc<Mutex<Staged>>,
    /// The directory they go to, once the first is staged.
    root: Option<PathBuf>,
}

fn lock(files: &Mutex<Staged>) -> std::sync::MutexGuard<'_, Staged> {
    files.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A copy of what this input staged so far (the contents are shared, not copied).
fn staged_files(host: &HostCalls) -> Staged {
    host.peek::<Staging>()
        .map(|s| lock(&s.files).clone())
        .unwrap_or_default()
}

/// Applies again the file writes and deletes `entry` recorded, after a crash between making
/// the entry durable and applying them: their final effect, exactly as the first time
/// ([`apply`]), so it is idempotent. Returns how many paths were written or deleted. An entry
/// that wrote files while no writable directory is granted now is an error, not a skip: the
/// chain says the writes happened.
pub fn reapply(
    grant: Option<&FileGrant>,
    entry: &Entry,
    blobs: &dyn BlobStore,
) -> Result<usize, String> {
    if !matches!(
        entry.event(),
        Event::Input { .. } | Event::Read { .. } | Event::Init { .. }
    ) {
        return Ok(0);
    }
    let mut staged = Staged::new();
    for call in entry.host_calls() {
        if !matches!(call.name.as_str(), FILES_WRITE | FILES_DELETE) {
            continue;
        }
        // A refused write or delete changed nothing.
        if answer::<Done>(&call.name, &call.result)
            .map_err(|e| e.to_string())?
            .is_err()
        {
            continue;
        }
        let request: PathRequest = serde_json::from_value(call.request.json.clone())
            .map_err(|_| malformed(&call.name).to_string())?;
        let key = normalize(&request.path).map_err(|e| e.to_string())?;
        let contents = if call.name == FILES_WRITE {
            let bytes = unstash(&call.request, Some(blobs)).map_err(|e| e.to_string())?;
            Some(Arc::new(bytes))
        } else {
            None
        };
        staged.insert(key, contents);
    }
    if staged.is_empty() {
        return Ok(0);
    }
    let root = match grant {
        Some(g) if g.writable => &g.dir,
        _ => {
            return Err(format!(
                "entry {} wrote {} file(s) that may not have reached the disk, but no writable \
                 directory is granted now: grant it again ([interfaces.files], writable = true) \
                 so they can be applied",
                entry.seq(),
                staged.len()
            ));
        }
    };
    apply(root, &staged).map_err(|e| e.to_string())
}
