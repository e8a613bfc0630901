//! Reading chains back from the cluster: for an audit, and for a host taking an actor over.

use std::collections::BTreeSet;

use async_nats::jetstream;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures_util::StreamExt;
use theater_chain::{
    ChainId, ChainStore, Durability, Entry, FileStore, Hash, MemoryStore, NewEntry, Snapshot,
};

use crate::replica::{FIRST, GROUP_MSG, HOST, SEAL, header};
use crate::{Cluster, ClusterError, token_name};

/// A chain as its replica holds it, rebuilt and checked.
#[derive(Debug)]
pub struct ReplicaChain {
    /// The entries, every hash and link checked.
    pub store: MemoryStore,
    /// The newest replicated snapshot, if it matches the chain.
    pub snapshot: Option<Snapshot>,
    /// The hosts that published its groups.
    pub hosts: BTreeSet<String>,
    /// Every message of the replica, in order: who wrote which entries, and who sealed it.
    pub history: Vec<Written>,
}

/// One message of a replica: a group of entries, or a seal (a host taking the chain over).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Its stream sequence.
    pub msg_seq: u64,
    /// The host that published it.
    pub host: String,
    /// The seq of its first entry (for a seal: the chain's length then).
    pub first: u64,
    /// How many entries it holds (0 for a seal).
    pub entries: u64,
    /// Whether it is a seal.
    pub seal: bool,
}

fn broken(actor: &str, reason: String) -> ClusterError {
    ClusterError::Replica {
        actor: actor.to_string(),
        reason,
    }
}

/// Appends the framed entries of one group (starting at `first`) to `store`, checking that
/// each is the next seq, links to the one before, and hashes as stored.
fn append_group(
    store: &mut MemoryStore,
    actor: &str,
    msg_seq: u64,
    first: u64,
    mut bytes: &[u8],
) -> Result<(), ClusterError> {
    if first != store.len() {
        return Err(broken(
            actor,
            format!(
                "message {msg_seq} starts at seq {first}, but the chain before it ends at {}",
                store.len() as i64 - 1
            ),
        ));
    }
    while !bytes.is_empty() {
        let seq = store.len();
        let at = |what: &str| broken(actor, format!("seq {seq} (message {msg_seq}): {what}"));
        if bytes.len() < 36 {
            return Err(at("truncated frame"));
        }
        let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        let hash = Hash::from_bytes(bytes[4..36].try_into().expect("32 bytes"));
        let body = bytes
            .get(36..36 + len)
            .ok_or_else(|| at("truncated entry"))?;
        bytes = &bytes[36 + len..];
        let digest = Hash::digest(body);
        if digest != hash {
            return Err(at(&format!(
                "stored hash {} but the entry hashes to {}",
                hash.short(),
                digest.short()
            )));
        }
        let entry = Entry::decode(body).map_err(|e| at(&format!("does not decode: {e}")))?;
        if entry.seq() != seq {
            return Err(at(&format!("the entry says seq {}", entry.seq())));
        }
        let parent = store.head().map_or(Hash::ZERO, |h| h.hash);
        if entry.parent() != parent {
            return Err(at(&format!(
                "links to {} but the entry before is {}",
                entry.parent().short(),
                parent.short()
            )));
        }
        let appended = store.append(NewEntry::from(entry))?;
        if appended.hash != hash {
            return Err(at("re-encodes differently (not canonical)"));
        }
    }
    Ok(())
}

async fn read(
    js: jetstream::Context,
    stream: String,
    subject: String,
    snapshots: String,
    snap_subject: String,
    actor: String,
) -> Result<ReplicaChain, ClusterError> {
    let id = ChainId::new(actor.as_str()).map_err(|e| broken(&actor, e.to_string()))?;
    let mut store = MemoryStore::new(id);
    let mut hosts = BTreeSet::new();
    let mut history = Vec::new();
    let chains = js
        .get_stream_no_info(&stream)
        .await
        .map_err(|e| ClusterError::JetStream(format!("stream {stream}: {e}")))?;
    let mut next = 1;
    loop {
        let Some(m) = message_at(&chains, &subject, next).await? else {
            break;
        };
        let first: u64 = header(&m.headers, FIRST)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| broken(&actor, format!("message {} has no first seq", m.sequence)))?;
        let sealed = header(&m.headers, SEAL).is_some();
        if let Some(h) = header(&m.headers, HOST)
            && !sealed
        {
            hosts.insert(h.to_string());
        }
        if sealed && first != store.len() {
            return Err(broken(
                &actor,
                format!(
                    "seal {} is at seq {first}, but the chain before it ends at {}",
                    m.sequence,
                    store.len() as i64 - 1
                ),
            ));
        }
        append_group(&mut store, &actor, m.sequence, first, &m.payload)?;
        history.push(Written {
            msg_seq: m.sequence,
            host: header(&m.headers, HOST).unwrap_or_default().to_string(),
            first,
            entries: store.len() - first,
            seal: sealed,
        });
        next = m.sequence + 1;
    }
    let snapshot = match js.get_stream_no_info(&snapshots).await {
        Ok(s) => match s.get_last_raw_message_by_subject(&snap_subject).await {
            Ok(m) => Snapshot::decode(&m.payload).ok().filter(|s| {
                s.seq < store.len() && store.hash_at(s.seq).is_ok_and(|h| h == s.entry_hash)
            }),
            Err(_) => None,
        },
        Err(_) => None,
    };
    Ok(ReplicaChain {
        store,
        snapshot,
        hosts,
        history,
    })
}

