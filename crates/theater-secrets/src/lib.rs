//! # theater-secrets
//!
//! The secrets capability (`[interfaces.secrets]`): an actor that must hold a secret itself
//! (a key it signs with) gets its value from the host. The host's other uses of secrets
//! (an outbound HTTP credential, a database password) never need this: the guest never sees
//! those.
//!
//! - The manifest names the secrets the actor may read (`names = ["SIGNING_KEY"]`); each is
//!   declared in the manifest's or the host's `[secrets]` (see [`theater_wasm::secrets`]),
//!   and must be readable when the actor starts.
//! - A call is recorded as `{"name"}` → `{"ok": {"version"}}` (or `{"error"}`): the
//!   secret's name and version, never its value.
//! - Replay reads the value again from the secrets of whoever replays (the manifest's
//!   `[secrets]`): without it, replay fails naming the secret; with a value of another
//!   version (when the host's key is at hand to tell), it fails saying so.
//!
//! ## Example
//!
//! ```no_run
//! use theater_secrets::Secrets;
//! use theater_wasm::{Capabilities, WasmConfig, WasmHost};
//!
//! # fn main() -> anyhow::Result<()> {
//! let capabilities = Capabilities::new().with(Secrets::default());
//! let host = WasmHost::new(WasmConfig::default().capabilities(capabilities))?;
//! # Ok(())
//! # }
//! ```

pub mod calls;
mod host;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Deserialize;
use theater_wasm::{Capability, FieldError, Grant, HostState, Manifest, Setup};
use wasmtime::component::Linker;

/// Name of the recorded call: request `{"name"}`, result `{"ok": {"version"}}` or
/// `{"error": message}`.
pub const GET: &str = "theater:secrets/get";

/// What an actor granted no secrets gets (recorded like any answer).
pub const NOT_GRANTED: &str = "secrets are not granted to this actor (add [interfaces.secrets] names = [...] to its manifest)";

/// What `[interfaces.secrets]` holds.
///
/// ```toml
/// [secrets]
/// SIGNING_KEY = { file = "signing.key" }
///
/// [interfaces.secrets]
/// names = ["SIGNING_KEY"]     # the secrets the guest may read
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The secrets the guest may read, by name.
    pub names: Vec<String>,
}

/// What one actor may read, and where from.
#[derive(Debug)]
pub struct SecretsGrant {
    names: BTreeSet<String>,
    secrets: theater_wasm::Secrets,
    /// The values handed to the guest (the latest few), to redact from its log lines.
    handed: std::sync::Mutex<Vec<theater_wasm::Secret>>,
}

/// How many values handed out a grant remembers for redaction.
const REMEMBERED: usize = 16;

impl SecretsGrant {
    /// A grant of `names`, read from `secrets`.
    pub fn new(config: &SecretsConfig, secrets: &theater_wasm::Secrets) -> Self {
        SecretsGrant {
            names: config.names.iter().cloned().collect(),
            secrets: secrets.clone(),
            handed: Default::default(),
        }
    }

    /// Remembers `secret` as handed to the guest.
    fn handed(&self, secret: &theater_wasm::Secret) {
        let mut handed = self
            .handed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if handed.iter().any(|s| s.expose() == secret.expose()) {
            return;
        }
        if handed.len() == REMEMBERED {
            handed.remove(0);
        }
        handed.push(secret.clone());
    }
}

impl Grant for SecretsGrant {
    fn redact(&self, text: &str) -> Option<String> {
        let handed = self
            .handed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Option<String> = None;
        for s in handed.iter() {
            let current = out.as_deref().unwrap_or(text);
            if let std::borrow::Cow::Owned(b) = s.redact(current.as_bytes()) {
                out = Some(String::from_utf8_lossy(&b).into_owned());
            }
        }
        out
    }
}

/// The secrets capability. Its grant is a [`SecretsGrant`].
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// Where replay finds the host's key to check versions (a data directory).
    key_dir: Option<std::path::PathBuf>,
}

impl Secrets {
    /// The capability, whose replay grants check versions with the key in `data_dir` (if
    /// it holds one: replay tools never make a key).
    pub fn with_key_in(data_dir: &std::path::Path) -> Self {
        Secrets {
            key_dir: Some(data_dir.to_path_buf()),
        }
    }
}

impl Capability for Secrets {
    const NAME: &'static str = "secrets";
    type Config = SecretsConfig;

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        theater_wasm::bindings::theater::actor::secrets::add_to_linker::<_, host::Data>(
            linker,
            host::view,
        )
    }

    fn check(&self, config: &SecretsConfig, _manifest: &Manifest) -> Result<(), FieldError> {
        if config.names.is_empty() {
            return Err(FieldError::at("names", "names no secret"));
        }
        for name in &config.names {
            theater_wasm::secrets::check_name(name).map_err(|e| FieldError::at("names", e))?;
        }
        Ok(())
    }

    fn secrets_named(&self, config: &SecretsConfig) -> Vec<String> {
        config.names.clone()
    }

    fn grant(&self, config: &SecretsConfig, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>> {
        Ok(Arc::new(SecretsGrant::new(config, setup.secrets)))
    }

    fn replay_grant(&self, config: &SecretsConfig, manifest: &Manifest) -> Option<Arc<dyn Grant>> {
        // Whoever replays has the manifest's secrets, if they have the values (and the
        // host's key, to check their versions).
        let mut secrets = theater_wasm::Secrets::new(manifest.secrets.clone());
        if let Some(dir) = &self.key_dir {
            secrets = secrets.with_existing_key_in(dir);
        }
        Some(Arc::new(SecretsGrant::new(config, &secrets)))
    }
}
