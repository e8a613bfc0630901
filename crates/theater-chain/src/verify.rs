//! Streaming verification: every hash recomputed, every link and seq checked.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::codec::decode_header;
use crate::error::Corruption;
use crate::store::{Anchor, CopiedRecords, RawRecord};
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
/// A verification batch holds about this many bytes of entries...
pub(crate) const BATCH_BYTES: usize = 1 << 20;
/// ...or this many entries, whichever comes first.
const BATCH_RECORDS: usize = 8192;

/// What checking one record needs besides the record.
struct Context<'a> {
    chain: &'a ChainId,
    path: Option<&'a Path>,
    anchor: Option<Anchor>,
}

struct OwnedContext {
    chain: ChainId,
    path: Option<PathBuf>,
    anchor: Option<Anchor>,
}

impl OwnedContext {
    fn borrowed(&self) -> Context<'_> {
        Context {
            chain: &self.chain,
            path: self.path.as_deref(),
            anchor: self.anchor,
        }
    }
}

impl Context<'_> {
    fn owned(&self) -> OwnedContext {
        OwnedContext {
            chain: self.chain.clone(),
            path: self.path.map(Path::to_path_buf),
            anchor: self.anchor,
        }
    }

    fn corrupt(&self, seq: u64, offset: Option<u64>, problem: Problem) -> ChainError {
        ChainError::Corrupt(Box::new(Corruption {
            chain: self.chain.clone(),
            path: self.path.map(Path::to_path_buf),
            seq,
            offset,
            problem,
        }))
    }

    /// Checks one record: its stored hash, its seq and its link to `prev` (the hash of the
    /// entry before, when known). Returns its hash.
    fn check(
        &self,
        rec: &RawRecord<'_>,
        expected_seq: u64,
        prev: Option<Hash>,
    ) -> Result<Hash, ChainError> {
        let computed = Hash::digest(rec.body);
        if computed != rec.hash {
            return Err(self.corrupt(
                rec.seq,
                rec.offset,
                Problem::HashMismatch {
                    stored: rec.hash,
                    computed,
                },
            ));
        }
        let header = decode_header(rec.body)
            .map_err(|e| self.corrupt(rec.seq, rec.offset, Problem::Decode(e)))?;
        if header.seq != expected_seq {
            return Err(self.corrupt(
                rec.seq,
                rec.offset,
                Problem::SeqMismatch {
                    expected: expected_seq,
                    found: header.seq,
                },
            ));
        }
        if let Some(prev) = prev
            && header.parent != prev
        {
            return Err(self.corrupt(
                rec.seq,
                rec.offset,
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
                rec.seq,
                rec.offset,
                Problem::AnchorMismatch {
                    snapshot: a.entry_hash,
                    entry: computed,
                },
            ));
        }
        Ok(computed)
    }
}

/// Buffers batches are read into, handed back by the workers once checked: a fresh
/// mebibyte each time costs its page faults and zeroing, which is as much as reading it.
#[derive(Default)]
pub(crate) struct Buffers(std::sync::Mutex<Vec<Vec<u8>>>);

impl Buffers {
    /// A buffer that came back, or a new one; what it holds is to be overwritten.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_default()
    }

    fn put(&self, b: Vec<u8>) {
        if let Ok(mut free) = self.0.lock()
            && free.len() < 64
        {
            free.push(b);
        }
    }
}

