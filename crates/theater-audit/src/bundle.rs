//! [`Bundle`]: an offline proof that one chain entry is in a host's log, checkable with no
//! host: the signed checkpoint (with any witnesses' cosignatures), the leaf, its inclusion
//! path, and optionally the entry's own bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use signed_note::{Note, Verifier, VerifierList};
use theater_chain::{ChainId, Entry, Hash};
use tlog_tiles::Checkpoint;

use crate::log::tlog;
use crate::{AuditError, CosignatureVerifier, HostLog, Leaf};

/// The `format` of a bundle this crate writes.
pub const BUNDLE_FORMAT: &str = "theater-audit-bundle/1";

/// An offline proof of inclusion (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    /// The signed checkpoint: a C2SP signed note, cosignatures included.
    pub checkpoint: String,
    /// The leaf's index in the log.
    pub index: u64,
    /// The actor.
    pub actor: ChainId,
    /// The entry's seq.
    pub seq: u64,
    /// The entry's hash (hex).
    pub entry_hash: Hash,
    /// Its parent's hash (hex).
    pub parent_hash: Hash,
    /// The inclusion path, base64 hashes from the leaf up.
    pub inclusion: Vec<String>,
    /// The entry's canonical bytes (base64), when included: then its hash, seq and parent
    /// are checked too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

/// What a bundle proved.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// The log's origin.
    pub origin: String,
    /// The checkpoint's size.
    pub size: u64,
    /// The witnesses (by name) whose cosignatures verified.
    pub witnesses: Vec<String>,
    /// The entry, when the bundle holds it.
    pub entry: Option<Entry>,
}

impl Bundle {
    /// The bundle for leaf `index` of `log` under the signed checkpoint `note` (which must be
    /// of `log`, at a size past `index`).
    pub fn prove(
        log: &HostLog,
        index: u64,
        note: &str,
        entry: Option<&Entry>,
    ) -> Result<Bundle, AuditError> {
        let checkpoint = checkpoint_of(note)?;
        let leaf = log.leaf(index)?;
        let proof = log.prove_inclusion(index, checkpoint.size())?;
        if log.root(checkpoint.size())? != *checkpoint.hash() {
            return Err(AuditError::Equivocation(format!(
                "the log's root at size {} is not the checkpoint's",
                checkpoint.size()
            )));
        }
        Ok(Bundle {
            format: BUNDLE_FORMAT.into(),
            checkpoint: note.to_string(),
            index,
            actor: leaf.actor,
            seq: leaf.seq,
            entry_hash: leaf.entry,
            parent_hash: leaf.parent,
            inclusion: proof.iter().map(|h| STANDARD.encode(h.0)).collect(),
            entry: entry.map(|e| STANDARD.encode(e.encode())),
        })
    }

