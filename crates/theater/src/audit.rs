//! The host's audit log (`theater run --audit`, or a host configuration's `[audit]`): every
//! entry its actors commit is a leaf of one Merkle tree ([`theater_audit::HostLog`] under
//! `<data-dir>/audit/log`), checkpoints of it are signed with the host's key
//! (`<data-dir>/audit/log.key`) every so many entries or seconds, sent to the witnesses the
//! configuration names, and kept in `<data-dir>/audit/checkpoint` (the latest, with its
//! cosignatures) for `theater audit prove`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use theater_audit::{Auditor, Checkpointer, Key};
use theater_chain::ChainStore;

/// The directory under the data directory.
pub(crate) const AUDIT_DIR: &str = "audit";
/// The latest checkpoint, with the cosignatures it got.
pub(crate) const CHECKPOINT: &str = "checkpoint";
/// The log's signing key.
pub(crate) const KEY: &str = "log.key";

/// How the host keeps its audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditOptions {
    /// The log's name, the checkpoints' first line and the key's name (default:
    /// `theater/` and a hash of the data directory's path).
    pub origin: Option<String>,
    /// Sign a checkpoint once this many entries were added since the last (default 10,000).
    pub every_entries: u64,
    /// ... or once this long passed with any added (default 10 s).
    pub every: Duration,
    /// Witnesses to send each checkpoint to.
    pub witnesses: Vec<WitnessTarget>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            origin: None,
            every_entries: 10_000,
            every: Duration::from_secs(10),
            witnesses: Vec::new(),
        }
    }
}

/// A witness a host sends its checkpoints to (C2SP tlog-witness over HTTP).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessTarget {
    /// Its base URL: `http://HOST:PORT` (`/add-checkpoint` is appended).
    pub url: String,
    /// Its cosignature verifier key (`name+id+base64`), as `theater witness` prints it.
    pub key: String,
}

/// The host's audit log and its signer.
pub(crate) struct HostAudit {
    pub(crate) auditor: Arc<Auditor>,
    signer: std::sync::Mutex<Checkpointer>,
    dir: PathBuf,
    options: AuditOptions,
    /// Per witness, the size it last cosigned, as far as this host knows.
    witnessed: tokio::sync::Mutex<Vec<u64>>,
    /// One checkpoint at a time.
    signing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for HostAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostAudit").field("dir", &self.dir).finish()
    }
}

/// The origin a host without one configured uses.
pub(crate) fn default_origin(data_dir: &Path) -> String {
    let id = theater_chain::Hash::digest(data_dir.as_os_str().as_encoded_bytes());
    format!("theater/{}", &id.to_string()[..16])
}

impl HostAudit {
    /// Opens the log, the key (created on first run, owner-only) and the signer's state.
    pub(crate) fn open(data_dir: &Path, options: AuditOptions) -> anyhow::Result<Arc<HostAudit>> {
        let dir = data_dir.join(AUDIT_DIR);
        let auditor = Auditor::open(dir.join("log")).context("opening the host's audit log")?;
        for repaired in auditor.log().repaired() {
            tracing::warn!("audit log: {repaired}");
        }
        // Without one configured: the key's own name once there is a key (the data directory
        // may have moved since), else one derived from where it is.
        let origin = match (&options.origin, std::fs::read_to_string(dir.join(KEY))) {
            (Some(o), _) => o.clone(),
            (None, Ok(text)) => Key::from_skey(&text)?.name().to_string(),
            (None, Err(_)) => default_origin(data_dir),
        };
        let key = Key::load_or_create(&dir.join(KEY), &origin)?;
        if key.name() != origin {
            anyhow::bail!(
                "the audit key in {} is named {:?}, not {origin:?}: the origin cannot change under one key",
                dir.join(KEY).display(),
                key.name()
            );
        }
        for w in &options.witnesses {
            theater_audit::CosignatureVerifier::new(&w.key)
                .with_context(|| format!("the witness at {}", w.url))?;
            if !w.url.starts_with("http://") {
                anyhow::bail!("witness url {:?}: only http:// is supported", w.url);
            }
        }
        let signer = Checkpointer::open(key, dir.join("signed"))?;
        Ok(Arc::new(HostAudit {
            auditor,
            signer: std::sync::Mutex::new(signer),
            witnessed: tokio::sync::Mutex::new(vec![0; options.witnesses.len()]),
            dir,
            options,
            signing: tokio::sync::Mutex::new(()),
        }))
    }

    /// `chain`, its commits logged (its entries since the log last saw it logged first;
    /// refused if it no longer holds what the log recorded).
    pub(crate) fn wrap(&self, chain: Box<dyn ChainStore>) -> anyhow::Result<Box<dyn ChainStore>> {
        let id = chain.id().clone();
        let wrapped = self
            .auditor
            .wrap(chain)
            .with_context(|| format!("the audit log refuses the chain of {:?}", id.as_str()))?;
        for note in self.auditor.take_notes() {
            tracing::warn!("audit log: {note}");
        }
        Ok(Box::new(wrapped))
    }

    /// The verifier key of the host's checkpoints.
    pub(crate) fn vkey(&self) -> String {
        self.signer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .vkey()
            .to_string()
    }

