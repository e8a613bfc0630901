//! An actor's state with its structural hash, and the changes an input makes to it.
//!
//! [`State`] keeps a JSON value together with a hash tree over it (see [`StateScheme::Tree`]
//! for its definition), so that applying a [`Patch`] costs in proportion to the paths it
//! touches, not to the size of the state. The hash is a pure function of the value: a state
//! reached by any sequence of patches hashes like the same value built from scratch.
//!
//! ```
//! use serde_json::json;
//! use theater_chain::state::{Patch, State};
//!
//! let mut state = State::new(json!({"todos": {"1": {"title": "milk"}}, "next": 2}));
//! let patch = Patch::from_json(&json!([
//!     {"op": "add", "path": "/todos/2", "value": {"title": "eggs"}},
//!     {"op": "replace", "path": "/next", "value": 3},
//! ]))
//! .unwrap();
//! let undo = state.apply(&patch).unwrap();
//! assert_eq!(state.hash(), State::new(state.value().clone()).hash());
//! state.undo(undo);
//! assert_eq!(state.value()["next"], 2);
//! ```

use std::fmt;

use serde_json::Value;

use crate::Hash;

mod tree;

use tree::Node;

/// How an entry's `state_hash` is computed from the state. It is fixed by the entry's format
/// version: chains written before the structural hash keep verifying and replaying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateScheme {
    /// Format version 1: SHA-256 of the state's canonical JSON ([`Hash::of_json`]).
    Flat,
    /// Format version 2: the structural hash ([`Hash::of_state`]): short scalars inline,
    /// arrays in chunks of 32, objects in a 16-way trie by key hash with buckets of up to 32
    /// members (defined in full in the source of `state/tree.rs`).
    Tree,
}

impl StateScheme {
    /// The hash of `value` under this scheme, computed from scratch.
    pub fn hash(self, value: &Value) -> Hash {
        match self {
            StateScheme::Flat => Hash::of_json(value),
            StateScheme::Tree => tree::hash_of(value),
        }
    }

    /// The scheme of entries of format `version`, if it is one this crate reads.
    pub fn of_version(version: u8) -> Option<StateScheme> {
        match version {
            1 => Some(StateScheme::Flat),
            2 => Some(StateScheme::Tree),
            _ => None,
        }
    }
}

impl Hash {
    /// The structural hash of a state ([`StateScheme::Tree`]), computed from scratch.
    pub fn of_state(value: &Value) -> Hash {
        tree::hash_of(value)
    }
}

/// A JSON state and its structural hash, kept up to date as patches are applied.
#[derive(Clone, Debug)]
pub struct State {
    value: Value,
    tree: Node,
}

impl State {
    /// Wraps `value`, hashing it from scratch (O(size)).
    pub fn new(value: Value) -> State {
        let tree = Node::build(&value);
        State { value, tree }
    }

    /// The state.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Gives back the value.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// The structural hash ([`StateScheme::Tree`]).
    pub fn hash(&self) -> Hash {
        self.tree.hash()
    }

    /// Applies `patch` in order. On success returns what undoes it; on error nothing is
    /// changed (the operations already applied are undone) and the error names the
    /// operation.
    pub fn apply(&mut self, patch: &Patch) -> Result<Undo, PatchError> {
        let mut undo = Vec::with_capacity(patch.ops.len());
        for (index, op) in patch.ops.iter().enumerate() {
            match apply_op(&mut self.value, &mut self.tree, op) {
                Ok(inverse) => undo.push(inverse),
                Err(message) => {
                    self.undo(Undo(undo));
                    return Err(PatchError {
                        index,
                        op: op.name(),
                        path: op.path().to_string(),
                        message,
                    });
                }
            }
        }
        Ok(Undo(undo))
    }

    /// Replaces the whole value (O(size)); returns what undoes it.
    pub fn replace(&mut self, value: Value) -> Undo {
        let old = std::mem::replace(self, State::new(value));
        Undo(vec![Op::Replace {
            path: Pointer::root(),
            value: old.value,
        }])
    }

    /// Undoes what [`State::apply`] or [`State::replace`] did (they must have been the last
    /// changes).
    pub fn undo(&mut self, undo: Undo) {
        for op in undo.0.into_iter().rev() {
            let applied = apply_op(&mut self.value, &mut self.tree, &op);
            debug_assert!(applied.is_ok(), "an undo always applies: {applied:?}");
        }
    }
}

impl PartialEq for State {
    fn eq(&self, other: &State) -> bool {
        self.value == other.value
    }
}

