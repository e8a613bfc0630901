//! Paths under a granted directory: safe resolution (no `..`, absolute paths or links out),
//! reads, listings and the facts an actor may learn of a file.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use serde::{Deserialize, Serialize};
use theater_chain::Hash;

use crate::apply::TMP_SUFFIX;

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The file or directory name.
    pub name: String,
    /// Whether it is a directory.
    pub dir: bool,
    /// Its size in bytes (0 for a directory).
    pub size: u64,
}

/// What an actor may learn of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: Hash,
    /// A content type guessed from the extension.
    pub content_type: String,
}

/// Why a path under a grant cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The path would leave the granted directory (`..`, an absolute path, a symlink out).
    #[error("{0:?} is outside the granted directory")]
    Escape(String),
    /// Nothing (or no regular file) is there.
    #[error("no file {0:?}")]
    NotFound(String),
    /// The operation is not allowed there (a read-only grant, a directory, a link).
    #[error("{path:?}: {reason}")]
    Refused {
        /// The path asked for.
        path: String,
        /// Why.
        reason: String,
    },
    /// It exists but could not be read or written.
    #[error("cannot use {path:?}: {message}")]
    Io {
        /// The path asked for.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Resolves `rel` (a `/`-separated path such as `css/site.css`; a leading `/` is allowed
/// and ignored) to a regular file inside `root`. Refuses `..`, absolute or drive paths,
/// NUL bytes, and symlinks that lead outside `root`.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, FileError> {
    let root = canonical_root(root, rel)?;
    let full = root.join(normalize(rel)?);
    resolve_existing(&root, rel, full, false)
}

/// `rel` as `/`-separated normal components (`""` for the directory itself), or
/// [`FileError::Escape`] for `..`, absolute or drive paths, backslashes and NUL bytes.
pub fn normalize(rel: &str) -> Result<String, FileError> {
    let trimmed = rel.trim_start_matches('/');
    let escape = || FileError::Escape(rel.to_string());
    if trimmed.contains('\0') || trimmed.contains('\\') {
        return Err(escape());
    }
    let mut parts = Vec::new();
    for c in Path::new(trimmed).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or_else(escape)?),
            Component::CurDir => {}
            _ => return Err(escape()),
        }
    }
    Ok(parts.join("/"))
}

pub(crate) fn canonical_root(root: &Path, rel: &str) -> Result<PathBuf, FileError> {
    root.canonicalize().map_err(|e| FileError::Io {
        path: rel.to_string(),
        message: format!("the granted directory is unusable: {e}"),
    })
}

/// Checks that `full` exists inside `root` (canonical), following links; a regular file, or
/// a directory if `dir`.
fn resolve_existing(
    root: &Path,
    rel: &str,
    full: PathBuf,
    dir: bool,
) -> Result<PathBuf, FileError> {
    let real = match full.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FileError::NotFound(rel.to_string()));
        }
        Err(e) => {
            return Err(FileError::Io {
                path: rel.to_string(),
                message: e.to_string(),
            });
        }
    };
    if !real.starts_with(root) {
        return Err(FileError::Escape(rel.to_string()));
    }
    let fits = if dir { real.is_dir() } else { real.is_file() };
    if !fits {
        return Err(FileError::NotFound(rel.to_string()));
    }
    Ok(real)
}

/// The granted directory as a capability (a directory handle): every access through it
/// stays below it, whatever links on the way are, or become while it is used.
pub(crate) fn open_root(root: &Path, rel: &str) -> Result<Dir, FileError> {
    Dir::open_ambient_dir(root, ambient_authority()).map_err(|e| FileError::Io {
        path: rel.to_string(),
        message: format!("the granted directory is unusable: {e}"),
    })
}

fn io_error(rel: &str) -> impl Fn(std::io::Error) -> FileError + '_ {
    move |e| FileError::Io {
        path: rel.to_string(),
        message: e.to_string(),
    }
}

