//! A witness (C2SP tlog-witness): cosigns a log's checkpoint only if it extends the last one
//! it cosigned for that log, and remembers that durably. Cosignatures are C2SP
//! tlog-cosignature (`cosignature/v1`, Ed25519, with the time).

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;
use signed_note::{Note, Signature, Verifier, VerifierList};
use tlog_tiles::Checkpoint;

use crate::checkpoint::{Signed, consistent, note_err, write_state};
use crate::{AuditError, Key};

/// The signature type of a cosignature/v1 key.
const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The message a cosignature/v1 signs: a header with the time, then the checkpoint text.
fn cosigned_message(time: u64, text: &[u8]) -> Vec<u8> {
    let mut msg = format!("cosignature/v1\ntime {time}\n").into_bytes();
    msg.extend_from_slice(text);
    msg
}

/// Verifies a witness's cosignatures (signed-note [`Verifier`] for cosignature/v1).
#[derive(Debug, Clone)]
pub struct CosignatureVerifier {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl CosignatureVerifier {
    /// From a witness's verifier key (`name+id+base64` of `0x04` and the public key).
    pub fn new(vkey: &str) -> Result<CosignatureVerifier, AuditError> {
        let bad = || AuditError::Key(format!("{vkey:?} is not a witness's verifier key"));
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let id = u32::from_str_radix(id, 16).map_err(|_| bad())?;
        let key = STANDARD.decode(key).map_err(|_| bad())?;
        if key.len() != 33 || key[0] != ALG_COSIGNATURE_V1 || signed_note::key_id(name, &key) != id
        {
            return Err(bad());
        }
        let mut k = [0u8; 32];
        k.copy_from_slice(&key[1..]);
        let key = ed25519_dalek::VerifyingKey::from_bytes(&k).map_err(|_| bad())?;
        Ok(CosignatureVerifier {
            name: name.to_string(),
            id,
            key,
        })
    }

    /// The time a valid cosignature of `text` says it was made (seconds since the Unix
    /// epoch), `None` if it is not valid.
    pub fn time(&self, text: &[u8], sig: &[u8]) -> Option<u64> {
        let (time, sig) = sig.split_first_chunk::<8>()?;
        let time = u64::from_be_bytes(*time);
        let sig = ed25519_dalek::Signature::from_slice(sig).ok()?;
        self.key
            .verify_strict(&cosigned_message(time, text), &sig)
            .ok()
            .map(|()| time)
    }
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.time(msg, sig).is_some()
    }
}

/// Why a witness did not cosign.
#[derive(Debug, thiserror::Error)]
pub enum WitnessRefusal {
    /// The submitter's idea of the last cosigned size is not the witness's (tlog-witness:
    /// 409 Conflict, with the witness's size).
    #[error("the witness last cosigned size {known} of this log, not {claimed}")]
    Conflict {
        /// What the submitter said.
        claimed: u64,
        /// What the witness has.
        known: u64,
    },
    /// The checkpoint is not an extension of the last one cosigned: a fork, or a bad proof.
    #[error("not consistent with the checkpoint of size {size} cosigned before: {why}")]
    Inconsistent {
        /// The size of the last checkpoint cosigned.
        size: u64,
        /// What failed.
        why: String,
    },
    /// Not signed by a log the witness knows, or malformed.
    #[error("{0}")]
    Rejected(String),
    /// The witness could not keep its state.
    #[error("{0}")]
    Failed(#[from] AuditError),
}

/// A witness: its key, the logs it knows (origin → verifier key) and, per log, the last
/// checkpoint it cosigned (files under its state directory).
pub struct Witness {
    key: Key,
    logs: BTreeMap<String, String>,
    dir: PathBuf,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("name", &self.key.name())
            .field("logs", &self.logs.keys())
            .finish()
    }
}

