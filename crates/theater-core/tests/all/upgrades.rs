//! Code upgrades in the runtime, with a native actor whose "code" is a step size: code A adds
//! the input, code B adds twice it and refuses an odd count; code C cannot be loaded.

use async_trait::async_trait;
use serde_json::{Value, json};
use theater_chain::{ChainId, Event, Hash, MemoryStore};
use theater_core::{
    Actor, ActorError, ActorInput, ActorOutput, ActorRuntime, HostCalls, ReplayError,
    RuntimeConfig, RuntimeError, State, Upgraded, replay, resume,
};
use theater_test_support::add;

fn code(name: &str) -> Hash {
    Hash::digest(name.as_bytes())
}

struct Stepper {
    code: Hash,
}

#[async_trait]
impl Actor for Stepper {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Ok(json!(0))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        _: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let (ActorInput::Request { payload, .. } | ActorInput::Message { payload, .. }) = input
        else {
            return Err(ActorError::Failed("requests and messages only".into()));
        };
        let n = payload["add"].as_i64().unwrap_or(0);
        let step = if self.code == code("B") { 2 } else { 1 };
        let next = state.as_i64().unwrap() + n * step;
        Ok((ActorOutput::reply(json!(next)), json!(next)))
    }

    async fn verify_state(&mut self, state: &State) -> Result<(), ActorError> {
        if self.code == code("B") && state.value().as_i64().unwrap() % 2 != 0 {
            return Err(ActorError::Failed("B counts in twos".into()));
        }
        Ok(())
    }

    fn code(&self) -> Option<Hash> {
        Some(self.code)
    }

    async fn switch_code(&mut self, to: Hash) -> Result<(), ActorError> {
        if to == code("C") {
            return Err(ActorError::Failed("C is not here".into()));
        }
        self.code = to;
        Ok(())
    }
}

fn a() -> Stepper {
    Stepper { code: code("A") }
}