    /// Checks the bundle with no host: the checkpoint is signed by `log_key` (a verifier key),
    /// at least `quorum` of `witnesses` (their verifier keys) cosigned it, the leaf is in it,
    /// and the entry (if included) is the leaf's. Any changed byte fails.
    pub fn verify(
        &self,
        log_key: &str,
        witnesses: &[String],
        quorum: usize,
    ) -> Result<Verified, AuditError> {
        if self.format != BUNDLE_FORMAT {
            return Err(AuditError::Malformed(format!(
                "format {:?}, expected {BUNDLE_FORMAT:?}",
                self.format
            )));
        }
        let log = crate::keys::verifier(log_key)?;
        let origin = log.name().to_string();
        let log_id = log.key_id();
        let mut known: Vec<Box<dyn Verifier>> = vec![Box::new(log)];
        let mut witness_names: Vec<(String, u32)> = Vec::new();
        for w in witnesses {
            let v = CosignatureVerifier::new(w)?;
            if v.name() == origin {
                return Err(AuditError::Key(format!(
                    "the witness key {w:?} has the log's own name: a witness must be named apart"
                )));
            }
            if witness_names.iter().any(|(n, _)| n == v.name()) {
                return Err(AuditError::Key(format!(
                    "two witness keys named {:?}: each witness counts once",
                    v.name()
                )));
            }
            witness_names.push((v.name().to_string(), v.key_id()));
            known.push(Box::new(v));
        }
        if quorum > witnesses.len() {
            return Err(AuditError::Key(format!(
                "a quorum of {quorum} from {} witness keys",
                witnesses.len()
            )));
        }
        let note = Note::from_bytes(self.checkpoint.as_bytes())
            .map_err(|e| AuditError::Signature(format!("the checkpoint: {e}")))?;
        let (verified, _) = note
            .verify(&VerifierList::new(known))
            .map_err(|e| AuditError::Signature(format!("the checkpoint: {e}")))?;
        if !verified
            .iter()
            .any(|s| s.name() == origin && s.id() == log_id)
        {
            return Err(AuditError::Signature(format!(
                "the checkpoint is not signed by the log's key ({origin})"
            )));
        }
        let cosigned: Vec<String> = witness_names
            .iter()
            .filter(|(name, id)| verified.iter().any(|s| s.name() == name && s.id() == *id))
            .map(|(name, _)| name.clone())
            .collect();
        if cosigned.len() < quorum {
            return Err(AuditError::Signature(format!(
                "{} of the {} witnesses named cosigned the checkpoint ({}), {quorum} needed",
                cosigned.len(),
                witnesses.len(),
                cosigned.join(", ")
            )));
        }
        let checkpoint = Checkpoint::from_bytes(note.text())
            .map_err(|_| AuditError::Malformed("the signed note is not a checkpoint".into()))?;
        if checkpoint.origin() != origin {
            return Err(AuditError::Signature(format!(
                "the checkpoint is of {:?}, the key of {origin:?}",
                checkpoint.origin()
            )));
        }
        let leaf = Leaf {
            actor: self.actor.clone(),
            seq: self.seq,
            entry: self.entry_hash,
            parent: self.parent_hash,
        };
        let proof = self
            .inclusion
            .iter()
            .map(|h| {
                STANDARD
                    .decode(h)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(tlog_tiles::Hash)
                    .ok_or_else(|| AuditError::Malformed(format!("inclusion hash {h:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        tlog_tiles::check_record(
            &proof,
            checkpoint.size(),
            *checkpoint.hash(),
            self.index,
            leaf.hash(),
        )
        .map_err(|e| {
            AuditError::Proof(format!(
                "leaf {} ({} seq {}) is not in the checkpoint of size {}: {}",
                self.index,
                self.actor,
                self.seq,
                checkpoint.size(),
                tlog(e)
            ))
        })?;
        let entry = match &self.entry {
            None => None,
            Some(b64) => {
                let bytes = STANDARD
                    .decode(b64)
                    .map_err(|e| AuditError::Malformed(format!("the entry's base64: {e}")))?;
                let entry = Entry::decode(&bytes)
                    .map_err(|e| AuditError::Malformed(format!("the entry: {e}")))?;
                if entry.hash() != self.entry_hash
                    || entry.seq() != self.seq
                    || entry.parent() != self.parent_hash
                {
                    return Err(AuditError::Proof(
                        "the entry included is not the leaf's (hash, seq or parent differ)".into(),
                    ));
                }
                Some(entry)
            }
        };
        Ok(Verified {
            origin,
            size: checkpoint.size(),
            witnesses: cosigned,
            entry,
        })
    }
}

/// Two signed checkpoints of one log that cannot both be true: the same size with different
/// roots (a split view). Checkpoints of different sizes need a consistency proof
/// ([`crate::consistent`]).
pub fn split_view(a: &str, b: &str) -> Result<Option<String>, AuditError> {
    let (a, b) = (checkpoint_of(a)?, checkpoint_of(b)?);
    Ok(
        (a.origin() == b.origin() && a.size() == b.size() && a.hash() != b.hash()).then(|| {
            format!(
                "split view: {} signed two roots for size {}: {} and {}",
                a.origin(),
                a.size(),
                a.hash(),
                b.hash()
            )
        }),
    )
}

/// A signed checkpoint's origin, size and root (its signatures are not checked: see
/// [`check_signed`]).
pub fn parse_checkpoint(note: &str) -> Result<(String, crate::Signed), AuditError> {
    let c = checkpoint_of(note)?;
    Ok((
        c.origin().to_string(),
        crate::Signed {
            size: c.size(),
            root: *c.hash(),
        },
    ))
}

/// Checks that the signed checkpoint `note` carries a valid signature by `vkey`.
pub fn check_signed(note: &str, vkey: &str) -> Result<(), AuditError> {
    let v = crate::keys::verifier(vkey)?;
    let name = v.name().to_string();
    let parsed = Note::from_bytes(note.as_bytes()).map_err(crate::checkpoint::note_err)?;
    let (verified, _) = parsed
        .verify(&VerifierList::new(vec![Box::new(v)]))
        .map_err(|e| AuditError::Signature(e.to_string()))?;
    if verified.iter().any(|s| s.name() == name) {
        Ok(())
    } else {
        Err(AuditError::Signature(format!("not signed by {name}")))
    }
}

/// The checkpoint a signed note holds (its signatures not checked).
fn checkpoint_of(note: &str) -> Result<Checkpoint, AuditError> {
    let parsed = Note::from_bytes(note.as_bytes()).map_err(crate::checkpoint::note_err)?;
    Checkpoint::from_bytes(parsed.text())
        .map_err(|_| AuditError::Malformed("the signed note is not a checkpoint".into()))
}
