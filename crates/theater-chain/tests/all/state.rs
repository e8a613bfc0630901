//! The structural state hash and patches: a state reached by changes hashes like the same
//! state built from scratch; undo restores; diffs apply; bad patches change nothing.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use theater_chain::Hash;
use theater_chain::state::{Op, Patch, Pointer, State, StateScheme};

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::from),
        // Long enough to be hashed rather than inlined in its parent.
        "[a-z]{30,40}".prop_map(Value::from),
    ]
}

/// JSON with objects and arrays big enough to split (over 32 members or items).
fn arb_json() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(3, 400, 80, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..80).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..80)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A change, resolved against the state when it is applied: `walk` picks children on the
/// way down, `kind` the operation.
#[derive(Clone, Debug)]
struct Intent {
    walk: Vec<usize>,
    kind: u8,
    key: String,
    value: Value,
}

fn arb_intent() -> impl Strategy<Value = Intent> {
    (
        prop::collection::vec(any::<usize>(), 0..4),
        0u8..5,
        "[a-z]{1,3}",
        arb_scalar().prop_recursive(1, 8, 4, |inner| {
            prop::collection::vec(inner, 0..4).prop_map(Value::Array)
        }),
    )
        .prop_map(|(walk, kind, key, value)| Intent {
            walk,
            kind,
            key,
            value,
        })
}