/// The first message of `subject` at or after stream sequence `seq`, if any.
async fn message_at(
    stream: &jetstream::stream::Stream<()>,
    subject: &str,
    seq: u64,
) -> Result<Option<jetstream::message::StreamMessage>, ClusterError> {
    match stream.get_first_raw_message_by_subject(subject, seq).await {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(ClusterError::JetStream(format!("reading {subject}: {e}"))),
    }
}

/// The framed entries of a group: (hash, body) each.
fn frames(mut bytes: &[u8]) -> Result<Vec<(Hash, &[u8])>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 36 {
            return Err("truncated frame".into());
        }
        let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        let hash = Hash::from_bytes(bytes[4..36].try_into().expect("32 bytes"));
        let body = bytes.get(36..36 + len).ok_or("truncated entry")?;
        out.push((hash, body));
        bytes = &bytes[36 + len..];
    }
    Ok(out)
}

/// The newest replicated snapshot of a chain and its entries from the snapshot's on, each
/// checked (hash, seq, link).
type Tail = (Snapshot, Vec<(Hash, Vec<u8>)>);

/// Reads a [`Tail`]; `None` when there is no snapshot saying where its entry is.
async fn read_tail(
    js: jetstream::Context,
    stream: String,
    subject: String,
    snapshots: String,
    snap_subject: String,
    actor: String,
) -> Result<Option<Tail>, ClusterError> {
    let js_err = ClusterError::JetStream;
    let snaps = js
        .get_stream_no_info(&snapshots)
        .await
        .map_err(|e| js_err(format!("stream {snapshots}: {e}")))?;
    let m = match snaps.get_last_raw_message_by_subject(&snap_subject).await {
        Ok(m) => m,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
        Err(e) => return Err(js_err(format!("reading {snap_subject}: {e}"))),
    };
    let (Some(group), Ok(snapshot)) = (
        header(&m.headers, GROUP_MSG).and_then(|v| v.parse::<u64>().ok()),
        Snapshot::decode(&m.payload),
    ) else {
        return Ok(None);
    };
    let chains = js
        .get_stream_no_info(&stream)
        .await
        .map_err(|e| js_err(format!("stream {stream}: {e}")))?;
    let mut records: Vec<(Hash, Vec<u8>)> = Vec::new();
    let mut next = group;
    let mut expected = snapshot.seq;
    loop {
        let Some(m) = message_at(&chains, &subject, next).await? else {
            break;
        };
        next = m.sequence + 1;
        let first: u64 = header(&m.headers, FIRST)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| broken(&actor, format!("message {} has no first seq", m.sequence)))?;
        let at = |seq: u64, what: String| {
            broken(
                &actor,
                format!("seq {seq} (message {}): {what}", m.sequence),
            )
        };
        if records.is_empty() && first > snapshot.seq {
            // The hint points past the snapshot's entry: not usable.
            return Ok(None);
        }
        if !records.is_empty() && first != expected {
            return Err(at(first, format!("expected seq {expected} next")));
        }
        for (i, (hash, body)) in frames(&m.payload)
            .map_err(|e| at(first, e))?
            .into_iter()
            .enumerate()
        {
            let seq = first + i as u64;
            if seq < snapshot.seq {
                continue;
            }
            if Hash::digest(body) != hash {
                return Err(at(seq, "stored hash does not match the entry".into()));
            }
            let entry =
                Entry::decode(body).map_err(|e| at(seq, format!("does not decode: {e}")))?;
            if entry.seq() != seq {
                return Err(at(seq, format!("the entry says seq {}", entry.seq())));
            }
            match records.last() {
                None if hash != snapshot.entry_hash => {
                    return Err(at(seq, "the snapshot names another entry".into()));
                }
                Some((prev, _)) if entry.parent() != *prev => {
                    return Err(at(seq, "does not link to the entry before".into()));
                }
                _ => {}
            }
            records.push((hash, body.to_vec()));
            expected = seq + 1;
        }
    }
    if records.is_empty() {
        return Ok(None);
    }
    Ok(Some((snapshot, records)))
}

/// What [`Cluster::restore`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// Entries copied from the replica.
    pub entries: u64,
    /// The seq of the replica's snapshot saved locally, if one was.
    pub snapshot: Option<u64>,
}

impl Cluster {
    /// The chain of `actor` as the cluster's stream holds it, with every hash and link
    /// checked (an error names the first that does not hold), and its newest snapshot.
    pub async fn read_chain(&self, actor: &str) -> Result<ReplicaChain, ClusterError> {
        self.run(self.read_task(actor)).await?
    }