impl PartialEq<Value> for State {
    fn eq(&self, other: &Value) -> bool {
        self.value == *other
    }
}

/// Read access to the value (a `State` changes only through [`State::apply`] and
/// [`State::replace`], which keep the hash right).
impl std::ops::Deref for State {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.value
    }
}

/// Undoes a change made to a [`State`].
#[derive(Debug)]
#[must_use = "dropping an Undo keeps the change"]
pub struct Undo(Vec<Op>);

/// A JSON Pointer (RFC 6901), as its unescaped reference tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointer(Vec<String>);

impl Pointer {
    /// The whole document (`""`).
    pub fn root() -> Pointer {
        Pointer(Vec::new())
    }

    /// Parses `"/a/b~1c"`; `~0` is `~` and `~1` is `/`.
    pub fn parse(s: &str) -> Result<Pointer, String> {
        if s.is_empty() {
            return Ok(Pointer::root());
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(format!(
                "{s:?} is not a JSON Pointer (it must be empty or start with /)"
            ));
        };
        rest.split('/')
            .map(|t| {
                let mut out = String::with_capacity(t.len());
                let mut chars = t.chars();
                while let Some(c) = chars.next() {
                    if c == '~' {
                        match chars.next() {
                            Some('0') => out.push('~'),
                            Some('1') => out.push('/'),
                            _ => return Err(format!("{s:?} has a ~ not followed by 0 or 1")),
                        }
                    } else {
                        out.push(c);
                    }
                }
                Ok(out)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Pointer)
    }

    /// The pointer to member or index `token` of this one.
    pub fn push(&mut self, token: impl Into<String>) {
        self.0.push(token.into());
    }

    /// The reference tokens.
    pub fn tokens(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.0 {
            f.write_str("/")?;
            f.write_str(&t.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

/// One operation of a [`Patch`] (the RFC 6902 subset Theater accepts).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Sets an object member (adding or replacing it), inserts into an array at an index
    /// (`-`: at the end), or replaces the whole state (path `""`).
    Add {
        /// Where.
        path: Pointer,
        /// What.
        value: Value,
    },
    /// Removes an object member or an array item, which must exist.
    Remove {
        /// Where.
        path: Pointer,
    },
    /// Replaces an existing value.
    Replace {
        /// Where.
        path: Pointer,
        /// What.
        value: Value,
    },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Add { .. } => "add",
            Op::Remove { .. } => "remove",
            Op::Replace { .. } => "replace",
        }
    }

    fn path(&self) -> &Pointer {
        match self {
            Op::Add { path, .. } | Op::Remove { path } | Op::Replace { path, .. } => path,
        }
    }
}

/// One operation of a patch as its text says it, read without building a JSON value (the
/// common case: a guest's patch, well formed). Only an object reads as one (not an array, as
/// a derived reader would take); other fields are ignored and a repeated one is refused, so
/// what reads here reads the same on the slow path.
struct TextOp {
    op: String,
    path: String,
    /// Present (`null` included) or absent.
    value: Option<Value>,
}

impl<'de> serde::Deserialize<'de> for TextOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        #[derive(serde::Deserialize)]
        #[serde(field_identifier, rename_all = "lowercase")]
        enum Key {
            Op,
            Path,
            Value,
            #[serde(other)]
            Other,
        }
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = TextOp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a patch operation (an object)")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<TextOp, M::Error> {
                let (mut op, mut path, mut value) = (None, None, None);
                while let Some(key) = m.next_key::<Key>()? {
                    match key {
                        Key::Op if op.is_none() => op = Some(m.next_value::<String>()?),
                        Key::Path if path.is_none() => path = Some(m.next_value::<String>()?),
                        Key::Value if value.is_none() => value = Some(m.next_value::<Value>()?),
                        // Read in full, not skipped: skipping does not check what it skips
                        // (bad UTF-8, a number out of range, depth), and a JSON value does.
                        Key::Other => {
                            m.next_value::<Value>()?;
                        }
                        _ => return Err(M::Error::custom("a repeated field")),
                    }
                }
                Ok(TextOp {
                    op: op.ok_or_else(|| M::Error::missing_field("op"))?,
                    path: path.ok_or_else(|| M::Error::missing_field("path"))?,
                    value,
                })
            }
        }
        d.deserialize_map(Fields)
    }
}

/// What an input changed: operations applied in order (RFC 6902 JSON Patch with `add`,
/// `remove` and `replace`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Patch {
    /// The operations.
    pub ops: Vec<Op>,
}