/// Turns an intent into an operation that applies to `state`.
fn resolve(state: &Value, intent: &Intent) -> Op {
    let mut path = Pointer::root();
    let mut at = state;
    for &w in &intent.walk {
        let next = match at {
            Value::Object(m) if !m.is_empty() => {
                let (k, v) = m.iter().nth(w % m.len()).unwrap();
                path.push(k.clone());
                v
            }
            Value::Array(a) if !a.is_empty() => {
                path.push((w % a.len()).to_string());
                &a[w % a.len()]
            }
            _ => break,
        };
        at = next;
    }
    let value = intent.value.clone();
    match (at, intent.kind) {
        (Value::Object(_), 0 | 1) => {
            path.push(intent.key.clone());
            Op::Add { path, value }
        }
        (Value::Object(m), 2) if !m.is_empty() => {
            let k = m.keys().nth(intent.walk.len() % m.len()).unwrap().clone();
            path.push(k);
            Op::Remove { path }
        }
        (Value::Array(_), 0) => {
            path.push("-");
            Op::Add { path, value }
        }
        (Value::Array(a), 1) => {
            path.push((intent.key.len() * 7 % (a.len() + 1)).to_string());
            Op::Add { path, value }
        }
        (Value::Array(a), 2) if !a.is_empty() => {
            path.push((intent.key.len() % a.len()).to_string());
            Op::Remove { path }
        }
        _ if path.tokens().is_empty() && intent.kind == 4 => Op::Replace { path, value },
        _ if path.tokens().is_empty() => Op::Add {
            path: Pointer::parse("/x").unwrap(),
            value: json!({}),
        },
        _ => Op::Replace { path, value },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn a_state_reached_by_changes_hashes_like_the_same_state_built_from_scratch(
        start in arb_json(),
        intents in prop::collection::vec(arb_intent(), 1..24),
    ) {
        let mut state = State::new(start);
        prop_assert_eq!(state.hash(), Hash::of_state(state.value()));
        for intent in &intents {
            let before = (state.value().clone(), state.hash());
            let op = resolve(state.value(), intent);
            let patch = Patch { ops: vec![op] };
            match state.apply(&patch) {
                Ok(undo) => {
                    prop_assert_eq!(state.hash(), Hash::of_state(state.value()), "after {:?}", patch);
                    // Undo restores value and hash; redo gets back to the same place.
                    let after = (state.value().clone(), state.hash());
                    state.undo(undo);
                    prop_assert_eq!(&(state.value().clone(), state.hash()), &before);
                    let _redo = state.apply(&patch).unwrap();
                    prop_assert_eq!(&(state.value().clone(), state.hash()), &after);
                }
                Err(_) => {
                    // Only a root-type mismatch can fail here; nothing changed.
                    prop_assert_eq!(&(state.value().clone(), state.hash()), &before);
                }
            }
        }
    }

    #[test]
    fn a_diff_applies_and_reaches_the_target_and_its_hash(a in arb_json(), b in arb_json()) {
        let patch = Patch::diff(&a, &b);
        let mut state = State::new(a.clone());
        let _undo = state.apply(&patch).unwrap();
        prop_assert_eq!(state.value(), &b);
        prop_assert_eq!(state.hash(), Hash::of_state(&b));
        // Through its JSON form too (what crosses the wasm boundary).
        let again = Patch::from_json(&patch.to_json()).unwrap();
        prop_assert_eq!(again, patch);
        prop_assert!(Patch::diff(&a, &a).is_empty());
    }

    #[test]
    fn a_patch_that_does_not_apply_changes_nothing(
        start in arb_json(),
        intents in prop::collection::vec(arb_intent(), 1..6),
    ) {
        let mut state = State::new(start);
        let before = (state.value().clone(), state.hash());
        let mut ops: Vec<Op> = intents.iter().map(|i| resolve(state.value(), i)).collect();
        // The last operation names a member that is not there.
        ops.push(Op::Remove { path: Pointer::parse("/no such member/x").unwrap() });
        let err = state.apply(&Patch { ops }).unwrap_err();
        prop_assert!(err.to_string().contains("does not apply"), "{}", err);
        prop_assert_eq!(&(state.value().clone(), state.hash()), &before);
    }

    #[test]
    fn equal_values_hash_equal_whatever_order_they_were_built_in(
        members in prop::collection::btree_map("[a-z]{1,4}", arb_scalar(), 0..150),
        seed in any::<u64>(),
    ) {
        let whole = Value::Object(members.clone().into_iter().collect());
        // Insert the members one by one in a shuffled order.
        let mut keys: Vec<&String> = members.keys().collect();
        let n = keys.len().max(1) as u64;
        keys.sort_by_key(|k| (Hash::digest(k.as_bytes()).as_bytes()[0] as u64 + seed) % n);
        let mut state = State::new(json!({}));
        for k in keys {
            let mut path = Pointer::root();
            path.push(k.clone());
            let _ = state.apply(&Patch { ops: vec![Op::Add { path, value: members[k].clone() }] }).unwrap();
        }
        prop_assert_eq!(state.hash(), Hash::of_state(&whole));
        // And removing them all again gives the empty object's hash.
        for k in members.keys() {
            let mut path = Pointer::root();
            path.push(k.clone());
            let _ = state.apply(&Patch { ops: vec![Op::Remove { path }] }).unwrap();
        }
        prop_assert_eq!(state.hash(), Hash::of_state(&json!({})));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Arrays long enough for chunks of chunks (2,000 items and more): pushes, pops,
    /// removals and replacements anywhere keep the hash equal to the one built from scratch.
    #[test]
    fn long_arrays_hash_like_the_same_array_built_from_scratch(
        len in 1000usize..2600,
        edits in prop::collection::vec((0u8..4, any::<prop::sample::Index>(), arb_scalar()), 1..40),
    ) {
        let items: Vec<Value> = (0..len).map(|i| json!(i)).collect();
        let mut state = State::new(json!({ "list": items }));
        for (kind, at, value) in edits {
            let n = state["list"].as_array().unwrap().len();
            let mut path = Pointer::parse("/list").unwrap();
            let op = match kind {
                0 => { path.push("-".to_string()); Op::Add { path, value } }
                1 if n > 0 => { path.push(at.index(n).to_string()); Op::Remove { path } }
                2 if n > 0 => { path.push(at.index(n).to_string()); Op::Replace { path, value } }
                _ => { path.push(at.index(n + 1).to_string()); Op::Add { path, value } }
            };
            let _undo = state.apply(&Patch { ops: vec![op] }).unwrap();
            prop_assert_eq!(state.hash(), Hash::of_state(state.value()));
        }
    }
}

#[test]
fn entries_of_a_version_no_reader_knows_are_refused() {
    use theater_chain::{ChainError, ChainId, ChainStore, MemoryStore, NewEntry, Payload};
    let dir = tempfile::tempdir().unwrap();
    let id = ChainId::new("versions").unwrap();
    let stores: Vec<Box<dyn ChainStore>> = vec![
        Box::new(MemoryStore::new(id.clone())),
        Box::new(
            theater_chain::FileStore::create(dir.path(), id, theater_chain::Durability::EveryEntry)
                .unwrap(),
        ),
    ];
    for mut store in stores {
        let entry = || NewEntry::init(Payload::json(json!(1)), Hash::of_state(&json!(1)));
        for bad in [0, theater_chain::FORMAT_VERSION + 1, u8::MAX] {
            let err = store.append(entry().with_version(bad)).unwrap_err();
            assert!(
                matches!(err, ChainError::UnknownVersion { seq: 0, version } if version == bad)
            );
            assert!(
                err.to_string().contains(&format!("format version {bad}")),
                "{err}"
            );
        }
        assert_eq!(store.len(), 0);
        store.append(entry().with_version(1)).unwrap();
        store.append(entry()).unwrap();
        assert_eq!(store.get(0).unwrap().version(), 1);
        assert_eq!(
            store.get(1).unwrap().version(),
            theater_chain::FORMAT_VERSION
        );
    }
}

#[test]
fn different_values_hash_differently() {
    let values = [
        json!(null),
        json!(0),
        json!(0.0),
        json!("0"),
        json!([]),
        json!({}),
        json!([0]),
        json!({"0": 0}),
        json!([[0]]),
        json!("a".repeat(30)),
        json!("a".repeat(31)),
        json!("a".repeat(40)),
        json!((0..33).collect::<Vec<_>>()),
        json!((0..32).collect::<Vec<_>>()),
        json!((0..1025).collect::<Vec<_>>()),
    ];
    let mut seen = std::collections::HashSet::new();
    for v in &values {
        assert!(seen.insert(Hash::of_state(v)), "{v} collides");
        assert!(seen.insert(Hash::of_json(v)), "{v}'s flat hash collides");
    }
}

/// The definition is a contract with every stored chain: this pins it.
#[test]
fn the_structural_hash_is_stable() {
    let big: Map<String, Value> = (0..100)
        .map(|i| {
            (
                format!("k{i}"),
                json!({"id": i, "title": "x".repeat(i % 40)}),
            )
        })
        .collect();
    let state = json!({"n": 1, "list": (0..70).collect::<Vec<_>>(), "big": big});
    assert_eq!(
        Hash::of_state(&state).to_string(),
        "89dd53340c25e633eccbcaafad48db80a9bdf2f7954be1e66c972629308fdffa"
    );
    assert_eq!(StateScheme::Tree.hash(&state), Hash::of_state(&state));
    assert_eq!(StateScheme::Flat.hash(&state), Hash::of_json(&state));
}

#[test]
fn bad_patches_are_named() {
    let mut state = State::new(json!({"a": [1, 2], "s": "x"}));
    let cases = [
        (json!({"op": "add"}), "must be a JSON array"),
        (json!([{"op": "add"}]), "no string \"path\""),
        (
            json!([{"op": "move", "path": "/a", "from": "/s"}]),
            "not supported",
        ),
        (
            json!([{"op": "add", "path": "a", "value": 1}]),
            "not a JSON Pointer",
        ),
        (
            json!([{"op": "add", "path": "/a/~2", "value": 1}]),
            "~ not followed",
        ),
        (json!([{"op": "replace", "path": "/a"}]), "no \"value\""),
    ];
    for (doc, says) in cases {
        let err = Patch::from_json(&doc).unwrap_err();
        assert!(err.contains(says), "{doc}: {err}");
    }
    let apply = |state: &mut State, doc: Value| {
        state
            .apply(&Patch::from_json(&doc).unwrap())
            .unwrap_err()
            .to_string()
    };
    for (doc, says) in [
        (
            json!([{"op": "replace", "path": "/b", "value": 1}]),
            "no member \"b\"",
        ),
        (
            json!([{"op": "add", "path": "/a/3", "value": 1}]),
            "out of bounds",
        ),
        (
            json!([{"op": "remove", "path": "/a/01"}]),
            "not an array index",
        ),
        (
            json!([{"op": "add", "path": "/s/x", "value": 1}]),
            "a string",
        ),
        (json!([{"op": "remove", "path": ""}]), "cannot be removed"),
    ] {
        let err = apply(&mut state, doc.clone());
        assert!(err.contains(says), "{doc}: {err}");
    }
    assert_eq!(state.value(), &json!({"a": [1, 2], "s": "x"}));
}

/// One patch operation as JSON text, well formed or not: an object with some of `op`, `path`
/// and `value` (any may repeat, or be of the wrong type) and an extra field, or not an object.
fn op_text() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        Just("\"add\""),
        Just("\"replace\""),
        Just("\"remove\""),
        Just("\"move\""),
        Just("5"),
        Just("null"),
    ];
    let path = prop_oneof![
        Just("\"/a\""),
        Just("\"/a/0\""),
        Just("\"\""),
        Just("\"x\""),
        Just("\"/a~2\""),
        Just("3"),
    ];
    let value = prop_oneof![
        Just("null"),
        Just("1"),
        Just("\"s\""),
        Just("{\"k\": [1, 2.5]}"),
    ];
    let field = prop_oneof![
        op.prop_map(|v| format!("\"op\": {v}")),
        path.prop_map(|v| format!("\"path\": {v}")),
        value.prop_map(|v| format!("\"value\": {v}")),
        Just("\"from\": \"/b\"".to_string()),
    ];
    prop_oneof![
        8 => proptest::collection::vec(field, 0..5).prop_map(|fs| format!("{{{}}}", fs.join(", "))),
        1 => Just("[\"add\", \"/a\", 1]".to_string()),
        1 => Just("\"add\"".to_string()),
    ]
}

