//! `[interfaces.files]`: the directory granted, and whether it may be written.

use std::path::PathBuf;

use serde::Deserialize;

/// What `[interfaces.files]` holds.
///
/// ```toml
/// [interfaces.files]
/// dir = "public"      # relative to the manifest
/// writable = false    # true: the actor may also write and delete files (created if missing)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The directory, relative to the manifest (required: `None` is refused by the check,
    /// with a message that shows what to write).
    pub dir: Option<PathBuf>,
    /// Whether the actor may write and delete files in it.
    #[serde(default)]
    pub writable: bool,
}
