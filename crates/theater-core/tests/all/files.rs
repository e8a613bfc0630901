//! File calls with real files: staged writes applied once durable, nothing from failed
//! inputs, escapes refused and recorded, large contents beside the entry, replay without the
//! directory, and the repair of a crash between commit and apply.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, Event, FileStore, MemoryStore};
use theater_core::files::{FileGrant, calls};
use theater_core::{
    Actor, ActorError, ActorInput, ActorOutput, ActorRuntime, HostCalls, RuntimeConfig, replay,
};
use theater_test_support::id;

/// Runs a list of file operations per request, answering each one's result. `{"op": "fail"}`
/// fails the input after whatever came before it.
struct Scribe {
    grant: Option<FileGrant>,
}

#[async_trait]
impl Actor for Scribe {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Ok(json!(0))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let ActorInput::Request { payload } = input else {
            return Err(ActorError::Failed("requests only".into()));
        };
        let grant = self.grant.as_ref();
        let mut answers = Vec::new();
        for op in payload.as_array().into_iter().flatten() {
            let path = op["path"].as_str().unwrap_or_default();
            let answer = match op["op"].as_str().unwrap_or_default() {
                "write" => {
                    let text = op["text"].as_str().unwrap_or_default();
                    let size = op["size"].as_u64().unwrap_or(0) as usize;
                    let bytes = if size > 0 {
                        text.as_bytes().repeat(size)
                    } else {
                        text.as_bytes().to_vec()
                    };
                    calls::write(grant, host, path, bytes)?.map(|()| json!("ok"))
                }
                "read" => calls::read(grant, host, path)?
                    .map(|b| json!(String::from_utf8_lossy(&b).into_owned())),
                "stat" => calls::stat(grant, host, path)?.map(|i| json!(i.size)),
                "list" => calls::list(grant, host, path)?
                    .map(|l| json!(l.iter().map(|e| e.name.clone()).collect::<Vec<_>>())),
                "delete" => calls::delete(grant, host, path)?.map(|()| json!("ok")),
                "fail" => return Err(ActorError::Failed("asked to fail".into())),
                other => Err(format!("unknown op {other}")),
            };
            answers.push(answer.unwrap_or_else(|e| json!({"error": e})));
        }
        let count = state.as_u64().unwrap_or(0) + 1;
        Ok((
            ActorOutput::Reply {
                payload: Value::Array(answers),
            },
            json!(count),
        ))
    }

    async fn reapply(
        &mut self,
        entry: &theater_chain::Entry,
        blobs: &dyn theater_chain::BlobStore,
    ) -> Result<(), String> {
        match &self.grant {
            Some(g) => calls::reapply(&g.dir, entry, blobs).map(|_| ()),
            None => Ok(()),
        }
    }
}

fn request(ops: Value) -> ActorInput {
    ActorInput::Request { payload: ops }
}

async fn run(rt: &mut ActorRuntime<Scribe>, ops: Value) -> Result<Vec<Value>, String> {
    let handled = rt.handle(request(ops), vec![]).await.unwrap();
    match handled.result {
        Ok(ActorOutput::Reply {
            payload: Value::Array(a),
        }) => Ok(a),
        Ok(other) => panic!("unexpected output {other:?}"),
        Err(e) => Err(e.to_string()),
    }
}

/// A temporary directory with `data/` (the grant) made and `chain/` (the chain) to be.
fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    std::fs::create_dir(&root).unwrap();
    let chain_dir = tmp.path().join("chain");
    (tmp, root, chain_dir)
}

/// `scribe` started (or resumed) on the file chain in `chain_dir`.
async fn start_on(scribe: Scribe, chain_dir: &Path) -> ActorRuntime<Scribe> {
    ActorRuntime::start(scribe, file_chain(chain_dir), RuntimeConfig::default())
        .await
        .unwrap()
}

fn file_chain(dir: &Path) -> Box<dyn ChainStore> {
    Box::new(
        FileStore::open_or_create(dir, id("scribe"), Durability::Group { max_batch: 64 }).unwrap(),
    )
}

fn scribe(root: &Path) -> Scribe {
    Scribe {
        grant: Some(FileGrant::read_write(root)),
    }
}

