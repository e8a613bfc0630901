//! Applying an input's file writes and deletes to the granted directory once its entry is
//! durable, and again after a crash (the same code both times, so a repair does exactly what
//! the first application would have done).
//!
//! What is applied is the input's final effect per path ([`Staged`]), not its calls one by
//! one: a file written twice is written once, a file written then deleted is only deleted.
//! Deletes go first (a file may have to make way for a directory), then writes, then one
//! fsync per directory touched. Every step is idempotent, so a repair after a crash part-way
//! through, or after a complete application whose mark was lost, ends in the same directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptions};
use theater_chain::Hash;

use crate::paths::{FileError, canonical_root, is_temporary, open_root};

/// An input's file writes (`Some(contents)`) and deletes (`None`) by normalised path: what
/// its later calls see, and what is applied once its entry is durable.
pub type Staged = BTreeMap<String, Option<Arc<Vec<u8>>>>;

/// Ends every temporary file name; names of this shape are reserved.
pub(crate) const TMP_SUFFIX: &str = ".theater-tmp";

/// The longest file name a write may use: the common file-system limit (NAME_MAX).
pub const MAX_NAME_BYTES: usize = 255;

/// The longest path, granted directory included, a write may use (PATH_MAX less room for
/// the temporary name beside it).
const MAX_PATH_BYTES: usize = 4000;

/// What is at `key` under the canonical `root`: its path and, if something is there, whether
/// it is a directory. No part of the path may be a link (writes do not follow them), and
/// every directory on the way must be one.
fn target(canonical: &Path, key: &str) -> Result<(PathBuf, Option<bool>), FileError> {
    target_through(canonical, key, usize::MAX)
}

/// [`target`], looking on disk at only the first `on_disk` parts of `key` (the names are
/// checked whole).
fn target_through(
    canonical: &Path,
    key: &str,
    on_disk: usize,
) -> Result<(PathBuf, Option<bool>), FileError> {
    let refused = |reason: String| FileError::Refused {
        path: key.to_string(),
        reason,
    };
    if key.is_empty() {
        return Err(refused("is the granted directory itself".into()));
    }
    let parts: Vec<&str> = key.split('/').collect();
    if parts.iter().any(|p| is_temporary(p)) {
        return Err(refused(format!(
            "names like .NAME{TMP_SUFFIX} are reserved for Theater's temporary files"
        )));
    }
    if let Some(long) = parts.iter().find(|p| p.len() > MAX_NAME_BYTES) {
        return Err(refused(format!(
            "the name {long:?} is {} bytes, over the {MAX_NAME_BYTES} a file name may have",
            long.len()
        )));
    }
    let full = canonical.join(key);
    if full.as_os_str().len() > MAX_PATH_BYTES {
        return Err(refused(format!(
            "the path is {} bytes with the granted directory, over the {MAX_PATH_BYTES} allowed",
            full.as_os_str().len()
        )));
    }
    let mut cur = canonical.to_path_buf();
    for (i, part) in parts.iter().enumerate().take(on_disk) {
        cur.push(part);
        let meta = match fs::symlink_metadata(&cur) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((full, None)),
            Err(e) => {
                return Err(FileError::Io {
                    path: key.to_string(),
                    message: e.to_string(),
                });
            }
        };
        if meta.file_type().is_symlink() {
            return match cur.canonicalize() {
                Ok(real) if real.starts_with(canonical) => Err(refused(format!(
                    "{part} is a symbolic link; writes do not follow links"
                ))),
                _ => Err(FileError::Escape(key.to_string())),
            };
        }
        let last = i + 1 == parts.len();
        if last {
            return Ok((full, Some(meta.is_dir())));
        }
        // The last part looked at may be the file this input deleted.
        if !meta.is_dir() && i + 1 < on_disk {
            return Err(refused(format!("{part} is not a directory")));
        }
    }
    Ok((full, None))
}

/// Where a write or delete of `key` (normalised, not empty) under `root` lands: no part of
/// the path may be a link, a directory on the way must be one, the target itself must not be
/// a directory, and names must fit the file system.
pub fn writable_path(root: &Path, key: &str) -> Result<PathBuf, FileError> {
    writable_path_past(root, key, None)
}

/// [`writable_path`] for a write below `deleted`, a file on the way to `key` that this input
/// deleted: what is on disk matters only up to it (it makes way for a directory), the names
/// are checked whole.
pub fn writable_path_past(
    root: &Path,
    key: &str,
    deleted: Option<&str>,
) -> Result<PathBuf, FileError> {
    let canonical = canonical_root(root, key)?;
    let on_disk = deleted.map_or(usize::MAX, |d| d.split('/').count());
    match target_through(&canonical, key, on_disk)? {
        (_, Some(true)) => Err(FileError::Refused {
            path: key.to_string(),
            reason: "is a directory".into(),
        }),
        (path, _) => Ok(path),
    }
}

