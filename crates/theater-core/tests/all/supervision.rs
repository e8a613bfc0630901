//! Supervision: crashes restart the actor from its chain; too many give up, visibly.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use theater_chain::{ChainStore, MemoryStore};
use theater_core::{
    ActorConfig, ActorEvent, ActorInput, ActorStatus, CallError, RestartPolicy, spawn,
};
use theater_test_support::{Crashy, add, id};

fn panic_input() -> ActorInput {
    ActorInput::request(json!({"panic": true}))
}

fn mem() -> Box<dyn ChainStore> {
    Box::new(MemoryStore::new(id("crashy")))
}

#[tokio::test(start_paused = true)]
async fn a_crash_restarts_from_the_chain_with_state_intact() {
    let proto = Crashy::default();
    let factory = {
        let p = proto.clone();
        move || p.make()
    };
    let actor = spawn(factory, mem(), ActorConfig::default()).await.unwrap();
    let mut events = actor.subscribe();
    actor.call(add(5)).await.unwrap();
    let err = actor.call(panic_input()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Crashed { reason, .. } if reason.contains("asked to panic")),
        "{err}"
    );
    // The next call waits for the restart, then sees the state rebuilt from the chain.
    let out = actor.call(add(1)).await.unwrap();
    assert_eq!(out.seq, 2, "the crashing input was never recorded");
    assert_eq!(actor.state().await.unwrap().0, json!({"count": 6}));
    assert_eq!(proto.created.load(Ordering::SeqCst), 2);
    assert!(matches!(
        events.recv().await,
        Ok(ActorEvent::Entry { seq: 1, .. })
    ));
    assert!(matches!(
        events.recv().await,
        Ok(ActorEvent::Restarting { attempt: 1, .. })
    ));
    assert_eq!(
        events.recv().await,
        Ok(ActorEvent::Restarted { attempt: 1 })
    );
    // A fatal error from the actor is a crash too.
    let err = actor
        .call(ActorInput::request(json!({"fatal": true})))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Crashed { .. }));
    assert_eq!(actor.call(add(1)).await.unwrap().seq, 3);
}

