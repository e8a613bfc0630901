//! [`HttpConfig`]: what a manifest's `[interfaces.http]` grants.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use theater_core::InterfaceError;

/// Where and how an actor (or several) is served over HTTP.
///
/// In a manifest:
///
/// ```toml
/// [interfaces.http]
/// addr = "127.0.0.1:8080"     # default 127.0.0.1:8080; loopback unless granted otherwise
/// prefix = "/api"             # default "/": the actor sees paths below it, prefix removed
/// max_body_bytes = 1048576    # larger bodies get 413
/// header_timeout_ms = 10000   # a client that has not sent its headers by then is dropped
/// body_timeout_ms = 30000     # ... or its body (408)
/// request_timeout_ms = 30000  # an actor that has not answered by then: 504
/// max_connections = 1024      # one more gets 503 and is closed
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// The address to bind.
    pub addr: SocketAddr,
    /// The path prefix the actor is mounted at.
    pub prefix: String,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// Time a client has to send its request body.
    pub body_timeout: Duration,
    /// Time the actor has to answer.
    pub request_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time in-flight requests get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            prefix: "/".into(),
            max_body_bytes: 1 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A manifest's `[interfaces.http]` as written (see [`HttpConfig`] for the fields); unknown
/// fields are refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs, reason = "the fields are documented on HttpConfig")]
pub struct HttpSection {
    pub addr: Option<String>,
    pub prefix: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub shutdown_grace_ms: Option<u64>,
}

/// Whether `prefix` can mount an actor: `/`, or `/a/b` with no trailing slash, empty
/// segment, query or fragment.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), InterfaceError> {
    let ok = prefix == "/"
        || (prefix.starts_with('/')
            && !prefix.ends_with('/')
            && !prefix.contains("//")
            && !prefix.contains(['?', '#']));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "[interfaces.http] prefix {prefix:?} must be \"/\" or start with \"/\" and not end with one"
        )))
    }
}

fn invalid(message: String) -> InterfaceError {
    InterfaceError::new("http", message)
}

impl HttpConfig {
    /// Loopback on `port` (0: any free port), everything else by default.
    pub fn loopback(port: u16) -> Self {
        HttpConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            ..HttpConfig::default()
        }
    }

    /// Reads a manifest's `[interfaces.http]` table; errors name the field.
    pub fn from_toml(section: &toml::Value) -> Result<Self, InterfaceError> {
        let s: HttpSection = section.clone().try_into().map_err(|e: toml::de::Error| {
            invalid(format!(
                "[interfaces.http]: {}",
                theater_wasm::scrub_error(e.message())
            ))
        })?;
        Self::from_section(s)
    }

    /// Checks a section as read; errors name the field.
    pub fn from_section(s: HttpSection) -> Result<Self, InterfaceError> {
        let mut c = HttpConfig::default();
        if let Some(addr) = s.addr {
            c.addr = addr.parse().map_err(|e| {
                invalid(format!(
                    "[interfaces.http] addr {addr:?} is not an IP address and port: {e}"
                ))
            })?;
        }
        if let Some(prefix) = s.prefix {
            c = c.prefix(prefix)?;
        }
        let ms = Duration::from_millis;
        c.max_body_bytes = s.max_body_bytes.unwrap_or(c.max_body_bytes);
        c.header_timeout = s.header_timeout_ms.map_or(c.header_timeout, ms);
        c.body_timeout = s.body_timeout_ms.map_or(c.body_timeout, ms);
        c.request_timeout = s.request_timeout_ms.map_or(c.request_timeout, ms);
        c.shutdown_grace = s.shutdown_grace_ms.map_or(c.shutdown_grace, ms);
        c.max_connections = s.max_connections.unwrap_or(c.max_connections);
        if c.max_connections == 0 {
            return Err(invalid(
                "[interfaces.http] max_connections must be at least 1".into(),
            ));
        }
        Ok(c)
    }

    /// Mounts the actor at `prefix` (`/` or `/a/b`, no trailing slash).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Result<Self, InterfaceError> {
        let prefix = prefix.into();
        check_prefix(&prefix)?;
        self.prefix = prefix;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn section(text: &str) -> toml::Value {
        toml::from_str::<toml::Table>(text).unwrap().into()
    }

    #[test]
    fn manifest_sections_parse_and_errors_name_the_field() {
        let c = HttpConfig::from_toml(&section(
            "addr = \"127.0.0.1:9000\"\nprefix = \"/api\"\nmax_body_bytes = 10\nrequest_timeout_ms = 5",
        ))
        .unwrap();
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.prefix, "/api");
        assert_eq!(c.max_body_bytes, 10);
        assert_eq!(c.request_timeout, Duration::from_millis(5));
        assert_eq!(c.header_timeout, HttpConfig::default().header_timeout);
        assert_eq!(
            HttpConfig::from_toml(&section("")).unwrap(),
            HttpConfig::default()
        );
        for (text, says) in [
            ("addr = \"localhost\"", "addr \"localhost\""),
            ("prefix = \"api/\"", "prefix \"api/\""),
            ("max_connections = 0", "max_connections"),
            ("port = 80", "port"),
        ] {
            let e = HttpConfig::from_toml(&section(text))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