proptest! {
    /// A patch read straight from its text is the patch (or the error) its JSON value gives.
    #[test]
    fn a_patch_read_from_text_is_what_its_json_value_gives(
        ops in proptest::collection::vec(op_text(), 0..4),
        wrap in prop_oneof![8 => Just(true), 1 => Just(false)],
    ) {
        let text = if wrap { format!("[{}]", ops.join(", ")) } else { ops.join(", ") };
        let from_value = serde_json::from_slice::<Value>(text.as_bytes())
            .map_err(|e| format!("the patch is not JSON: {e}"))
            .and_then(|doc| Patch::from_json(&doc));
        prop_assert_eq!(Patch::from_slice(text.as_bytes()), from_value, "{}", text);
    }
}

/// What a JSON value refuses, the patch read from text refuses too, in any field (an unknown
/// one included): bad UTF-8, a lone surrogate, a number out of range, nesting past the limit.
#[test]
fn a_patch_with_bad_json_in_any_field_is_not_json() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for bad in [
        b"\"\\ud800\"".to_vec(),
        b"1e400".to_vec(),
        b"\"\xff\"".to_vec(),
        deep.into_bytes(),
    ] {
        for field in ["x", "value"] {
            let mut text =
                format!("[{{\"op\": \"add\", \"path\": \"/a\", \"{field}\": ").into_bytes();
            text.extend_from_slice(&bad);
            if field == "x" {
                text.extend_from_slice(b", \"value\": 1");
            }
            text.extend_from_slice(b"}]");
            cases.push(text);
        }
    }
    for text in cases {
        let got = Patch::from_slice(&text);
        let err = got.expect_err(&String::from_utf8_lossy(&text));
        assert!(err.starts_with("the patch is not JSON"), "{err}");
    }
}
