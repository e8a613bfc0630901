//! File primitives the chain store uses, for the crates that keep files beside chains (the
//! host log): an atomic durable write and an exclusive lock file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes `bytes` to `path` atomically and durably: a temporary file beside it (`.tmp`),
/// fsynced, renamed over `path`, then the directory fsynced.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let f = File::create(&tmp)?;
    f.write_all_at(bytes, 0)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Takes an exclusive lock on the file at `path` (created if missing), held as long as the
/// returned file is open; `None` if another holder keeps it for a second. A busy lock is
/// retried briefly: a child process can hold it between its fork and exec (it inherits the
/// descriptor).
pub fn lock_file(path: &Path) -> std::io::Result<Option<File>> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let mut wait = Duration::from_millis(1);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(Some(lock)),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}
