//! [`Checkpointer`]: signs the host log's checkpoints (C2SP tlog-checkpoint in a C2SP
//! signed-note) and never two that disagree, across restarts too.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use signed_note::Note;
use tlog_tiles::Checkpoint;

use crate::log::tlog;
use crate::{AuditError, HostLog, Key};

/// The last checkpoint signed: its size and root. Durable before a signature is made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Signed {
    /// Leaves in it.
    pub size: u64,
    /// Its root.
    pub root: tlog_tiles::Hash,
}

/// Signs checkpoints of one host log under one key.
#[derive(Debug)]
pub struct Checkpointer {
    key: Key,
    state: PathBuf,
    last: Option<Signed>,
}

impl Checkpointer {
    /// A checkpointer signing with `key`, remembering what it signed in `state` (a file).
    pub fn open(key: Key, state: impl Into<PathBuf>) -> Result<Checkpointer, AuditError> {
        let state = state.into();
        let last = match std::fs::read_to_string(&state) {
            Ok(text) => Some(
                parse_state(&text)
                    .map_err(|e| AuditError::Malformed(format!("{}: {e}", state.display())))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(AuditError::Io(format!("{}: {e}", state.display()))),
        };
        Ok(Checkpointer { key, state, last })
    }

    /// The key's name: the log's origin, the checkpoints' first line.
    pub fn origin(&self) -> &str {
        self.key.name()
    }

    /// The verifier key of the checkpoints.
    pub fn vkey(&self) -> &str {
        self.key.vkey()
    }

    /// The last checkpoint signed, if any.
    pub fn last(&self) -> Option<Signed> {
        self.last
    }

    /// Signs a checkpoint of `log` as it is now. Refused if the log is smaller than the last
    /// checkpoint signed, or is not an extension of it (its root at that size differs): the
    /// host then holds two histories, and signing would show both. The size and root are
    /// durable before the signature exists.
    pub fn sign(&mut self, log: &HostLog) -> Result<String, AuditError> {
        // Durable first: a log rebuilt after a crash must not hold these leaves in another
        // order under a signed size.
        log.sync()?;
        let size = log.size();
        let root = log.root(size)?;
        if let Some(last) = self.last {
            if size < last.size {
                return Err(AuditError::Equivocation(format!(
                    "the log has {size} leaves, fewer than the {} of the last checkpoint signed",
                    last.size
                )));
            }
            let proof = log.prove_consistency(last.size, size)?;
            if consistent(last, Signed { size, root }, &proof).is_err() {
                return Err(AuditError::Equivocation(format!(
                    "the log's first {} leaves are not those of the last checkpoint signed (root {}): refusing to sign another history",
                    last.size, last.root
                )));
            }
            if size == last.size {
                return self.note(size, root);
            }
        }
        let signed = Signed { size, root };
        write_state(&self.state, &signed)?;
        self.last = Some(signed);
        self.note(size, root)
    }

    fn note(&self, size: u64, root: tlog_tiles::Hash) -> Result<String, AuditError> {
        let text = Checkpoint::new(self.origin(), size, root, "")
            .map_err(|_| AuditError::Malformed("the origin cannot name a checkpoint".into()))?
            .to_bytes();
        let mut note = Note::new(&text, &[]).map_err(note_err)?;
        note.add_sigs(&[self.key.signer()]).map_err(note_err)?;
        String::from_utf8(note.to_bytes())
            .map_err(|_| AuditError::Malformed("a note that is not UTF-8".into()))
    }
}

pub(crate) fn note_err(e: signed_note::NoteError) -> AuditError {
    AuditError::Malformed(format!("signed note: {e}"))
}

pub(crate) fn parse_state(text: &str) -> Result<Signed, String> {
    let mut lines = text.lines();
    let size = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("no size on the first line")?;
    let root = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or("no root on the second line")?;
    Ok(Signed {
        size,
        root: tlog_tiles::Hash(root),
    })
}

/// Writes `signed` to `path` durably ([`theater_chain::fsio::write_durably`]).
pub(crate) fn write_state(path: &Path, signed: &Signed) -> Result<(), AuditError> {
    let io = |e: std::io::Error| AuditError::Io(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).map_err(io)?;
    let text = format!("{}\n{}\n", signed.size, STANDARD.encode(signed.root.0));
    theater_chain::fsio::write_durably(path, text.as_bytes()).map_err(io)
}

/// Whether `proof` shows the tree of `new` (size and root) extends that of `old`.
pub fn consistent(old: Signed, new: Signed, proof: &[tlog_tiles::Hash]) -> Result<(), AuditError> {
    if old.size == 0 {
        // Every tree extends the empty one.
        return Ok(());
    }
    if old.size == new.size && !proof.is_empty() {
        return Err(AuditError::Proof(
            "a proof between trees of one size".into(),
        ));
    }
    if old.size == new.size {
        return if old.root == new.root {
            Ok(())
        } else {
            Err(AuditError::Proof(format!(
                "two roots for size {}: {} and {}",
                old.size, old.root, new.root
            )))
        };
    }
    tlog_tiles::check_tree(&proof.to_vec(), new.size, new.root, old.size, old.root).map_err(tlog)
}
