//! File calls with real files: staged writes applied once durable, nothing from failed
//! inputs, escapes refused and recorded, large contents beside the entry, replay without the
//! directory, and the repair of a crash between commit and apply.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, Event, FileStore, MemoryStore};
use theater_core::{
    Actor, ActorError, ActorInput, ActorOutput, ActorRuntime, HostCalls, RuntimeConfig, replay,
};
use theater_files::{FileGrant, calls};
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
                // Someone else changing the directory behind the actor's back.
                "outside" if host.is_replaying() => Ok(json!("ok")),
                "outside" => {
                    let root = &self.grant.as_ref().unwrap().dir;
                    std::fs::write(root.join(path), "outside").unwrap();
                    Ok(json!("ok"))
                }
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
        calls::reapply(self.grant.as_ref(), entry, blobs).map(drop)
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

fn read_only_scribe(root: &Path) -> Scribe {
    Scribe {
        grant: Some(FileGrant::read_only(root)),
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
    let huge = theater_files::MAX_READ_BYTES + 1;
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

/// Forgets that the head's writes were applied, as if the host died right after the entry
/// became durable.
fn forget_applied(chain_dir: &Path) {
    std::fs::remove_file(chain_dir.join("applied")).unwrap();
}

#[tokio::test]
async fn a_repair_applies_the_inputs_final_effect_whatever_reached_the_disk() {
    let (_tmp, root, chain_dir) = dirs();
    std::fs::write(root.join("a"), "a file first").unwrap();
    let mut rt = start_on(scribe(&root), &chain_dir).await;
    // A file makes way for a directory within one input.
    let ops = json!([
        {"op": "write", "path": "a", "text": "then replaced"},
        {"op": "delete", "path": "a"},
        {"op": "write", "path": "a/b", "text": "inside"},
        {"op": "write", "path": "c", "text": "one"},
        {"op": "write", "path": "c", "text": "two"},
    ]);
    assert_eq!(run(&mut rt, ops).await.unwrap()[2], json!("ok"));
    drop(rt);
    assert_eq!(std::fs::read_to_string(root.join("a/b")).unwrap(), "inside");
    // Fully applied, mark lost: the repair finds a directory where the input deleted a file.
    forget_applied(&chain_dir);
    drop(start_on(scribe(&root), &chain_dir).await);
    // Half applied (the old file still there, nothing written yet), mark lost.
    std::fs::remove_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("a"), "a file first").unwrap();
    std::fs::remove_file(root.join("c")).unwrap();
    forget_applied(&chain_dir);
    let rt = start_on(scribe(&root), &chain_dir).await;
    assert_eq!(std::fs::read_to_string(root.join("a/b")).unwrap(), "inside");
    assert_eq!(std::fs::read_to_string(root.join("c")).unwrap(), "two");
    assert_eq!(rt.chain().writes_applied(), Some(1));
}

#[tokio::test]
async fn a_write_past_a_deleted_file_is_checked_whole_and_listed_as_applied() {
    let (_tmp, root, chain_dir) = dirs();
    std::fs::write(root.join("a"), "a file").unwrap();
    let mut rt = start_on(scribe(&root), &chain_dir).await;
    let too_long = format!("a/{}", "n".repeat(theater_files::MAX_NAME_BYTES + 1));
    let answers = run(
        &mut rt,
        json!([
            {"op": "delete", "path": "a"},
            {"op": "write", "path": too_long, "text": "x"},
            {"op": "write", "path": "a/.0123456789abcdef.theater-tmp", "text": "x"},
            {"op": "write", "path": "d/x", "text": "x"},
            {"op": "delete", "path": "d/x"},
            {"op": "list", "path": ""},
        ]),
    )
    .await
    .unwrap();
    assert!(
        answers[1]["error"]
            .as_str()
            .unwrap()
            .contains("over the 255"),
        "{answers:?}"
    );
    assert!(
        answers[2]["error"].as_str().unwrap().contains("reserved"),
        "{answers:?}"
    );
    // What the input listed is what it left on disk: `d` stays, empty.
    assert_eq!(answers[5], json!(["d"]));
    let on_disk: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(on_disk, ["d"]);
    // And the entry can be applied again (nothing in it is refused later).
    drop(rt);
    forget_applied(&chain_dir);
    drop(start_on(scribe(&root), &chain_dir).await);
}

#[tokio::test]
async fn long_names_and_huge_files_are_handled_and_a_lost_grant_stops_the_repair() {
    let (_tmp, root, chain_dir) = dirs();
    let mut rt = start_on(scribe(&root), &chain_dir).await;
    let longest = "n".repeat(theater_files::MAX_NAME_BYTES);
    let too_long = "n".repeat(theater_files::MAX_NAME_BYTES + 1);
    // A sparse file over the read limit: deleting it reads nothing.
    let huge = std::fs::File::create(root.join("huge.bin")).unwrap();
    huge.set_len(theater_files::MAX_READ_BYTES * 4).unwrap();
    let answers = run(
        &mut rt,
        json!([
            {"op": "write", "path": longest, "text": "fits"},
            {"op": "write", "path": too_long, "text": "does not"},
            {"op": "delete", "path": "huge.bin"},
        ]),
    )
    .await
    .unwrap();
    assert_eq!(answers[0], json!("ok"));
    let refused = answers[1]["error"].as_str().unwrap();
    assert!(refused.contains("over the 255"), "{refused}");
    assert_eq!(answers[2], json!("ok"));
    assert_eq!(
        std::fs::read_to_string(root.join(&longest)).unwrap(),
        "fits"
    );
    assert!(!root.join("huge.bin").exists());
    drop(rt);
    // The writes may not have landed, and the manifest no longer grants the directory: the
    // actor does not start (and says why) rather than lose them.
    forget_applied(&chain_dir);
    let e = ActorRuntime::start(
        read_only_scribe(&root),
        file_chain(&chain_dir),
        RuntimeConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("no writable directory is granted"),
        "{e}"
    );
    drop(start_on(scribe(&root), &chain_dir).await);
}

#[tokio::test]
async fn after_a_failed_apply_nothing_is_handled_until_a_restart_applies_it() {
    let (_tmp, root, chain_dir) = dirs();
    let mut rt = start_on(scribe(&root), &chain_dir).await;
    // A file appears where the input's directory must go, after the write was staged.
    let e = rt
        .handle(
            request(json!([
                {"op": "write", "path": "d/x", "text": "mine"},
                {"op": "outside", "path": "d"},
            ])),
            vec![],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, theater_core::RuntimeError::Apply { seq: 1, .. }),
        "{e}"
    );
    // No later input may bury the entry whose writes are missing.
    let e = rt.handle(request(json!([])), vec![]).await.unwrap_err();
    assert!(e.to_string().contains("restart the actor"), "{e}");
    assert_eq!(rt.chain().len(), 2);
    std::fs::remove_file(root.join("d")).unwrap();
    rt.restart(scribe(&root)).await.unwrap();
    assert_eq!(std::fs::read_to_string(root.join("d/x")).unwrap(), "mine");
    assert_eq!(
        run(&mut rt, json!([{"op": "read", "path": "d/x"}]))
            .await
            .unwrap(),
        [json!("mine")]
    );
}

