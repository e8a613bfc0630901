//! Files an actor answers with by reference ([`FileRef`]): their bytes are sent only while
//! they are what the chain recorded (size and SHA-256).
//!
//! Small files are read and checked whole before the answer starts. Larger ones are checked
//! in a first pass (hashing as it reads, in constant memory), then streamed from the same
//! open file in chunks, hashed again as they go; the last chunk is held back until the hash
//! is confirmed, so a file changed during the transfer ends the response in an error (the
//! client sees a cut body, never a complete wrong one).

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use sha2::{Digest, Sha256};
use theater_chain::Hash;
use theater_core::files::{self, FileRef};
use tokio::sync::mpsc;

/// Files up to this size are read whole and checked before the answer starts.
pub(crate) const IN_MEMORY_MAX: u64 = 1 << 20;

/// How much a stream reads at a time.
const CHUNK: usize = 64 << 10;

/// Chunks read ahead of the client (the backpressure of a slow reader).
const AHEAD: usize = 4;

/// Why a file cannot be sent.
#[derive(Debug)]
pub(crate) enum Unservable {
    /// It is not there, outside the grant, or unreadable.
    Unusable(String),
    /// It no longer has the recorded size or hash.
    Changed,
}

/// A file's bytes: whole, or streamed and checked as they go.
#[derive(Debug)]
pub(crate) enum FileBytes {
    /// Read and checked.
    Whole(Bytes),
    /// Checked once, being read again.
    Stream(FileStream),
}

/// The bytes of `file` under `root`, if they are still what the chain says.
pub(crate) async fn open(root: PathBuf, file: FileRef) -> Result<FileBytes, Unservable> {
    let join = |e: tokio::task::JoinError| Unservable::Unusable(e.to_string());
    let checked = tokio::task::spawn_blocking(move || check(&root, &file))
        .await
        .map_err(join)??;
    match checked {
        Checked::Whole(bytes) => Ok(FileBytes::Whole(bytes)),
        Checked::Open(reader, want) => {
            let size = want.size;
            let (tx, rx) = mpsc::channel(AHEAD);
            tokio::task::spawn_blocking(move || stream(reader, &want, &tx));
            Ok(FileBytes::Stream(FileStream {
                rx,
                remaining: size,
            }))
        }
    }
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

/// Reads `file` again in chunks onto `tx`, hashing as it goes; the last chunk goes only once
/// the whole has the recorded size and hash, an error otherwise.
fn stream(mut file: File, want: &FileRef, tx: &mpsc::Sender<io::Result<Bytes>>) {
    let mut hasher = Sha256::new();
    let mut sent = 0u64;
    let mut held: Option<Bytes> = None;
    let changed = || io::Error::other(format!("{} changed while it was being sent", want.path));
    loop {
        let mut buf = vec![0; CHUNK];
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        if n == 0 {
            break;
        }
        buf.truncate(n);
        hasher.update(&buf);
        sent += n as u64;
        if sent > want.size {
            let _ = tx.blocking_send(Err(changed()));
            return;
        }
        if let Some(chunk) = held.replace(Bytes::from(buf))
            && tx.blocking_send(Ok(chunk)).is_err()
        {
            // The client went away.
            return;
        }
    }
    let whole = Hash::from_bytes(hasher.finalize().into());
    let last = match held {
        Some(chunk) if sent == want.size && whole == want.sha256 => Ok(chunk),
        _ => Err(changed()),
    };
    if let Err(e) = &last {
        tracing::warn!("{e}: the response is cut short");
    }
    let _ = tx.blocking_send(last);
}

/// A file's bytes as a response body, of exactly the recorded size.
#[derive(Debug)]
pub struct FileStream {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl http_body::Body for FileStream {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if self.remaining > 0 => Poll::Ready(Some(Err(io::Error::other(
                "the file stopped before its recorded size",
            )))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
