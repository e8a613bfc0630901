//! Credentials the host attaches to an actor's requests: a header whose value names secrets
//! (`Bearer {secret:API_TOKEN}`), per granted host. The guest never sees the value, the
//! chain records only which secrets were used and their versions, and a response that echoes
//! a value has it replaced before the actor or the chain sees it.

use http::HeaderName;
use serde::{Deserialize, Serialize};
use theater_wasm::{Secret, Secrets};

use crate::FetchError;
use crate::allow::{self, Entry};

/// One credential of `[interfaces.http-client]`:
///
/// ```toml
/// [[interfaces.http-client.credentials]]
/// host = "api.example.com"                # an `allow` entry's form (not `*`)
/// header = "authorization"
/// value = "Bearer {secret:API_TOKEN}"     # text, and secrets by name
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// The hosts it is sent to, as an `allow` entry: `host`, `host:port` or `*.domain`.
    pub host: String,
    /// The header it is sent in.
    pub header: String,
    /// The header's value: text with `{secret:NAME}` where a secret's value goes.
    pub value: String,
}

/// A piece of a value template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Secret(String),
}

/// A checked credential.
#[derive(Clone, Debug)]
pub(crate) struct Credential {
    host: Entry,
    header: HeaderName,
    template: Vec<Part>,
}

/// A secret's use as the chain records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SecretUse {
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
}

