//! Files an actor answers with by reference ([`FileRef`]): their bytes are sent only while
//! they are what the chain recorded (size and SHA-256).
//!
//! Small files are read and checked whole before the answer starts. Larger ones are checked
//! in a first pass (hashing as it reads, in constant memory), then streamed from the same
//! open file a chunk at a time as the client takes them, hashed again as they go; the last
//! chunk is held back until the hash is confirmed, so a file changed during the transfer ends
//! the response in an error (the client sees a cut body, never a complete wrong one).

use std::fs::File;
use std::io::{self, Seek};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{Either, Full};
use sha2::{Digest, Sha256};
use theater_chain::Hash;
use theater_core::FileRef;
use theater_files as files;
use tokio::io::{AsyncRead, ReadBuf};

/// Files up to this size are read whole and checked before the answer starts.
pub(crate) const IN_MEMORY_MAX: u64 = 1 << 20;

/// How much a stream reads at a time.
const CHUNK: usize = 64 << 10;

/// Why a file cannot be sent.
#[derive(Debug)]
pub(crate) enum Unservable {
    /// It is not there, outside the grant, or unreadable.
    Unusable(String),
    /// It no longer has the recorded size or hash.
    Changed,
}

/// The bytes of `file` under `root`, if they are still what the chain says.
pub(crate) async fn open(
    root: PathBuf,
    file: FileRef,
) -> Result<Either<Full<Bytes>, FileStream>, Unservable> {
    let join = |e: tokio::task::JoinError| Unservable::Unusable(e.to_string());
    let checked = tokio::task::spawn_blocking(move || check(&root, &file))
        .await
        .map_err(join)??;
    Ok(match checked {
        Checked::Whole(bytes) => Either::Left(Full::new(bytes)),
        Checked::Open(reader, want) => Either::Right(FileStream(Box::new(Streaming {
            file: tokio::fs::File::from_std(reader),
            hasher: Sha256::new(),
            held: None,
            read: 0,
            remaining: want.size,
            want,
            done: false,
        }))),
    })
}

enum Checked {
    Whole(Bytes),
    Open(File, FileRef),
}

fn check(root: &std::path::Path, want: &FileRef) -> Result<Checked, Unservable> {
    let unusable = |e: &dyn std::fmt::Display| Unservable::Unusable(e.to_string());
    if want.size <= IN_MEMORY_MAX {
        let bytes = match files::read_at_most(root, &want.path, want.size) {
            Ok(b) => b,
            Err(files::FileError::Refused { .. }) => return Err(Unservable::Changed),
            Err(e) => return Err(unusable(&e)),
        };
        if Hash::digest(&bytes) != want.sha256 {
            return Err(Unservable::Changed);
        }
        return Ok(Checked::Whole(Bytes::from(bytes)));
    }
    let mut file = files::open(root, &want.path).map_err(|e| unusable(&e))?;
    if file.metadata().map_err(|e| unusable(&e))?.len() != want.size {
        return Err(Unservable::Changed);
    }
    let (hash, size) = Hash::digest_reader(&mut file).map_err(|e| unusable(&e))?;
    if hash != want.sha256 || size != want.size {
        return Err(Unservable::Changed);
    }
    file.rewind().map_err(|e| unusable(&e))?;
    Ok(Checked::Open(file, want.clone()))
}

/// A file's bytes as a response body, of exactly the recorded size: read a chunk at a time
/// as the client takes them (a slow client holds no thread), hashed as they go; the last
/// chunk goes only once the whole has the recorded size and hash, an error otherwise.
#[derive(Debug)]
pub struct FileStream(Box<Streaming>);

#[derive(Debug)]
struct Streaming {
    file: tokio::fs::File,
    hasher: Sha256,
    /// The chunk read but not sent yet: the last one waits for the hash.
    held: Option<Bytes>,
    /// Bytes read so far.
    read: u64,
    /// Bytes not sent yet.
    remaining: u64,
    want: FileRef,
    done: bool,
}

impl Streaming {
    fn changed(&mut self) -> io::Error {
        self.done = true;
        let e = io::Error::other(format!(
            "{} changed while it was being sent",
            self.want.path
        ));
        tracing::warn!("{e}: the response is cut short");
        e
    }

    fn send(&mut self, chunk: Bytes) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

impl http_body::Body for FileStream {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self.get_mut().0;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let mut buf = vec![0; CHUNK];
            let mut filled = ReadBuf::new(&mut buf);
            match Pin::new(&mut this.file).poll_read(cx, &mut filled) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Ok(())) => {}
            }
            let n = filled.filled().len();
            if n == 0 {
                let whole = Hash::from_bytes(std::mem::take(&mut this.hasher).finalize().into());
                let intact = this.read == this.want.size && whole == this.want.sha256;
                return match this.held.take() {
                    Some(last) if intact => {
                        this.done = true;
                        this.send(last)
                    }
                    _ => Poll::Ready(Some(Err(this.changed()))),
                };
            }
            buf.truncate(n);
            this.hasher.update(&buf);
            this.read += n as u64;
            if this.read > this.want.size {
                return Poll::Ready(Some(Err(this.changed())));
            }
            if let Some(chunk) = this.held.replace(Bytes::from(buf)) {
                return this.send(chunk);
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.done || self.0.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.remaining)
    }
}
