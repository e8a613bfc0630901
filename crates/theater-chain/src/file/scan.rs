//! Opening a log: walk every record, check framing, seqs and links, cut a torn tail.

use std::fs::File;
use std::path::Path;

use super::frame::{FrameError, FrameReader};
use crate::codec::decode_header;
use crate::error::Corruption;
use crate::error::io_err;
use crate::store::{Anchor, Head};
use crate::{ChainError, ChainId, Hash, Problem};

/// What a scan found.
pub(crate) struct Scan {
    pub(crate) index: super::index::Index,
    pub(crate) head: Option<Head>,
    /// Where the valid records end.
    pub(crate) end: u64,
}

pub(crate) struct ScanInput<'a> {
    pub(crate) file: &'a File,
    pub(crate) path: &'a Path,
    pub(crate) id: &'a ChainId,
    pub(crate) start: u64,
    pub(crate) anchor: Option<Anchor>,
    pub(crate) data_start: u64,
    pub(crate) file_len: u64,
}

/// Walks the records of the log at `input.path`. Checks framing, seq order and parent links
/// against stored hashes; on a link mismatch it recomputes the previous record's hash to
/// blame the right record; it recomputes the last record's hash (the head new entries build
/// on). Full hash verification is [`crate::ChainStore::verify`].
pub(crate) fn scan(input: &ScanInput<'_>) -> Result<Scan, ChainError> {
    let corrupt = |seq: u64, offset: u64, problem: Problem| {
        ChainError::Corrupt(Box::new(Corruption {
            chain: input.id.clone(),
            path: Some(input.path.to_path_buf()),
            seq,
            offset: Some(offset),
            problem,
        }))
    };
    let mut reader = FrameReader::new(input.file, input.data_start, input.file_len);
    let mut index = super::index::Index::default();
    let mut body = Vec::new();
    let mut prev_body = Vec::new();
    let mut prev: Option<(u64, Hash)> = None; // (offset, stored hash) of the previous record
    let mut seq = input.start;
    let end = loop {
        let (offset, stored) = match reader.next(&mut body) {
            Ok(Some(found)) => found,
            Ok(None) => break reader.pos(),
            Err(FrameError::Torn) => break reader.pos(),
            Err(FrameError::Bad) => return Err(corrupt(seq, reader.pos(), Problem::BadFrame)),
            Err(FrameError::Io(e)) => return Err(io_err(input.path)(e)),
        };
        let header = decode_header(&body).map_err(|e| corrupt(seq, offset, Problem::Decode(e)))?;
        if header.seq != seq {
            let problem = Problem::SeqMismatch {
                expected: seq,
                found: header.seq,
            };
            return Err(corrupt(seq, offset, problem));
        }
        let expected_parent = match prev {
            Some((_, h)) => Some(h),
            None if seq == 0 => Some(Hash::ZERO),
            None => None,
        };
        if let Some(expected) = expected_parent
            && expected != header.parent
        {
            // Either the previous record is damaged (its bytes no longer match its stored
            // hash) or this record's parent field is.
            if let Some((prev_offset, prev_hash)) = prev {
                let computed = Hash::digest(&prev_body);
                if computed != prev_hash {
                    let problem = Problem::HashMismatch {
                        stored: prev_hash,
                        computed,
                    };
                    return Err(corrupt(seq - 1, prev_offset, problem));
                }
            }
            let problem = Problem::BrokenLink {
                expected,
                found: header.parent,
            };
            return Err(corrupt(seq, offset, problem));
        }
        if let Some(a) = input.anchor
            && a.seq == seq
            && a.entry_hash != stored
        {
            let computed = Hash::digest(&body);
            let problem = if computed != stored {
                Problem::HashMismatch { stored, computed }
            } else {
                Problem::AnchorMismatch {
                    snapshot: a.entry_hash,
                    entry: stored,
                }
            };
            return Err(corrupt(seq, offset, problem));
        }
        index.push_written(offset);
        prev = Some((offset, stored));
        std::mem::swap(&mut body, &mut prev_body);
        seq += 1;
    };
    let head = match prev {
        None => None,
        Some((offset, stored)) => {
            let computed = Hash::digest(&prev_body);
            if computed != stored {
                let problem = Problem::HashMismatch { stored, computed };
                return Err(corrupt(seq - 1, offset, problem));
            }
            Some(Head {
                seq: seq - 1,
                hash: stored,
            })
        }
    };
    Ok(Scan { index, head, end })
}
