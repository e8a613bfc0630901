//! Messaging between actors, and verification of the links between their chains.

use serde_json::json;
use theater_chain::{ChainStore, Event, MemoryStore, NewEntry, Payload};
use theater_core::{ActorConfig, ActorInput, ActorOutput, CallError, replay};
use theater_msg::{Registry, pending_sends, verify_links};
use theater_test_support::id;

use crate::relay::{Relay, dyns, ring, stored_chains, wait_received};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_round_a_ring_and_every_link_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let names = ["r0", "r1", "r2", "r3", "r4"];
    let handles = ring(&registry, dir.path(), &names, ActorConfig::default()).await;
    // Three tokens, 20 hops each: 63 messages in all.
    for start in ["r0", "r2", "r3"] {
        let out = handles[0]
            .call(ActorInput::request(
                json!({"send": start, "msg": {"hops": 20}}),
            ))
            .await
            .unwrap();
        assert_eq!(out.output, ActorOutput::reply(json!("sent")));
    }
    assert_eq!(wait_received(&handles, 63).await, 63);
    let chains = stored_chains(dir.path(), &handles).await;
    for c in &chains {
        c.verify().unwrap();
    }
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
    // Every received message names the entry that sent it.
    let received: usize = chains
        .iter()
        .map(|c| {
            (0..c.len())
                .filter(|&s| {
                    let e = c.get(s).unwrap();
                    matches!(e.event(), Event::Input { input, .. } if input.json["type"] == "message")
                        && e.refs().len() == 1
                })
                .count()
        })
        .sum();
    assert_eq!(received, 63);
    // Each chain replays on its own: sends are recorded, no other actor is needed...
    let lonely = Registry::new();
    for (i, c) in chains.iter().enumerate() {
        let mut relay = Relay {
            messenger: lonely.messenger(c.id().clone()),
            next: Some(names[(i + 1) % names.len()].into()),
        };
        replay(&mut relay, c).await.unwrap();
    }
    // ...and an actor that would send elsewhere diverges where it first does.
    let mut astray = Relay {
        messenger: lonely.messenger(id("r1")),
        next: Some("elsewhere".into()),
    };
    assert!(replay(&mut astray, &chains[1]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_payload_in_a_rehashed_chain_is_caught_across_chains() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let handles = ring(&registry, dir.path(), &["a", "b"], ActorConfig::default()).await;
    for msg in [json!({"hops": 0, "n": 1}), json!({"hops": 0, "n": 2})] {
        handles[0]
            .call(ActorInput::request(json!({"send": "b", "msg": msg})))
            .await
            .unwrap();
    }
    assert_eq!(wait_received(&handles, 2).await, 2);
    let chains = stored_chains(dir.path(), &handles).await;
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);

    // Rewrite b's chain with the second message's payload changed, every hash recomputed:
    // b's chain verifies alone, the link to a does not.
    let b = &chains[1];
    let mut forged = MemoryStore::new(id("b"));
    let mut changed = None;
    for seq in 0..b.len() {
        let entry = b.get(seq).unwrap();
        let new = match entry.event() {
            Event::Input { input, output } if input.json["payload"]["n"] == 2 => {
                changed = Some(seq);
                let mut json = input.json.clone();
                json["payload"]["n"] = json!(3);
                NewEntry::input(Payload::json(json), output.clone(), entry.state_hash())
                    .with_refs(entry.refs().to_vec())
            }
            _ => NewEntry::from(entry),
        };
        let _ = forged.append(new).unwrap();
    }
    forged.verify().unwrap();
    let problems = verify_links(&[&chains[0], &forged]).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert_eq!((p.chain.as_str(), Some(p.seq)), ("b", changed));
    assert_eq!(p.other.as_str(), "a");
    assert!(p.to_string().contains("no such message"), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_linked_and_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let handles = ring(
        &registry,
        dir.path(),
        &["asker", "answerer"],
        ActorConfig::default(),
    )
    .await;
    let out = handles[0]
        .call(ActorInput::request(
            json!({"ask": "answerer", "msg": {"echo": 42}}),
        ))
        .await
        .unwrap();
    assert_eq!(out.output, ActorOutput::reply(json!(42)));
    let slow = handles[0]
        .call(ActorInput::request(
            json!({"ask": "answerer", "msg": {"echo": 1, "sleep_ms": 300}, "timeout_ms": 20}),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&slow, CallError::Failed { error, .. } if error.contains("no reply")),
        "{slow}"
    );
    let chains = stored_chains(dir.path(), &handles).await;
    // The asker's entry refers to the answering entry; the link verifies.
    let asked = chains[0].get(out.seq).unwrap();
    assert_eq!(asked.refs().len(), 1);
    assert_eq!(asked.refs()[0].chain.as_str(), "answerer");
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
    // Replaying the asker needs no answerer: the reply and the timeout are recorded.
    let mut relay = Relay {
        messenger: Registry::new().messenger(id("asker")),
        next: None,
    };
    replay(&mut relay, &chains[0]).await.unwrap();
}

#[tokio::test]
async fn unknown_and_stopped_targets_are_an_error_to_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let handles = ring(&registry, dir.path(), &["x", "y"], ActorConfig::default()).await;
    let err = handles[0]
        .call(ActorInput::request(json!({"send": "nobody", "msg": 1})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Failed { error, .. } if error.contains("no actor named \"nobody\"")),
        "{err}"
    );
    handles[1].stop().await.unwrap();
    let err = handles[0]
        .call(ActorInput::request(json!({"send": "y", "msg": 1})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Failed { error, .. } if error.contains("not running")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mailbox_pushes_back_without_losing_messages() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let small = ActorConfig::default().mailbox(2).max_batch(1);
    let handles = ring(&registry, dir.path(), &["fast", "slow"], small).await;
    for n in 0..100 {
        handles[0]
            .call(ActorInput::request(
                json!({"send": "slow", "msg": {"hops": 0, "n": n}}),
            ))
            .await
            .unwrap();
    }
    assert_eq!(wait_received(&handles, 100).await, 100);
    let chains = stored_chains(dir.path(), &handles).await;
    // Per-sender FIFO: the slow actor saw 0..100 in order.
    let order: Vec<u64> = (0..chains[1].len())
        .filter_map(|s| match chains[1].get(s).unwrap().event() {
            Event::Input { input, .. } => input.json["payload"]["n"].as_u64(),
            _ => None,
        })
        .collect();
    assert_eq!(order, (0..100).collect::<Vec<u64>>());
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_sending_each_other_bursts_through_small_mailboxes_do_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let small = ActorConfig::default().mailbox(2).max_batch(1);
    let handles = ring(&registry, dir.path(), &["ping", "pong"], small).await;
    // 30 tokens bouncing 40 times each between the two: 30 × 41 messages.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let h = handles[i % 2].clone();
        let to = ["pong", "ping"][i % 2];
        tasks.push(tokio::spawn(async move {
            h.call(ActorInput::request(
                json!({"send": to, "msg": {"hops": 40}}),
            ))
            .await
            .unwrap()
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
        wait_received(&handles, 30 * 41).await
    };
    let got = tokio::time::timeout(std::time::Duration::from_secs(60), all)
        .await
        .expect("the two actors deadlocked");
    assert_eq!(got, 30 * 41);
    let chains = stored_chains(dir.path(), &handles).await;
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_input_sends_nothing_and_nothing_is_pending_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let handles = ring(&registry, dir.path(), &["s", "r"], ActorConfig::default()).await;
    let err = handles[0]
        .call(ActorInput::request(
            json!({"send": "r", "msg": {"hops": 0}, "then_fail": true}),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Failed { .. }), "{err}");
    handles[0]
        .call(ActorInput::request(
            json!({"send": "r", "msg": {"hops": 0}}),
        ))
        .await
        .unwrap();
    assert_eq!(wait_received(&handles, 1).await, 1);
    let chains = stored_chains(dir.path(), &handles).await;
    // The failed entry recorded its send call, but it never happened: not lost, not pending.
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
    assert_eq!(pending_sends(&dyns(&chains)).unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_that_also_made_a_request_links_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let handles = ring(
        &registry,
        dir.path(),
        &["a", "b", "c"],
        ActorConfig::default(),
    )
    .await;
    // b receives a's message and, handling it, asks c: its entry refers to both.
    handles[0]
        .call(ActorInput::request(
            json!({"send": "b", "msg": {"ask": "c"}}),
        ))
        .await
        .unwrap();
    assert_eq!(wait_received(&handles, 1).await, 1);
    let chains = stored_chains(dir.path(), &handles).await;
    let last = chains[1].get(chains[1].len() - 1).unwrap();
    assert_eq!(last.refs().len(), 2, "{:?}", last.refs());
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
    assert_eq!(pending_sends(&dyns(&chains)).unwrap(), vec![]);
    // Without c's chain, the reference to it cannot be checked (and is reported), but b's
    // receipt of a's message still counts: nothing is pending, nothing would be redelivered.
    let without_c = [&chains[0] as &dyn ChainStore, &chains[1]];
    let problems = verify_links(&without_c).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].other.as_str(), "c");
    assert_eq!(pending_sends(&without_c).unwrap(), vec![]);
}

/// A child's genesis refers to its parent's spawning entry: `verify_links` holds it to that,
/// and a reference the genesis got from a request its init made is not taken for a parent.
#[test]
fn a_childs_genesis_must_name_an_entry_that_spawned_it() {
    use theater_chain::{ChainRef, Hash, HostCall};
    use theater_msg::SPAWN_CHILD;
    let state = Hash::digest(b"some state");
    let input = |n: i64| Payload::json(json!({"type": "request", "payload": n}));
    let mut parent = MemoryStore::new(id("parent"));
    parent
        .append(NewEntry::init(Payload::json(json!(0)), state))
        .unwrap();
    let quiet = parent
        .append(NewEntry::input(input(1), Payload::json(json!(null)), state))
        .unwrap();
    let spawning = parent
        .append(
            NewEntry::input(input(2), Payload::json(json!(null)), state).with_host_calls(vec![
                HostCall {
                    name: SPAWN_CHILD.into(),
                    request: Payload::json(json!({"kind": "worker", "name": "child"})),
                    result: Payload::json(json!({"ok": true, "name": "child"})),
                },
            ]),
        )
        .unwrap();
    let child_of = |at: &theater_chain::Appended| {
        let mut child = MemoryStore::new(id("child"));
        child
            .append(
                NewEntry::init(Payload::json(json!(0)), state).with_refs(vec![ChainRef {
                    chain: id("parent"),
                    seq: at.seq,
                    hash: at.hash,
                }]),
            )
            .unwrap();
        child
    };
    let good = child_of(&spawning);
    assert_eq!(verify_links(&[&parent, &good]).unwrap(), vec![]);
    let bad = child_of(&quiet);
    let problems = verify_links(&[&parent, &bad]).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].problem.contains("spawned no child"),
        "{problems:?}"
    );
    assert_eq!((problems[0].other_seq, problems[0].seq), (quiet.seq, 0));

    // The init's request answered by `quiet`: an answer, not a parent.
    let mut asked = MemoryStore::new(id("child"));
    asked
        .append(
            NewEntry::init(Payload::json(json!(0)), state)
                .with_host_calls(vec![HostCall {
                    name: theater_msg::REQUEST.into(),
                    request: Payload::json(json!({"to": "parent", "payload": 1})),
                    result: Payload::json(json!({"reply": null, "chain": "parent",
                        "seq": quiet.seq, "hash": quiet.hash.to_string()})),
                }])
                .with_refs(vec![ChainRef {
                    chain: id("parent"),
                    seq: quiet.seq,
                    hash: quiet.hash,
                }]),
        )
        .unwrap();
    assert_eq!(verify_links(&[&parent, &asked]).unwrap(), vec![]);
}
