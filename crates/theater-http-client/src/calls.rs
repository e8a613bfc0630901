//! The recorded call: what a request and its answer look like in the chain, live and in
//! replay.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use theater_chain::Payload;
use theater_chain::blob::{BLOB_THRESHOLD, stash, unstash};
use theater_core::{HostCallError, HostCalls};

use crate::{FetchError, HttpClientGrant, NOT_GRANTED, Request, Response, SEND};

/// A request as recorded: its body beside it (as bytes, or as a blob when large).
#[derive(Serialize)]
struct RecordedRequest<'a> {
    method: &'a str,
    url: &'a str,
    headers: &'a [(String, String)],
}

/// An answer as recorded: `{"ok": {"status", "headers"}}` with the body beside it, or
/// `{"error": {"kind", "message"}}`; beside either, `"secrets": [{"name", "version"}]` when
/// the host attached credentials (never their values).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RecordedAnswer {
    Ok {
        status: u16,
        headers: Vec<(String, String)>,
    },
    Error(FetchError),
}

/// Where a recorded answer names the secrets its request used.
const SECRETS_KEY: &str = "secrets";

/// `outcome` with every value of `used` replaced by `[secret NAME]` in the response's header
/// values and body, or in the error's message.
fn redact(
    outcome: Result<Response, FetchError>,
    used: &[theater_wasm::Secret],
) -> Result<Response, FetchError> {
    if used.is_empty() {
        return outcome;
    }
    let text = |mut t: String| {
        for s in used {
            t = s.redact_str(&t);
        }
        t
    };
    match outcome {
        Ok(mut r) => {
            for (_, v) in &mut r.headers {
                *v = text(std::mem::take(v));
            }
            let mut changed = false;
            for s in used {
                if let std::borrow::Cow::Owned(b) = s.redact(&r.body) {
                    r.body = b;
                    changed = true;
                }
            }
            if changed {
                // The length the actor sees is the body's it gets.
                for (name, v) in &mut r.headers {
                    if name == "content-length" {
                        *v = r.body.len().to_string();
                    }
                }
            }
            Ok(r)
        }
        Err(e) => Err(match e {
            FetchError::Refused(m) => FetchError::Refused(text(m)),
            FetchError::Invalid(m) => FetchError::Invalid(text(m)),
            FetchError::Unreachable(m) => FetchError::Unreachable(text(m)),
            FetchError::Timeout(m) => FetchError::Timeout(text(m)),
            FetchError::TooLarge(m) => FetchError::TooLarge(text(m)),
        }),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn blob_error(e: theater_chain::ChainError) -> HostCallError {
    HostCallError::Blob(e.to_string())
}

/// Sends `request` through `grant` (`None`: not granted), recorded in the input being
/// handled; in replay the recorded answer is returned and nothing is sent. The outer error is
/// the recorder's (replay found another call); the inner one is what the actor sees.
pub async fn send(
    grant: Option<&HttpClientGrant>,
    host: &mut HostCalls,
    request: Request,
) -> Result<Result<Response, FetchError>, HostCallError> {
    let shape = RecordedRequest {
        method: &request.method,
        url: &request.url,
        headers: &request.headers,
    };
    let json = serde_json::to_value(&shape).map_err(|e| HostCallError::Blob(e.to_string()))?;
    // Large bodies are recorded by hash, live and in replay alike; live, one is stored beside
    // the entry only if the request is sent.
    let blobs = host.blob_store();
    let recorded_request = stash(object(json), request.body.clone(), None).map_err(blob_error)?;
    let replaying = host.is_replaying();
    let mut live_body = None;
    let (kept, request) = (&mut live_body, &request);
    let answer = host
        .call(SEND, recorded_request, move || async move {
            if replaying {
                return Payload::default();
            }
            let stored = match (&blobs, request.body.len() > BLOB_THRESHOLD) {
                (Some(store), true) if grant.is_some() => store
                    .put(&request.body)
                    .map(drop)
                    .map_err(|e| FetchError::Unreachable(format!("cannot record the body: {e}"))),
                _ => Ok(()),
            };
            let mut used = Vec::new();
            let outcome = match (grant, stored) {
                (_, Err(e)) => Err(e),
                (Some(g), Ok(())) => crate::fetch::fetch(&g.limits, request, &mut used).await,
                (None, Ok(())) => Err(FetchError::Refused(NOT_GRANTED.into())),
            };
            // A server (or an error) that echoes a credential: the value is replaced before
            // the actor or the chain sees it.
            let outcome = redact(outcome, &used);
            let (answer, body) = match outcome {
                Ok(r) => (
                    RecordedAnswer::Ok {
                        status: r.status,
                        headers: r.headers,
                    },
                    r.body,
                ),
                Err(e) => (RecordedAnswer::Error(e), Vec::new()),
            };
            let mut json = object(serde_json::to_value(&answer).unwrap_or_default());
            if !used.is_empty() {
                let uses = crate::credentials::uses(&used);
                json.insert(
                    SECRETS_KEY.into(),
                    serde_json::to_value(uses).unwrap_or_default(),
                );
            }
            match stash(json, body.clone(), blobs.as_deref()) {
                Ok(p) => {
                    *kept = Some(body);
                    p
                }
                Err(e) => {
                    let e = FetchError::Unreachable(format!("cannot record the response: {e}"));
                    Payload::json(
                        serde_json::to_value(RecordedAnswer::Error(e)).unwrap_or_default(),
                    )
                }
            }
        })
        .await?;
    let malformed = || HostCallError::Malformed { name: SEND.into() };
    let mut json = answer.json.clone();
    if let Some(m) = json.as_object_mut() {
        m.remove(theater_chain::blob::BLOB_KEY);
        m.remove(SECRETS_KEY);
    }
    match serde_json::from_value::<RecordedAnswer>(json).map_err(|_| malformed())? {
        RecordedAnswer::Error(e) => Ok(Err(e)),
        RecordedAnswer::Ok { status, headers } => {
            let body = match live_body {
                Some(b) => b,
                None => unstash(&answer, host.blobs()).map_err(blob_error)?,
            };
            Ok(Ok(Response {
                status,
                headers,
                body,
            }))
        }
    }
}