    /// [`Cluster::read_chain`], blocking.
    pub fn read_chain_blocking(&self, actor: &str) -> Result<ReplicaChain, ClusterError> {
        self.block(self.read_task(actor))?
    }

    /// The task that reads the replica of `actor` (see [`Cluster::read_chain`]).
    fn read_task(
        &self,
        actor: &str,
    ) -> impl Future<Output = Result<ReplicaChain, ClusterError>> + Send + 'static {
        let c = self.config();
        read(
            self.jetstream().clone(),
            c.chain_stream(),
            c.chain_subject(actor),
            c.snapshot_stream(),
            c.snapshot_subject(actor),
            actor.to_string(),
        )
    }

    /// The names of the actors whose chains the cluster holds, sorted.
    pub async fn actors(&self) -> Result<Vec<String>, ClusterError> {
        let (js, stream) = (self.jetstream().clone(), self.config().chain_stream());
        let filter = format!("theater.{}.chain.*", self.config().name);
        self.run(async move {
            let s = js
                .get_stream(&stream)
                .await
                .map_err(|e| ClusterError::JetStream(format!("stream {stream}: {e}")))?;
            let mut subjects = s
                .info_with_subjects(filter)
                .await
                .map_err(|e| ClusterError::JetStream(e.to_string()))?;
            let mut names = Vec::new();
            while let Some(item) = subjects.next().await {
                let (subject, _) = item.map_err(|e| ClusterError::JetStream(e.to_string()))?;
                if let Some(token) = subject.rsplit('.').next() {
                    names.push(token_name(token));
                }
            }
            names.sort();
            Ok(names)
        })
        .await?
    }

    /// Creates the chain of `id` in `dir` (where there is none) from its replica's newest
    /// snapshot and the entries after it, as a chain pruned to that snapshot: a takeover
    /// reads snapshot and tail, not the whole history. `None` when the replica has no
    /// snapshot saying where its entry is (then [`Cluster::restore`] copies it all).
    pub fn restore_at(
        &self,
        dir: &std::path::Path,
        id: ChainId,
        durability: Durability,
    ) -> Result<Option<(FileStore, Restored)>, ClusterError> {
        let c = self.config();
        let actor = id.as_str().to_string();
        let task = read_tail(
            self.jetstream().clone(),
            c.chain_stream(),
            c.chain_subject(&actor),
            c.snapshot_stream(),
            c.snapshot_subject(&actor),
            actor.clone(),
        );
        let Some((snapshot, records)) = self.block(task)?? else {
            return Ok(None);
        };
        let (hash, body) = &records[0];
        let mut store = FileStore::create_at(dir, id, &snapshot, body, *hash, durability)?;
        for (hash, body) in &records[1..] {
            let entry = Entry::decode(body).map_err(|e| broken(&actor, e.to_string()))?;
            let seq = entry.seq();
            if store.append(NewEntry::from(entry))?.hash != *hash {
                return Err(broken(&actor, format!("seq {seq} re-encodes differently")));
            }
        }
        store.sync()?;
        let restored = Restored {
            entries: records.len() as u64,
            snapshot: Some(snapshot.seq),
        };
        Ok(Some((store, restored)))
    }

    /// Brings `local` up to the replica of its chain: appends the entries it lacks, each
    /// checked, and saves the replica's snapshot if it is newer than the local one (so the
    /// actor resumes from it and replays only the tail). Fails with
    /// [`ClusterError::Diverged`] if `local` has entries the replica does not share (written
    /// by a host that was then fenced: never acknowledged), so the caller can set it aside.
    pub fn restore(&self, local: &mut dyn ChainStore) -> Result<Restored, ClusterError> {
        let actor = local.id().as_str().to_string();
        let replica = self.read_chain_blocking(&actor)?;
        let remote = &replica.store;
        if let Some(head) = local.head() {
            let shared =
                head.seq < remote.len() && remote.hash_at(head.seq).is_ok_and(|h| h == head.hash);
            if !shared {
                return Err(ClusterError::Diverged {
                    actor,
                    seq: head.seq.min(remote.len()),
                });
            }
        }
        let mut entries = 0;
        for seq in local.len()..remote.len() {
            let entry = remote.get(seq)?;
            let expected = remote.hash_at(seq)?;
            let appended = local.append(NewEntry::from(entry))?;
            if appended.hash != expected {
                return Err(broken(&actor, format!("seq {seq} re-encodes differently")));
            }
            entries += 1;
        }
        local.sync()?;
        let newer = |s: &Snapshot| {
            local
                .latest_snapshot()
                .ok()
                .flatten()
                .is_none_or(|mine| mine.seq < s.seq)
        };
        let snapshot = match replica.snapshot {
            Some(s) if newer(&s) => {
                local.save_snapshot(&s)?;
                Some(s.seq)
            }
            _ => None,
        };
        Ok(Restored { entries, snapshot })
    }
}