impl Patch {
    /// Parses a JSON Patch document: an array of `{"op", "path", "value"?}` objects.
    pub fn from_json(doc: &Value) -> Result<Patch, String> {
        let Value::Array(items) = doc else {
            return Err("a patch must be a JSON array of operations".into());
        };
        let mut ops = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let field = |name: &str| item.get(name);
            let path = match field("path") {
                Some(Value::String(p)) => {
                    Pointer::parse(p).map_err(|e| format!("operation {i}: {e}"))?
                }
                _ => return Err(format!("operation {i} has no string \"path\"")),
            };
            let value = || {
                field("value")
                    .cloned()
                    .ok_or_else(|| format!("operation {i} has no \"value\""))
            };
            ops.push(match field("op").and_then(Value::as_str) {
                Some("add") => Op::Add {
                    path,
                    value: value()?,
                },
                Some("replace") => Op::Replace {
                    path,
                    value: value()?,
                },
                Some("remove") => Op::Remove { path },
                Some(other) => {
                    return Err(format!(
                        "operation {i}: {other:?} is not supported (use add, remove or replace)"
                    ));
                }
                None => return Err(format!("operation {i} has no string \"op\"")),
            });
        }
        Ok(Patch { ops })
    }

    /// Parses a JSON Patch document from bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Patch, String> {
        // Straight from the text when every operation is well formed; anything else takes
        // the slow path, which says what is wrong (and keeps the last of repeated keys, as
        // a JSON value does).
        if let Ok(ops) = serde_json::from_slice::<Vec<TextOp>>(bytes)
            && let Some(patch) = Patch::from_text_ops(ops)
        {
            return Ok(patch);
        }
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("the patch is not JSON: {e}"))?;
        Patch::from_json(&doc)
    }

    /// The patch `items` make, or `None` if one is not an operation this takes (the slow
    /// path then says why).
    fn from_text_ops(items: Vec<TextOp>) -> Option<Patch> {
        let mut ops = Vec::with_capacity(items.len());
        for item in items {
            let path = Pointer::parse(&item.path).ok()?;
            ops.push(match item.op.as_str() {
                "add" => Op::Add {
                    path,
                    value: item.value?,
                },
                "replace" => Op::Replace {
                    path,
                    value: item.value?,
                },
                "remove" => Op::Remove { path },
                _ => return None,
            });
        }
        Some(Patch { ops })
    }

    /// The JSON Patch document.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.ops
                .iter()
                .map(|op| {
                    let mut m = serde_json::Map::new();
                    m.insert("op".into(), op.name().into());
                    m.insert("path".into(), op.path().to_string().into());
                    if let Op::Add { value, .. } | Op::Replace { value, .. } = op {
                        m.insert("value".into(), value.clone());
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations that turn `old` into `new`: members and items that differ are
    /// replaced, added or removed, recursively. O(size of both).
    pub fn diff(old: &Value, new: &Value) -> Patch {
        let mut ops = Vec::new();
        diff_into(old, new, &mut Pointer::root(), &mut ops);
        Patch { ops }
    }
}

fn diff_into(old: &Value, new: &Value, at: &mut Pointer, ops: &mut Vec<Op>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                at.push(k.clone());
                match b.get(k) {
                    Some(vb) => diff_into(va, vb, at, ops),
                    None => ops.push(Op::Remove { path: at.clone() }),
                }
                at.0.pop();
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    at.push(k.clone());
                    ops.push(Op::Add {
                        path: at.clone(),
                        value: vb.clone(),
                    });
                    at.0.pop();
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let common = a.len().min(b.len());
            for i in 0..common {
                at.push(i.to_string());
                diff_into(&a[i], &b[i], at, ops);
                at.0.pop();
            }
            for (i, item) in b.iter().enumerate().skip(common) {
                at.push(i.to_string());
                ops.push(Op::Add {
                    path: at.clone(),
                    value: item.clone(),
                });
                at.0.pop();
            }
            for i in (common..a.len()).rev() {
                at.push(i.to_string());
                ops.push(Op::Remove { path: at.clone() });
                at.0.pop();
            }
        }
        (a, b) if a == b => {}
        (_, b) => ops.push(Op::Replace {
            path: at.clone(),
            value: b.clone(),
        }),
    }
}

/// A patch did not apply to the state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("operation {index} ({op} {path:?}) does not apply: {message}")]
pub struct PatchError {
    /// The operation's position in the patch.
    pub index: usize,
    /// `add`, `remove` or `replace`.
    pub op: &'static str,
    /// Its path.
    pub path: String,
    /// Why.
    pub message: String,
}

