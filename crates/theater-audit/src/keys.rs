//! Ed25519 keys in the C2SP signed-note text forms: a signer key (`PRIVATE+KEY+name+id+…`,
//! kept in a file only its owner can read) and the verifier key given to others
//! (`name+id+base64`).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use signed_note::{Signer, StandardSigner, StandardVerifier};

use crate::AuditError;

/// The signature type of an Ed25519 signed-note key.
const ALG_ED25519: u8 = 0x01;

/// A signing key with its name (a log's origin, or a witness's name).
pub struct Key {
    signer: StandardSigner,
    signing: ed25519_dalek::SigningKey,
    vkey: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("vkey", &self.vkey).finish()
    }
}

impl Key {
    /// A new random key named `name` (no spaces, no `+`).
    pub fn generate(name: &str) -> Result<(Key, String), AuditError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(AuditError::Key(format!(
                "{name:?} is not a key name: it must be non-empty, with no spaces and no '+'"
            )));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| AuditError::Key(format!("no randomness: {e}")))?;
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = [&[ALG_ED25519][..], signing.verifying_key().as_bytes()].concat();
        let id = signed_note::key_id(name, &public);
        let secret = [&[ALG_ED25519][..], &seed[..]].concat();
        let skey = format!("PRIVATE+KEY+{name}+{id:08x}+{}", STANDARD.encode(secret));
        Ok((Key::from_skey(&skey)?, skey))
    }

    /// The key a signer-key text names.
    pub fn from_skey(skey: &str) -> Result<Key, AuditError> {
        let signer = StandardSigner::new(skey.trim())
            .map_err(|e| AuditError::Key(format!("not a signer key: {e}")))?;
        // PRIVATE+KEY+name+id+base64 (whose alphabet has '+' too).
        let secret = skey
            .trim()
            .splitn(5, '+')
            .nth(4)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|s| s.len() == 33)
            .ok_or_else(|| AuditError::Key("not a signer key".into()))?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&secret[1..]);
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let vkey = signed_note::new_ed25519_verifier_key(signer.name(), &signing.verifying_key());
        Ok(Key {
            signer,
            signing,
            vkey,
        })
    }

    /// Reads the key in `path`, or creates one named `name` there (readable by its owner
    /// only). An existing file that others can read is refused.
    pub fn load_or_create(path: &Path, name: &str) -> Result<Key, AuditError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mode = std::fs::metadata(path)
                    .map_err(|e| AuditError::Io(format!("{}: {e}", path.display())))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(AuditError::Key(format!(
                        "{} can be read by others (mode {:o}): `chmod 600` it",
                        path.display(),
                        mode & 0o777
                    )));
                }
                Key::from_skey(&text)
                    .map_err(|e| AuditError::Key(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, skey) = Key::generate(name)?;
                let io = |e: std::io::Error| AuditError::Io(format!("{}: {e}", path.display()));
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                f.write_all(format!("{skey}\n").as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(AuditError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        self.signer.name()
    }

    /// The verifier key to give others: `name+id+base64`.
    pub fn vkey(&self) -> &str {
        &self.vkey
    }

    /// The signer, for [`signed_note::Note::add_sigs`].
    pub fn signer(&self) -> &StandardSigner {
        &self.signer
    }

    /// The Ed25519 signing key.
    pub(crate) fn signing(&self) -> &ed25519_dalek::SigningKey {
        &self.signing
    }
}

/// The verifier a verifier-key text names, or an error naming the problem.
pub fn verifier(vkey: &str) -> Result<StandardVerifier, AuditError> {
    StandardVerifier::new(vkey.trim())
        .map_err(|e| AuditError::Key(format!("{vkey:?} is not a verifier key: {e}")))
}
