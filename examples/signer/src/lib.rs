//! Signs texts with a key it holds as a secret (HMAC-SHA256).
//!
//! - request `{"sign": text}`: `{"signature": hex}`, the HMAC-SHA256 of `text` under the
//!   secret `SIGNING_KEY`.
//! - request `{"verify": {"text", "signature"}}`: `{"valid": bool}`.
//!
//! The key is read through `theater_guest::secrets` at each input, so a rotated key signs
//! from the next input on. The chain records each read as the secret's name and version; the
//! key itself never enters the state or an output, so the chain never holds it. Replaying
//! the chain needs the key (the manifest says where it comes from).

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use theater_guest::{Actor, Input, Output, Value, json, secrets};

#[derive(Serialize, Deserialize, Default)]
struct State {
    /// Texts signed and signatures checked.
    signed: u64,
    verified: u64,
}

struct Signer;

fn mac(text: &str) -> Result<Hmac<Sha256>, String> {
    let key = secrets::get("SIGNING_KEY")?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key).map_err(|e| format!("the signing key: {e}"))?;
    mac.update(text.as_bytes());
    Ok(mac)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Actor for Signer {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State::default())
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        let p = input.payload().ok_or("the signer takes requests")?;
        if let Some(text) = p["sign"].as_str() {
            let signature = hex(&mac(text)?.finalize().into_bytes());
            state.signed += 1;
            return Ok((Output::reply(json!({ "signature": signature })), state));
        }
        let v = &p["verify"];
        if let (Some(text), Some(signature)) = (v["text"].as_str(), v["signature"].as_str()) {
            let valid = unhex(signature).is_some_and(|s| mac(text).is_ok_and(|m| m.verify_slice(&s).is_ok()));
            state.verified += 1;
            return Ok((Output::reply(json!({ "valid": valid })), state));
        }
        Err("expected {\"sign\": text} or {\"verify\": {\"text\", \"signature\"}}".into())
    }
}

theater_guest::export_actor!(Signer);
