//! Streaming verification: every hash recomputed, every link and seq checked.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::codec::decode_header;
use crate::error::Corruption;
use crate::store::{Anchor, RawRecord};
use crate::{ChainError, ChainId, Hash, Problem};

/// How far a verification has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Entries checked so far.
    pub entries: u64,
    /// Bytes of entries checked so far.
    pub bytes: u64,
}

/// A chain that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Which chain.
    pub chain: ChainId,
    /// The first verified seq: 0, or the snapshot anchor of a pruned chain.
    pub start: u64,
    /// The snapshot anchor it was verified from, for pruned chains.
    pub anchor: Option<Anchor>,
    /// The last entry.
    pub head: Option<crate::Head>,
    /// Entries checked.
    pub entries: u64,
    /// Bytes of entries hashed.
    pub bytes: u64,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.head {
            None => write!(f, "chain {:?}: empty", self.chain.as_str()),
            Some(head) => {
                write!(
                    f,
                    "chain {:?}: {} entries verified, seq {}..={}, head {}",
                    self.chain.as_str(),
                    self.entries,
                    self.start,
                    head.seq,
                    head.hash.short()
                )?;
                if let Some(a) = self.anchor {
                    write!(f, " (from the snapshot anchor at seq {})", a.seq)?;
                }
                Ok(())
            }
        }
    }
}

const PROGRESS_EVERY: u64 = 1 << 20;

pub(crate) struct Verifier {
    chain: ChainId,
    path: Option<PathBuf>,
    start: u64,
    anchor: Option<Anchor>,
    next_seq: u64,
    prev: Option<Hash>,
    entries: u64,
    bytes: u64,
    reported_at: u64,
}

impl Verifier {
    pub(crate) fn new(
        chain: ChainId,
        start: u64,
        anchor: Option<Anchor>,
        path: Option<&Path>,
    ) -> Self {
        Verifier {
            chain,
            path: path.map(Path::to_path_buf),
            start,
            anchor,
            next_seq: start,
            prev: (start == 0).then_some(Hash::ZERO),
            entries: 0,
            bytes: 0,
            reported_at: 0,
        }
    }

    fn corrupt(&self, rec: &RawRecord<'_>, problem: Problem) -> ChainError {
        ChainError::Corrupt(Box::new(Corruption {
            chain: self.chain.clone(),
            path: self.path.clone(),
            seq: rec.seq,
            offset: rec.offset,
            problem,
        }))
    }

    pub(crate) fn check(
        &mut self,
        rec: RawRecord<'_>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), ChainError> {
        let computed = Hash::digest(rec.body);
        if computed != rec.hash {
            return Err(self.corrupt(
                &rec,
                Problem::HashMismatch {
                    stored: rec.hash,
                    computed,
                },
            ));
        }
        let header = decode_header(rec.body).map_err(|e| self.corrupt(&rec, Problem::Decode(e)))?;
        if header.seq != self.next_seq {
            return Err(self.corrupt(
                &rec,
                Problem::SeqMismatch {
                    expected: self.next_seq,
                    found: header.seq,
                },
            ));
        }
        if let Some(prev) = self.prev
            && header.parent != prev
        {
            return Err(self.corrupt(
                &rec,
                Problem::BrokenLink {
                    expected: prev,
                    found: header.parent,
                },
            ));
        }
        if let Some(a) = self.anchor
            && a.seq == header.seq
            && a.entry_hash != computed
        {
            return Err(self.corrupt(
                &rec,
                Problem::AnchorMismatch {
                    snapshot: a.entry_hash,
                    entry: computed,
                },
            ));
        }
        self.prev = Some(computed);
        self.next_seq += 1;
        self.entries += 1;
        self.bytes += rec.body.len() as u64;
        if self.bytes - self.reported_at >= PROGRESS_EVERY {
            self.reported_at = self.bytes;
            progress(Progress {
                entries: self.entries,
                bytes: self.bytes,
            });
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> VerifyReport {
        VerifyReport {
            chain: self.chain,
            start: self.start,
            anchor: self.anchor,
            head: self
                .prev
                .filter(|_| self.entries > 0)
                .map(|hash| crate::Head {
                    seq: self.next_seq - 1,
                    hash,
                }),
            entries: self.entries,
            bytes: self.bytes,
        }
    }
}
