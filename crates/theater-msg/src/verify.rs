//! Cross-actor verification: every message received resolves to a matching send (once), and
//! every recorded request reply to a matching answer; and the sends not yet received.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::Value;
use theater_chain::{ChainError, ChainId, ChainRef, ChainStore, Entry, Event, check_refs};

use crate::messenger::{MsgRequest, REQUEST, SEND, SendAnswer, answered_by};

/// Name of a recorded spawn of a child actor (the `actors` capability): request `{"kind",
/// "name", "init"?}`, answer `{"ok": true, "name"}` or `{"error"}`. The child's genesis entry
/// refers to the entry that recorded it.
pub const SPAWN_CHILD: &str = "theater:actors/spawn";

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

/// A message one chain records as sent and its receiver's chain does not (yet) record as
/// received: in flight, or lost with a host that stopped before delivering it.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// The sending entry.
    pub sent_by: ChainRef,
    /// The receiver.
    pub to: ChainId,
    /// The message.
    pub payload: Value,
    /// Which of the sending entry's messages to this receiver it is (0 for the first): with
    /// `sent_by`, what a receiver that drops duplicates tells deliveries apart by.
    pub nth: u32,
}

fn received(entry: &Entry) -> Option<(&Value, Option<&str>)> {
    let input = entry.event().input()?;
    (input.json["type"] == "message").then(|| (&input.json["payload"], input.json["from"].as_str()))
}

/// The messages an entry sent: (receiver, payload). A failed input sends nothing, whatever
/// its recorded calls say: its deliveries never happen.
fn sends(entry: &Entry) -> Vec<(ChainId, Value)> {
    if matches!(entry.event(), Event::Failed { .. }) {
        return Vec::new();
    }
    entry
        .host_calls()
        .iter()
        .filter(|c| c.name == SEND)
        .filter_map(|c| {
            let request: MsgRequest = serde_json::from_value(c.request.json.clone()).ok()?;
            let SendAnswer::Sent { id, .. } = serde_json::from_value(c.result.json.clone()).ok()?
            else {
                return None;
            };
            let to = match id {
                Some(id) => id,
                None => ChainId::new(request.to).ok()?,
            };
            Some((to, request.payload))
        })
        .collect()
}

struct SentMessage {
    to: ChainId,
    payload: Value,
    received: bool,
}

/// Every send and every receipt among a set of chains, matched up.
struct Ledger {
    /// By sending entry, in order of the chains given and their seqs.
    sent: Vec<(ChainRef, Vec<SentMessage>)>,
    /// For each (receiver, sender): the lowest sender seq a retained receipt refers to.
    first_receipt: HashMap<(ChainId, ChainId), u64>,
    problems: Vec<LinkProblem>,
}

