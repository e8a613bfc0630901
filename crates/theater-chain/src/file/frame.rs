//! On-disk layout of a chain log: a header, then one framed record per entry.
//!
//! ```text
//! header: b"THCHAIN\n" | u32 version (1) | u64 start seq | u16 id length | id
//!         | first 8 bytes of SHA-256 over everything before
//! record: u32 body length | u32 !body length | body (the entry's encoding) | [u8; 32] hash
//! ```
//! The length is stored twice (plain and inverted) so a damaged length is an error, never
//! mistaken for a record torn by a crash; a record is torn only when the file ends inside it.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;

use crate::codec::HEADER_LEN;
use crate::{ChainId, Hash, MAX_ENTRY_LEN};

const MAGIC: &[u8; 8] = b"THCHAIN\n";
const LOG_VERSION: u32 = 1;

/// Bytes before a record's body.
pub(crate) const FRAME_HEAD: usize = 8;
/// Bytes after a record's body.
pub(crate) const FRAME_TAIL: usize = 32;

/// The log file's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogHeader {
    pub(crate) start: u64,
    pub(crate) id: ChainId,
}

impl LogHeader {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let id = self.id.as_str().as_bytes();
        let mut out = Vec::with_capacity(30 + id.len() + 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&LOG_VERSION.to_le_bytes());
        out.extend_from_slice(&self.start.to_le_bytes());
        // ChainId is at most 255 bytes.
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id);
        let check = Hash::digest(&out);
        out.extend_from_slice(&check.as_bytes()[..8]);
        out
    }

    /// Reads a header; `Err` says what is wrong in words.
    pub(crate) fn read(r: &mut impl Read) -> Result<(Self, u64), String> {
        let mut fixed = [0u8; 22];
        r.read_exact(&mut fixed)
            .map_err(|_| "too short for a chain log header".to_string())?;
        if &fixed[..8] != MAGIC {
            return Err("not a Theater chain log (bad magic)".into());
        }
        let version = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
        let mut start = [0u8; 8];
        start.copy_from_slice(&fixed[12..20]);
        let id_len = usize::from(u16::from_le_bytes([fixed[20], fixed[21]]));
        let mut rest = vec![0u8; id_len + 8];
        r.read_exact(&mut rest)
            .map_err(|_| "chain log header is cut short".to_string())?;
        let mut all = fixed.to_vec();
        all.extend_from_slice(&rest[..id_len]);
        if Hash::digest(&all).as_bytes()[..8] != rest[id_len..] {
            return Err("chain log header is damaged (checksum mismatch)".into());
        }
        if version != LOG_VERSION {
            return Err(format!("unsupported chain log version {version}"));
        }
        let id = std::str::from_utf8(&rest[..id_len])
            .ok()
            .and_then(|s| ChainId::new(s).ok())
            .ok_or("chain log header holds an invalid chain id")?;
        let header = LogHeader {
            start: u64::from_le_bytes(start),
            id,
        };
        Ok((header, (all.len() + 8) as u64))
    }
}

/// Writes the frame head (length and its inverse) for a body of `len` bytes into `head`.
pub(crate) fn fill_frame_head(head: &mut [u8], len: usize) {
    // Stores reject bodies over MAX_ENTRY_LEN (< 4 GiB) before framing.
    let len = len as u32;
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..8].copy_from_slice(&(!len).to_le_bytes());
}

/// Parses the length field at the start of a frame.
pub(crate) fn frame_len(head: &[u8; FRAME_HEAD]) -> Option<usize> {
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let check = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let len_usize = len as usize;
    (check == !len && (HEADER_LEN..=MAX_ENTRY_LEN).contains(&len_usize)).then_some(len_usize)
}

/// Splits one whole framed record in `buf` into body and stored hash.
pub(crate) fn split_frame(buf: &[u8]) -> Option<(&[u8], Hash)> {
    let head: &[u8; FRAME_HEAD] = buf.get(..FRAME_HEAD)?.try_into().ok()?;
    let len = frame_len(head)?;
    if buf.len() != FRAME_HEAD + len + FRAME_TAIL {
        return None;
    }
    let body = &buf[FRAME_HEAD..FRAME_HEAD + len];
    let hash: [u8; 32] = buf[FRAME_HEAD + len..].try_into().ok()?;
    Some((body, Hash::from_bytes(hash)))
}

/// Why the next frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The file ends inside this record.
    Torn,
    /// The length field fails its check.
    Bad,
    /// Reading failed.
    Io(io::Error),
}

/// Sequential reads through positional reads of a shared handle: every reader of a store
/// sees the same file (inode), even after a writer elsewhere renamed a new log into place.
pub(crate) struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
}

impl<'a> ReadAt<'a> {
    /// Reads `file` from its start.
    pub(crate) fn new(file: &'a File) -> Self {
        Self::at(file, 0)
    }

    /// Reads `file` from `pos`.
    pub(crate) fn at(file: &'a File, pos: u64) -> Self {
        ReadAt { file, pos }
    }
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads framed records in order from a position up to a known end.
pub(crate) struct FrameReader<'a> {
    inner: BufReader<ReadAt<'a>>,
    pos: u64,
    end: u64,
}

impl<'a> FrameReader<'a> {
    /// Reads `file` from `pos` up to `end`.
    pub(crate) fn new(file: &'a File, pos: u64, end: u64) -> Self {
        FrameReader {
            inner: BufReader::with_capacity(256 * 1024, ReadAt::at(file, pos)),
            pos,
            end,
        }
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Reads the next record's body into `body`; returns its offset and stored hash.
    pub(crate) fn next(&mut self, body: &mut Vec<u8>) -> Result<Option<(u64, Hash)>, FrameError> {
        let offset = self.pos;
        let left = self.end - offset;
        if left == 0 {
            return Ok(None);
        }
        if left < FRAME_HEAD as u64 {
            return Err(FrameError::Torn);
        }
        let mut head = [0u8; FRAME_HEAD];
        self.inner.read_exact(&mut head).map_err(FrameError::Io)?;
        let len = frame_len(&head).ok_or(FrameError::Bad)?;
        if left < (FRAME_HEAD + len + FRAME_TAIL) as u64 {
            return Err(FrameError::Torn);
        }
        body.resize(len, 0);
        self.inner.read_exact(body).map_err(FrameError::Io)?;
        let mut hash = [0u8; 32];
        self.inner.read_exact(&mut hash).map_err(FrameError::Io)?;
        self.pos += (FRAME_HEAD + len + FRAME_TAIL) as u64;
        Ok(Some((offset, Hash::from_bytes(hash))))
    }
}
