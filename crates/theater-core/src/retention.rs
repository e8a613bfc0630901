//! [`Retention`]: how much of a chain to keep behind its newest snapshot, and where pruning
//! may cut ([`prune_point`]). The runtime applies it after each snapshot; `theater chain
//! prune` applies it offline.

use std::time::{Duration, SystemTime};

use theater_chain::{ChainError, ChainStore};

/// Host calls whose entries other chains may refer to (a message's receipt names the entry
/// that sent it; a child's genesis the entry that spawned it).
pub const LINKED_CALLS: [&str; 3] = [
    "theater:msg/send",
    "theater:msg/request",
    "theater:actors/spawn",
];

/// A retention policy (a manifest's `[retention]`): entries before a snapshot are dropped
/// once at least `keep_entries` entries and `keep_days` days lie between that snapshot and
/// the newest one. The chain then starts (and verifies) at that snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Entries kept behind the newest snapshot, at least.
    pub keep_entries: u64,
    /// Days kept behind the newest snapshot, at least (by when snapshots were saved).
    pub keep_days: Option<u32>,
    /// Drop entries that sent a message or spawned a child too: the receivers' references
    /// to them then name pruned entries (reported by `theater chain verify` as pruned). By
    /// default a chain is never cut past its first such entry.
    pub drop_linked: bool,
}

/// Why [`prune_point`] found nothing to prune, or where it may cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrunePoint {
    /// Drop the entries before this seq (it has a snapshot).
    At(u64),
    /// Nothing to prune, and why.
    Nothing(String),
}

/// The first seq (from `chain`'s start) whose entry made a call other chains may refer to
/// ([`LINKED_CALLS`]), found in the records' bytes.
pub fn first_linked(chain: &dyn ChainStore) -> Result<Option<u64>, ChainError> {
    let finders: Vec<_> = LINKED_CALLS
        .iter()
        .map(|c| memchr::memmem::Finder::new(c.as_bytes()))
        .collect();
    let mut first = None;
    chain.for_each_record(chain.start(), &mut |rec| {
        if first.is_none() && finders.iter().any(|f| f.find(rec.body).is_some()) {
            first = Some(rec.seq);
        }
        Ok(())
    })?;
    Ok(first)
}

/// Where `policy` lets `chain` be pruned now: the newest snapshot (past the chain's start)
/// with enough entries and days after it up to the newest snapshot, and, unless the policy
/// drops linked entries, at or before `linked` (the first entry others may refer to).
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
            // By the newest snapshot's time (or now), as the policy counts behind it.
            let reference = newest_at.unwrap_or(now);
            saved.is_some_and(|t| reference.duration_since(t).is_ok_and(|age| age >= keep))
        }
    };
    let limit = if policy.drop_linked {
        u64::MAX
    } else {
        linked.unwrap_or(u64::MAX)
    };
    let found = snapshots.iter().rev().find(|(seq, saved)| {
        *seq > chain.start()
            && newest - seq >= policy.keep_entries
            && old_enough(*saved)
            && *seq <= limit
    });
    match found {
        Some(&(seq, _)) => PrunePoint::At(seq),
        None => PrunePoint::Nothing(format!(
            "no snapshot after the start (seq {}) has {} entries{} behind the newest (seq {newest}){}",
            chain.start(),
            policy.keep_entries,
            policy
                .keep_days
                .map_or(String::new(), |d| format!(" and {d} days")),
            match (policy.drop_linked, linked) {
                (false, Some(l)) => format!(
                    " at or before seq {l}, the first entry other chains may refer to (drop_linked lets it go)"
                ),
                _ => String::new(),
            }
        )),
    }
}
