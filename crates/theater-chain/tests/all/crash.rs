//! Crash safety: a writer killed with SIGKILL at random moments never loses an
//! acknowledged entry, and the chain always reopens and verifies.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use theater_chain::{ChainStore, Durability, Entry, FileStore, Hash};

use crate::support::{entry, id};

const CHILD_DIR: &str = "THEATER_CHAIN_CRASH_CHILD_DIR";
const ROUNDS: u64 = 40;
const NONE: u64 = u64::MAX;

fn payload_size(seq: u64) -> usize {
    ((seq * 7919) % 40_000) as usize
}

/// The writer: runs only when re-executed by the test below with `CHILD_DIR` set. Appends
/// with an fsync per entry and prints `ack SEQ` once each append has returned.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let mut store = FileStore::open_or_create(&dir, id("crash"), Durability::EveryEntry)
        .expect("child opens the chain");
    let mut out = std::io::stdout().lock();
    loop {
        let seq = store.len();
        let appended = store
            .append(entry(seq, payload_size(seq)))
            .expect("child appends");
        assert!(appended.durable);
        writeln!(out, "ack {}", appended.seq).expect("stdout");
        out.flush().expect("stdout");
    }
}

/// A small xorshift so the kill moments vary per round without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn acknowledged_entries_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let acked = Arc::new(AtomicU64::new(NONE));
    let mut recoveries = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::clone(&acked);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(seq) = line.strip_prefix("ack ").and_then(|s| s.parse().ok()) {
                    seen.store(seq, Ordering::SeqCst);
                }
            }
        });
        std::thread::sleep(Duration::from_micros(2_000 + next(&mut rng) % 40_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();

        // Killed before it created the chain (creation is atomic: all or nothing), so it
        // cannot have acknowledged anything; on a loaded machine the first round can be that.
        if !dir.path().join("chain.log").exists() {
            assert_eq!(
                acked.load(Ordering::SeqCst),
                NONE,
                "round {round}: acked, no chain"
            );
            continue;
        }
        let store = FileStore::open(dir.path(), Durability::EveryEntry)
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        recoveries += usize::from(store.recovery().is_some());
        let report = store
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: verify failed: {e}"));
        let last_acked = acked.load(Ordering::SeqCst);
        if last_acked != NONE {
            assert!(
                store.len() > last_acked,
                "round {round}: seq {last_acked} was acknowledged but the chain has {} entries",
                store.len()
            );
        }
        // Every stored entry is exactly the one the writer appended.
        let mut parent = Hash::ZERO;
        for seq in 0..store.len() {
            let expected = Entry::new(seq, parent, entry(seq, payload_size(seq))).hash();
            assert_eq!(
                store.hash_at(seq).unwrap(),
                expected,
                "round {round}, seq {seq}"
            );
            parent = expected;
        }
        assert_eq!(report.entries, store.len());
    }
    assert!(
        acked.load(Ordering::SeqCst) != NONE,
        "the writer never acknowledged anything"
    );
    eprintln!(
        "{ROUNDS} kills, {} entries, {recoveries} torn tails cut on reopen",
        acked.load(Ordering::SeqCst)
    );
}
