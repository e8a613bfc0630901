//! [`ComponentStore`]: every component a host has run, kept by the SHA-256 of its bytes, so
//! that a chain's history replays on the code that made it (see `Event::Upgrade`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use theater_chain::Hash;

/// A directory of components named `<sha256>.wasm`, written once and never changed: the
/// name is the hash of the content, checked again at every read.
#[derive(Clone, Debug)]
pub struct ComponentStore {
    dir: PathBuf,
}

/// The directory of a data directory's components.
pub const COMPONENTS_DIR: &str = "components";

impl ComponentStore {
    /// The store in `dir` (created at the first [`ComponentStore::put`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentStore { dir: dir.into() }
    }

    /// The store of the data directory `data_dir` (`<data_dir>/components`).
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join(COMPONENTS_DIR))
    }

    /// Where it is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the component `hash` is (or would be).
    pub fn path(&self, hash: &Hash) -> PathBuf {
        self.dir.join(format!("{hash}.wasm"))
    }

    /// Whether the store holds `hash`.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.path(hash).is_file()
    }

    /// Keeps `bytes` (durably: written to a temporary file, synced, renamed, the directory
    /// synced) unless the store holds them already; a file under their name that holds
    /// other bytes is replaced. Returns their hash.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<Hash> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let hash = Hash::digest(bytes);
        let path = self.path(&hash);
        if std::fs::read(&path).is_ok_and(|held| Hash::digest(&held) == hash) {
            return Ok(hash);
        }
        if !self.dir.is_dir() {
            std::fs::create_dir_all(&self.dir)?;
            if let Some(parent) = self.dir.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
        }
        let tmp = self.dir.join(format!(
            ".{hash}.{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map(|()| hash)
    }

    /// The bytes of component `hash`: an error if the store lacks it or holds other bytes
    /// under its name.
    pub fn get(&self, hash: &Hash) -> Result<Vec<u8>, String> {
        let path = self.path(hash);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "component {hash} is not in {} (copy the component there as {hash}.wasm)",
                self.dir.display()
            ),
            _ => format!("cannot read {}: {e}", path.display()),
        })?;
        let found = Hash::digest(&bytes);
        if found != *hash {
            return Err(format!(
                "{} holds a component whose SHA-256 is {found}, not its name: the store is damaged",
                path.display()
            ));
        }
        Ok(bytes)
    }

    /// The hashes it holds.
    pub fn list(&self) -> std::io::Result<Vec<Hash>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let name = entry?.file_name();
            if let Some(hash) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".wasm"))
                .and_then(|h| h.parse::<Hash>().ok())
            {
                out.push(hash);
            }
        }
        out.sort_by_key(|h| h.to_string());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_kept_by_hash_and_checked_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::new(dir.path().join("components"));
        let h = store.put(b"\0asm v1").unwrap();
        assert_eq!(h, Hash::digest(b"\0asm v1"));
        assert_eq!(store.put(b"\0asm v1").unwrap(), h);
        assert_eq!(store.get(&h).unwrap(), b"\0asm v1");
        assert_eq!(store.list().unwrap(), vec![h]);
        let missing = Hash::digest(b"other");
        assert!(store.get(&missing).unwrap_err().contains("is not in"));
        std::fs::write(store.path(&h), b"\0asm v2").unwrap();
        assert!(store.get(&h).unwrap_err().contains("damaged"));
        // Given again, the right bytes replace the damaged file.
        store.put(b"\0asm v1").unwrap();
        assert_eq!(store.get(&h).unwrap(), b"\0asm v1");
    }
}
