//! The host log, checkpoints, bundles and the witness, end to end on real files.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

use std::path::Path;

use theater_audit::{
    AuditError, Bundle, Checkpointer, CosignatureVerifier, HostLog, Key, Leaf, Witness,
    WitnessRefusal, split_view,
};
use theater_chain::{ChainId, Hash};

const ORIGIN: &str = "theater.test/host-1";

/// A log of `n` leaves spread over three actors, each actor's chain linked by parents; the
/// leaf at `forge` (if any) names another entry hash.
fn log_of(dir: &Path, n: u64, forge: Option<u64>) -> HostLog {
    let mut log = HostLog::open(dir).unwrap();
    let actors: Vec<ChainId> = ["counter", "todo", "room-a"]
        .iter()
        .map(|a| ChainId::new(*a).unwrap())
        .collect();
    let mut heads = vec![(0u64, Hash::ZERO); actors.len()];
    for i in 0..n {
        let a = (i % 3) as usize;
        let (seq, parent) = heads[a];
        let mut entry = Hash::digest(format!("{} {seq}", actors[a]).as_bytes());
        if forge == Some(i) {
            entry = Hash::digest(b"forged");
        }
        log.append(&Leaf {
            actor: actors[a].clone(),
            seq,
            entry,
            parent,
        })
        .unwrap();
        heads[a] = (seq + 1, entry);
    }
    log.sync().unwrap();
    log
}

fn key(dir: &Path, name: &str) -> Key {
    Key::load_or_create(&dir.join(format!("{name}.key")), name).unwrap()
}

#[test]
fn every_leaf_is_proved_in_every_tree_and_every_tree_extends_the_ones_before() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 40, None);
    for size in 1..=40 {
        let root = log.root(size).unwrap();
        for index in 0..size {
            let proof = log.prove_inclusion(index, size).unwrap();
            let leaf = log.leaf(index).unwrap();
            tlog_tiles::check_record(&proof, size, root, index, leaf.hash()).unwrap();
            // The path proves that leaf only.
            let other = log.leaf((index + 1) % size).unwrap();
            if size > 1 {
                assert!(tlog_tiles::check_record(&proof, size, root, index, other.hash()).is_err());
            }
        }
        for old in 1..=size {
            let proof = log.prove_consistency(old, size).unwrap();
            let old = theater_audit::Signed {
                size: old,
                root: log.root(old).unwrap(),
            };
            let new = theater_audit::Signed { size, root };
            theater_audit::consistent(old, new, &proof).unwrap();
        }
    }
    // Each actor's leaves are found by (actor, seq).
    let todo = ChainId::new("todo").unwrap();
    assert_eq!(log.find(&todo, 4).unwrap(), Some(13));
    assert_eq!(log.find(&todo, 99).unwrap(), None);
    assert_eq!(log.leaf(13).unwrap().seq, 4);
}

#[test]
fn a_reopened_log_repairs_what_a_crash_leaves_and_has_the_same_roots() {
    let dir = tempfile::tempdir().unwrap();
    let roots: Vec<_> = {
        let mut log = log_of(dir.path(), 100, None);
        let roots = (1..=100).map(|n| log.root(n).unwrap()).collect();
        // Leaves of an actor whose line a crash then loses: cut at the next open.
        for seq in 0..3 {
            log.append(&Leaf {
                actor: ChainId::new("late").unwrap(),
                seq,
                entry: Hash::digest(&[seq as u8]),
                parent: Hash::ZERO,
            })
            .unwrap();
        }
        roots
    };
    let actors = dir.path().join("actors");
    let text = std::fs::read_to_string(&actors).unwrap();
    std::fs::write(&actors, text.strip_suffix("late\n").unwrap()).unwrap();
    let hashes = dir.path().join("hashes");
    let len = std::fs::metadata(&hashes).unwrap().len();
    let want = tlog_tiles::stored_hash_count(100) * 32;
    assert!(len > want);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&hashes)
        .unwrap()
        .set_len(want)
        .unwrap();
    // Hashes not yet written (and part of one), and half of a leaf.
    let len = std::fs::metadata(&hashes).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&hashes)
        .unwrap()
        .set_len(len - 5 * 32 - 7)
        .unwrap();
    let leaves = dir.path().join("leaves");
    let mut bytes = std::fs::read(&leaves).unwrap();
    bytes.extend_from_slice(&[1, 2, 3]);
    std::fs::write(&leaves, bytes).unwrap();
    let log = HostLog::open(dir.path()).unwrap();
    assert_eq!(log.size(), 100);
    assert_eq!(log.repaired().len(), 3, "{:?}", log.repaired());
    assert_eq!(log.head_of(&ChainId::new("late").unwrap()), None);
    for n in 1..=100 {
        assert_eq!(log.root(n).unwrap(), roots[n as usize - 1]);
    }
}