impl Ledger {
    fn build(chains: &[&dyn ChainStore]) -> Result<Ledger, ChainError> {
        let by_id: HashMap<&ChainId, &dyn ChainStore> =
            chains.iter().map(|c| (c.id(), *c)).collect();
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
        // Only the references that do not resolve are skipped below: the entry's other
        // links (its receipt of a message, say) still count.
        let unresolved: HashSet<(ChainId, u64, ChainId, u64)> = problems
            .iter()
            .map(|p| (p.chain.clone(), p.seq, p.other.clone(), p.other_seq))
            .collect();

        // Pass 1: what each entry sent.
        let mut sent = Vec::new();
        let mut index: HashMap<(ChainId, u64), usize> = HashMap::new();
        for chain in chains {
            for seq in chain.start()..chain.len() {
                let entry = chain.get(seq)?;
                let messages = sends(&entry);
                if messages.is_empty() {
                    continue;
                }
                let at = ChainRef {
                    chain: chain.id().clone(),
                    seq,
                    hash: entry.hash(),
                };
                index.insert((chain.id().clone(), seq), sent.len());
                sent.push((
                    at,
                    messages
                        .into_iter()
                        .map(|(to, payload)| SentMessage {
                            to,
                            payload,
                            received: false,
                        })
                        .collect::<Vec<_>>(),
                ));
            }
        }

        // Pass 2: what each entry received and answered.
        let mut first_receipt: HashMap<(ChainId, ChainId), u64> = HashMap::new();
        for chain in chains {
            for seq in chain.start()..chain.len() {
                let entry = chain.get(seq)?;
                let resolves = |r: &ChainRef| {
                    !unresolved.contains(&(chain.id().clone(), seq, r.chain.clone(), r.seq))
                };
                let mut problem = |other: &ChainId, other_seq: u64, what: String| {
                    problems.push(LinkProblem {
                        chain: chain.id().clone(),
                        seq,
                        other: other.clone(),
                        other_seq,
                        problem: what,
                    });
                };
                // A message from an actor refers to the sending entry of that actor; the
                // entry's other references (a request it made, say) are not receipts.
                if let Some((payload, Some(from))) = received(&entry) {
                    let delivery = entry.refs().iter().find(|r| r.chain.as_str() == from);
                    if let Some(r) = delivery
                        && by_id.contains_key(&r.chain)
                        && resolves(r)
                    {
                        let first = first_receipt
                            .entry((chain.id().clone(), r.chain.clone()))
                            .or_insert(r.seq);
                        *first = (*first).min(r.seq);
                        let messages = index
                            .get(&(r.chain.clone(), r.seq))
                            .map(|&i| &mut sent[i].1[..])
                            .unwrap_or_default();
                        let mut same = messages
                            .iter_mut()
                            .filter(|m| m.to == *chain.id() && m.payload == *payload)
                            .peekable();
                        if same.peek().is_none() {
                            problem(
                                &r.chain,
                                r.seq,
                                format!(
                                    "received {payload} but that entry sent no such message to {}",
                                    chain.id()
                                ),
                            );
                        } else if let Some(m) = same.find(|m| !m.received) {
                            m.received = true;
                        } else {
                            problem(
                                &r.chain,
                                r.seq,
                                format!("received {payload} more times than it was sent"),
                            );
                        }
                    } else if delivery.is_none()
                        && let Some(r) = entry.refs().first()
                    {
                        problem(
                            &r.chain,
                            r.seq,
                            format!(
                                "the message says it is from {from:?} but names no entry of it"
                            ),
                        );
                    }
                }
                // A child's genesis refers to its parent's spawning entry, which must have
                // spawned exactly this child.
                if matches!(entry.event(), Event::Init { .. }) {
                    // References of requests the init made are answers, not a parent.
                    let answers: Vec<ChainRef> = entry
                        .host_calls()
                        .iter()
                        .filter(|c| c.name == REQUEST)
                        .filter_map(|c| answered_by(&c.result).map(|(at, _)| at))
                        .collect();
                    for r in entry.refs().iter().filter(|r| !answers.contains(r)) {
                        let Some(parent) = by_id.get(&r.chain) else {
                            continue;
                        };
                        if !resolves(r) {
                            continue; // reported by check_refs
                        }
                        let spawning = parent.get(r.seq)?;
                        let spawned = spawning.host_calls().iter().any(|c| {
                            c.name == SPAWN_CHILD
                                && c.request.json["name"] == chain.id().as_str()
                                && c.result.json["ok"] == true
                        });
                        if !spawned {
                            problem(
                                &r.chain,
                                r.seq,
                                format!(
                                    "the genesis of {} names this entry as its spawn, but it spawned no {}",
                                    chain.id(),
                                    chain.id()
                                ),
                            );
                        }
                    }
                }
                for call in entry.host_calls().iter().filter(|c| c.name == REQUEST) {
                    let Some((at, reply)) = answered_by(&call.result) else {
                        continue;
                    };
                    let Ok(request) =
                        serde_json::from_value::<MsgRequest>(call.request.json.clone())
                    else {
                        continue;
                    };
                    let Some(target) = by_id.get(&at.chain) else {
                        continue;
                    };
                    if !resolves(&at) {
                        continue; // reported by check_refs
                    }
                    let answer = target.get(at.seq)?;
                    let (asked, replied) = match answer.event() {
                        Event::Input { input, output } if input.json["type"] == "request" => {
                            (&input.json["payload"], &output.json["payload"])
                        }
                        _ => {
                            problem(
                                &at.chain,
                                at.seq,
                                "the answering entry is not a handled request".into(),
                            );
                            continue;
                        }
                    };
                    if *asked != request.payload {
                        problem(
                            &at.chain,
                            at.seq,
                            format!("asked {} but the target recorded {asked}", request.payload),
                        );
                    } else if *replied != reply {
                        problem(
                            &at.chain,
                            at.seq,
                            format!("recorded reply {reply} but the target answered {replied}"),
                        );
                    }
                }
            }
        }
        Ok(Ledger {
            sent,
            first_receipt,
            problems,
        })
    }
}

/// Checks the links between `chains`: references resolve ([`check_refs`]); each received
/// message matches a send to its receiver with the same payload in the sending entry, and no
/// send is received more often than it was made; a message's `from` is the chain it refers
/// to; each recorded request matches the target's entry (same request payload, same reply);
/// a child's genesis refers to an entry of its parent that spawned it ([`SPAWN_CHILD`]).
/// Returns every link that does not hold (empty when all do). Sends not yet received are not
/// problems (they may be in flight): see [`pending_sends`].
pub fn verify_links(chains: &[&dyn ChainStore]) -> Result<Vec<LinkProblem>, ChainError> {
    Ok(Ledger::build(chains)?.problems)
}

/// The messages sent among `chains` whose receivers (also among `chains`) have not recorded
/// them, in the order they were sent per sender. After a host restart these are the messages
/// to [`crate::redeliver`]: on unpruned chains, exactly the ones lost, so none is
/// applied twice.
///
/// A receiver whose chain was pruned no longer shows its oldest receipts, so this errs on the
/// side of never applying a message twice: sends from before the oldest retained receipt from
/// that sender are taken as received, and if no receipt from that sender is retained, none of
/// its sends to that receiver is reported (a message lost then stays lost; `verify_links`
/// cannot see it either).
pub fn pending_sends(chains: &[&dyn ChainStore]) -> Result<Vec<Pending>, ChainError> {
    let ledger = Ledger::build(chains)?;
    let starts: HashMap<&ChainId, u64> = chains.iter().map(|c| (c.id(), c.start())).collect();
    let mut pending = Vec::new();
    for (sent_by, messages) in ledger.sent {
        let mut nth: HashMap<ChainId, u32> = HashMap::new();
        for m in messages {
            let n = nth.entry(m.to.clone()).or_insert(0);
            let this = *n;
            *n += 1;
            if m.received {
                continue;
            }
            let Some(&start) = starts.get(&m.to) else {
                continue; // the receiver is not among the chains given
            };
            if start > 0 {
                match ledger
                    .first_receipt
                    .get(&(m.to.clone(), sent_by.chain.clone()))
                {
                    Some(&first) if sent_by.seq >= first => {}
                    _ => continue,
                }
            }
            pending.push(Pending {
                sent_by: sent_by.clone(),
                to: m.to,
                payload: m.payload,
                nth: this,
            });
        }
    }
    Ok(pending)
}