#[tokio::test]
async fn a_refused_large_write_names_no_missing_blob() {
    let (_tmp, root, chain_dir) = dirs();
    let mut rt = start_on(read_only_scribe(&root), &chain_dir).await;
    let answers = run(
        &mut rt,
        json!([{"op": "write", "path": "big.bin", "text": "z", "size": 40_000}]),
    )
    .await
    .unwrap();
    assert!(answers[0]["error"].as_str().unwrap().contains("read-only"));
    let problems = theater_chain::blob::check_blobs(
        rt.chain(),
        &[theater_files::FILES_WRITE, theater_files::FILES_READ],
    )
    .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// One step of the property test: a file op on one of [`PATHS`], in an input that may fail.
#[derive(Clone, Debug)]
enum Step {
    Write(usize, String),
    Delete(usize),
}

/// Paths where files and directories get in each other's way.
const PATHS: [&str; 5] = ["a", "b", "a/x", "a/y", "b/x"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..PATHS.len(), "[a-z]{0,12}").prop_map(|(f, t)| Step::Write(f, t)),
        (0..PATHS.len()).prop_map(Step::Delete),
    ]
}

/// The directory as the model sees it: files with their text, and directories.
#[derive(Clone, Debug, Default, PartialEq)]
struct Tree {
    files: BTreeMap<String, String>,
    dirs: std::collections::BTreeSet<String>,
}

impl Tree {
    /// What a successful op does; `false` if the actor is refused.
    fn apply(&mut self, step: &Step) -> bool {
        match step {
            Step::Write(f, t) => {
                let p = PATHS[*f];
                let parents: Vec<&str> = p.match_indices('/').map(|(i, _)| &p[..i]).collect();
                if self.dirs.contains(p) || parents.iter().any(|q| self.files.contains_key(*q)) {
                    return false;
                }
                self.dirs.extend(parents.iter().map(|q| q.to_string()));
                self.files.insert(p.to_string(), t.clone());
                true
            }
            Step::Delete(f) => self.files.remove(PATHS[*f]).is_some(),
        }
    }