#[tokio::test(start_paused = true)]
async fn too_many_crashes_give_up_and_say_why() {
    let policy = RestartPolicy::default()
        .limit(3, Duration::from_secs(60))
        .backoff(Duration::from_millis(100), Duration::from_millis(250));
    let actor = spawn(
        Crashy::default,
        mem(),
        ActorConfig::default().restart(policy),
    )
    .await
    .unwrap();
    let mut events = actor.subscribe();
    for _ in 0..4 {
        let err = actor.call(panic_input()).await.unwrap_err();
        assert!(matches!(
            err,
            CallError::Crashed { .. } | CallError::Stopped { .. }
        ));
    }
    let status = actor.wait_stopped().await;
    let ActorStatus::Failed { reason } = status else {
        panic!("expected the supervisor to give up, got {status:?}");
    };
    assert!(
        reason.contains("gave up after 3 restarts") && reason.contains("asked to panic"),
        "{reason}"
    );
    let mut delays = Vec::new();
    loop {
        match events.recv().await.unwrap() {
            ActorEvent::Restarting { delay, .. } => delays.push(delay),
            ActorEvent::GaveUp { reason: r } => {
                assert_eq!(r, reason);
                break;
            }
            _ => {}
        }
    }
    // Exponential backoff, capped.
    assert_eq!(delays, [100, 200, 250].map(Duration::from_millis).to_vec());
    match actor.call(add(1)).await {
        Err(CallError::Stopped {
            reason: Some(r), ..
        }) => assert_eq!(r, reason),
        other => panic!("expected a stopped error with the reason, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn crashes_outside_the_window_do_not_count() {
    let policy = RestartPolicy::default()
        .limit(1, Duration::from_secs(10))
        .backoff(Duration::from_millis(1), Duration::from_millis(1));
    let actor = spawn(
        Crashy::default,
        mem(),
        ActorConfig::default().restart(policy),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        assert!(actor.call(panic_input()).await.is_err());
        assert_eq!(actor.call(add(1)).await.map(|_| ()), Ok(()));
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
    assert_eq!(actor.status(), ActorStatus::Running);
}

/// A memory chain whose `append`, `sync` or `save_snapshot` can be made to fail.
struct Faulty {
    inner: MemoryStore,
    fail_appends: std::sync::Arc<std::sync::atomic::AtomicBool>,
    fail_sync_after: Option<usize>,
    syncs: usize,
    fail_snapshots: bool,
    /// Commits wait off the actor's loop (as a file chain's fsync does), slowly.
    deferred: bool,
}

impl Faulty {
    fn new() -> Self {
        Faulty {
            inner: MemoryStore::new(id("faulty")),
            fail_appends: Default::default(),
            fail_sync_after: None,
            syncs: 0,
            fail_snapshots: false,
            deferred: false,
        }
    }
}

fn io_error() -> theater_chain::ChainError {
    theater_chain::ChainError::Io {
        path: "faulty".into(),
        source: std::io::Error::other("injected failure"),
    }
}

impl ChainStore for Faulty {
    fn id(&self) -> &theater_chain::ChainId {
        self.inner.id()
    }
    fn start(&self) -> u64 {
        self.inner.start()
    }
    fn anchor(&self) -> Option<theater_chain::Anchor> {
        self.inner.anchor()
    }
    fn head(&self) -> Option<theater_chain::Head> {
        self.inner.head()
    }
    fn append(
        &mut self,
        e: theater_chain::NewEntry,
    ) -> Result<theater_chain::Appended, theater_chain::ChainError> {
        if self.fail_appends.load(Ordering::SeqCst) {
            return Err(io_error());
        }
        self.inner.append(e)
    }
    fn blobs(&self) -> std::sync::Arc<dyn theater_chain::BlobStore> {
        self.inner.blobs()
    }
    fn writes_applied(&self) -> Option<u64> {
        self.inner.writes_applied()
    }
    fn set_writes_applied(&mut self, seq: u64) -> Result<(), theater_chain::ChainError> {
        self.inner.set_writes_applied(seq)
    }
    fn sync(&mut self) -> Result<(), theater_chain::ChainError> {
        self.syncs += 1;
        match self.fail_sync_after {
            Some(n) if self.syncs > n => Err(io_error()),
            _ => self.inner.sync(),
        }
    }
    fn start_sync(
        &mut self,
    ) -> Result<Option<theater_chain::PendingSync>, theater_chain::ChainError> {
        if !self.deferred {
            self.sync()?;
            return Ok(None);
        }
        self.syncs += 1;
        let fail = matches!(self.fail_sync_after, Some(n) if self.syncs > n);
        self.inner.sync()?;
        Ok(Some(Box::new(move || {
            std::thread::sleep(Duration::from_millis(2));
            match fail {
                true => Err(std::io::Error::other("injected failure")),
                false => Ok(()),
            }
        })))
    }
    fn get(&self, seq: u64) -> Result<theater_chain::Entry, theater_chain::ChainError> {
        self.inner.get(seq)
    }
    fn hash_at(&self, seq: u64) -> Result<theater_chain::Hash, theater_chain::ChainError> {
        self.inner.hash_at(seq)
    }
    fn for_each_record_in(
        &self,
        from: u64,
        end: u64,
        f: &mut dyn FnMut(theater_chain::RawRecord<'_>) -> Result<(), theater_chain::ChainError>,
    ) -> Result<(), theater_chain::ChainError> {
        self.inner.for_each_record_in(from, end, f)
    }
    fn save_snapshot(
        &mut self,
        s: &theater_chain::Snapshot,
    ) -> Result<(), theater_chain::ChainError> {
        if self.fail_snapshots {
            return Err(io_error());
        }
        self.inner.save_snapshot(s)
    }
    fn latest_snapshot(
        &self,
    ) -> Result<Option<theater_chain::Snapshot>, theater_chain::ChainError> {
        self.inner.latest_snapshot()
    }
    fn snapshot_at(
        &self,
        seq: u64,
    ) -> Result<Option<theater_chain::Snapshot>, theater_chain::ChainError> {
        self.inner.snapshot_at(seq)
    }
    fn prune_before(&mut self, seq: u64) -> Result<(), theater_chain::ChainError> {
        self.inner.prune_before(seq)
    }
}

#[tokio::test]
async fn a_failed_snapshot_does_not_fail_the_input() {
    let mut chain = Faulty::new();
    chain.fail_snapshots = true;
    let config = ActorConfig::default().runtime(
        theater_core::RuntimeConfig::default()
            .snapshot_every(Some(1))
            .snapshot_share(None),
    );
    let actor = spawn(
        theater_test_support::Counter::default,
        Box::new(chain),
        config,
    )
    .await
    .unwrap();
    for i in 1..=3 {
        assert_eq!(actor.call(add(1)).await.unwrap().seq, i);
    }
    assert_eq!(actor.status(), ActorStatus::Running);
}

#[tokio::test]
async fn a_chain_that_cannot_commit_stops_the_actor_without_acknowledging() {
    let mut chain = Faulty::new();
    chain.fail_sync_after = Some(2); // init's sync and one batch succeed
    let actor = spawn(
        theater_test_support::Counter::default,
        Box::new(chain),
        ActorConfig::default(),
    )
    .await
    .unwrap();
    actor.call(add(1)).await.unwrap();
    let err = actor.call(add(1)).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Crashed { reason, .. } if reason.contains("commit failed")),
        "{err}"
    );
    // No restart on a chain that cannot be written: the supervisor gives up at once.
    match actor.wait_stopped().await {
        ActorStatus::Failed { reason } => assert!(reason.contains("injected failure"), "{reason}"),
        other => panic!("expected the actor to fail, got {other:?}"),
    }
    assert!(matches!(
        actor.state().await,
        Err(CallError::Stopped { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_waiting_off_the_loop_answer_every_input_once_its_wait_is_done() {
    let mut chain = Faulty::new();
    chain.deferred = true;
    let actor = spawn(
        theater_test_support::Counter::default,
        Box::new(chain),
        ActorConfig::default(),
    )
    .await
    .unwrap();
    let mut callers = Vec::new();
    for _ in 0..8 {
        let a = actor.clone();
        callers.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..25 {
                seqs.push(a.call(add(1)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for c in callers {
        seqs.extend(c.await.unwrap());
    }
    seqs.sort_unstable();
    // While one batch waits, the next is handled: every input once, none lost or doubled.
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    let (state, head) = actor.state().await.unwrap();
    assert_eq!(state, serde_json::json!({"count": 200}));
    assert_eq!(head.map(|h| h.seq), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_failing_off_the_loop_acknowledges_nothing_of_its_batch_or_after() {
    let mut chain = Faulty::new();
    chain.deferred = true;
    chain.fail_sync_after = Some(2); // init's sync and one batch succeed
    let actor = spawn(
        theater_test_support::Counter::default,
        Box::new(chain),
        ActorConfig::default(),
    )
    .await
    .unwrap();
    actor.call(add(1)).await.unwrap();
    let mut callers = Vec::new();
    for _ in 0..16 {
        let a = actor.clone();
        callers.push(tokio::spawn(async move { a.call(add(1)).await }));
    }
    for c in callers {
        let answer = c.await.unwrap();
        assert!(
            matches!(
                &answer,
                Err(CallError::Crashed { .. } | CallError::Stopped { .. })
            ),
            "an input after the failed commit was acknowledged: {answer:?}"
        );
    }
    match actor.wait_stopped().await {
        ActorStatus::Failed { reason } => assert!(reason.contains("injected failure"), "{reason}"),
        other => panic!("expected the actor to fail, got {other:?}"),
    }
}

#[tokio::test]
async fn a_change_whose_entry_cannot_be_appended_is_undone() {
    let chain = Faulty::new();
    let fail = chain.fail_appends.clone();
    let mut rt = theater_core::ActorRuntime::start(
        theater_test_support::Counter,
        Box::new(chain),
        theater_core::RuntimeConfig::default(),
    )
    .await
    .unwrap();
    rt.handle(add(2), vec![]).await.unwrap();
    let before = (rt.state().clone(), rt.state_hash());
    fail.store(true, Ordering::SeqCst);
    let err = rt.handle(add(5), vec![]).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    // Not recorded, so not adopted: the state is what the chain says.
    assert_eq!((rt.state().clone(), rt.state_hash()), before);
    assert_eq!(rt.chain().len(), 2);
    assert_eq!(rt.chain().get(1).unwrap().state_hash(), before.1);
    fail.store(false, Ordering::SeqCst);
    rt.handle(add(1), vec![]).await.unwrap();
    assert_eq!(rt.state(), &json!({"count": 3}));
}