fn reply(h: &theater_core::Handled) -> Value {
    match h.result.as_ref().unwrap() {
        ActorOutput::Reply { payload } => payload.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn upgrades_are_checked_recorded_and_replayed_on_each_entrys_code() {
    let chain = Box::new(MemoryStore::new(ChainId::new("stepper").unwrap()));
    // No snapshots: a replay runs through every upgrade entry.
    let config = RuntimeConfig::default().snapshot_every(None);
    let mut rt = ActorRuntime::start(a(), chain, config).await.unwrap();
    assert_eq!(reply(&rt.handle(add(3), vec![]).await.unwrap()), json!(3));
    let len = rt.chain().len();

    // B refuses an odd count; C cannot run: nothing recorded, A still runs.
    for to in [code("B"), code("C")] {
        let e = rt.upgrade(to).await.unwrap_err();
        assert!(matches!(e, RuntimeError::UpgradeRefused(_)), "{e}");
    }
    assert_eq!(rt.chain().len(), len);
    assert_eq!(rt.actor().code(), Some(code("A")));
    assert_eq!(reply(&rt.handle(add(1), vec![]).await.unwrap()), json!(4));

    // Accepted: B from the next input on; asked again, nothing.
    let up = rt.upgrade(code("B")).await.unwrap();
    assert!(
        matches!(up, Upgraded::To { from: Some(f), .. } if f == code("A")),
        "{up:?}"
    );
    assert_eq!(rt.upgrade(code("B")).await.unwrap(), Upgraded::Already);
    assert_eq!(reply(&rt.handle(add(1), vec![]).await.unwrap()), json!(6));
    rt.upgrade(code("A")).await.unwrap();
    assert_eq!(reply(&rt.handle(add(1), vec![]).await.unwrap()), json!(7));

    let chain = rt.chain();
    let init = chain.get(0).unwrap();
    assert_eq!(init.event().code(), Some(code("A")));
    let upgrades: Vec<_> = (0..chain.len())
        .filter_map(|s| match chain.get(s).unwrap().event().clone() {
            Event::Upgrade { code, from } => Some((from, code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        upgrades,
        vec![(Some(code("A")), code("B")), (Some(code("B")), code("A"))]
    );
    // From genesis, each entry on its code (a replay on A alone would diverge at 6).
    let report = replay(&mut a(), chain).await.unwrap();
    assert_eq!(report.state.value(), &json!(7));
    assert_eq!(report.code, Some(code("A")));
    // An actor that cannot run B cannot replay the chain, and says which code it lacks.
    let e = replay(&mut Stuck(a()), chain).await.unwrap_err();
    assert!(
        matches!(&e, ReplayError::CodeUnavailable { code: c, .. } if *c == code("B")),
        "{e}"
    );
}

/// The stepper without its other codes: it runs A only.
struct Stuck(Stepper);

#[async_trait]
impl Actor for Stuck {
    async fn init(&mut self, h: &mut HostCalls) -> Result<Value, ActorError> {
        self.0.init(h).await
    }
    async fn handle_input(
        &mut self,
        i: &ActorInput,
        s: &Value,
        h: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        self.0.handle_input(i, s, h).await
    }
    fn code(&self) -> Option<Hash> {
        self.0.code()
    }
}

#[tokio::test]
async fn a_resume_where_the_chains_code_is_not_at_hand_records_the_code_that_runs() {
    let chain = Box::new(MemoryStore::new(ChainId::new("stepper").unwrap()));
    let mut rt = ActorRuntime::start(a(), chain, RuntimeConfig::default())
        .await
        .unwrap();
    rt.handle(add(2), vec![]).await.unwrap();
    // The upgrade's snapshot is at the head: nothing after it needs B.
    rt.upgrade(code("B")).await.unwrap();
    let (_, chain) = rt.into_parts();
    // An actor that can run B resumes on B: nothing recorded.
    let len = chain.len();
    let rt = ActorRuntime::start(a(), chain, RuntimeConfig::default())
        .await
        .unwrap();
    assert_eq!(rt.chain().len(), len);
    assert_eq!(rt.actor().code(), Some(code("B")));
    let (_, chain) = rt.into_parts();
    // One that cannot takes the actor up on A, and records so.
    let mut rt = ActorRuntime::start(Stuck(a()), chain, RuntimeConfig::default())
        .await
        .unwrap();
    let head = rt.chain().get(rt.chain().len() - 1).unwrap();
    assert!(
        matches!(head.event(), Event::Upgrade { code: c, from: Some(f) } if *c == code("A") && *f == code("B")),
        "{head:?}"
    );
    assert_eq!(reply(&rt.handle(add(1), vec![]).await.unwrap()), json!(3));
    let report = resume(&mut a(), rt.chain()).await.unwrap();
    assert_eq!(report.code, Some(code("A")));
}

#[tokio::test]
async fn retention_prunes_behind_the_newest_snapshot_and_the_chain_still_resumes() {
    use theater_core::{PrunePoint, Retention, prune_point};
    let chain = Box::new(MemoryStore::new(ChainId::new("kept").unwrap()));
    let policy = Retention {
        keep_entries: 25,
        keep_days: None,
    };
    let config = RuntimeConfig::default()
        .snapshot_every(Some(10))
        .snapshot_share(None)
        .retention(policy.clone());
    let mut rt = ActorRuntime::start(a(), chain, config).await.unwrap();
    // Messages from outside any actor: nothing links them to another chain.
    for _ in 0..100 {
        rt.handle(ActorInput::message(json!({"add": 1})), vec![])
            .await
            .unwrap();
    }
    let chain = rt.chain();
    let newest = chain.snapshots().last().unwrap().0;
    let start = chain.start();
    assert!(start > 0, "nothing was pruned: {:?}", chain.snapshots());
    assert!(newest - start >= 25, "kept too little: {start}..{newest}");
    assert!(newest - start < 60, "kept too much: {start}..{newest}");
    assert_eq!(chain.verify().unwrap().entries, chain.len() - start);
    // A resume from what is left reaches the same state.
    let report = resume(&mut a(), chain).await.unwrap();
    assert_eq!(report.state.value(), &json!(100));

    // A request (whose answer the asking actor may refer to) is linked: nothing from it on
    // is ever dropped.
    assert_eq!(theater_core::retention::first_linked(chain).unwrap(), None);
    let linked = rt.handle(add(1), vec![]).await.unwrap().seq;
    assert_eq!(
        theater_core::retention::first_linked(rt.chain()).unwrap(),
        Some(linked)
    );
    for _ in 0..100 {
        rt.handle(ActorInput::message(json!({"add": 1})), vec![])
            .await
            .unwrap();
    }
    assert!(rt.chain().start() <= linked && rt.chain().start() > 0);
    match prune_point(
        rt.chain(),
        &policy,
        Some(linked),
        std::time::SystemTime::now(),
    ) {
        PrunePoint::Nothing(why) => assert!(why.contains("never dropped"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// The default policy (what a manifest without `[retention]` gets) prunes a busy chain, and
/// never past an entry another chain refers to or may refer to (here a request's answer),
/// nor past the newest snapshot's `keep_entries` (so nothing a restart replays goes).
#[tokio::test]
async fn the_default_retention_prunes_but_never_drops_what_another_chain_or_a_restart_needs() {
    use std::time::SystemTime;
    use theater_core::{PrunePoint, Retention, prune_point};
    let policy = Retention::default();
    assert_eq!(policy.keep_entries, 100_000);
    let chain = Box::new(MemoryStore::new(ChainId::new("busy").unwrap()));
    let config = RuntimeConfig::default()
        .snapshot_every(Some(1000))
        .snapshot_share(None)
        .retention(policy.clone());
    let mut rt = ActorRuntime::start(a(), chain, config).await.unwrap();
    let read = || ActorInput::message(json!({"add": 0}));
    for _ in 0..210_000 {
        rt.handle(read(), vec![]).await.unwrap();
    }
    let kept = |rt: &ActorRuntime<_>| {
        let chain = rt.chain();
        (chain.start(), chain.snapshots().last().unwrap().0)
    };
    let (start, newest) = kept(&rt);
    assert!(
        start > 0,
        "the default pruned nothing of {} entries",
        rt.chain().len()
    );
    assert!(newest - start >= policy.keep_entries, "{start}..{newest}");
    // A request: the asker's chain refers to its answer.
    let linked = rt
        .handle(ActorInput::request(json!({"add": 1})), vec![])
        .await
        .unwrap()
        .seq;
    for _ in 0..220_000 {
        rt.handle(read(), vec![]).await.unwrap();
    }
    let (after, newest) = kept(&rt);
    assert!(
        after <= linked,
        "the linked entry {linked} was dropped (start {after})"
    );
    assert!(newest > linked + 2 * policy.keep_entries);
    rt.chain().get(linked).unwrap();
    assert_eq!(
        rt.chain().verify().unwrap().entries,
        rt.chain().len() - after
    );
    let report = resume(&mut a(), rt.chain()).await.unwrap();
    assert_eq!(report.state.value(), &json!(1));
    match prune_point(rt.chain(), &policy, Some(linked), SystemTime::now()) {
        PrunePoint::Nothing(why) => assert!(why.contains("never dropped"), "{why}"),
        other => panic!("{other:?}"),
    }
}