/// RFC 6962's reference tree (the leaves of its test data): the roots of the first 1 to 8
/// leaves, as the tlog primitives compute them.
#[test]
fn tree_hashes_match_the_rfc_6962_reference_vectors() {
    struct Mem(Vec<tlog_tiles::Hash>);
    impl tlog_tiles::HashReader for Mem {
        fn read_hashes(&self, i: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
            Ok(i.iter().map(|&i| self.0[i as usize]).collect())
        }
    }
    let leaves: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let mut mem = Mem(Vec::new());
    for (n, leaf) in leaves.iter().enumerate() {
        let new = tlog_tiles::stored_hashes(n as u64, leaf, &mem).unwrap();
        mem.0.extend(new);
        let root = tlog_tiles::tree_hash(n as u64 + 1, &mem).unwrap();
        let hex: String = root.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, roots[n], "root of {} leaves", n + 1);
    }
}

/// Go's `sumdb/note` test key and note: our keys read Go's signer key, give Go's verifier
/// key, and sign Go's text to Go's exact bytes (Ed25519 is deterministic).
#[test]
fn keys_and_signatures_match_gos_note_test_vectors() {
    let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    let key = Key::from_skey(skey).unwrap();
    assert_eq!(
        key.vkey(),
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    );
    let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    let mut note = signed_note::Note::new(text.as_bytes(), &[]).unwrap();
    note.add_sigs(&[key.signer()]).unwrap();
    let want = format!(
        "{text}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    );
    assert_eq!(String::from_utf8(note.to_bytes()).unwrap(), want);
    // And a checkpoint's text is the C2SP layout: origin, size, base64 root.
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(&dir.path().join("log"), 7, None);
    let mut signer = Checkpointer::open(key, dir.path().join("signed")).unwrap();
    let signed = signer.sign(&log).unwrap();
    let root = log.root(7).unwrap();
    assert!(
        signed.starts_with(&format!("PeterNeumann\n7\n{root}\n\n— PeterNeumann ")),
        "{signed}"
    );
}

#[test]
fn a_bundle_verifies_offline_and_any_changed_byte_fails() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(&dir.path().join("log"), 25, None);
    let key = key(dir.path(), ORIGIN);
    let vkey = key.vkey().to_string();
    let mut signer = Checkpointer::open(key, dir.path().join("signed")).unwrap();
    let checkpoint = signer.sign(&log).unwrap();
    let entry = theater_chain::Entry::new(
        0,
        Hash::ZERO,
        theater_chain::NewEntry::init(
            theater_chain::Payload::json(serde_json::json!(0)),
            Hash::ZERO,
        ),
    );
    // A log whose leaf 0 is that entry, for a bundle holding the entry too.
    let entry_log = {
        let mut l = HostLog::open(dir.path().join("entry-log")).unwrap();
        l.append(&Leaf {
            actor: ChainId::new("counter").unwrap(),
            seq: 0,
            entry: entry.hash(),
            parent: Hash::ZERO,
        })
        .unwrap();
        l
    };
    let mut entry_signer =
        Checkpointer::open(key_named(dir.path()), dir.path().join("signed-2")).unwrap();
    let with_entry = Bundle::prove(
        &entry_log,
        0,
        &entry_signer.sign(&entry_log).unwrap(),
        Some(&entry),
    )
    .unwrap();
    let entry_vkey = entry_signer.vkey().to_string();
    assert_eq!(
        with_entry
            .verify(&entry_vkey, &[], 0)
            .unwrap()
            .entry
            .unwrap(),
        entry
    );
    for index in 0..25 {
        let bundle = Bundle::prove(&log, index, &checkpoint, None).unwrap();
        let v = bundle.verify(&vkey, &[], 0).unwrap();
        assert_eq!((v.origin.as_str(), v.size), (ORIGIN, 25));
    }
    for (bundle, key) in [
        (Bundle::prove(&log, 7, &checkpoint, None).unwrap(), &vkey),
        (with_entry, &entry_vkey),
    ] {
        let json = serde_json::to_vec(&bundle).unwrap();
        for at in 0..json.len() {
            let mut changed = json.clone();
            changed[at] ^= 0x01;
            let outcome = serde_json::from_slice::<Bundle>(&changed)
                .map_err(|e| e.to_string())
                .and_then(|b| b.verify(key, &[], 0).map_err(|e| e.to_string()));
            assert!(
                outcome.is_err(),
                "byte {at} changed ({:?}) and it still verifies",
                String::from_utf8_lossy(&changed[at.saturating_sub(10)..(at + 10).min(json.len())])
            );
        }
    }
    // Another key's verifier refuses it.
    let other = key_named(&dir.path().join("other"));
    let bundle = Bundle::prove(&log, 7, &checkpoint, None).unwrap();
    assert!(matches!(
        bundle.verify(other.vkey(), &[], 0),
        Err(AuditError::Signature(_))
    ));
}

