//! # theater-http-client
//!
//! The outbound HTTP capability (`[interfaces.http-client]`): an actor sends HTTP requests
//! to the hosts its manifest grants.
//!
//! - Each request and its response are recorded in the actor's chain (bodies over
//!   [`theater_chain::blob::BLOB_THRESHOLD`] by hash, in the chain's blob store), so replay
//!   needs no network and answers exactly what the actor saw.
//! - A host not granted is refused before anything is sent, and the refusal is recorded like
//!   any answer. A loopback target (`localhost`, `127.0.0.1`, `::1`, or a name resolving to
//!   one) is reached only when the manifest names it exactly, never through a wildcard.
//! - The whole exchange has a timeout, and a response body over the size limit is refused.
//!   Failures are typed ([`FetchError`]): refused, invalid, unreachable, timeout, too large.
//! - `https://` with rustls, trusting Mozilla's roots (compiled in, so every machine trusts
//!   the same) and any `ca_file` the manifest names.
//!
//! ## Example
//!
//! ```no_run
//! use theater_http_client::HttpClient;
//! use theater_wasm::{Capabilities, WasmConfig, WasmHost};
//!
//! # fn main() -> anyhow::Result<()> {
//! let host = WasmHost::new(
//!     WasmConfig::default().capabilities(Capabilities::new().with(HttpClient)),
//! )?;
//! # Ok(())
//! # }
//! ```

mod allow;
pub mod calls;
mod config;
mod credentials;
mod fetch;
mod host;

use std::sync::Arc;
use std::time::Duration;

pub use config::HttpClientConfig;
pub use credentials::CredentialConfig;

use serde::{Deserialize, Serialize};
use theater_wasm::{Capability, FieldError, Grant, HostState, Manifest, Secrets, Setup};
use wasmtime::component::Linker;

/// Name of a recorded request: request `{"method", "url", "headers"}` with the body as bytes
/// (or under `$blob`); result `{"ok": {"status", "headers"}}` with the body likewise, or
/// `{"error": {"kind", "message"}}`.
pub const SEND: &str = "theater:http-client/send";

/// What an actor granted no outbound HTTP gets (recorded like any answer).
pub const NOT_GRANTED: &str =
    "outbound HTTP is not granted to this actor (add [interfaces.http-client] to its manifest)";

/// An outbound request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// An absolute `http://` URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// A response, read whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request got no response: the kind is data, recorded as such.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "kebab-case")]
pub enum FetchError {
    /// The host is not granted (or outbound HTTP is not).
    #[error("refused: {0}")]
    Refused(String),
    /// The URL or the request is malformed.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The host could not be reached.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No complete response in time.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The response body is over the limit.
    #[error("too large: {0}")]
    TooLarge(String),
}

/// What one actor may reach: what its `send` import holds.
#[derive(Clone, Debug)]
pub struct HttpClientGrant {
    limits: fetch::Limits,
}

impl HttpClientGrant {
    /// A grant from a config (its `ca_file`, if any, relative to the working directory), with
    /// no secrets (a credential's secret is then an error at each request).
    pub fn new(config: &HttpClientConfig) -> Result<Self, FieldError> {
        Self::relative_to(config, std::path::Path::new("."))
    }

    /// A grant from a config whose `ca_file` is relative to `base`, with no secrets.
    pub fn relative_to(
        config: &HttpClientConfig,
        base: &std::path::Path,
    ) -> Result<Self, FieldError> {
        Self::with_secrets(config, base, &Secrets::default())
    }

    /// A grant from a config whose `ca_file` is relative to `base`; its credentials read
    /// `secrets` at each request.
    pub fn with_secrets(
        config: &HttpClientConfig,
        base: &std::path::Path,
        secrets: &Secrets,
    ) -> Result<Self, FieldError> {
        let extra = match &config.ca_file {
            None => Vec::new(),
            Some(file) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let path = base.join(file);
                let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(&path)
                    .map_err(|e| FieldError::at("ca_file", format!("{}: {e}", path.display())))?
                    .collect();
                let certs = certs
                    .map_err(|e| FieldError::at("ca_file", format!("{}: {e}", path.display())))?;
                if certs.is_empty() {
                    return Err(FieldError::at(
                        "ca_file",
                        format!("{} holds no PEM certificate", path.display()),
                    ));
                }
                certs
            }
        };
        let tls = fetch::tls_config(extra).map_err(|e| FieldError::at("ca_file", e))?;
        let allow = config
            .allow
            .iter()
            .map(|e| allow::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| FieldError::at("allow", e))?;
        if config.timeout_ms == 0 {
            return Err(FieldError::at("timeout_ms", "must be at least 1"));
        }
        let credentials = config
            .credentials
            .iter()
            .enumerate()
            .map(|(i, c)| {
                credentials::Credential::parse(c, &allow)
                    .map_err(|(field, e)| FieldError::at(&format!("credentials[{i}].{field}"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HttpClientGrant {
            limits: fetch::Limits {
                allow,
                timeout: Duration::from_millis(config.timeout_ms),
                max_response_bytes: config.max_response_bytes,
                tls,
                credentials,
                secrets: secrets.clone(),
            },
        })
    }
}

impl Grant for HttpClientGrant {}

/// The outbound HTTP capability. Its grant is an [`HttpClientGrant`].
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpClient;

impl Capability for HttpClient {
    const NAME: &'static str = "http-client";
    type Config = HttpClientConfig;

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        theater_wasm::bindings::theater::actor::http_client::add_to_linker::<_, host::Data>(
            linker,
            host::view,
        )
    }

    fn check(&self, config: &HttpClientConfig, manifest: &Manifest) -> Result<(), FieldError> {
        HttpClientGrant::relative_to(config, &manifest.relative("")).map(drop)
    }

    fn grant(
        &self,
        config: &HttpClientConfig,
        setup: &Setup<'_>,
    ) -> anyhow::Result<Arc<dyn Grant>> {
        let base = setup.manifest.relative("");
        let grant = HttpClientGrant::with_secrets(config, &base, setup.secrets).map_err(|e| {
            anyhow::anyhow!(
                "interfaces.http-client.{}: {}",
                e.field.unwrap_or_default(),
                e.message
            )
        })?;
        Ok(Arc::new(grant))
    }

    fn blob_calls(&self) -> &'static [&'static str] {
        &[SEND]
    }

    fn secrets_named(&self, config: &HttpClientConfig) -> Vec<String> {
        config
            .credentials
            .iter()
            .flat_map(|c| credentials::secrets_in(&c.value))
            .collect()
    }
}
