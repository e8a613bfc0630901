//! `[interfaces.db]`: which SQLite file.

use std::path::PathBuf;

use serde::Deserialize;

/// What `[interfaces.db]` holds.
///
/// ```toml
/// [interfaces.db]
/// file = "inventory.sqlite"   # optional, relative to the manifest; default:
///                             # db/NAME.sqlite under the host's data directory
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    /// The database file, relative to the manifest.
    pub file: Option<PathBuf>,
}