#[tokio::test]
async fn writes_are_applied_once_durable_and_failed_inputs_write_nothing() {
    let (tmp, root, chain_dir) = dirs();
    let mut rt = start_on(scribe(&root), &chain_dir).await;

    // The input's own later calls see its write; the disk has it once the input returns.
    let a = run(
        &mut rt,
        json!([
            {"op": "write", "path": "a.txt", "text": "one"},
            {"op": "read", "path": "a.txt"},
            {"op": "stat", "path": "/a.txt"},
            {"op": "write", "path": "sub/dir/b.txt", "text": "deep"},
            {"op": "list", "path": ""},
            {"op": "list", "path": "sub"},
        ]),
    )
    .await
    .unwrap();
    assert_eq!(
        a,
        vec![
            json!("ok"),
            json!("one"),
            json!(3),
            json!("ok"),
            json!(["a.txt", "sub"]),
            json!(["dir"])
        ]
    );
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "one");
    assert_eq!(
        std::fs::read_to_string(root.join("sub/dir/b.txt")).unwrap(),
        "deep"
    );
    assert_eq!(rt.chain().writes_applied(), Some(1));

    // A failed input: its write is recorded as made, but never applied.
    let e = run(
        &mut rt,
        json!([{"op": "write", "path": "c.txt", "text": "lost"}, {"op": "fail"}]),
    )
    .await
    .unwrap_err();
    assert!(e.contains("asked to fail"), "{e}");
    assert!(!root.join("c.txt").exists());

    // Escapes are refused, answered to the actor, and recorded; nothing lands outside.
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "s").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
    std::os::unix::fs::symlink(root.join("a.txt"), root.join("inner-link")).unwrap();
    let refused = run(
        &mut rt,
        json!([
            {"op": "write", "path": "../escaped", "text": "x"},
            {"op": "write", "path": "out/escaped", "text": "x"},
            {"op": "read", "path": "out/secret"},
            {"op": "read", "path": "sub/../../outside/secret"},
            {"op": "delete", "path": "out/secret"},
            {"op": "list", "path": "out"},
            {"op": "write", "path": "inner-link", "text": "x"},
            {"op": "write", "path": "sub", "text": "x"},
            {"op": "write", "path": "a.txt/x", "text": "x"},
            {"op": "write", "path": "", "text": "x"},
            {"op": "delete", "path": "nothing.txt"},
        ]),
    )
    .await
    .unwrap();
    let errors: Vec<String> = refused
        .iter()
        .map(|r| {
            r["error"]
                .as_str()
                .unwrap_or_else(|| panic!("not refused: {r}"))
                .to_string()
        })
        .collect();
    for e in &errors[..6] {
        assert!(e.contains("outside the granted directory"), "{e}");
    }
    assert!(errors[6].contains("symbolic link"), "{}", errors[6]);
    assert!(errors[7].contains("is a directory"), "{}", errors[7]);
    assert!(errors[8].contains("not a directory"), "{}", errors[8]);
    assert!(
        errors[9].contains("granted directory itself"),
        "{}",
        errors[9]
    );
    assert!(errors[10].contains("no file"), "{}", errors[10]);
    assert!(!tmp.path().join("escaped").exists() && !outside.join("escaped").exists());
    assert!(outside.join("secret").exists());
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "one");
    let recorded = rt.chain().get(rt.chain().head().unwrap().seq).unwrap();
    let refusals = recorded
        .host_calls()
        .iter()
        .filter(|c| {
            c.result.json["error"]
                .as_str()
                .is_some_and(|e| e.contains("outside"))
        })
        .count();
    assert_eq!(refusals, 6, "every escape attempt is in the chain");
    // Writing below a path makes it a directory for the rest of the input, even once that
    // file is deleted again; Theater's temporary names are not the actor's.
    let r = run(
        &mut rt,
        json!([
            {"op": "write", "path": "x/y", "text": "1"},
            {"op": "delete", "path": "x/y"},
            {"op": "write", "path": "x", "text": "2"},
            {"op": "write", "path": ".a.txt.theater-tmp", "text": "3"},
        ]),
    )
    .await
    .unwrap();
    assert_eq!(r[1], json!("ok"));
    assert!(
        r[2]["error"].as_str().unwrap().contains("is a directory"),
        "{}",
        r[2]
    );
    assert!(
        r[3]["error"].as_str().unwrap().contains("reserved"),
        "{}",
        r[3]
    );
    assert!(root.join("x").is_dir() && !root.join("x/y").exists());

    // Large contents go beside the entry, by hash.
    let big = run(
        &mut rt,
        json!([{"op": "write", "path": "big.txt", "text": "0123456789abcdef", "size": 10_000}]),
    )
    .await
    .unwrap();
    assert_eq!(big, vec![json!("ok")]);
    let expected = "0123456789abcdef".repeat(10_000);
    assert_eq!(
        std::fs::read_to_string(root.join("big.txt")).unwrap(),
        expected
    );
    let head = rt.chain().head().unwrap();
    let entry = rt.chain().get(head.seq).unwrap();
    let write = &entry.host_calls()[0];
    assert!(write.request.bytes.is_empty(), "contents inside the entry");
    let blob = write.request.json["$blob"].as_str().unwrap();
    assert_eq!(
        blob,
        theater_chain::Hash::digest(expected.as_bytes()).to_string()
    );
    assert!(chain_dir.join("blobs").join(blob).is_file());
    let read = run(&mut rt, json!([{"op": "read", "path": "big.txt"}, {"op": "delete", "path": "a.txt"}, {"op": "read", "path": "a.txt"}]))
        .await
        .unwrap();
    assert_eq!(read[0], json!(expected));
    assert_eq!(read[1], json!("ok"));
    assert!(read[2]["error"].as_str().unwrap().contains("no file"));
    assert!(!root.join("a.txt").exists());

    // A file too large to read at once is refused (stat hashes it as it reads).
    let huge = theater_core::files::MAX_READ_BYTES + 1;
    std::fs::File::create(root.join("huge.bin"))
        .unwrap()
        .set_len(huge)
        .unwrap();
    let r = run(
        &mut rt,
        json!([{"op": "read", "path": "huge.bin"}, {"op": "stat", "path": "huge.bin"}]),
    )
    .await
    .unwrap();
    assert!(
        r[0]["error"].as_str().unwrap().contains("over the"),
        "{}",
        r[0]
    );
    assert_eq!(r[1], json!(huge));

    // A read-only grant refuses writes; no grant refuses everything; both are recorded.
    let state = rt.state().clone();
    let (_, chain) = rt.into_parts();
    drop(chain);
    let mut ro = start_on(
        Scribe {
            grant: Some(FileGrant::read_only(&root)),
        },
        &chain_dir,
    )
    .await;
    assert_eq!(*ro.state(), state);
    let r = run(
        &mut ro,
        json!([{"op": "write", "path": "x", "text": "x"}, {"op": "read", "path": "sub/dir/b.txt"}]),
    )
    .await
    .unwrap();
    assert!(
        r[0]["error"].as_str().unwrap().contains("read-only"),
        "{}",
        r[0]
    );
    assert_eq!(r[1], json!("deep"));
    let (_, chain) = ro.into_parts();
    drop(chain);
    let mut none = start_on(Scribe { grant: None }, &chain_dir).await;
    let r = run(&mut none, json!([{"op": "read", "path": "sub/dir/b.txt"}]))
        .await
        .unwrap();
    assert!(
        r[0]["error"]
            .as_str()
            .unwrap()
            .contains("no directory is granted")
    );
    let live_state = none.state().clone();
    let (_, chain) = none.into_parts();
    drop(chain);

    // Replay needs neither the directory nor a grant; it does need the blobs.
    std::fs::remove_dir_all(&root).unwrap();
    let chain = FileStore::open_read_only(&chain_dir).unwrap();
    let report = replay(&mut Scribe { grant: None }, &chain).await.unwrap();
    assert_eq!(report.state, live_state);
    std::fs::remove_file(chain_dir.join("blobs").join(blob)).unwrap();
    let e = replay(&mut Scribe { grant: None }, &chain)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(blob) && e.contains("missing"), "{e}");
}

