//! Files under a granted directory: safe path resolution, and what an actor may learn of a
//! file (size, SHA-256, content type). Shared by the wasm host (which records what an actor
//! learns) and the HTTP interface (which serves a file an actor names, after checking it is
//! still the content that was recorded).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use theater_chain::Hash;

/// A file an actor answered with, by reference: the server sends its bytes, the chain holds
/// its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// The path, relative to the granted directory.
    pub path: String,
    /// The SHA-256 of the content the actor was told about.
    pub sha256: Hash,
    /// Its size in bytes.
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
    /// It exists but could not be read.
    #[error("cannot read {path:?}: {message}")]
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
    let trimmed = rel.trim_start_matches('/');
    let escape = || FileError::Escape(rel.to_string());
    if trimmed.contains('\0') || trimmed.contains('\\') {
        return Err(escape());
    }
    let relative = Path::new(trimmed);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(escape());
    }
    let root = root.canonicalize().map_err(|e| FileError::Io {
        path: rel.to_string(),
        message: format!("the granted directory is unusable: {e}"),
    })?;
    let full = root.join(relative);
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
    if !real.starts_with(&root) {
        return Err(escape());
    }
    if !real.is_file() {
        return Err(FileError::NotFound(rel.to_string()));
    }
    Ok(real)
}

/// Reads the file `rel` under `root` whole.
pub fn read(root: &Path, rel: &str) -> Result<Vec<u8>, FileError> {
    let path = resolve(root, rel)?;
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| FileError::Io {
            path: rel.to_string(),
            message: e.to_string(),
        })?;
    Ok(bytes)
}

/// Size, hash and content type of the file `rel` under `root`.
pub fn stat(root: &Path, rel: &str) -> Result<FileInfo, FileError> {
    let bytes = read(root, rel)?;
    Ok(FileInfo {
        size: bytes.len() as u64,
        sha256: Hash::digest(&bytes),
        content_type: content_type(rel).to_string(),
    })
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