/// Applies `op` to `value` and its tree; returns the operation that undoes it.
fn apply_op(value: &mut Value, tree: &mut Node, op: &Op) -> Result<Op, String> {
    let tokens = op.path().tokens();
    let Some((last, parents)) = tokens.split_last() else {
        return match op {
            Op::Remove { .. } => Err("the whole state cannot be removed".into()),
            Op::Add { value: new, .. } | Op::Replace { value: new, .. } => {
                *tree = Node::build(new);
                let old = std::mem::replace(value, new.clone());
                Ok(Op::Replace {
                    path: Pointer::root(),
                    value: old,
                })
            }
        };
    };
    let path = op.path().clone();
    at(
        value,
        tree,
        parents,
        0,
        move |value: &mut Value, tree: &mut Node| match (value, tree) {
            (Value::Object(map), Node::Object(obj)) => match op {
                Op::Add { value: new, .. } => {
                    let old = map.insert(last.clone(), new.clone());
                    obj.edit(last, |slot| slot.node = Some(Node::build(new)));
                    Ok(match old {
                        Some(old) => Op::Replace { path, value: old },
                        None => Op::Remove { path },
                    })
                }
                Op::Replace { value: new, .. } => {
                    let Some(slot) = map.get_mut(last) else {
                        return Err(format!("there is no member {last:?} to replace"));
                    };
                    let old = std::mem::replace(slot, new.clone());
                    obj.edit(last, |slot| slot.node = Some(Node::build(new)));
                    Ok(Op::Replace { path, value: old })
                }
                Op::Remove { .. } => {
                    let Some(old) = map.remove(last) else {
                        return Err(format!("there is no member {last:?} to remove"));
                    };
                    obj.edit(last, |slot| slot.node = None);
                    Ok(Op::Add { path, value: old })
                }
            },
            (Value::Array(items), Node::Array(arr)) => match op {
                Op::Add { value: new, .. } => {
                    let i = if last == "-" {
                        items.len()
                    } else {
                        index(last, items.len() + 1)?
                    };
                    items.insert(i, new.clone());
                    arr.items.insert(i, Node::build(new));
                    arr.rehash(i, true);
                    let mut path = path;
                    path.0.pop();
                    path.push(i.to_string());
                    Ok(Op::Remove { path })
                }
                Op::Replace { value: new, .. } => {
                    let i = index(last, items.len())?;
                    let old = std::mem::replace(&mut items[i], new.clone());
                    arr.items[i] = Node::build(new);
                    arr.rehash(i, false);
                    Ok(Op::Replace { path, value: old })
                }
                Op::Remove { .. } => {
                    let i = index(last, items.len())?;
                    let old = items.remove(i);
                    arr.items.remove(i);
                    arr.rehash(i, true);
                    Ok(Op::Add { path, value: old })
                }
            },
            (v, _) => Err(format!("the parent is {}, not an object or array", kind(v))),
        },
    )
}

/// Runs `f` on the value (and node) at `path`, then rehashes every node above it.
fn at<F: FnOnce(&mut Value, &mut Node) -> Result<Op, String>>(
    value: &mut Value,
    tree: &mut Node,
    path: &[String],
    depth: usize,
    f: F,
) -> Result<Op, String> {
    let Some((token, rest)) = path.split_first() else {
        return f(value, tree);
    };
    match (value, tree) {
        (Value::Object(map), Node::Object(obj)) => {
            let Some(child) = map.get_mut(token) else {
                return Err(format!("there is no member {token:?} at depth {depth}"));
            };
            obj.edit(token, |slot| match slot.node.as_mut() {
                Some(node) => at(child, node, rest, depth + 1, f),
                None => Err("the hash tree lost a member (a bug)".into()),
            })
        }
        (Value::Array(items), Node::Array(arr)) => {
            let i = index(token, items.len())?;
            let r = at(&mut items[i], &mut arr.items[i], rest, depth + 1, f);
            arr.rehash(i, false);
            r
        }
        (v, _) => Err(format!(
            "{token:?} at depth {depth} is inside {}, not an object or array",
            kind(v)
        )),
    }
}

fn index(token: &str, bound: usize) -> Result<usize, String> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let i = if valid {
        token.parse::<usize>().ok()
    } else {
        None
    };
    match i {
        Some(i) if i < bound => Ok(i),
        Some(i) => Err(format!("index {i} is out of bounds (length {bound})")),
        None => Err(format!("{token:?} is not an array index")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
