//! Errors of loading components and reading manifests.

use std::path::PathBuf;

/// A component that cannot be run as an actor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly at all.
    #[error("{origin} is not WebAssembly (no `\\0asm` header)")]
    NotWasm {
        /// Where the bytes came from.
        origin: String,
    },
    /// A core module was given where a component is needed.
    #[error(
        "{origin} is a core wasm module, not a component: turn it into one with \
         `wit-component` (cargo xtask build-examples does this for the examples)"
    )]
    CoreModule {
        /// Where the bytes came from.
        origin: String,
    },
    /// The component is malformed or fails validation.
    #[error("{origin} is not a valid component: {message}")]
    Invalid {
        /// Where the bytes came from.
        origin: String,
        /// The validator's complaint.
        message: String,
    },
    /// The component does not implement the `theater:actor` world (wrong exports or
    /// imports the host does not offer).
    #[error("{origin} does not implement the theater:actor world: {message}")]
    WrongWorld {
        /// Where the bytes came from.
        origin: String,
        /// What does not match.
        message: String,
    },
    /// The engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// A manifest that cannot be used, naming the file, the field and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
pub struct ManifestError {
    /// The manifest file.
    pub path: PathBuf,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}
