//! [`ReplicatedStore`]: an actor's chain that counts a group as committed once the cluster's
//! stream holds it too, and that at most one host can extend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use bytes::Bytes;

use theater_chain::{
    Anchor, Appended, BlobStore, ChainError, ChainId, ChainStore, Entry, Hash, Head, NewEntry,
    Progress, RawRecord, Snapshot, VerifyReport,
};

use crate::{Cluster, ClusterError};

/// Header: the seq of a group's first entry.
pub(crate) const FIRST: &str = "Theater-First";
/// Header: the seq of a group's last entry.
pub(crate) const LAST: &str = "Theater-Last";
/// Header: the hash of a group's last entry.
pub(crate) const HEAD: &str = "Theater-Head";
/// Header: the host that published the group.
pub(crate) const HOST: &str = "Theater-Host";
/// Header: a seal, published by a host taking the chain over (no entries): a writer that
/// had the chain before is refused from then on.
pub(crate) const SEAL: &str = "Theater-Seal";
/// Header: the stream sequence of the group holding the entry a snapshot is at (where a
/// takeover starts reading).
pub(crate) const GROUP_MSG: &str = "Theater-Group-Msg";
/// Header: the seq a snapshot is at.
pub(crate) const SNAPSHOT_SEQ: &str = "Theater-Snapshot-Seq";

/// Groups are split into messages of about this size (NATS's default `max_payload` is 1 MiB).
const MAX_MESSAGE: usize = 512 * 1024;
/// Snapshots larger than this are not replicated (a takeover then replays further back).
const MAX_SNAPSHOT: usize = 900 * 1024;

/// One message of a chain's replica: consecutive entries, framed as
/// `[u32 LE length][32-byte hash][entry bytes]` each.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) head: Hash,
    pub(crate) bytes: Vec<u8>,
}

/// Where a chain's replica ends: its last message (a group, or a seal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReplicaHead {
    /// The message's stream sequence.
    pub(crate) msg_seq: u64,
    /// The seq and hash of the chain's last entry (`None`: the chain has none yet).
    pub(crate) last: Option<(u64, Hash)>,
    /// Whether the message is a seal (a host taking the chain over), not a group.
    pub(crate) seal: bool,
    /// The host that published it.
    pub(crate) host: String,
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.as_str())
}

impl ReplicaHead {
    pub(crate) fn of(msg_seq: u64, headers: &HeaderMap) -> Option<ReplicaHead> {
        let last = match (header(headers, LAST), header(headers, HEAD)) {
            (Some(l), Some(h)) => Some((l.parse().ok()?, h.parse().ok()?)),
            (None, None) if header(headers, SEAL).is_some() => None,
            _ => return None,
        };
        Some(ReplicaHead {
            msg_seq,
            last,
            seal: header(headers, SEAL).is_some(),
            host: header(headers, HOST).unwrap_or_default().to_string(),
        })
    }

    /// How many entries the chain has.
    pub(crate) fn len(&self) -> u64 {
        self.last.map_or(0, |(seq, _)| seq + 1)
    }
}

/// The last group of `subject` in `stream`, if any.
pub(crate) async fn replica_head(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<Option<ReplicaHead>, ClusterError> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    let stream = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| ClusterError::JetStream(format!("stream {stream}: {e}")))?;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => ReplicaHead::of(m.sequence, &m.headers)
            .map(Some)
            .ok_or_else(|| ClusterError::Replica {
                actor: subject.to_string(),
                reason: format!("message {} lacks the group headers", m.sequence),
            }),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(ClusterError::JetStream(format!(
            "reading the end of {subject}: {e}"
        ))),
    }
}

/// Publishes `message` on `subject` and waits for the stream's acknowledgement.
async fn publish_acked(
    js: &jetstream::Context,
    subject: &str,
    message: PublishMessage,
) -> Result<jetstream::publish::PublishAck, jetstream::context::PublishError> {
    js.send_publish(subject.to_string(), message).await?.await
}