#[tokio::test]
async fn a_stop_between_commit_and_apply_is_repaired_at_the_next_start() {
    let (_tmp, root, chain_dir) = dirs();
    let mut rt = start_on(scribe(&root), &chain_dir).await;
    run(
        &mut rt,
        json!([{"op": "write", "path": "keep.txt", "text": "v1"}]),
    )
    .await
    .unwrap();
    run(
        &mut rt,
        json!([
            {"op": "write", "path": "note.txt", "text": "v2"},
            {"op": "write", "path": "big.bin", "text": "z", "size": 40_000},
            {"op": "delete", "path": "keep.txt"},
        ]),
    )
    .await
    .unwrap();
    drop(rt);
    // As if the host died after the entry was durable but before its writes landed.
    std::fs::remove_file(root.join("note.txt")).unwrap();
    std::fs::remove_file(root.join("big.bin")).unwrap();
    std::fs::write(root.join("keep.txt"), "v1").unwrap();
    std::fs::remove_file(chain_dir.join("applied")).unwrap();
    let rt = start_on(scribe(&root), &chain_dir).await;
    assert_eq!(
        std::fs::read_to_string(root.join("note.txt")).unwrap(),
        "v2"
    );
    assert_eq!(
        std::fs::read(root.join("big.bin")).unwrap(),
        vec![b'z'; 40_000]
    );
    assert!(!root.join("keep.txt").exists());
    assert_eq!(rt.chain().writes_applied(), Some(2));
    drop(rt);
    // Once applied, a later start leaves the files alone (an edit made meanwhile stays).
    std::fs::write(root.join("note.txt"), "edited by hand").unwrap();
    let rt = start_on(scribe(&root), &chain_dir).await;
    assert_eq!(
        std::fs::read_to_string(root.join("note.txt")).unwrap(),
        "edited by hand"
    );
    drop(rt);
}