    fn read(root: &Path) -> Tree {
        let mut tree = Tree::default();
        let mut todo = vec![String::new()];
        while let Some(dir) = todo.pop() {
            for e in std::fs::read_dir(root.join(&dir)).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                let rel = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                if e.file_type().unwrap().is_dir() {
                    tree.dirs.insert(rel.clone());
                    todo.push(rel);
                } else {
                    tree.files
                        .insert(rel, std::fs::read_to_string(e.path()).unwrap());
                }
            }
        }
        tree
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever mix of writes, deletes and failing inputs, files and directories in each
    /// other's way: the directory ends as the successful inputs alone would leave it; a
    /// repair of each entry (from the state before it, or after it) ends there too; and the
    /// chain replays without the directory.
    #[test]
    fn the_directory_is_what_the_successful_inputs_wrote(
        inputs in prop::collection::vec((prop::collection::vec(step(), 1..5), any::<bool>()), 1..12)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("live");
            // Always one input behind: where a repair from the state before an entry runs.
            let behind = tmp.path().join("behind");
            std::fs::create_dir(&root).unwrap();
            std::fs::create_dir(&behind).unwrap();
            let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id("prop")));
            let mut actor = ActorRuntime::start(scribe(&root), chain, RuntimeConfig::default()).await.unwrap();
            let mut model = Tree::default();
            for (steps, fails) in &inputs {
                let mut ops = Vec::new();
                let mut staged = model.clone();
                let mut expected = Vec::new();
                for s in steps {
                    ops.push(match s {
                        Step::Write(f, t) => json!({"op": "write", "path": PATHS[*f], "text": t}),
                        Step::Delete(f) => json!({"op": "delete", "path": PATHS[*f]}),
                    });
                    expected.push(staged.apply(s));
                }
                if *fails {
                    ops.push(json!({"op": "fail"}));
                }
                let result = run(&mut actor, Value::Array(ops)).await;
                prop_assert_eq!(result.is_err(), *fails);
                if let Ok(answers) = result {
                    let allowed: Vec<bool> = answers.iter().map(|a| a == "ok").collect();
                    prop_assert_eq!(allowed, expected, "{:?}", answers);
                    model = staged;
                }
                prop_assert_eq!(&Tree::read(&root), &model);
                let head = actor.chain().get(actor.chain().len() - 1).unwrap();
                let blobs = actor.chain().blobs();
                calls::reapply(Some(&FileGrant::read_write(&root)), &head, &*blobs).unwrap();
                prop_assert_eq!(&Tree::read(&root), &model, "repair after the entry");
                calls::reapply(Some(&FileGrant::read_write(&behind)), &head, &*blobs).unwrap();
                prop_assert_eq!(&Tree::read(&behind), &model, "repair from before the entry");
            }
            let live = actor.state().clone();
            let (_, chain) = actor.into_parts();
            let report = replay(&mut Scribe { grant: None }, &*chain).await.unwrap();
            prop_assert_eq!(report.state, live);
            let failed = (0..chain.len())
                .filter(|s| matches!(chain.get(*s).unwrap().event(), Event::Failed { .. }))
                .count();
            prop_assert_eq!(failed, inputs.iter().filter(|(_, f)| *f).count());
            Ok(())
        })?;
    }
}

/// Swaps `root/sub` between a real directory and a link to `outside`, atomically (it is
/// always one or the other), until `stop` is set.
fn swap_links_until(root: &Path, outside: &Path, stop: &std::sync::atomic::AtomicBool) {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    std::os::unix::fs::symlink(outside, root.join("evil")).unwrap();
    let (sub, evil) = (root.join("sub"), root.join("evil"));
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        renameat_with(CWD, &sub, CWD, &evil, RenameFlags::EXCHANGE).unwrap();
        std::thread::yield_now();
    }
}

#[test]
fn links_swapped_in_while_files_are_used_never_lead_outside() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (tmp, root, _) = dirs();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "OUTSIDE").unwrap();
    std::fs::write(outside.join("only-outside"), "").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/secret"), "inside").unwrap();
    let stop = AtomicBool::new(false);
    let (mut read, mut written) = (0, 0);
    /// Stops the swapping however the loop ends (a failed assertion included).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| swap_links_until(&root, &outside, &stop));
        let _stop = Stop(&stop);
        // At least 4000 rounds, and on until both a read and a write got through.
        let mut i = 0;
        while i < 4000 || ((read == 0 || written == 0) && i < 400_000) {
            i += 1;
            if let Ok(bytes) = theater_files::read(&root, "sub/secret") {
                assert_eq!(bytes, b"inside", "read through a swapped-in link");
                read += 1;
            }
            if let Ok(list) = theater_files::list(&root, "sub") {
                assert!(
                    list.iter().all(|e| e.name != "only-outside"),
                    "listed outside"
                );
            }
            if i % 20 == 0 {
                let staged = [(
                    "sub/planted".to_string(),
                    Some(std::sync::Arc::new(b"x".to_vec())),
                )];
                if theater_files::apply(&root, &staged.into_iter().collect()).is_ok() {
                    written += 1;
                }
            }
        }
    });
    assert!(
        !outside.join("planted").exists(),
        "a write went through a swapped-in link"
    );
    assert!(
        read > 0 && written > 0,
        "the race never let anything through ({read} reads, {written} writes)"
    );
}
