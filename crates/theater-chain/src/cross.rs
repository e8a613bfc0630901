//! Cross-chain checks: every reference from one chain's entry to another's must resolve.

use std::collections::HashMap;
use std::fmt;

use crate::codec::decode_refs;
use crate::error::Corruption;
use crate::{ChainError, ChainId, ChainRef, ChainStore, Hash, Problem};

/// A reference that does not resolve to a matching entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenRef {
    /// The chain holding the reference.
    pub chain: ChainId,
    /// The seq of the entry holding it.
    pub seq: u64,
    /// The reference.
    pub target: ChainRef,
    /// Why it does not resolve.
    pub problem: RefProblem,
}

/// Why a [`ChainRef`] does not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefProblem {
    /// No chain with that id was given.
    UnknownChain,
    /// The target chain was pruned past the seq.
    Pruned {
        /// The target chain's first stored seq.
        start: u64,
    },
    /// The target chain has no entry at that seq.
    Missing {
        /// The target chain's length.
        len: u64,
    },
    /// The entry at that seq has another hash.
    HashMismatch {
        /// The hash actually stored there.
        found: Hash,
    },
}

impl fmt::Display for BrokenRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} seq {} refers to {:?} seq {}: ",
            self.chain.as_str(),
            self.seq,
            self.target.chain.as_str(),
            self.target.seq
        )?;
        match &self.problem {
            RefProblem::UnknownChain => f.write_str("no such chain was given"),
            RefProblem::Pruned { start } => write!(f, "pruned (chain starts at seq {start})"),
            RefProblem::Missing { len } => write!(f, "no such entry (chain has {len} entries)"),
            RefProblem::HashMismatch { found } => write!(
                f,
                "hash mismatch (reference names {}, entry is {})",
                self.target.hash.short(),
                found.short()
            ),
        }
    }
}

/// Checks every cross-chain reference in `chains` against the chains it names.
///
/// Returns every reference that does not resolve (empty when all do). Each chain should be
/// verified on its own too ([`ChainStore::verify`]); this check adds what no single chain
/// can show: that the chains agree with each other.
pub fn check_refs(chains: &[&dyn ChainStore]) -> Result<Vec<BrokenRef>, ChainError> {
    let by_id: HashMap<&ChainId, &dyn ChainStore> = chains.iter().map(|c| (c.id(), *c)).collect();
    let mut broken = Vec::new();
    for chain in chains {
        chain.for_each_record(chain.start(), &mut |rec| {
            let (_, refs) = decode_refs(rec.body).map_err(|e| {
                ChainError::Corrupt(Box::new(Corruption {
                    chain: chain.id().clone(),
                    path: chain.path().map(|p| p.to_path_buf()),
                    seq: rec.seq,
                    offset: rec.offset,
                    problem: Problem::Decode(e),
                }))
            })?;
            for target in refs {
                let problem = resolve(&by_id, &target)?;
                if let Some(problem) = problem {
                    broken.push(BrokenRef {
                        chain: chain.id().clone(),
                        seq: rec.seq,
                        target,
                        problem,
                    });
                }
            }
            Ok(())
        })?;
    }
    Ok(broken)
}

fn resolve(
    by_id: &HashMap<&ChainId, &dyn ChainStore>,
    target: &ChainRef,
) -> Result<Option<RefProblem>, ChainError> {
    let Some(other) = by_id.get(&target.chain) else {
        return Ok(Some(RefProblem::UnknownChain));
    };
    if target.seq < other.start() {
        return Ok(Some(RefProblem::Pruned {
            start: other.start(),
        }));
    }
    if target.seq >= other.len() {
        return Ok(Some(RefProblem::Missing { len: other.len() }));
    }
    let found = other.hash_at(target.seq)?;
    Ok((found != target.hash).then_some(RefProblem::HashMismatch { found }))
}