/// One step of the property test: a file op, in an input that may fail.
#[derive(Clone, Debug)]
enum Step {
    Write(usize, String),
    Delete(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4usize, "[a-z]{0,12}").prop_map(|(f, t)| Step::Write(f, t)),
        (0..4usize).prop_map(Step::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever mix of writes, deletes and failing inputs: the directory ends as the
    /// successful inputs alone would leave it, and the chain replays without it.
    #[test]
    fn the_directory_is_what_the_successful_inputs_wrote(
        inputs in prop::collection::vec((prop::collection::vec(step(), 1..4), any::<bool>()), 1..12)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().to_path_buf();
            let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id("prop")));
            let mut actor = ActorRuntime::start(scribe(&root), chain, RuntimeConfig::default()).await.unwrap();
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            for (steps, fails) in &inputs {
                let mut ops = Vec::new();
                let mut staged = model.clone();
                for s in steps {
                    match s {
                        Step::Write(f, t) => {
                            ops.push(json!({"op": "write", "path": format!("f{f}"), "text": t}));
                            staged.insert(format!("f{f}"), t.clone());
                        }
                        Step::Delete(f) => {
                            ops.push(json!({"op": "delete", "path": format!("f{f}")}));
                            staged.remove(&format!("f{f}"));
                        }
                    }
                }
                if *fails {
                    ops.push(json!({"op": "fail"}));
                }
                let result = run(&mut actor, Value::Array(ops)).await;
                prop_assert_eq!(result.is_err(), *fails);
                if !fails {
                    model = staged;
                }
                let mut on_disk = BTreeMap::new();
                for e in std::fs::read_dir(&root).unwrap() {
                    let e = e.unwrap();
                    on_disk.insert(
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read_to_string(e.path()).unwrap(),
                    );
                }
                prop_assert_eq!(&on_disk, &model);
            }
            let live = actor.state().clone();
            let (_, chain) = actor.into_parts();
            let report = replay(&mut Scribe { grant: None }, &*chain).await.unwrap();
            prop_assert_eq!(report.state, live);
            // Every recorded write is there, failed inputs' included (marked by the entry).
            let failed = (0..chain.len())
                .filter(|s| matches!(chain.get(*s).unwrap().event(), Event::Failed { .. }))
                .count();
            prop_assert_eq!(failed, inputs.iter().filter(|(_, f)| *f).count());
            Ok(())
        })?;
    }
}