impl Witness {
    /// A witness signing with `key`, cosigning the logs whose verifier keys are `logs`,
    /// keeping its state under `dir`.
    pub fn new(key: Key, logs: &[String], dir: impl Into<PathBuf>) -> Result<Witness, AuditError> {
        let mut known = BTreeMap::new();
        for vkey in logs {
            let v = crate::keys::verifier(vkey)?;
            known.insert(v.name().to_string(), vkey.trim().to_string());
        }
        Ok(Witness {
            key,
            logs: known,
            dir: dir.into(),
        })
    }

    /// The witness's verifier key for its cosignatures (`name+id+base64`, type 0x04).
    pub fn vkey(&self) -> String {
        let public = [
            &[ALG_COSIGNATURE_V1][..],
            self.key.signing().verifying_key().as_bytes(),
        ]
        .concat();
        let id = signed_note::key_id(self.key.name(), &public);
        format!("{}+{id:08x}+{}", self.key.name(), STANDARD.encode(public))
    }

    fn state_path(&self, origin: &str) -> PathBuf {
        // An origin may hold '/': the file is named by its hash.
        self.dir
            .join(theater_chain::Hash::digest(origin.as_bytes()).to_string())
    }

    /// The last checkpoint cosigned for `origin`, if any.
    pub fn last(&self, origin: &str) -> Result<Option<Signed>, AuditError> {
        let path = self.state_path(origin);
        match std::fs::read_to_string(&path) {
            Ok(text) => crate::checkpoint::parse_state(&text)
                .map(Some)
                .map_err(|e| AuditError::Malformed(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AuditError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// tlog-witness `add-checkpoint`: `old` is the size the submitter believes the witness
    /// last cosigned (0 for none), `proof` the consistency proof from it, `note` the signed
    /// checkpoint. Returns the cosignature line (`— name base64`) once the new checkpoint is
    /// durably the witness's last.
    pub fn add_checkpoint(
        &self,
        old: u64,
        proof: &[tlog_tiles::Hash],
        note: &[u8],
        now: u64,
    ) -> Result<String, WitnessRefusal> {
        let parsed = Note::from_bytes(note).map_err(|e| WitnessRefusal::Rejected(e.to_string()))?;
        let checkpoint = Checkpoint::from_bytes(parsed.text())
            .map_err(|_| WitnessRefusal::Rejected("not a checkpoint".into()))?;
        let origin = checkpoint.origin();
        let vkey = self.logs.get(origin).ok_or_else(|| {
            WitnessRefusal::Rejected(format!("{origin:?} is not a log this witness knows"))
        })?;
        let verifier = crate::keys::verifier(vkey)?;
        let known = VerifierList::new(vec![Box::new(verifier)]);
        parsed
            .verify(&known)
            .map_err(|e| WitnessRefusal::Rejected(format!("the log's signature: {e}")))?;
        let new = Signed {
            size: checkpoint.size(),
            root: *checkpoint.hash(),
        };
        let last = self.last(origin)?;
        let known_size = last.map_or(0, |l| l.size);
        if old != known_size {
            return Err(WitnessRefusal::Conflict {
                claimed: old,
                known: known_size,
            });
        }
        if let Some(last) = last {
            if new.size < last.size {
                return Err(WitnessRefusal::Inconsistent {
                    size: last.size,
                    why: format!("it is smaller ({})", new.size),
                });
            }
            consistent(last, new, proof).map_err(|e| WitnessRefusal::Inconsistent {
                size: last.size,
                why: e.to_string(),
            })?;
        }
        write_state(&self.state_path(origin), &new)?;
        let sig = self
            .key
            .signing()
            .sign(&cosigned_message(now, parsed.text()));
        let mut bytes = now.to_be_bytes().to_vec();
        bytes.extend_from_slice(&sig.to_bytes());
        let id = CosignatureVerifier::new(&self.vkey())?.id;
        let line = Signature::new(self.key.name().to_string(), id, bytes).map_err(note_err)?;
        String::from_utf8(line.to_bytes())
            .map_err(|_| WitnessRefusal::Rejected("a cosignature that is not UTF-8".into()))
    }
}
