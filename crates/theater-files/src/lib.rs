//! # theater-files
//!
//! The files capability (`[interfaces.files]`): an actor reads, lists, writes and deletes
//! files under the directory its manifest grants.
//!
//! - Every call and its answer are recorded in the actor's chain ([`calls`]); contents over
//!   [`theater_chain::blob::BLOB_THRESHOLD`] by hash, in the chain's blob store. Replay answers
//!   from the recording and needs neither the directory nor the files.
//! - Writes and deletes are staged while the input runs (its later reads see them) and applied
//!   once its entry is durable, before the actor handles anything else: an input that fails
//!   writes nothing, and the chain never names a write the directory did not get. A host that
//!   stopped in between applies them again when the actor resumes ([`Grant::reapply`]).
//! - Paths are resolved safely ([`resolve`]): `..`, absolute paths and links out of the
//!   directory are refused, and the refusal is recorded like any answer.
//!
//! ## Example
//!
//! ```no_run
//! use theater_files::Files;
//! use theater_wasm::{Capabilities, WasmConfig, WasmHost};
//!
//! # fn main() -> anyhow::Result<()> {
//! // A host whose actors may be granted a directory by their manifests.
//! let host = WasmHost::new(
//!     WasmConfig::default().capabilities(Capabilities::new().with(Files)),
//! )?;
//! # Ok(())
//! # }
//! ```

mod apply;
pub mod calls;
mod config;
mod host;
mod paths;

use std::sync::Arc;

pub use apply::{MAX_NAME_BYTES, Staged, apply, writable_path, writable_path_past};
pub use config::FilesConfig;
pub use paths::{
    DirEntry, FileError, FileInfo, MAX_READ_BYTES, content_type, list, normalize, open, read,
    read_at_most, resolve, stat,
};

use theater_chain::{BlobStore, Entry};
use theater_wasm::{Capability, FieldError, Grant, HostState, Manifest, Setup};
use wasmtime::component::Linker;

/// Name of a recorded file lookup: request `{"path"}`, result `{"size", "sha256",
/// "content_type"}` or `{"error"}`.
pub const FILES_STAT: &str = "theater:files/stat";
/// Name of a recorded read: request `{"path"}`, result `{"size"}` with the contents as bytes
/// (or under `$blob`), or `{"error"}`.
pub const FILES_READ: &str = "theater:files/read";
/// Name of a recorded listing: request `{"path"}`, result `{"entries": [{"name", "dir",
/// "size"}]}` or `{"error"}`.
pub const FILES_LIST: &str = "theater:files/list";
/// Name of a recorded write: request `{"path", "size"}` with the contents as bytes (or under
/// `$blob`), result `{}` or `{"error"}`.
pub const FILES_WRITE: &str = "theater:files/write";
/// Name of a recorded delete: request `{"path"}`, result `{}` or `{"error"}`.
pub const FILES_DELETE: &str = "theater:files/delete";

/// What an actor's file calls answer when its manifest granted no directory.
pub const NOT_GRANTED: &str =
    "no directory is granted to this actor (add [interfaces.files] to its manifest)";

/// A directory granted to an actor: what its file calls hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileGrant {
    /// The directory.
    pub dir: std::path::PathBuf,
    /// Whether the actor may write and delete files in it.
    pub writable: bool,
}

impl FileGrant {
    /// Read access to `dir`.
    pub fn read_only(dir: impl Into<std::path::PathBuf>) -> Self {
        FileGrant {
            dir: dir.into(),
            writable: false,
        }
    }

    /// Read and write access to `dir`.
    pub fn read_write(dir: impl Into<std::path::PathBuf>) -> Self {
        FileGrant {
            dir: dir.into(),
            writable: true,
        }
    }
}

#[async_trait::async_trait]
impl Grant for FileGrant {
    async fn reapply(&self, entry: &Entry, blobs: &dyn BlobStore) -> Result<(), String> {
        let n = calls::reapply(Some(self), entry, blobs)?;
        if n > 0 {
            tracing::info!(seq = entry.seq(), "applied {n} file writes again");
        }
        Ok(())
    }
}

/// What an actor granted no directory holds: the repair of an entry that wrote files (under
/// an earlier manifest) refuses to run, so the actor does not start and lose them.
#[derive(Clone, Copy, Debug)]
pub struct NoFiles;

#[async_trait::async_trait]
impl Grant for NoFiles {
    async fn reapply(&self, entry: &Entry, blobs: &dyn BlobStore) -> Result<(), String> {
        calls::reapply(None, entry, blobs).map(drop)
    }
}

fn dir_of(config: &FilesConfig) -> Result<&std::path::Path, FieldError> {
    config.dir.as_deref().ok_or_else(|| {
        FieldError::at(
            "dir",
            "expected the directory to grant, e.g. dir = \"public\"",
        )
    })
}

/// The files capability. Its grant is a [`FileGrant`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Files;

impl Capability for Files {
    const NAME: &'static str = "files";
    type Config = FilesConfig;

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        theater_wasm::bindings::theater::actor::files::add_to_linker::<_, host::Data>(
            linker,
            host::view,
        )
    }

    fn check(&self, config: &FilesConfig, manifest: &Manifest) -> Result<(), FieldError> {
        let dir = manifest.relative(dir_of(config)?);
        // A writable directory is created when the actor starts; one only read must exist.
        if dir.is_dir() || (config.writable && !dir.exists()) {
            Ok(())
        } else {
            Err(FieldError::at(
                "dir",
                format!("no directory at {}", dir.display()),
            ))
        }
    }

    fn grant(&self, config: &FilesConfig, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>> {
        let dir = setup
            .manifest
            .relative(dir_of(config).map_err(|e| anyhow::anyhow!(e.message))?);
        if config.writable {
            std::fs::create_dir_all(&dir).map_err(|e| {
                anyhow::anyhow!("cannot create the directory {}: {e}", dir.display())
            })?;
        }
        Ok(Arc::new(FileGrant {
            dir,
            writable: config.writable,
        }))
    }

    fn ungranted(&self) -> Option<Arc<dyn Grant>> {
        Some(Arc::new(NoFiles))
    }

    fn blob_calls(&self) -> &'static [&'static str] {
        &[FILES_READ, FILES_WRITE]
    }
}