/// Hands a verification's batches over, in chain order, with buffers to read them into.
pub(crate) type Produce<'a, 'f> = dyn FnMut(&Buffers, &mut dyn FnMut(Batch<'f>) -> Result<(), ChainError>) -> Result<(), ChainError>
    + 'a;

/// A batch's outcome, from a worker.
struct Checked {
    index: u64,
    /// The last record's hash, how many records were checked and their bodies' bytes.
    outcome: Result<(Hash, u64, u64), ChainError>,
}

/// Takes checked batches in order, whatever order they finish in.
#[derive(Default)]
struct InOrder {
    sent: u64,
    next: u64,
    waiting: std::collections::BTreeMap<u64, Checked>,
    failed: Option<ChainError>,
}

impl InOrder {
    fn take(&mut self, checked: Checked, v: &mut Verifier, progress: &mut dyn FnMut(Progress)) {
        self.waiting.insert(checked.index, checked);
        while self.failed.is_none()
            && let Some(c) = self.waiting.remove(&self.next)
        {
            self.next += 1;
            match c.outcome {
                Ok((last, entries, bytes)) => {
                    v.prev = Some(last);
                    v.next_seq += entries;
                    v.advance(entries, bytes, progress);
                }
                Err(e) => self.failed = Some(e),
            }
        }
    }
}

/// Records for a worker to check: copied out of a store one by one, or a run of whole
/// frames read from a log file in one read.
pub(crate) struct Batch<'f> {
    index: u64,
    first_seq: u64,
    prev: Option<Hash>,
    /// For frames: the frames (empty for copied records).
    data: Vec<u8>,
    /// Copied records (none for frames).
    copied: CopiedRecords,
    /// For frames: where `data` starts in the log file.
    frames_at: Option<u64>,
    /// For frames the worker reads itself: the log file and how much to read.
    source: Option<(&'f std::fs::File, usize)>,
}

impl<'f> Batch<'f> {
    fn new(first_seq: u64, prev: Option<Hash>, buffer: Vec<u8>) -> Self {
        Batch {
            index: 0,
            first_seq,
            prev,
            data: Vec::new(),
            copied: CopiedRecords::with_buffer(buffer),
            frames_at: None,
            source: None,
        }
    }

    /// Whole frames held in `data`, which sat at `offset` of a log file, starting with the
    /// record at `first_seq`; `prev` is the stored hash of the record before, when known.
    pub(crate) fn frames(first_seq: u64, prev: Option<Hash>, offset: u64, data: Vec<u8>) -> Self {
        Batch {
            index: 0,
            first_seq,
            prev,
            data,
            copied: CopiedRecords::default(),
            frames_at: Some(offset),
            source: None,
        }
    }

    /// Whole frames for the worker to read from `file`: `len` bytes at `offset` (into
    /// `buffer`), the rest as [`Batch::frames`]. Reading on the workers spreads the copy
    /// out of the page cache over the cores too.
    pub(crate) fn frames_in(
        file: &'f std::fs::File,
        first_seq: u64,
        prev: Option<Hash>,
        offset: u64,
        len: usize,
        buffer: Vec<u8>,
    ) -> Self {
        Batch {
            source: Some((file, len)),
            ..Batch::frames(first_seq, prev, offset, buffer)
        }
    }

    fn is_full(&self) -> bool {
        self.copied.bytes() >= BATCH_BYTES || self.copied.len() >= BATCH_RECORDS
    }

    /// The buffer it held, to use again.
    fn into_buffer(self) -> Vec<u8> {
        match self.frames_at {
            Some(_) => self.data,
            None => self.copied.into_buffer(),
        }
    }

    /// Checks every record in order: the hash of the last, how many there were and the
    /// bytes of their bodies.
    fn check(&self, cx: &Context<'_>) -> Result<(Hash, u64, u64), ChainError> {
        let (mut prev, mut expected, mut bytes) = (self.prev, self.first_seq, 0u64);
        match self.frames_at {
            None => {
                for rec in self.copied.iter() {
                    prev = Some(cx.check(&rec, expected, prev)?);
                    expected += 1;
                    bytes += rec.body.len() as u64;
                }
            }
            Some(at) => {
                let mut run = Run {
                    prev,
                    expected,
                    bytes,
                };
                check_frames(cx, &self.data, at, true, &mut run)?;
                (prev, expected, bytes) = (run.prev, run.expected, run.bytes);
            }
        }
        let last = prev.ok_or_else(|| cx.corrupt(self.first_seq, None, Problem::BadFrame))?;
        Ok((last, expected - self.first_seq, bytes))
    }

    /// Checks the batch, reading it first if it is frames for the worker to read: then in
    /// chunks of `chunk` (the worker's own buffer, kept from batch to batch), each hashed
    /// while it is still in the cache. A chunk grows only to hold one frame larger than it.
    fn check_in(
        &mut self,
        cx: &Context<'_>,
        chunk: &mut Vec<u8>,
    ) -> Result<(Hash, u64, u64), ChainError> {
        use std::os::unix::fs::FileExt;
        let (Some((file, len)), Some(at)) = (self.source.take(), self.frames_at) else {
            return self.check(cx);
        };
        if chunk.len() < CHUNK_BYTES {
            chunk.resize(CHUNK_BYTES, 0);
        }
        let mut run = Run {
            prev: self.prev,
            expected: self.first_seq,
            bytes: 0,
        };
        let io = |source| ChainError::Io {
            path: cx.path.map(|p| p.join("chain.log")).unwrap_or_default(),
            source,
        };
        // Bytes of the batch read so far; the first `held` bytes of `chunk` are read and not
        // yet checked (the start of a frame that did not fit).
        let (mut read, mut held) = (0usize, 0usize);
        loop {
            let want = (len - read).min(chunk.len() - held);
            // Whatever the chunk held past `held` is overwritten: no need to zero it.
            file.read_exact_at(&mut chunk[held..held + want], at + read as u64)
                .map_err(io)?;
            read += want;
            held += want;
            let last = read == len;
            let from = at + (read - held) as u64;
            let checked = check_frames(cx, &chunk[..held], from, last, &mut run)?;
            if last {
                break;
            }
            chunk.copy_within(checked..held, 0);
            held -= checked;
            if held == chunk.len() {
                // One frame larger than the chunk: make room for all of it (a length past
                // the batch's end is torn, and is reported once the batch is read).
                let need = frame_size(&chunk[..held]).unwrap_or(held);
                let grown = need.min(held + (len - read)).max(held + 1);
                chunk.resize(grown, 0);
            }
        }
        if chunk.len() > CHUNK_BYTES {
            // Grown for one large frame: not kept for the rest of the run.
            chunk.truncate(CHUNK_BYTES);
            chunk.shrink_to_fit();
        }
        let last = run
            .prev
            .ok_or_else(|| cx.corrupt(self.first_seq, None, Problem::BadFrame))?;
        Ok((last, run.expected - self.first_seq, run.bytes))
    }
}

/// A worker reads frames into a buffer of this size, and hashes them while it is in the cache
/// (reading a whole batch, then hashing it, costs a trip through memory, and the batch's own
/// fresh pages).
const CHUNK_BYTES: usize = 256 << 10;

/// Where checking a run of frames stands: the last hash, the next seq and the bytes checked.
struct Run {
    prev: Option<Hash>,
    expected: u64,
    bytes: u64,
}

/// The size of the frame at the start of `data`, head and tail included, when its head is
/// there and valid.
fn frame_size(data: &[u8]) -> Option<usize> {
    use crate::file::frame::{FRAME_HEAD, FRAME_TAIL, frame_len};
    let head: &[u8; FRAME_HEAD] = data.get(..FRAME_HEAD)?.try_into().ok()?;
    Some(FRAME_HEAD + frame_len(head)? + FRAME_TAIL)
}

/// Checks the whole frames at the start of `data`, which sits at `at` in the log file, and
/// returns how many bytes they take. With `last`, `data` ends the batch, and a frame cut
/// short is [`Problem::Truncated`] (as a sequential read of the log reports it); else
/// checking stops before it, for the caller to read the rest.
fn check_frames(
    cx: &Context<'_>,
    data: &[u8],
    at: u64,
    last: bool,
    run: &mut Run,
) -> Result<usize, ChainError> {
    use crate::file::frame::{FRAME_HEAD, FRAME_TAIL, frame_len};
    let mut pos = 0usize;
    while pos < data.len() {
        let offset = at + pos as u64;
        let left = data.len() - pos;
        let torn = || cx.corrupt(run.expected, Some(offset), Problem::Truncated);
        let Some(head) = data[pos..]
            .get(..FRAME_HEAD)
            .and_then(|h| <&[u8; FRAME_HEAD]>::try_from(h).ok())
        else {
            return if last { Err(torn()) } else { Ok(pos) };
        };
        let len = frame_len(head)
            .ok_or_else(|| cx.corrupt(run.expected, Some(offset), Problem::BadFrame))?;
        if left < FRAME_HEAD + len + FRAME_TAIL {
            return if last { Err(torn()) } else { Ok(pos) };
        }
        let body = &data[pos + FRAME_HEAD..pos + FRAME_HEAD + len];
        let tail = &data[pos + FRAME_HEAD + len..pos + FRAME_HEAD + len + FRAME_TAIL];
        let mut hash = [0u8; 32];
        hash.copy_from_slice(tail);
        let rec = RawRecord {
            seq: run.expected,
            offset: Some(offset),
            body,
            hash: Hash::from_bytes(hash),
        };
        run.prev = Some(cx.check(&rec, run.expected, run.prev)?);
        run.expected += 1;
        run.bytes += len as u64;
        pos += FRAME_HEAD + len + FRAME_TAIL;
    }
    Ok(pos)
}

/// Verifies a store's records one by one, reading them with `for_each_record` and spreading
/// the hashing over the cores.
pub(crate) fn records<S: crate::ChainStore + ?Sized>(
    store: &S,
    progress: &mut dyn FnMut(Progress),
) -> Result<VerifyReport, ChainError> {
    let mut v = Verifier::new(
        store.id().clone(),
        store.start(),
        store.anchor(),
        store.path(),
    );
    let workers = workers();
    if workers > 1 && store.len() - store.start() > 64 {
        let (first, prev) = v.next();
        return v.run_parallel(
            workers,
            &mut |buffers, send| {
                let mut batch = Batch::new(first, prev, buffers.take());
                let read = store.for_each_record(store.start(), &mut |rec| {
                    batch.copied.push(&rec);
                    if batch.is_full() {
                        let next = Batch::new(rec.seq + 1, Some(rec.hash), buffers.take());
                        send(std::mem::replace(&mut batch, next))?;
                    }
                    Ok(())
                });
                // The records read before a failure are checked too: one of them may be
                // the first bad one.
                if !batch.copied.is_empty() {
                    send(batch)?;
                }
                read
            },
            progress,
        );
    }
    store.for_each_record(store.start(), &mut |rec| v.check(rec, progress))?;
    Ok(v.finish())
}

/// Verifies `store` on the calling thread alone, record by record: what
/// [`crate::ChainStore::verify`] does on one core, and the reference its parallel passes
/// must agree with (the same report, or the same first bad seq and problem).
pub fn verify_sequential<S: crate::ChainStore + ?Sized>(
    store: &S,
) -> Result<VerifyReport, ChainError> {
    let mut v = Verifier::new(
        store.id().clone(),
        store.start(),
        store.anchor(),
        store.path(),
    );
    store.for_each_record(store.start(), &mut |rec| v.check(rec, &mut |_| {}))?;
    Ok(v.finish())
}

/// Threads that hash during a verification: the cores there are (at most 8).
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

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

    pub(crate) fn check(
        &mut self,
        rec: RawRecord<'_>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), ChainError> {
        let computed = self.context().check(&rec, self.next_seq, self.prev)?;
        self.prev = Some(computed);
        self.next_seq += 1;
        self.advance(1, rec.body.len() as u64, progress);
        Ok(())
    }

    fn context(&self) -> Context<'_> {
        Context {
            chain: &self.chain,
            path: self.path.as_deref(),
            anchor: self.anchor,
        }
    }

    fn advance(&mut self, entries: u64, bytes: u64, progress: &mut dyn FnMut(Progress)) {
        self.entries += entries;
        self.bytes += bytes;
        if self.bytes - self.reported_at >= PROGRESS_EVERY {
            self.reported_at = self.bytes;
            progress(Progress {
                entries: self.entries,
                bytes: self.bytes,
            });
        }
    }

    /// Verifies the batches `produce` hands over, in chain order, hashing them on `workers`
    /// threads while the calling thread produces the next. Each record is checked against
    /// the stored hash of the one before it (which its own batch checks), so batches are
    /// independent and the first bad seq reported is the one a sequential pass would report.
    pub(crate) fn run_parallel<'f>(
        mut self,
        workers: usize,
        produce: &mut Produce<'_, 'f>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<VerifyReport, ChainError> {
        use std::sync::{Mutex, mpsc};
        let cx = self.context().owned();
        let buffers = Buffers::default();
        let (work_tx, work_rx) = mpsc::sync_channel::<Batch<'f>>(workers * 2);
        let work_rx = Mutex::new(work_rx);
        let (done_tx, done_rx) = mpsc::channel::<Checked>();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (work_rx, done_tx, cx, buffers) = (&work_rx, done_tx.clone(), &cx, &buffers);
                scope.spawn(move || {
                    let mut chunk = Vec::new();
                    while let Ok(Ok(mut batch)) = work_rx.lock().map(|rx| rx.recv()) {
                        let cx = cx.borrowed();
                        // A panic is this batch's failure, not a verification that never ends.
                        let outcome =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                batch.check_in(&cx, &mut chunk)
                            }))
                            .unwrap_or_else(|_| {
                                Err(ChainError::Io {
                                    path: cx.path.map(Path::to_path_buf).unwrap_or_default(),
                                    source: std::io::Error::other("a verification worker panicked"),
                                })
                            });
                        let checked = Checked {
                            index: batch.index,
                            outcome,
                        };
                        buffers.put(batch.into_buffer());
                        if done_tx.send(checked).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(done_tx);
            let mut order = InOrder::default();
            let produced = produce(&buffers, &mut |mut batch| {
                batch.index = order.sent;
                // The workers only stop early when this thread is gone.
                let _ = work_tx.send(batch);
                order.sent += 1;
                while let Ok(checked) = done_rx.try_recv() {
                    order.take(checked, &mut self, progress);
                }
                if order.failed.is_some() {
                    // An earlier batch failed: stop producing (this error is not reported).
                    return Err(ChainError::Io {
                        path: PathBuf::new(),
                        source: std::io::Error::other("verification stopped"),
                    });
                }
                Ok(())
            });
            drop(work_tx);
            while order.next < order.sent && order.failed.is_none() {
                let Ok(checked) = done_rx.recv() else { break };
                order.take(checked, &mut self, progress);
            }
            // A bad batch is always before where producing failed.
            if let Some(e) = order.failed {
                return Err(e);
            }
            produced?;
            if order.next < order.sent {
                return Err(ChainError::Io {
                    path: self.path.clone().unwrap_or_default(),
                    source: std::io::Error::other("a verification worker stopped"),
                });
            }
            Ok(self.finish())
        })
    }

    /// The first seq to verify and the hash its parent must be, when known.
    pub(crate) fn next(&self) -> (u64, Option<Hash>) {
        (self.next_seq, self.prev)
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