fn template(value: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find("{secret:") {
        if at > 0 {
            parts.push(Part::Text(rest[..at].to_string()));
        }
        let after = &rest[at + "{secret:".len()..];
        let end = after
            .find('}')
            .ok_or("a `{secret:` without its closing `}`")?;
        let name = &after[..end];
        // Never quoted: what sits there may be a credential pasted by mistake.
        theater_wasm::secrets::check_name(name)
            .map_err(|_| "`{secret:…}` holds something that is not a secret name".to_string())?;
        parts.push(Part::Secret(name.to_string()));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    if !parts.iter().any(|p| matches!(p, Part::Secret(_))) {
        return Err(
            "names no secret: a credential's value is written as text and `{secret:NAME}`, never as the credential itself"
                .into(),
        );
    }
    Ok(parts)
}

/// The secrets a credential's value names (none if it is malformed).
pub(crate) fn secrets_in(value: &str) -> Vec<String> {
    template(value)
        .map(|parts| {
            parts
                .into_iter()
                .filter_map(|p| match p {
                    Part::Secret(n) => Some(n),
                    Part::Text(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Credential {
    /// Checks a credential's config: the error is `(field, message)`.
    pub(crate) fn parse(
        config: &CredentialConfig,
        allow_list: &[Entry],
    ) -> Result<Credential, (&'static str, String)> {
        let host = allow::parse(&config.host).map_err(|e| ("host", e))?;
        if host.is_any() || host.is_top_level() {
            return Err((
                "host",
                "a credential goes to the hosts it names, never to `*` or a whole top-level domain"
                    .into(),
            ));
        }
        if !allow_list.iter().any(|a| a.covers(&host)) {
            return Err(("host", format!("{:?} is not granted by allow", config.host)));
        }
        let header = HeaderName::from_bytes(config.header.trim().as_bytes()).map_err(|_| {
            (
                "header",
                format!("{:?} is not a header name", config.header),
            )
        })?;
        if crate::fetch::HOST_HEADERS.contains(&header) {
            return Err(("header", format!("the {header} header is set by the host")));
        }
        let template = template(&config.value).map_err(|e| ("value", e))?;
        Ok(Credential {
            host,
            header,
            template,
        })
    }

    /// The secrets it names.
    #[cfg(test)]
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        self.template.iter().filter_map(|p| match p {
            Part::Secret(n) => Some(n.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Whether it goes with a request to `host` on `port`.
    pub(crate) fn applies(&self, host: &str, port: u16) -> bool {
        allow::allowed(std::slice::from_ref(&self.host), host, port)
    }
}

/// Refuses a request whose own headers set one a credential for `host:port` sets (the actor
/// may neither read nor replace it), or ask for an encoding or a range of the response (an
/// echo of the credential must come back whole to be redacted).
pub(crate) fn check_headers(
    credentials: &[Credential],
    host: &str,
    port: u16,
    headers: &[(String, String)],
) -> Result<(), FetchError> {
    let applying: Vec<&Credential> = credentials
        .iter()
        .filter(|c| c.applies(host, port))
        .collect();
    if applying.is_empty() {
        return Ok(());
    }
    for (name, _) in headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        if applying.iter().any(|c| c.header == name) {
            return Err(FetchError::Invalid(format!(
                "the {name} header carries a credential the host adds for {host}: the actor does not set it"
            )));
        }
        if [
            http::header::ACCEPT_ENCODING,
            http::header::RANGE,
            http::header::TE,
        ]
        .contains(&name)
        {
            return Err(FetchError::Invalid(format!(
                "a request to {host} carries a credential: the host asks for the response whole and unencoded, so {name} is the host's"
            )));
        }
    }
    Ok(())
}

/// The headers the credentials that apply to `host:port` add, and the secrets read for them
/// (for the record and for redaction). Over plain HTTP a credential goes only to a loopback
/// or private host.
pub(crate) fn attach(
    credentials: &[Credential],
    secrets: &Secrets,
    host: &str,
    port: u16,
    tls: bool,
    used: &mut Vec<Secret>,
) -> Result<Vec<(HeaderName, http::HeaderValue)>, FetchError> {
    let mut headers = Vec::new();
    for c in credentials.iter().filter(|c| c.applies(host, port)) {
        if !tls && !allow::is_internal_name(&allow::canonical(host)) {
            return Err(FetchError::Refused(format!(
                "a credential ({}) for {host} is sent over https only (or to a loopback or private host)",
                c.header
            )));
        }
        let mut value = zeroize::Zeroizing::new(Vec::new());
        for part in &c.template {
            match part {
                Part::Text(t) => value.extend_from_slice(t.as_bytes()),
                Part::Secret(name) => {
                    let secret = match used.iter().find(|s| s.name() == name) {
                        Some(s) => s.clone(),
                        None => {
                            let s = secrets.get(name).map_err(|e| {
                                // The chain and the actor learn which secret, not where it
                                // is kept: the host's log says why.
                                tracing::warn!("outbound HTTP credential for {host}: {e}");
                                FetchError::Refused(format!(
                                    "secret {name} cannot be read now (the host's log says why)"
                                ))
                            })?;
                            used.push(s.clone());
                            s
                        }
                    };
                    value.extend_from_slice(secret.expose());
                }
            }
        }
        // Visible ASCII only: what a server echoes of it is then found byte for byte.
        let mut value = http::HeaderValue::from_bytes(&value)
            .ok()
            .filter(|v| v.to_str().is_ok())
            .ok_or_else(|| {
                FetchError::Invalid(format!(
                    "the credential for the {} header is not a valid header value (a secret holds a line break, a control byte or a byte outside ASCII)",
                    c.header
                ))
            })?;
        value.set_sensitive(true);
        headers.push((c.header.clone(), value));
    }
    Ok(headers)
}

/// What the record says of `used`.
pub(crate) fn uses(used: &[Secret]) -> Vec<SecretUse> {
    used.iter()
        .map(|s| SecretUse {
            name: s.name().to_string(),
            version: s.version().map(str::to_string),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn cred(host: &str, header: &str, value: &str) -> Result<Credential, (&'static str, String)> {
        let allow = vec![
            allow::parse("api.example.com").unwrap(),
            allow::parse("*.example.org").unwrap(),
        ];
        Credential::parse(
            &CredentialConfig {
                host: host.into(),
                header: header.into(),
                value: value.into(),
            },
            &allow,
        )
    }

    #[test]
    fn credentials_are_checked_against_allow_and_name_a_secret() {
        let c = cred("api.example.com", "Authorization", "Bearer {secret:TOKEN}").unwrap();
        assert_eq!(c.secrets().collect::<Vec<_>>(), ["TOKEN"]);
        assert!(c.applies("API.example.com", 443));
        assert!(!c.applies("other.example.com", 443));
        let c = cred("*.example.org", "x-key", "{secret:A}:{secret:B}").unwrap();
        assert_eq!(c.secrets().collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(cred("*", "x", "{secret:A}").unwrap_err().0, "host");
        assert_eq!(cred("evil.com", "x", "{secret:A}").unwrap_err().0, "host");
        assert_eq!(
            cred("api.example.com", "host", "{secret:A}").unwrap_err().0,
            "header"
        );
        let e = cred("api.example.com", "x", "Bearer abc123").unwrap_err();
        assert_eq!(e.0, "value");
        assert!(!e.1.contains("abc123"), "{}", e.1);
        assert_eq!(
            cred("api.example.com", "x", "{secret:A").unwrap_err().0,
            "value"
        );
        let e = cred("api.example.com", "x", "{secret:sk-live/123}").unwrap_err();
        assert!(!e.1.contains("sk-live"), "{}", e.1);
        // Under `allow = ["*"]`: a domain is covered, a whole top-level domain refused, and
        // loopback never covered by a wildcard.
        let any = vec![allow::parse("*").unwrap()];
        let with = |host: &str, allow: &[Entry]| {
            Credential::parse(
                &CredentialConfig {
                    host: host.into(),
                    header: "x".into(),
                    value: "{secret:A}".into(),
                },
                allow,
            )
        };
        assert!(with("*.example.com", &any).is_ok());
        assert!(with("api.example.com:8443", &any).is_ok());
        assert_eq!(with("*.com", &any).unwrap_err().0, "host");
        assert_eq!(with("127.0.0.1", &any).unwrap_err().0, "host");
        let ported = vec![allow::parse("api.example.com:443").unwrap()];
        assert_eq!(
            with("api.example.com", &ported).unwrap_err().0,
            "host",
            "any port is more than port 443"
        );
        assert!(with("api.example.com:443", &ported).is_ok());
    }
}