/// Opens the regular file `rel` under `root` for reading. The path is checked first (a clear
/// error for `..`, a link out, a missing file), then opened through the directory handle, so
/// a link swapped in meanwhile cannot lead outside either.
pub fn open(root: &Path, rel: &str) -> Result<fs::File, FileError> {
    resolve(root, rel)?;
    let file = open_root(root, rel)?
        .open(normalize(rel)?)
        .map_err(io_error(rel))?
        .into_std();
    if !file.metadata().map_err(io_error(rel))?.is_file() {
        return Err(FileError::NotFound(rel.to_string()));
    }
    Ok(file)
}

/// Reads the file `rel` under `root` whole.
pub fn read(root: &Path, rel: &str) -> Result<Vec<u8>, FileError> {
    read_at_most(root, rel, u64::MAX)
}

/// The most an actor's `read` returns at once (its contents are recorded, and land in the
/// actor's memory).
pub const MAX_READ_BYTES: u64 = 64 << 20;

/// Reads the file `rel` under `root` whole, if it is at most `max` bytes.
pub fn read_at_most(root: &Path, rel: &str, max: u64) -> Result<Vec<u8>, FileError> {
    let file = open(root, rel)?;
    let size = file.metadata().map_err(io_error(rel))?.len();
    let too_big = |size: u64| FileError::Refused {
        path: rel.to_string(),
        reason: format!("is {size} bytes, over the {max} bytes a read may return"),
    };
    if size > max {
        return Err(too_big(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // A file growing meanwhile is cut at one byte over the limit, and refused.
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error(rel))?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Size, hash and content type of the file `rel` under `root`, hashed as it is read (any
/// size, constant memory).
pub fn stat(root: &Path, rel: &str) -> Result<FileInfo, FileError> {
    let (sha256, size) = Hash::digest_reader(open(root, rel)?).map_err(io_error(rel))?;
    Ok(FileInfo {
        size,
        sha256,
        content_type: content_type(rel).to_string(),
    })
}

/// The entries of the directory `rel` under `root` (`""` for the root itself), by name.
/// Links leading outside `root` and Theater's own temporary files are left out.
pub fn list(root: &Path, rel: &str) -> Result<Vec<DirEntry>, FileError> {
    let key = normalize(rel)?;
    let canonical = canonical_root(root, rel)?;
    resolve_existing(&canonical, rel, canonical.join(&key), true)?;
    let handle = open_root(root, rel)?;
    let listing = if key.is_empty() {
        handle.entries()
    } else {
        handle.read_dir(&key)
    };
    let mut entries = Vec::new();
    for item in listing.map_err(io_error(rel))? {
        let item = item.map_err(io_error(rel))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if is_temporary(&name) {
            continue;
        }
        // Follows links, but only to places inside the grant: the handle refuses the others.
        let Ok(meta) = handle.metadata(Path::new(&key).join(item.file_name())) else {
            continue;
        };
        entries.push(DirEntry {
            name,
            dir: meta.is_dir(),
            size: if meta.is_dir() { 0 } else { meta.len() },
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

pub(crate) fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TMP_SUFFIX)
}

/// A content type for `path`, by its extension (`application/octet-stream` if unknown).
pub fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "mp4" => "video/mp4",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn paths_stay_inside_the_grant() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"no").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::fs::write(root.path().join("sub/a.txt"), b"hello").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link"))
            .unwrap();
        let r = root.path();
        assert_eq!(read(r, "/sub/a.txt").unwrap(), b"hello");
        assert_eq!(read(r, "sub/./a.txt").unwrap(), b"hello");
        for bad in [
            "../x",
            "/sub/../../x",
            "sub/../../secret",
            "a\\..\\b",
            "x\0y",
        ] {
            assert!(
                matches!(resolve(r, bad), Err(FileError::Escape(_))),
                "{bad}"
            );
        }
        #[cfg(unix)]
        assert!(matches!(resolve(r, "link"), Err(FileError::Escape(_))));
        assert!(matches!(resolve(r, "missing"), Err(FileError::NotFound(_))));
        assert!(matches!(resolve(r, "sub"), Err(FileError::NotFound(_))));
        let info = stat(r, "sub/a.txt").unwrap();
        assert_eq!(info.size, 5);
        assert_eq!(info.sha256, Hash::digest(b"hello"));
        assert_eq!(info.content_type, "text/plain; charset=utf-8");
        assert_eq!(content_type("x.PNG"), "image/png");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