fn key_named(dir: &Path) -> Key {
    Key::load_or_create(&dir.join("k.key"), ORIGIN).unwrap()
}

#[test]
fn a_restart_never_signs_a_size_with_another_root() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(&dir.path().join("log"), 20, None);
    let state = dir.path().join("signed");
    let mut signer = Checkpointer::open(key(dir.path(), ORIGIN), &state).unwrap();
    let first = signer.sign(&log).unwrap();
    drop(signer);
    // After a restart: the same history, extended, is signed; the same size again is the
    // same checkpoint.
    let mut signer = Checkpointer::open(key(dir.path(), ORIGIN), &state).unwrap();
    assert_eq!(signer.sign(&log).unwrap(), first);
    let longer = log_of(&dir.path().join("longer"), 30, None);
    signer.sign(&longer).unwrap();
    // A rewritten history (leaf 5 forged, every hash recomputed) is refused, at the signed
    // size and past it; so is a shorter log.
    for n in [30, 35] {
        let forged = log_of(&dir.path().join(format!("forged-{n}")), n, Some(5));
        let mut signer = Checkpointer::open(key(dir.path(), ORIGIN), &state).unwrap();
        match signer.sign(&forged) {
            Err(AuditError::Equivocation(why)) => assert!(why.contains("another history"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    let mut signer = Checkpointer::open(key(dir.path(), ORIGIN), &state).unwrap();
    assert!(matches!(
        signer.sign(&log),
        Err(AuditError::Equivocation(_))
    ));
    // The state on disk says the last signed size.
    assert_eq!(signer.last().unwrap().size, 30);
    longer.sync().unwrap();
}

#[test]
fn the_witness_cosigns_extensions_only_and_a_rewritten_history_cannot_pass_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log_key = key(dir.path(), ORIGIN);
    let log_vkey = log_key.vkey().to_string();
    let witness = Witness::new(
        key(dir.path(), "witness.test"),
        std::slice::from_ref(&log_vkey),
        dir.path().join("witness"),
    )
    .unwrap();
    let witness_vkey = witness.vkey();
    let mut signer = Checkpointer::open(log_key, dir.path().join("signed")).unwrap();
    let log = log_of(&dir.path().join("log"), 20, None);
    let c20 = signer.sign(&log).unwrap();
    let cosig = witness
        .add_checkpoint(0, &[], c20.as_bytes(), 1_700_000_000)
        .unwrap();
    assert!(cosig.starts_with("— witness.test "), "{cosig}");
    let witnessed = format!("{c20}{cosig}");
    let bundle = Bundle::prove(&log, 4, &witnessed, None).unwrap();
    let v = bundle
        .verify(&log_vkey, std::slice::from_ref(&witness_vkey), 1)
        .unwrap();
    assert_eq!(v.witnesses, ["witness.test"]);
    // Without the cosignature the quorum fails.
    let bare = Bundle::prove(&log, 4, &c20, None).unwrap();
    assert!(matches!(
        bare.verify(&log_vkey, std::slice::from_ref(&witness_vkey), 1),
        Err(AuditError::Signature(_))
    ));
    // The cosignature is C2SP cosignature/v1: it says its time.
    let note = signed_note::Note::from_bytes(witnessed.as_bytes()).unwrap();
    let verifier = CosignatureVerifier::new(&witness_vkey).unwrap();
    let sig = signed_note::Signature::from_bytes(cosig.trim_end().as_bytes()).unwrap();
    assert_eq!(
        verifier.time(note.text(), sig.signature()),
        Some(1_700_000_000)
    );

    // An extension is cosigned, with its consistency proof; a stale old size is a conflict.
    let log30 = log_of(&dir.path().join("log30"), 30, None);
    let c30 = signer.sign(&log30).unwrap();
    let proof = log30.prove_consistency(20, 30).unwrap();
    match witness.add_checkpoint(0, &[], c30.as_bytes(), 1_700_000_100) {
        Err(WitnessRefusal::Conflict {
            claimed: 0,
            known: 20,
        }) => {}
        other => panic!("{other:?}"),
    }
    witness
        .add_checkpoint(20, &proof, c30.as_bytes(), 1_700_000_100)
        .unwrap();

    // A host that rewrites history and re-hashes everything, with its signing state lost,
    // signs a fork: the witness refuses it (after a restart of its own too), and no bundle
    // of the forged log verifies against the witnessed checkpoint.
    let forged = log_of(&dir.path().join("forged"), 40, Some(5));
    std::fs::remove_file(dir.path().join("signed")).unwrap();
    let mut lost = Checkpointer::open(key(dir.path(), ORIGIN), dir.path().join("signed")).unwrap();
    let fork = lost.sign(&forged).unwrap();
    let witness = Witness::new(
        key(dir.path(), "witness.test"),
        std::slice::from_ref(&log_vkey),
        dir.path().join("witness"),
    )
    .unwrap();
    let fake_proof = forged.prove_consistency(30, 40).unwrap();
    match witness.add_checkpoint(30, &fake_proof, fork.as_bytes(), 1_700_000_200) {
        Err(WitnessRefusal::Inconsistent { size: 30, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(witness.last(ORIGIN).unwrap().unwrap().size, 30);
    let forged_bundle = Bundle::prove(&forged, 5, &fork, None).unwrap();
    assert!(
        forged_bundle
            .verify(&log_vkey, std::slice::from_ref(&witness_vkey), 1)
            .is_err()
    );
    let mut grafted = forged_bundle.clone();
    grafted.checkpoint = c30.clone();
    assert!(grafted.verify(&log_vkey, &[], 0).is_err());
    // Two checkpoints of one size with different roots are a split view.
    let fork30 = {
        let f = log_of(&dir.path().join("fork30"), 30, Some(5));
        let mut s =
            Checkpointer::open(key(dir.path(), ORIGIN), dir.path().join("signed-f")).unwrap();
        s.sign(&f).unwrap()
    };
    assert!(
        split_view(&c30, &fork30)
            .unwrap()
            .unwrap()
            .contains("split view")
    );
    assert_eq!(split_view(&c30, &c30).unwrap(), None);
    // A witness key with the log's own name is refused by the verifier: it could stand in
    // for the log.
    let impostor = Witness::new(
        key(&dir.path().join("impostor"), ORIGIN),
        std::slice::from_ref(&log_vkey),
        dir.path().join("impostor-state"),
    )
    .unwrap();
    assert!(matches!(
        bundle.verify(&log_vkey, &[impostor.vkey()], 1),
        Err(AuditError::Key(_))
    ));
    // The same witness twice counts once (refused), and a quorum beyond the keys given too.
    assert!(
        bundle
            .verify(&log_vkey, &[witness_vkey.clone(), witness_vkey.clone()], 2)
            .is_err()
    );
    assert!(
        bundle
            .verify(&log_vkey, std::slice::from_ref(&witness_vkey), 2)
            .is_err()
    );
    // A log the witness does not know is rejected.
    let stranger = Key::load_or_create(&dir.path().join("stranger.key"), "stranger.test").unwrap();
    let mut s = Checkpointer::open(stranger, dir.path().join("signed-s")).unwrap();
    let c = s.sign(&log).unwrap();
    assert!(matches!(
        witness.add_checkpoint(0, &[], c.as_bytes(), 0),
        Err(WitnessRefusal::Rejected(_))
    ));
}

#[test]
fn a_key_file_is_private_and_one_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.key");
    let key = Key::load_or_create(&path, ORIGIN).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        Key::load_or_create(&path, ORIGIN).unwrap().vkey(),
        key.vkey()
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Key::load_or_create(&path, ORIGIN).unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    assert!(Key::generate("has space").is_err());
    assert!(Key::generate("has+plus").is_err());
}

/// A wrapped chain's committed entries become leaves, in order, with their parents; entries
/// that became durable without their leaves (a store dropped before its sync logged them)
/// are logged when the chain is next wrapped.
#[test]
fn committed_entries_become_leaves_and_a_reopened_chain_catches_up() {
    use theater_audit::Auditor;
    use theater_chain::{ChainStore, Durability, FileStore, MemoryStore, NewEntry, Payload};
    let dir = tempfile::tempdir().unwrap();
    let auditor = Auditor::open(dir.path().join("log")).unwrap();
    let entry = |n: u64| {
        NewEntry::input(
            Payload::json(serde_json::json!(n)),
            Payload::default(),
            Hash::ZERO,
        )
    };
    // Every append durable (memory): leaves gathered, all in after a sync.
    let mut memory = auditor
        .wrap(Box::new(MemoryStore::new(ChainId::new("memory").unwrap())))
        .unwrap();
    for n in 0..100 {
        memory.append(entry(n)).unwrap();
    }
    memory.sync().unwrap();
    // Group commit (file): logged at the sync only.
    let chain_dir = dir.path().join("chain");
    let open = || {
        FileStore::open_or_create(
            &chain_dir,
            ChainId::new("file").unwrap(),
            Durability::Group { max_batch: 64 },
        )
        .unwrap()
    };
    let mut file = auditor.wrap(Box::new(open())).unwrap();
    for n in 0..10 {
        file.append(entry(n)).unwrap();
    }
    assert_eq!(
        auditor.log().size(),
        100,
        "nothing of the file chain before its sync"
    );
    file.sync().unwrap();
    for n in 10..15 {
        file.append(entry(n)).unwrap();
    }
    drop(file); // its store commits the last five; no leaves for them yet
    assert_eq!(auditor.log().size(), 110);
    let file = auditor.wrap(Box::new(open())).unwrap();
    let log = auditor.log();
    assert_eq!(log.size(), 115);
    let mut expected_parent = Hash::ZERO;
    let mut next = 0;
    for i in 0..log.size() {
        let leaf = log.leaf(i).unwrap();
        if leaf.actor.as_str() == "file" {
            assert_eq!(leaf.seq, next);
            assert_eq!(leaf.entry, file.hash_at(leaf.seq).unwrap());
            assert_eq!(leaf.parent, expected_parent);
            expected_parent = leaf.entry;
            next += 1;
        } else {
            assert_eq!(leaf.entry, memory.hash_at(leaf.seq).unwrap());
        }
    }
    assert_eq!(next, 15);
}
