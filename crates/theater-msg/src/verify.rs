//! Cross-actor verification: every message received resolves to a matching send, and every
//! recorded request reply to a matching answer.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;
use theater_chain::{ChainError, ChainId, ChainStore, Entry, Event, check_refs};

use crate::messenger::{REQUEST, SEND, answered_by};

/// A link between two chains that does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkProblem {
    /// The chain holding the entry that makes the claim.
    pub chain: ChainId,
    /// That entry's seq.
    pub seq: u64,
    /// The other chain.
    pub other: ChainId,
    /// The entry of the other chain that was claimed.
    pub other_seq: u64,
    /// What does not hold.
    pub problem: String,
}

impl fmt::Display for LinkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seq {} / {} seq {}: {}",
            self.chain, self.seq, self.other, self.other_seq, self.problem
        )
    }
}

fn message_payload(entry: &Entry) -> Option<&Value> {
    let input = match entry.event() {
        Event::Input { input, .. } | Event::Failed { input, .. } => input,
        _ => return None,
    };
    (input.json["type"] == "message").then(|| &input.json["payload"])
}

/// Checks the links between `chains`: references resolve ([`check_refs`]); each received
/// message matches a send to its receiver with the same payload in the sending entry; each
/// recorded request matches the target's entry (same request payload, same reply).
/// Returns every link that does not hold (empty when all do).
pub fn verify_links(chains: &[&dyn ChainStore]) -> Result<Vec<LinkProblem>, ChainError> {
    let by_id: HashMap<&ChainId, &dyn ChainStore> = chains.iter().map(|c| (c.id(), *c)).collect();
    let mut problems: Vec<LinkProblem> = check_refs(chains)?
        .into_iter()
        .map(|b| LinkProblem {
            chain: b.chain.clone(),
            seq: b.seq,
            other: b.target.chain.clone(),
            other_seq: b.target.seq,
            problem: b.to_string(),
        })
        .collect();
    let unresolved: Vec<(ChainId, u64)> =
        problems.iter().map(|p| (p.chain.clone(), p.seq)).collect();
    for chain in chains {
        for seq in chain.start()..chain.len() {
            if unresolved.contains(&(chain.id().clone(), seq)) {
                continue;
            }
            let entry = chain.get(seq)?;
            let mut problem = |other: &ChainId, other_seq: u64, what: String| {
                problems.push(LinkProblem {
                    chain: chain.id().clone(),
                    seq,
                    other: other.clone(),
                    other_seq,
                    problem: what,
                });
            };
            if let Some(payload) = message_payload(&entry) {
                for r in entry.refs() {
                    let Some(sender) = by_id.get(&r.chain) else {
                        continue;
                    };
                    let sent = sender.get(r.seq)?;
                    let matched = sent.host_calls().iter().any(|c| {
                        c.name == SEND
                            && c.request.json["to"].as_str() == Some(chain.id().as_str())
                            && c.request.json["payload"] == *payload
                            && c.result.json["ok"] == Value::Bool(true)
                    });
                    if !matched {
                        problem(
                            &r.chain,
                            r.seq,
                            format!(
                                "received {payload} but that entry sent no such message to {}",
                                chain.id()
                            ),
                        );
                    }
                }
            }
            for call in entry.host_calls().iter().filter(|c| c.name == REQUEST) {
                let Some(at) = answered_by(&call.result) else {
                    continue;
                };
                let Some(target) = by_id.get(&at.chain) else {
                    continue;
                };
                if at.seq < target.start() || at.seq >= target.len() {
                    continue; // reported by check_refs
                }
                let answer = target.get(at.seq)?;
                let (asked, replied) = match answer.event() {
                    Event::Input { input, output } => {
                        (&input.json["payload"], &output.json["payload"])
                    }
                    _ => {
                        problem(
                            &at.chain,
                            at.seq,
                            "the answering entry is not a handled input".into(),
                        );
                        continue;
                    }
                };
                if *asked != call.request.json["payload"] {
                    problem(
                        &at.chain,
                        at.seq,
                        format!(
                            "asked {} but the target recorded {asked}",
                            call.request.json["payload"]
                        ),
                    );
                } else if *replied != call.result.json["reply"] {
                    problem(
                        &at.chain,
                        at.seq,
                        format!(
                            "recorded reply {} but the target answered {replied}",
                            call.result.json["reply"]
                        ),
                    );
                }
            }
        }
    }
    Ok(problems)
}
