//! [`Retention`]: how much of a chain to keep behind its newest snapshot, and where pruning
//! may cut ([`prune_point`]). The runtime applies it after each snapshot; `theater chain
//! prune` applies it offline.
//!
//! Pruning never cuts past an entry that takes part in a link between chains: one that
//! refers to another chain (a received message, a request's answer, a child's genesis), one
//! that sent, asked or spawned ([`LINKED_CALLS`]: others refer to it, and a message not yet
//! delivered is found from it), or one that answered a request (the requester refers to it).
//! Retention is for actors that stand alone: fed by HTTP, timers, WebSockets or messages
//! from outside any actor.

use std::time::{Duration, SystemTime};

use theater_chain::{ChainError, ChainStore};

/// Host calls whose entries other chains may refer to (a message's receipt names the entry
/// that sent it; a child's genesis the entry that spawned it).
pub const LINKED_CALLS: [&str; 4] = [
    "theater:msg/send",
    "theater:msg/request",
    "theater:actors/spawn",
    "theater:actors/stop",
];

/// A request's input, as its canonical JSON holds it: its answering entry may be referred to
/// by the actor that asked.
const REQUEST_INPUT: &str = "\"type\":\"request\"";

/// A retention policy (a manifest's `[retention]`): entries before a snapshot are dropped
/// once at least `keep_entries` entries and `keep_days` days lie between that snapshot and
/// the newest one, and as many entries would go as stay (so each entry is copied at most
/// about twice). The chain then starts (and verifies) at that snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Entries kept behind the newest snapshot, at least.
    pub keep_entries: u64,
    /// Days kept behind the newest snapshot, at least (by when snapshots were saved: their
    /// files' times).
    pub keep_days: Option<u32>,
}

impl Default for Retention {
    /// What a manifest without `[retention]` keeps: at least the newest 100,000 entries
    /// (tens of MB for a busy actor), whatever their age.
    fn default() -> Self {
        Retention {
            keep_entries: 100_000,
            keep_days: None,
        }
    }
}

/// What an entry records of an input that left the actor's state unchanged (a read: a GET,
/// a query), a manifest's `[retention] reads`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reads {
    /// The output's digest in place of the output ([`theater_chain::Event::Read`]): the
    /// chain still proves what was answered (replay recomputes the answer and checks it
    /// against the digest), without holding it. The default.
    #[default]
    Digest,
    /// The whole output, as for an input that changed the state.
    Full,
}

impl std::str::FromStr for Reads {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "digest" => Ok(Reads::Digest),
            "full" => Ok(Reads::Full),
            other => Err(format!("must be \"digest\" or \"full\", got {other:?}")),
        }
    }
}

/// Why [`prune_point`] found nothing to prune, or where it may cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrunePoint {
    /// Drop the entries before this seq (it has a snapshot).
    At(u64),
    /// Nothing to prune, and why.
    Nothing(String),
}

/// Whether the entry encoded in `body` takes part in a link between chains (see the module
/// docs), read from its bytes: conservative, a payload that merely quotes a call's name
/// counts too.
pub fn is_linked(body: &[u8]) -> bool {
    theater_chain::has_refs(body).unwrap_or(true)
        || LINKED_CALLS
            .iter()
            .chain(std::iter::once(&REQUEST_INPUT))
            .any(|c| memchr::memmem::find(body, c.as_bytes()).is_some())
}

/// The first seq (from `chain`'s start) whose entry takes part in a link ([`is_linked`]).
pub fn first_linked(chain: &dyn ChainStore) -> Result<Option<u64>, ChainError> {
    let mut first = None;
    let scanned = chain.for_each_record(chain.start(), &mut |rec| {
        if is_linked(rec.body) {
            first = Some(rec.seq);
            // Found: stop reading (the error is this function's own, and dropped below).
            return Err(ChainError::Snapshot {
                seq: rec.seq,
                reason: FOUND.into(),
            });
        }
        Ok(())
    });
    match scanned {
        Err(ChainError::Snapshot { reason, .. }) if reason == FOUND && first.is_some() => Ok(first),
        Err(e) => Err(e),
        Ok(()) => Ok(first),
    }
}

const FOUND: &str = "theater-core retention: found";

/// Where `policy` lets `chain` be pruned now: the newest snapshot (past the chain's start,
/// at or before `linked`, the first linked entry) with enough entries and days behind the
/// newest snapshot, and at least as many entries before it as after.
pub fn prune_point(
    chain: &dyn ChainStore,
    policy: &Retention,
    linked: Option<u64>,
    now: SystemTime,
) -> PrunePoint {
    let snapshots = chain.snapshots();
    let Some(&(newest, newest_at)) = snapshots.last() else {
        return PrunePoint::Nothing("the chain has no snapshot to start from".into());
    };
    let keep = policy
        .keep_days
        .map(|d| Duration::from_secs(u64::from(d) * 86_400));
    let old_enough = |saved: Option<SystemTime>| match keep {
        None => true,
        Some(keep) => {
            // Behind the newest snapshot's time (or now), as the policy counts.
            let reference = newest_at.unwrap_or(now);
            saved.is_some_and(|t| reference.duration_since(t).is_ok_and(|age| age >= keep))
        }
    };
    let start = chain.start();
    let limit = linked.unwrap_or(u64::MAX);
    let found = snapshots.iter().rev().find(|(seq, saved)| {
        *seq > start
            && newest - seq >= policy.keep_entries
            && seq - start >= policy.keep_entries.max(1)
            && old_enough(*saved)
            && *seq <= limit
    });
    match found {
        Some(&(seq, _)) => PrunePoint::At(seq),
        None => PrunePoint::Nothing(format!(
            "no snapshot after the start (seq {start}) has {} entries{} behind the newest (seq {newest}) and as many before it{}",
            policy.keep_entries,
            policy
                .keep_days
                .map_or(String::new(), |d| format!(" and {d} days")),
            match linked {
                Some(l) => format!(
                    ", at or before seq {l}, the first entry linked to another chain (a message, a request, a child), which is never dropped"
                ),
                None => String::new(),
            }
        )),
    }
}
