//! theater-audit rows: leaf appends to the host log vs raw SHA-256 of the same leaves; an
//! inclusion proof made and checked in a log of 10^6 leaves vs the SHA-256 work a proof of
//! that depth is; the runtime with its commits logged vs not.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use theater_audit::{Auditor, HostLog, Leaf};
use theater_chain::{ChainId, Hash, MemoryStore};
use theater_core::RuntimeConfig;

use crate::harness::{Better, Report, Row, Target, interleaved_timed, median};

fn leaves(n: u64) -> anyhow::Result<Vec<Leaf>> {
    let actor = ChainId::new("bench")?;
    let mut parent = Hash::ZERO;
    Ok((0..n)
        .map(|seq| {
            let entry = Hash::digest(&seq.to_le_bytes());
            let leaf = Leaf {
                actor: actor.clone(),
                seq,
                entry,
                parent,
            };
            parent = entry;
            leaf
        })
        .collect())
}

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let name = "host log: leaf appends, batches of 64 (file)".to_string();
    if report.wants(&name) {
        appends(report, name)?;
    }
    let name = "host log: inclusion proof made and checked, 10^6 leaves".to_string();
    if report.wants(&name) {
        proofs(report, name)?;
    }
    let name = "ActorRuntime inputs with the host log, 1 KiB state (memory chain)".to_string();
    if report.wants(&name) {
        crate::harness::runtime()?.block_on(runtime_on_vs_off(report, name))?;
    }
    Ok(())
}

fn appends(report: &mut Report, name: String) -> anyhow::Result<()> {
    let n = 100_000;
    let all = leaves(n)?;
    let encoded: Vec<Vec<u8>> = all.iter().map(Leaf::encode).collect();
    let (ours, base) = interleaved_timed(
        report.settings.samples,
        || {
            let dir = tempfile::tempdir()?;
            let mut log = HostLog::open(dir.path())?;
            let t = Instant::now();
            for batch in all.chunks(64) {
                log.append_all(batch)?;
            }
            let took = t.elapsed();
            anyhow::ensure!(log.size() == n, "lost leaves");
            Ok(took)
        },
        || {
            let t = Instant::now();
            let mut x = 0u8;
            for e in &encoded {
                // A leaf's hash (0x00 then the leaf), as the log makes it.
                let mut h = Sha256::new();
                h.update([0u8]);
                h.update(e);
                x ^= h.finalize()[0];
            }
            std::hint::black_box(x);
            Ok(t.elapsed())
        },
    )?;
    report.push(Row {
        name,
        unit: "leaves/s",
        ours: n as f64 / ours.as_secs_f64(),
        baseline_name: "SHA-256 of the same leaves (their leaf hashes)".into(),
        baseline: n as f64 / base.as_secs_f64(),
        better: Better::Higher,
        target: None,
    });
    Ok(())
}

fn proofs(report: &mut Report, name: String) -> anyhow::Result<()> {
    let n = 1_000_000;
    let dir = tempfile::tempdir()?;
    let mut log = HostLog::open(dir.path())?;
    for batch in leaves(n)?.chunks(1024) {
        log.append_all(batch)?;
    }
    let root = log.root(n)?;
    let per = 1_000u64;
    let depth = 64 - (n - 1).leading_zeros() as usize;
    let (ours, base) = interleaved_timed(
        report.settings.samples,
        || {
            let t = Instant::now();
            for i in 0..per {
                let index = (i * 7_919) % n;
                let proof = log.prove_inclusion(index, n)?;
                let leaf = log.leaf(index)?;
                tlog_tiles::check_record(&proof, n, root, index, leaf.hash())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            Ok(t.elapsed())
        },
        || {
            let t = Instant::now();
            let mut h = [0u8; 32];
            for _ in 0..per {
                // What checking a proof of this depth hashes: one node per level.
                for _ in 0..depth {
                    let mut d = Sha256::new();
                    d.update([1u8]);
                    d.update(h);
                    d.update(h);
                    h = d.finalize().into();
                }
            }
            std::hint::black_box(h);
            Ok(t.elapsed())
        },
    )?;
    report.push(Row {
        name,
        unit: "proofs/s",
        ours: per as f64 / ours.as_secs_f64(),
        baseline_name: format!("{depth} node hashes (a proof's depth) in memory"),
        baseline: per as f64 / base.as_secs_f64(),
        better: Better::Higher,
        target: None,
    });
    Ok(())
}

/// The same runtime with its chain's commits logged (what `--audit` does) vs not. Target:
/// within 10%.
async fn runtime_on_vs_off(report: &mut Report, name: String) -> anyhow::Result<()> {
    let n: u64 = 20_000;
    let samples = report.settings.samples;
    let (mut on, mut off): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    let run = |logged: bool| async move {
        let dir = tempfile::tempdir()?;
        let auditor = Auditor::open(dir.path())?;
        let memory = Box::new(MemoryStore::new(ChainId::new("bench")?));
        let chain: Box<dyn theater_chain::ChainStore> = if logged {
            Box::new(auditor.wrap(memory)?)
        } else {
            memory
        };
        let took = crate::core::timed_inputs(chain, RuntimeConfig::default(), n).await?;
        if logged {
            anyhow::ensure!(auditor.log().size() == n + 1, "leaves lost");
        }
        Ok::<_, anyhow::Error>(took)
    };
    for i in 0..=samples {
        let a = run(true).await?;
        let b = run(false).await?;
        if i > 0 {
            on.push(a);
            off.push(b);
        }
    }
    report.push(Row {
        name,
        unit: "inputs/s",
        ours: n as f64 / median(&mut on).as_secs_f64(),
        baseline_name: "the same runtime, no host log".into(),
        baseline: n as f64 / median(&mut off).as_secs_f64(),
        better: Better::Higher,
        target: Some(Target::Ratio(0.90)),
    });
    Ok(())
}