/// Why a group was not published.
enum Refused {
    /// Another writer extended the chain.
    Fenced(String),
    /// The cluster could not take it in time.
    Failed(String),
}

/// Publishes `group` after the subject's message `expected` (0: the subject has none);
/// returns the group's stream sequence. Retries what may pass (a timeout, an election) until
/// `patience` is spent; a refusal for a wrong last sequence is a fence, unless the group
/// already there is this very one (an earlier attempt's lost acknowledgement).
async fn publish_group(
    js: jetstream::Context,
    stream: String,
    subject: String,
    host: String,
    expected: u64,
    group: Group,
    patience: Duration,
) -> Result<u64, Refused> {
    let deadline = Instant::now() + patience;
    let bytes = Bytes::from(group.bytes);
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut headers = HeaderMap::new();
        headers.insert(FIRST, group.first.to_string().as_str());
        headers.insert(LAST, group.last.to_string().as_str());
        headers.insert(HEAD, group.head.to_string().as_str());
        headers.insert(HOST, host.as_str());
        let id = format!("{subject}:{}:{}", group.first, group.head);
        let message = PublishMessage::build()
            .payload(bytes.clone())
            .headers(headers)
            .message_id(id)
            .expected_last_subject_sequence(expected);
        let outcome = publish_acked(&js, &subject, message).await;
        let error = match outcome {
            // A duplicate was stored by an attempt whose acknowledgement was lost: the server
            // names where. (If another host sealed the chain after it, the next publish is
            // refused and fences this one.)
            Ok(ack) => return Ok(ack.sequence),
            Err(e) => e,
        };
        // Only this host's own group, never a seal (which repeats the group before it).
        let ours = |head: &Option<ReplicaHead>| {
            head.as_ref()
                .filter(|h| !h.seal && h.host == host && h.last == Some((group.last, group.head)))
                .map(|h| h.msg_seq)
        };
        match error.kind() {
            PublishErrorKind::WrongLastSequence => {
                match replica_head(&js, &stream, &subject).await {
                    Ok(head) => {
                        if let Some(seq) = ours(&head) {
                            return Ok(seq);
                        }
                        let by = match head.as_ref().and_then(|h| h.last) {
                            Some((seq, hash)) => format!("seq {seq} ({})", hash.short()),
                            None => "no entry".to_string(),
                        };
                        let who = head.map(|h| h.host).unwrap_or_default();
                        return Err(Refused::Fenced(format!(
                            "host {who:?} took the chain over (its replica ends at {by})"
                        )));
                    }
                    Err(e) if Instant::now() >= deadline => {
                        return Err(Refused::Failed(e.to_string()));
                    }
                    Err(_) => {}
                }
            }
            PublishErrorKind::MaxPayloadExceeded => {
                return Err(Refused::Failed(format!(
                    "a group of {} bytes is larger than the server takes",
                    bytes.len()
                )));
            }
            _ if Instant::now() >= deadline => {
                return Err(Refused::Failed(format!(
                    "not stored within {patience:?}: {error}"
                )));
            }
            _ => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Publishes a seal after `head` (the replica's last message, as just read): returns its
/// stream sequence, or why not (another host sealed or wrote first). Retries what may pass
/// (a stream not yet served after the cluster formed, a timeout, an election) until
/// `patience` is spent; a retry whose first attempt was stored finds its own seal.
async fn seal(
    js: jetstream::Context,
    stream: String,
    host: String,
    subject: String,
    head: Option<ReplicaHead>,
    patience: Duration,
) -> Result<u64, String> {
    let deadline = Instant::now() + patience;
    let mut backoff = Duration::from_millis(50);
    let expected = head.as_ref().map_or(0, |h| h.msg_seq);
    let last = head.as_ref().and_then(|h| h.last);
    loop {
        let mut headers = HeaderMap::new();
        headers.insert(SEAL, "1");
        headers.insert(HOST, host.as_str());
        let len = head.as_ref().map_or(0, |h| h.len());
        headers.insert(FIRST, len.to_string().as_str());
        if let Some((seq, hash)) = last {
            headers.insert(LAST, seq.to_string().as_str());
            headers.insert(HEAD, hash.to_string().as_str());
        }
        let message = PublishMessage::build()
            .payload(Bytes::new())
            .headers(headers)
            .expected_last_subject_sequence(expected);
        let outcome = publish_acked(&js, &subject, message).await;
        let error = match outcome {
            Ok(ack) => return Ok(ack.sequence),
            Err(e) => e,
        };
        if error.kind() == PublishErrorKind::WrongLastSequence {
            // Either another host got there first, or an earlier attempt of this one was
            // stored and its acknowledgement lost: then the head is this host's seal of the
            // same chain.
            match replica_head(&js, &stream, &subject).await {
                Ok(Some(now)) if now.seal && now.host == host && now.last == last => {
                    return Ok(now.msg_seq);
                }
                Ok(_) => return Err("another host took the chain at the same time".into()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("sealing the replica: {e}"));
                }
                Err(_) => {}
            }
        } else if Instant::now() >= deadline {
            return Err(format!(
                "sealing the replica: not stored within {patience:?}: {error}"
            ));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// An actor's chain whose committed groups are replicated to the cluster's stream before
/// [`ChainStore::sync`] returns, fenced so that two hosts can never both extend it.
///
/// Reading goes to the local store. Pruning prunes only the local copy (the replica keeps
/// the history). Blobs are not replicated yet.
pub struct ReplicatedStore {
    cluster: Cluster,
    local: Box<dyn ChainStore>,
    subject: String,
    /// The stream sequence of the replica's last group (0: none yet).
    last_msg: u64,
    /// How many entries the replica holds: the next seq to publish.
    replicated: u64,
    /// Set once another host is found to have extended the chain: then nothing is written.
    fenced: Option<String>,
    /// A snapshot taken before its entries were replicated, published once they are.
    pending_snapshot: Option<Snapshot>,
    /// The groups this store published, newest last (first seq, last seq, stream
    /// sequence), so a snapshot can say where its entry is.
    groups: std::collections::VecDeque<(u64, u64, u64)>,
}

impl std::fmt::Debug for ReplicatedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedStore")
            .field("chain", self.local.id())
            .field("replicated", &self.replicated)
            .field("fenced", &self.fenced)
            .finish_non_exhaustive()
    }
}

impl ReplicatedStore {
    pub(crate) fn open(
        cluster: Cluster,
        local: Box<dyn ChainStore>,
    ) -> Result<ReplicatedStore, ClusterError> {
        let config = cluster.config();
        let actor = local.id().as_str().to_string();
        let subject = config.chain_subject(&actor);
        let (js, stream, s) = (
            cluster.jetstream().clone(),
            config.chain_stream(),
            subject.clone(),
        );
        let head = cluster.block(async move { replica_head(&js, &stream, &s).await })??;
        let replicated = head.as_ref().map_or(0, |h| h.len());
        if replicated == 0 && local.start() > 0 {
            return Err(ClusterError::Replica {
                actor,
                reason: format!(
                    "the local chain is pruned to seq {}: a replica starts at genesis",
                    local.start()
                ),
            });
        }
        if let Some((seq, hash)) = head.as_ref().and_then(|h| h.last) {
            if local.len() <= seq {
                return Err(ClusterError::Replica {
                    actor,
                    reason: format!(
                        "the replica reaches seq {seq} and the local chain only {}: restore it first",
                        local.len() as i64 - 1
                    ),
                });
            }
            if local.hash_at(seq)? != hash {
                return Err(ClusterError::Diverged { actor, seq });
            }
        }
        // From here on this host is the chain's one writer: whoever wrote it before is
        // refused at its next publish, even if it never noticed losing the actor.
        let seal = seal(
            cluster.jetstream().clone(),
            config.chain_stream(),
            config.host.clone(),
            subject.clone(),
            head,
            config.publish_patience,
        );
        let last_msg = cluster
            .block(seal)?
            .map_err(|reason| ClusterError::Replica {
                actor: actor.clone(),
                reason,
            })?;
        Ok(ReplicatedStore {
            cluster,
            local,
            subject,
            last_msg,
            replicated,
            fenced: None,
            pending_snapshot: None,
            groups: Default::default(),
        })
    }

    /// How many entries the replica holds.
    pub fn replicated(&self) -> u64 {
        self.replicated
    }

    /// Why this store is fenced, if it is.
    pub fn fenced(&self) -> Option<&str> {
        self.fenced.as_deref()
    }

    fn refuse(&self, reason: String, fenced: bool) -> ChainError {
        ChainError::Replication {
            chain: self.local.id().clone(),
            reason,
            fenced,
        }
    }

    fn check_fenced(&self) -> Result<(), ChainError> {
        match &self.fenced {
            Some(reason) => Err(self.refuse(reason.clone(), true)),
            None => Ok(()),
        }
    }

    /// The entries not yet replicated, as groups of at most [`MAX_MESSAGE`] bytes (one
    /// larger entry alone).
    fn unreplicated(&self) -> Result<Vec<Group>, ChainError> {
        let mut groups: Vec<Group> = Vec::new();
        self.local.for_each_record(self.replicated, &mut |rec| {
            let frame = 4 + 32 + rec.body.len();
            match groups.last_mut() {
                Some(g) if g.bytes.len() + frame <= MAX_MESSAGE => {}
                _ => groups.push(Group {
                    first: rec.seq,
                    last: rec.seq,
                    head: rec.hash,
                    bytes: Vec::with_capacity(frame.min(MAX_MESSAGE)),
                }),
            }
            let g = groups.last_mut().expect("just pushed");
            g.bytes
                .extend_from_slice(&(rec.body.len() as u32).to_le_bytes());
            g.bytes.extend_from_slice(rec.hash.as_bytes());
            g.bytes.extend_from_slice(rec.body);
            g.last = rec.seq;
            g.head = rec.hash;
            Ok(())
        })?;
        Ok(groups)
    }

    fn publish(&mut self) -> Result<(), ChainError> {
        let config = self.cluster.config().clone();
        for group in self.unreplicated()? {
            let (first, last) = (group.first, group.last);
            let task = publish_group(
                self.cluster.jetstream().clone(),
                config.chain_stream(),
                self.subject.clone(),
                config.host.clone(),
                self.last_msg,
                group,
                config.publish_patience,
            );
            match self.cluster.block(task) {
                Ok(Ok(msg)) => {
                    self.last_msg = msg;
                    self.replicated = last + 1;
                    self.groups.push_back((first, last, msg));
                    if self.groups.len() > 1024 {
                        self.groups.pop_front();
                    }
                }
                Ok(Err(Refused::Fenced(reason))) => {
                    tracing::error!(chain = %self.local.id(), "fenced: {reason}");
                    self.fenced = Some(reason.clone());
                    return Err(self.refuse(reason, true));
                }
                Ok(Err(Refused::Failed(reason))) => return Err(self.refuse(reason, false)),
                Err(e) => return Err(self.refuse(e.to_string(), false)),
            }
        }
        Ok(())
    }

    fn publish_snapshot(&self, snapshot: &Snapshot) {
        let bytes = snapshot.encode();
        if bytes.len() > MAX_SNAPSHOT {
            tracing::debug!(chain = %self.local.id(), "snapshot of {} bytes not replicated", bytes.len());
            return;
        }
        let js = self.cluster.jetstream().clone();
        let subject = self
            .cluster
            .config()
            .snapshot_subject(self.local.id().as_str());
        let seq = snapshot.seq.to_string();
        let group = self
            .groups
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&snapshot.seq))
            .map(|(_, _, msg)| msg.to_string());
        let task = async move {
            let mut headers = HeaderMap::new();
            headers.insert(SNAPSHOT_SEQ, seq.as_str());
            if let Some(group) = &group {
                headers.insert(GROUP_MSG, group.as_str());
            }
            let ack = js
                .publish_with_headers(subject, headers, Bytes::from(bytes))
                .await?;
            tokio::time::timeout(Duration::from_secs(5), ack)
                .await
                .map_err(|_| "timed out".to_string())?
                .map_err(|e| e.to_string())?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        // A snapshot is only a shortcut for a takeover: failing to replicate it loses nothing.
        match self.cluster.block(task) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(chain = %self.local.id(), "snapshot not replicated: {e}")
            }
            Err(e) => tracing::warn!(chain = %self.local.id(), "snapshot not replicated: {e}"),
        }
    }
}

