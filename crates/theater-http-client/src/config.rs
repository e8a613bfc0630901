//! `[interfaces.http-client]`: which hosts an actor may reach, and its limits.

use serde::Deserialize;

/// What `[interfaces.http-client]` holds.
///
/// ```toml
/// [interfaces.http-client]
/// allow = ["api.example.com", "*.example.org", "example.net:8443", "127.0.0.1:9000"]
/// timeout_ms = 10000              # the whole exchange, connection to last byte
/// max_response_bytes = 1048576    # a larger response body is refused
/// ca_file = "internal-ca.pem"     # optional: more roots to trust for https (PEM), besides
///                                 # Mozilla's, relative to the manifest
///
/// [[interfaces.http-client.credentials]]   # optional, any number: a header the host adds
/// host = "api.example.com"                 # to requests to these hosts (an allow entry)
/// header = "authorization"
/// value = "Bearer {secret:API_TOKEN}"      # a secret of [secrets], by name
/// ```
///
/// An entry is a host name or IP address, optionally with a port (without one, any port);
/// `*.example.org` allows the subdomains of `example.org`, and `*` any host. A loopback
/// target (`localhost`, `127.0.0.0/8`, `::1`, or a name that resolves to one) is reached only
/// when an entry names it literally, never through a wildcard.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
    /// The hosts the actor may reach.
    pub allow: Vec<String>,
    /// Longest a request may take, in milliseconds (default 10,000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest response body accepted, in bytes (default 1 MiB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// More certificate authorities to trust for `https` (PEM), relative to the manifest.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Headers the host adds to requests to some of the hosts, with secrets in their values
    /// (the guest never sees them; see [`crate::CredentialConfig`]).
    #[serde(default)]
    pub credentials: Vec<crate::CredentialConfig>,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_max_response_bytes() -> u64 {
    1 << 20
}
