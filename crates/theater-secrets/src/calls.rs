//! The recorded call: what the chain holds of a secret read (its name and version), live and
//! in replay.

use serde::{Deserialize, Serialize};
use serde_json::json;
use theater_chain::Payload;
use theater_core::{HostCallError, HostCalls};
use zeroize::Zeroizing;

use crate::{GET, NOT_GRANTED, SecretsGrant};

/// An answer as recorded: never the value.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Recorded {
    Ok { version: Option<String> },
    Error(String),
}

/// Reads secret `name` through `grant` (`None`: not granted), recorded in the input being
/// handled as its name and version. In replay the value is read again from the grant's
/// secrets (those of whoever replays): the outer error says so when they lack it. The inner
/// error is what the actor sees.
pub fn get(
    grant: Option<&SecretsGrant>,
    host: &mut HostCalls,
    name: &str,
) -> Result<Result<Zeroizing<Vec<u8>>, String>, HostCallError> {
    let mut live = None;
    let kept = &mut live;
    let answer = host.call_sync(GET, Payload::json(json!({ "name": name })), || {
        let recorded = match grant {
            None => Recorded::Error(NOT_GRANTED.into()),
            Some(g) if !g.names.contains(name) => Recorded::Error(format!(
                "secret {name} is not granted (add it to [interfaces.secrets] names)"
            )),
            Some(g) => match g.secrets.get(name) {
                Ok(secret) => {
                    g.handed(&secret);
                    let version = secret.version().map(str::to_string);
                    *kept = Some(Zeroizing::new(secret.expose().to_vec()));
                    Recorded::Ok { version }
                }
                Err(e) => {
                    // The chain and the guest learn which secret, not where it is kept.
                    tracing::warn!("secrets.get: {e}");
                    Recorded::Error(format!(
                        "secret {name} cannot be read now (the host's log says why)"
                    ))
                }
            },
        };
        Payload::json(serde_json::to_value(recorded).unwrap_or_default())
    })?;
    let recorded: Recorded =
        serde_json::from_value(answer.json).map_err(|_| HostCallError::Malformed {
            name: GET.to_string(),
        })?;
    let version = match recorded {
        Recorded::Error(e) => return Ok(Err(e)),
        Recorded::Ok { version } => version,
    };
    if let Some(value) = live {
        // The value may be rotated before the actor resumes: a snapshot right after this
        // entry means no resume runs it again (only an audit's replay does).
        host.snapshot_after();
        return Ok(Ok(value));
    }
    // Replay: the chain holds no value; whoever replays must have it.
    let shown = version.as_deref().unwrap_or("unknown");
    let unavailable = |why: String| {
        HostCallError::Unavailable(format!(
            "replaying this entry needs secret {name} (version {shown}), which no chain holds: {why}"
        ))
    };
    let grant = grant.ok_or_else(|| unavailable("the manifest grants no secrets".into()))?;
    let secret = grant
        .secrets
        .get(name)
        .map_err(|e| unavailable(e.to_string()))?;
    if let (Some(here), Some(there)) = (secret.version(), version.as_deref())
        && here != there
    {
        return Err(unavailable(format!(
            "the value at hand is version {here}, another one"
        )));
    }
    grant.handed(&secret);
    Ok(Ok(Zeroizing::new(secret.expose().to_vec())))
}