/// Applies `staged` to `root` (see the module docs) and makes it durable. Returns how many
/// paths it wrote or deleted; an error names the path that failed. Every change goes through
/// a handle on the granted directory, so nothing outside it is touched even if links are
/// swapped in while this runs (the checks before, by path, give the clear errors).
pub fn apply(root: &Path, staged: &Staged) -> Result<usize, FileError> {
    if staged.is_empty() {
        return Ok(0);
    }
    let canonical = canonical_root(root, "")?;
    let handle = open_root(root, "")?;
    // Directories (relative, "" for the root) whose entries changed.
    let mut touched = BTreeSet::new();
    let mut applied = 0;
    for (key, _) in staged.iter().filter(|(_, v)| v.is_none()) {
        // A directory there now means a write of this input below it made it one: the file
        // it deleted is gone either way.
        if target(&canonical, key)?.1 == Some(false) {
            match handle.remove_file(key) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(key, e));
                }
                _ => {}
            }
        }
        applied += 1;
        touched.insert(parent_of(key));
    }
    for (key, contents) in staged {
        let parent = parent_of(key);
        // The input saw the directories of every path it wrote, deleted since or not. Each
        // one made here changes its own parent.
        let missing = missing_dirs(&handle, parent);
        if !missing.is_empty() {
            handle
                .create_dir_all(parent)
                .map_err(|e| io_error(key, e))?;
            touched.extend(missing.into_iter().map(parent_of));
        }
        let Some(bytes) = contents else {
            continue;
        };
        if target(&canonical, key)?.1 == Some(true) {
            return Err(FileError::Refused {
                path: key.clone(),
                reason: "is a directory".into(),
            });
        }
        let dir = open_dir(&handle, parent).map_err(|e| io_error(key, e))?;
        write_atomic(&dir, key, bytes)?;
        applied += 1;
        touched.insert(parent);
    }
    // Each directory whose entries changed, once (a new one through its parent too).
    for rel in touched {
        // Opened for reading (a directory handle alone cannot be synced).
        handle
            .open(if rel.is_empty() { "." } else { rel })
            .and_then(|d| d.sync_all())
            .map_err(|e| FileError::Io {
                path: if rel.is_empty() {
                    "/".into()
                } else {
                    rel.to_string()
                },
                message: format!("cannot sync the directory: {e}"),
            })?;
    }
    Ok(applied)
}

fn io_error(key: &str, e: std::io::Error) -> FileError {
    FileError::Io {
        path: key.to_string(),
        message: e.to_string(),
    }
}

/// The directory part of a normalised path (`""` for the granted directory itself).
fn parent_of(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The directories on the way to `dir` (itself included) that do not exist yet, outermost
/// first.
fn missing_dirs<'k>(handle: &Dir, dir: &'k str) -> Vec<&'k str> {
    if dir.is_empty() {
        return Vec::new();
    }
    dir.match_indices('/')
        .map(|(i, _)| &dir[..i])
        .chain(std::iter::once(dir))
        .skip_while(|p| handle.symlink_metadata(p).is_ok())
        .collect()
}

/// The directory `rel` (`""`: the granted directory) through `handle`.
fn open_dir(handle: &Dir, rel: &str) -> std::io::Result<Dir> {
    if rel.is_empty() {
        handle.try_clone()
    } else {
        handle.open_dir(rel)
    }
}

/// Replaces the file `key` (in `dir`, its directory) by `bytes` atomically: a temporary file
/// beside it (a short name of fixed length, so any name that fits the file system works),
/// fsynced, then renamed over it.
fn write_atomic(dir: &Dir, key: &str, bytes: &[u8]) -> Result<(), FileError> {
    let name = key.rsplit_once('/').map_or(key, |(_, n)| n);
    let tag = Hash::digest(name.as_bytes()).to_string();
    let tmp = format!(".{}{TMP_SUFFIX}", &tag[..16]);
    let write = || -> std::io::Result<()> {
        // A leftover of a crash (or anything else at that name, a link included) goes first;
        // then the temporary file is created new, never opened through a link.
        match dir.remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = dir.open_with(&tmp, OpenOptions::new().write(true).create_new(true))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        dir.rename(&tmp, dir, name)
    };
    write().map_err(|e| {
        let _ = dir.remove_file(&tmp);
        io_error(key, e)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn staged(ops: &[(&str, Option<&str>)]) -> Staged {
        ops.iter()
            .map(|(k, v)| (k.to_string(), v.map(|s| Arc::new(s.as_bytes().to_vec()))))
            .collect()
    }

    #[test]
    fn a_file_makes_way_for_a_directory_and_applying_twice_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("a"), b"old").unwrap();
        // The input deleted the file a, then wrote a/b (and wrote then deleted c/d).
        let plan = staged(&[("a", None), ("a/b", Some("new")), ("c/d", None)]);
        assert_eq!(apply(root.path(), &plan).unwrap(), 3);
        assert_eq!(fs::read(root.path().join("a/b")).unwrap(), b"new");
        assert!(root.path().join("c").is_dir());
        // A repair after the mark was lost: the same directory, no error.
        assert_eq!(apply(root.path(), &plan).unwrap(), 3);
        assert_eq!(fs::read(root.path().join("a/b")).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(root.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["b"], "no temporary file is left behind");
    }

    #[test]
    fn the_longest_name_the_file_system_takes_is_written_and_a_longer_one_refused() {
        let root = tempfile::tempdir().unwrap();
        let longest = "n".repeat(MAX_NAME_BYTES);
        apply(root.path(), &staged(&[(&longest, Some("x"))])).unwrap();
        assert_eq!(fs::read(root.path().join(&longest)).unwrap(), b"x");
        let over = "n".repeat(MAX_NAME_BYTES + 1);
        let e = writable_path(root.path(), &over).unwrap_err();
        assert!(e.to_string().contains("over the 255"), "{e}");
    }
}