impl ChainStore for ReplicatedStore {
    fn id(&self) -> &ChainId {
        self.local.id()
    }

    fn start(&self) -> u64 {
        self.local.start()
    }

    fn anchor(&self) -> Option<Anchor> {
        self.local.anchor()
    }

    fn head(&self) -> Option<Head> {
        self.local.head()
    }

    fn append(&mut self, entry: NewEntry) -> Result<Appended, ChainError> {
        self.check_fenced()?;
        let mut appended = self.local.append(entry)?;
        // Acknowledged only once replicated, at the next sync.
        appended.durable = false;
        Ok(appended)
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.local.blobs()
    }

    fn writes_applied(&self) -> Option<u64> {
        self.local.writes_applied()
    }

    fn set_writes_applied(&mut self, seq: u64) -> Result<(), ChainError> {
        self.local.set_writes_applied(seq)
    }

    fn sync(&mut self) -> Result<(), ChainError> {
        self.check_fenced()?;
        self.local.sync()?;
        if self.replicated < self.local.len() {
            self.publish()?;
        }
        if self
            .pending_snapshot
            .as_ref()
            .is_some_and(|s| s.seq < self.replicated)
            && let Some(snapshot) = self.pending_snapshot.take()
        {
            self.publish_snapshot(&snapshot);
        }
        Ok(())
    }