    /// Signs a checkpoint of the log as it is (synced first), has the witnesses cosign it,
    /// keeps it in `<data-dir>/audit/checkpoint`, and returns it.
    pub(crate) async fn checkpoint(&self) -> anyhow::Result<String> {
        let _one = self.signing.lock().await;
        // Fsyncs under the log's lock: off the async workers' hands.
        let (note, size) = tokio::task::block_in_place(|| {
            let log = self.auditor.log();
            let mut signer = self.signer.lock().unwrap_or_else(|p| p.into_inner());
            anyhow::Ok((signer.sign(&log)?, log.size()))
        })?;
        let mut witnessed = note.clone();
        let mut sizes = self.witnessed.lock().await;
        for (i, w) in self.options.witnesses.iter().enumerate() {
            match self.submit(w, &mut sizes[i], size, &note).await {
                Ok(lines) => witnessed.push_str(&lines),
                Err(e) => tracing::warn!(witness = %w.url, "no cosignature for size {size}: {e:#}"),
            }
        }
        drop(sizes);
        crate::host::write_durably(&self.dir.join(CHECKPOINT), witnessed.as_bytes())
            .with_context(|| format!("saving {}", self.dir.join(CHECKPOINT).display()))?;
        Ok(witnessed)
    }

    /// Sends the checkpoint of `size` to `w` (tlog-witness `add-checkpoint`), from the size
    /// it last cosigned (learnt from its 409 answer when this host does not know it).
    async fn submit(
        &self,
        w: &WitnessTarget,
        known: &mut u64,
        size: u64,
        note: &str,
    ) -> anyhow::Result<String> {
        for _ in 0..2 {
            let old = (*known).min(size);
            let proof = self.auditor.log().prove_consistency(old, size)?;
            let mut body = format!("old {old}\n");
            for h in &proof {
                body.push_str(&STANDARD.encode(h.0));
                body.push('\n');
            }
            body.push('\n');
            body.push_str(note);
            let (status, answer) = post(&w.url, "/add-checkpoint", body).await?;
            match status {
                200 => {
                    *known = size;
                    return checked_cosignatures(w, note, &answer);
                }
                409 => {
                    *known = answer
                        .trim()
                        .parse()
                        .with_context(|| format!("a 409 without the witness's size: {answer:?}"))?;
                }
                _ => anyhow::bail!("HTTP {status}: {}", answer.trim()),
            }
        }
        anyhow::bail!("the witness's size kept changing")
    }

    /// Signs checkpoints while `stopping` is unset: once `every_entries` entries were added
    /// since the last, or `every` passed with any.
    pub(crate) async fn run(self: Arc<Self>, stopping: Arc<AtomicBool>) {
        let mut last_at = Instant::now();
        while !stopping.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(200).min(self.options.every)).await;
            let size = self.auditor.log().size();
            let signed = self
                .signer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .last()
                .map_or(0, |s| s.size);
            let added = size.saturating_sub(signed);
            if added == 0 {
                continue;
            }
            if added >= self.options.every_entries || last_at.elapsed() >= self.options.every {
                if let Err(e) = self.checkpoint().await {
                    tracing::warn!("audit: signing a checkpoint failed: {e:#}");
                }
                last_at = Instant::now();
            }
        }
    }
}

/// The lines of a witness's answer that are valid cosignatures of `note` by its key: a
/// broken or hostile answer must not spoil the saved checkpoint (a bad signature by a key an
/// auditor names fails the whole note).
fn checked_cosignatures(w: &WitnessTarget, note: &str, answer: &str) -> anyhow::Result<String> {
    let verifier = theater_audit::CosignatureVerifier::new(&w.key)?;
    let text = note
        .split_once("\n\n")
        .map(|(t, _)| format!("{t}\n"))
        .context("not a signed note")?;
    let mut good = String::new();
    for line in answer.lines().filter(|l| !l.is_empty()) {
        let sig = signed_note::Signature::from_bytes(line.as_bytes())
            .map_err(|e| anyhow::anyhow!("not a signature line {line:?}: {e}"))?;
        if sig.name() == signed_note::Verifier::name(&verifier)
            && sig.id() == signed_note::Verifier::key_id(&verifier)
            && verifier.time(text.as_bytes(), sig.signature()).is_some()
        {
            good.push_str(line);
            good.push('\n');
        }
    }
    anyhow::ensure!(
        !good.is_empty(),
        "its answer holds no valid cosignature by {}",
        w.key
    );
    Ok(good)
}

/// `POST url+path` with `body` over HTTP/1.1 (loopback witnesses; 30 s at most): the status
/// and the answer's text.
async fn post(url: &str, path: &str, body: String) -> anyhow::Result<(u16, String)> {
    use http_body_util::{BodyExt, Full};
    let authority = url
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
        .context("only http:// witnesses")?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(authority).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = http::Request::post(path)
            .header("host", authority)
            .header("content-type", "text/plain")
            .body(Full::new(bytes::Bytes::from(body)))?;
        let res = sender.send_request(req).await?;
        let status = res.status().as_u16();
        let text = res.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, String::from_utf8_lossy(&text).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .context("no answer in 30 s")?
}
