//! theater-chain rows: verify, durable group-commit append, in-memory append.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use serde_json::json;
use sha2::{Digest, Sha256};
use theater_chain::{
    ChainId, ChainStore, Durability, FileStore, Hash, MemoryStore, NewEntry, Payload,
};

use std::time::Instant;

use crate::harness::{Better, Report, Row, Target, interleaved, interleaved_timed};

/// An input entry carrying `size` bytes of binary payload.
fn entry(i: u64, size: usize) -> NewEntry {
    let body: Vec<u8> = (0..size)
        .map(|b| (b as u64).wrapping_mul(31) as u8 ^ i as u8)
        .collect();
    NewEntry::input(
        Payload::new(json!({"kind": "message", "seq": i}), body),
        Payload::json(json!({"ok": true})),
        Hash::of_json(&json!({"count": i})),
    )
}

/// The baseline of hashing rows: SHA-256 over each body, nothing else.
fn sha256_each(bodies: &[Vec<u8>]) {
    let mut acc = 0u8;
    for b in bodies {
        acc ^= Sha256::digest(b)[0];
    }
    std::hint::black_box(acc);
}

fn id(name: &str) -> anyhow::Result<ChainId> {
    Ok(ChainId::new(name)?)
}

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    for (label, size) in [("1 KiB", 1024), ("64 KiB", 64 * 1024)] {
        let name = format!("chain verify, {label} entries (file)");
        if report.wants(&name) {
            verify(report, name, size)?;
        }
    }
    let name = "chain append, group commit of 32 (file)".to_string();
    if report.wants(&name) {
        group_commit(report, name, 32)?;
    }
    let name = "chain append, fsync every entry (file)".to_string();
    if report.wants(&name) {
        group_commit(report, name, 1)?;
    }
    let name = "chain append, 1 KiB entries (memory)".to_string();
    if report.wants(&name) {
        memory_append(report, name)?;
    }
    Ok(())
}

/// Verify a stored chain (page cache warm) vs SHA-256 over the very same record bodies.
fn verify(report: &mut Report, name: String, size: usize) -> anyhow::Result<()> {
    let total = 64 << 20;
    let n = (total / size) as u64;
    let dir = tempfile::tempdir()?;
    let mut store = FileStore::create(dir.path(), id("bench")?, Durability::None)?;
    for i in 0..n {
        let _ = store.append(entry(i, size))?;
    }
    store.sync()?;
    let mut bodies = Vec::with_capacity(n as usize);
    store.for_each_record(0, &mut |r| {
        bodies.push(r.body.to_vec());
        Ok(())
    })?;
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let (ours, base) = interleaved(
        report.settings.samples,
        || {
            let r = store.verify()?;
            anyhow::ensure!(r.entries == n, "verified {} of {n}", r.entries);
            Ok(())
        },
        || {
            sha256_each(&bodies);
            Ok(())
        },
    )?;
    report.push(Row {
        name,
        unit: "B/s",
        ours: bytes as f64 / ours.as_secs_f64(),
        baseline_name: "SHA-256, same bytes, one thread".into(),
        baseline: bytes as f64 / base.as_secs_f64(),
        better: Better::Higher,
        // Entries hash independently: verification uses every core (2 here).
        target: Some(Target::Ratio(1.6)),
    });
    Ok(())
}

/// Durable appends (group commit, or fsync per entry when `batch` is 1) vs a bare loop that
/// writes the same framed bytes a batch at a time with one write and one fsync per batch.
fn group_commit(report: &mut Report, name: String, batch: usize) -> anyhow::Result<()> {
    let batches = if batch == 1 { 200 } else { 40 };
    let per_sample = (batch * batches) as u64;
    let dir = tempfile::tempdir()?;
    let durability = if batch == 1 {
        Durability::EveryEntry
    } else {
        Durability::Group { max_batch: batch }
    };
    let mut store = FileStore::create(dir.path().join("ours"), id("bench")?, durability)?;

    // The baseline writes exactly the records the store writes: take them from a copy.
    let mut proto = MemoryStore::new(id("bench")?);
    for i in 0..per_sample {
        let _ = proto.append(entry(i, 1024))?;
    }
    let mut frames = Vec::new();
    proto.for_each_record(0, &mut |r| {
        let mut f = Vec::with_capacity(r.body.len() + 40);
        f.extend_from_slice(&(r.body.len() as u32).to_le_bytes());
        f.extend_from_slice(&(!(r.body.len() as u32)).to_le_bytes());
        f.extend_from_slice(r.body);
        f.extend_from_slice(r.hash.as_bytes());
        frames.push(f);
        Ok(())
    })?;
    let mut bare = File::create(dir.path().join("bare.log"))?;
    let mut bare_len = 0u64;
    let mut buf = Vec::new();

    let batch_len = batch as u64;
    let mut next = 0u64;
    let (ours, base) = interleaved_timed(
        report.settings.samples,
        || {
            let batch: Vec<NewEntry> = (next..next + per_sample).map(|i| entry(i, 1024)).collect();
            let t = Instant::now();
            for e in batch {
                let a = store.append(e)?;
                next += 1;
                anyhow::ensure!(
                    a.durable == next.is_multiple_of(batch_len),
                    "durable too early"
                );
            }
            Ok(t.elapsed())
        },
        || {
            let t = Instant::now();
            for chunk in frames.chunks(batch) {
                buf.clear();
                for f in chunk {
                    buf.extend_from_slice(f);
                }
                bare.write_all_at(&buf, bare_len)?;
                bare_len += buf.len() as u64;
                bare.sync_data()?;
            }
            Ok(t.elapsed())
        },
    )?;
    bare.flush()?;
    report.push(Row {
        name,
        unit: "entries/s",
        ours: per_sample as f64 / ours.as_secs_f64(),
        baseline_name: format!("write+fsync loop, batch {batch}"),
        baseline: per_sample as f64 / base.as_secs_f64(),
        better: Better::Higher,
        target: Some(Target::Ratio(0.8)),
    });
    Ok(())
}

/// Appending 1 KiB entries to an in-memory chain vs SHA-256 over the same encoded bytes.
fn memory_append(report: &mut Report, name: String) -> anyhow::Result<()> {
    let n = 20_000u64;
    let entries: Vec<NewEntry> = (0..n).map(|i| entry(i, 1024)).collect();
    let mut proto = MemoryStore::new(id("bench")?);
    for e in &entries {
        let _ = proto.append(e.clone())?;
    }
    let mut bodies = Vec::new();
    proto.for_each_record(0, &mut |r| {
        bodies.push(r.body.to_vec());
        Ok(())
    })?;
    let (ours, base) = interleaved_timed(
        report.settings.samples,
        || {
            let batch = entries.clone();
            let mut store = MemoryStore::new(id("bench")?);
            let t = Instant::now();
            for e in batch {
                let _ = store.append(e)?;
            }
            let took = t.elapsed();
            anyhow::ensure!(store.len() == n, "appended {} of {n}", store.len());
            Ok(took)
        },
        || {
            let t = Instant::now();
            sha256_each(&bodies);
            Ok(t.elapsed())
        },
    )?;
    report.push(Row {
        name,
        unit: "entries/s",
        ours: n as f64 / ours.as_secs_f64(),
        baseline_name: "SHA-256 of the encoded entries".into(),
        baseline: n as f64 / base.as_secs_f64(),
        better: Better::Higher,
        target: None,
    });
    Ok(())
}