    fn get(&self, seq: u64) -> Result<Entry, ChainError> {
        self.local.get(seq)
    }

    fn hash_at(&self, seq: u64) -> Result<Hash, ChainError> {
        self.local.hash_at(seq)
    }

    fn for_each_record_in(
        &self,
        from: u64,
        end: u64,
        f: &mut dyn FnMut(RawRecord<'_>) -> Result<(), ChainError>,
    ) -> Result<(), ChainError> {
        self.local.for_each_record_in(from, end, f)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), ChainError> {
        self.local.save_snapshot(snapshot)?;
        if self.fenced.is_some() {
            return Ok(());
        }
        if snapshot.seq < self.replicated {
            self.publish_snapshot(snapshot);
        } else {
            self.pending_snapshot = Some(snapshot.clone());
        }
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<Snapshot>, ChainError> {
        self.local.latest_snapshot()
    }

    fn snapshots(&self) -> Vec<(u64, Option<std::time::SystemTime>)> {
        self.local.snapshots()
    }

    fn snapshot_at(&self, seq: u64) -> Result<Option<Snapshot>, ChainError> {
        self.local.snapshot_at(seq)
    }

    fn prune_before(&mut self, seq: u64) -> Result<(), ChainError> {
        self.local.prune_before(seq)
    }

    fn verify_with_progress(
        &self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<VerifyReport, ChainError> {
        self.local.verify_with_progress(progress)
    }

    fn path(&self) -> Option<&std::path::Path> {
        self.local.path()
    }
}
