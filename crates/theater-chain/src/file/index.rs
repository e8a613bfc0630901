//! Where each record of a log starts, kept sparse: one offset per [`STRIDE`] records of the
//! written file (the others found by reading frame heads forward from it), every offset of
//! the records still in the group-commit buffer, and the last record found with its end (so
//! reading in order reads one frame head per record). Memory is about 8 bytes per [`STRIDE`]
//! entries, not per entry.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use super::frame::{FRAME_HEAD, FRAME_TAIL, frame_len};

/// Records per kept offset.
pub(crate) const STRIDE: u64 = 64;

/// Why a record could not be found.
#[derive(Debug)]
pub(crate) enum Walk {
    /// Reading failed.
    Io(std::io::Error),
    /// The frame head of record `index` (from the chain's start), at `offset`, is not valid.
    Bad {
        /// The record.
        index: u64,
        /// Where its frame starts.
        offset: u64,
    },
    /// The index does not hold the record (a prune that failed half way left it so).
    Missing,
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Offsets of the records `k * STRIDE` (from the chain's start) in the file.
    marks: Vec<u64>,
    /// Records in the file.
    written: u64,
    /// Offsets of the records in the buffer, where they will be once written.
    pending: Vec<u64>,
    /// The last record found in the file: (its index, its offset, its frame's end).
    last: Mutex<Option<(u64, u64, u64)>>,
}

impl Index {
    /// Adds a record written to the file at `offset` (the next one).
    pub(crate) fn push_written(&mut self, offset: u64) {
        if self.written.is_multiple_of(STRIDE) {
            self.marks.push(offset);
        }
        self.written += 1;
    }

    /// Adds a record of the buffer, to be written at `offset`.
    pub(crate) fn push_pending(&mut self, offset: u64) {
        self.pending.push(offset);
    }

    /// The buffer was written: its records are in the file.
    pub(crate) fn commit(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        for o in pending.drain(..) {
            self.push_written(o);
        }
        // The buffer's allocation is kept for the next batch.
        self.pending = pending;
    }

    /// Offsets of the records `k * STRIDE` (from the chain's start) written to the file.
    pub(crate) fn marks(&self) -> &[u64] {
        &self.marks
    }

    /// Records indexed.
    pub(crate) fn len(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    /// The index of the first record still in the buffer.
    pub(crate) fn first_pending(&self) -> u64 {
        self.written
    }

    /// The offset of record `i` of the buffer.
    pub(crate) fn pending_offset(&self, i: u64) -> Option<u64> {
        self.pending
            .get(usize::try_from(i.checked_sub(self.written)?).ok()?)
            .copied()
    }

    /// Forgets everything (a pruned log is indexed anew).
    pub(crate) fn clear(&mut self) {
        *self = Index::default();
    }

    /// The offset of record `i` and, for a record in the file, its frame's end; frames are
    /// read no further than `file_end` (the written log's end).
    pub(crate) fn locate(
        &self,
        i: u64,
        file: &File,
        file_end: u64,
    ) -> Result<(u64, Option<u64>), Walk> {
        if i >= self.written {
            let o = self.pending_offset(i).ok_or(Walk::Missing)?;
            return Ok((o, None));
        }
        let mark = i / STRIDE;
        let (mut at, mut pos) = (
            mark * STRIDE,
            *self.marks.get(mark as usize).ok_or(Walk::Missing)?,
        );
        let cached = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((j, o, end)) = cached
            && j <= i
            && j >= at
        {
            (at, pos) = if j == i {
                return Ok((o, Some(end)));
            } else {
                (j + 1, end)
            };
        }
        loop {
            let mut head = [0u8; FRAME_HEAD];
            let bad = Walk::Bad {
                index: at,
                offset: pos,
            };
            if pos + FRAME_HEAD as u64 > file_end {
                return Err(bad);
            }
            file.read_exact_at(&mut head, pos).map_err(Walk::Io)?;
            let len = frame_len(&head).ok_or(bad)? as u64;
            let end = pos + FRAME_HEAD as u64 + len + FRAME_TAIL as u64;
            if end > file_end {
                return Err(Walk::Bad {
                    index: at,
                    offset: pos,
                });
            }
            if at == i {
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((i, pos, end));
                return Ok((pos, Some(end)));
            }
            at += 1;
            pos = end;
        }
    }

    /// Bytes of memory it holds (for tests and metrics).
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.marks.capacity() + self.pending.capacity()) * std::mem::size_of::<u64>()
    }
}
