//! The structural state hash: a Merkle tree over a JSON value whose shape is a pure function
//! of the value, kept beside it so that a change rehashes only the paths it touched.
//!
//! ```text
//! ref(v)      = 0x00 len c            if v is a scalar whose canonical JSON c is ≤ 32 bytes
//!             | 0x01 H(v)             otherwise
//! H(scalar)   = SHA-256(0x10 c)
//! H(array)    = SHA-256(0x11 u64(len) top)
//!   top       = ref(x₀) … ref(xₙ₋₁)                               when len ≤ 32
//!             = the hashes of the highest level, otherwise: level 1 = SHA-256(0x12 ref(x₃₂ᵢ) …
//!               ref(x₃₂ᵢ₊₃₁)) per run of 32 items, level k+1 = SHA-256(0x13 …) per run of 32
//!               level-k hashes, up to the first level of at most 32 hashes
//! H(object)   = SHA-256(0x16 u64(len) node(members, 0))
//!   node(S,d) = 0x14 (u32(len k) k ref(v))* for (k, v) ∈ S by key bytes   when |S| ≤ 32 or d = 64
//!             = 0x15 SHA-256(node(S₀,d+1)) … SHA-256(node(S₁₅,d+1))     otherwise, where Sᵢ
//!               holds the members whose key's SHA-256 has nibble i at position d
//! ```
//!
//! Integers are little-endian. The value of a state hash does not depend on how the state
//! was reached: the tree a change leaves is the tree built from scratch.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Hash;
use crate::canonical::write_json;

/// Items per chunk of an array level, and members per object bucket.
pub(crate) const FANOUT: usize = 32;
/// Nibbles in a key hash: the deepest object trie level.
const MAX_DEPTH: usize = 64;

const T_SCALAR: u8 = 0x10;
const T_ARRAY: u8 = 0x11;
const T_CHUNK: u8 = 0x12;
const T_LEVEL: u8 = 0x13;
const T_BUCKET: u8 = 0x14;
const T_BRANCH: u8 = 0x15;
const T_OBJECT: u8 = 0x16;

/// How a child appears in its parent's hashed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ref {
    /// A short scalar's canonical bytes.
    Inline { len: u8, bytes: [u8; 32] },
    /// A hash.
    Hash(Hash),
}

impl Ref {
    fn feed(&self, h: &mut Sha256) {
        match self {
            Ref::Inline { len, bytes } => {
                h.update([0x00, *len]);
                h.update(&bytes[..*len as usize]);
            }
            Ref::Hash(hash) => {
                h.update([0x01]);
                h.update(hash.as_bytes());
            }
        }
    }
}

fn finish(h: Sha256) -> Hash {
    Hash::from_bytes(h.finalize().into())
}

/// A node of the hash tree, mirroring one JSON value.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Scalar(Ref),
    Array(Box<ArrayNode>),
    Object(Box<ObjectNode>),
}

impl Node {
    /// Builds the tree of `value` from scratch.
    pub(crate) fn build(value: &Value) -> Node {
        match value {
            Value::Array(items) => {
                let mut node = ArrayNode {
                    items: items.iter().map(Node::build).collect(),
                    levels: Vec::new(),
                    hash: Hash::ZERO,
                };
                node.rehash(0, true);
                Node::Array(Box::new(node))
            }
            Value::Object(map) => {
                let members: Vec<Hashed> = map
                    .iter()
                    .map(|(k, v)| (k.as_str().into(), key_hash(k), Node::build(v)))
                    .collect();
                let mut node = ObjectNode {
                    len: members.len(),
                    root: Trie::build(members, 0),
                    hash: Hash::ZERO,
                };
                node.rehash();
                Node::Object(Box::new(node))
            }
            scalar => {
                let mut c = Vec::with_capacity(16);
                write_json(scalar, &mut c);
                if c.len() <= 32 {
                    let mut bytes = [0u8; 32];
                    bytes[..c.len()].copy_from_slice(&c);
                    Node::Scalar(Ref::Inline {
                        len: c.len() as u8,
                        bytes,
                    })
                } else {
                    let mut h = Sha256::new();
                    h.update([T_SCALAR]);
                    h.update(&c);
                    Node::Scalar(Ref::Hash(finish(h)))
                }
            }
        }
    }

    pub(crate) fn reference(&self) -> Ref {
        match self {
            Node::Scalar(r) => *r,
            Node::Array(a) => Ref::Hash(a.hash),
            Node::Object(o) => Ref::Hash(o.hash),
        }
    }

    /// The node's hash (a short scalar is hashed here; in a parent it is inlined).
    pub(crate) fn hash(&self) -> Hash {
        match self {
            Node::Scalar(Ref::Hash(h)) => *h,
            Node::Scalar(Ref::Inline { len, bytes }) => {
                let mut h = Sha256::new();
                h.update([T_SCALAR]);
                h.update(&bytes[..*len as usize]);
                finish(h)
            }
            Node::Array(a) => a.hash,
            Node::Object(o) => o.hash,
        }
    }
}

/// An array: its items' nodes and the chunk hashes above them.
#[derive(Clone, Debug)]
pub(crate) struct ArrayNode {
    pub(crate) items: Vec<Node>,
    /// `levels[0]`: one hash per 32 items; `levels[k + 1]`: one per 32 of `levels[k]`. Empty
    /// when there are at most 32 items.
    levels: Vec<Vec<Hash>>,
    hash: Hash,
}

impl ArrayNode {
    /// Recomputes the hashes above item `first`: only its chunks, or (`shifted`: items from
    /// `first` on moved, were added or removed) every chunk from there to the end.
    pub(crate) fn rehash(&mut self, first: usize, shifted: bool) {
        let mut len = self.items.len();
        let mut lo = first.min(len);
        let mut hi = if shifted { len } else { (first + 1).min(len) };
        let mut k = 0;
        while len > FANOUT {
            let next = len.div_ceil(FANOUT);
            if self.levels.len() <= k {
                self.levels.push(Vec::new());
            }
            let old = self.levels[k].len();
            self.levels[k].resize(next, Hash::ZERO);
            let clo = (lo / FANOUT).min(old);
            let chi = if shifted || old != next {
                next
            } else {
                (hi.max(lo + 1) - 1) / FANOUT + 1
            };
            for c in clo..chi.min(next) {
                let hash = self.chunk_hash(k, c);
                self.levels[k][c] = hash;
            }
            lo = clo;
            hi = chi;
            len = next;
            k += 1;
        }
        self.levels.truncate(k);
        let mut h = Sha256::new();
        h.update([T_ARRAY]);
        h.update((self.items.len() as u64).to_le_bytes());
        if k == 0 {
            for item in &self.items {
                item.reference().feed(&mut h);
            }
        } else {
            for hash in &self.levels[k - 1] {
                h.update(hash.as_bytes());
            }
        }
        self.hash = finish(h);
    }

    fn chunk_hash(&self, level: usize, c: usize) -> Hash {
        let mut h = Sha256::new();
        if level == 0 {
            h.update([T_CHUNK]);
            let end = ((c + 1) * FANOUT).min(self.items.len());
            for item in &self.items[c * FANOUT..end] {
                item.reference().feed(&mut h);
            }
        } else {
            h.update([T_LEVEL]);
            let below = &self.levels[level - 1];
            let end = ((c + 1) * FANOUT).min(below.len());
            for hash in &below[c * FANOUT..end] {
                h.update(hash.as_bytes());
            }
        }
        finish(h)
    }
}

/// SHA-256 of an object key: where its member sits in the object's trie.
pub(crate) fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn nibble(kh: &[u8; 32], depth: usize) -> usize {
    let b = kh[depth / 2];
    (if depth.is_multiple_of(2) {
        b >> 4
    } else {
        b & 0x0f
    }) as usize
}

/// An object: its members in a trie keyed by the key hashes.
#[derive(Clone, Debug)]
pub(crate) struct ObjectNode {
    len: usize,
    root: Trie,
    hash: Hash,
}

/// A member with its key's hash, while a trie level is built.
type Hashed = (Box<str>, [u8; 32], Node);

#[derive(Clone, Debug)]
struct Member {
    key: Box<str>,
    node: Node,
}

#[derive(Clone, Debug)]
enum Trie {
    /// At most 32 members (or the deepest level), sorted by key bytes.
    Bucket(Vec<Member>),
    /// Sixteen children by the next nibble, the hash of each child's bytes, and how many
    /// members are below.
    Branch {
        children: Box<[Trie; 16]>,
        hashes: Box<[Hash; 16]>,
        count: usize,
    },
}

impl Trie {
    fn build(mut members: Vec<Hashed>, depth: usize) -> Trie {
        if members.len() <= FANOUT || depth >= MAX_DEPTH {
            members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            return Trie::Bucket(
                members
                    .into_iter()
                    .map(|(key, _, node)| Member { key, node })
                    .collect(),
            );
        }
        let count = members.len();
        let mut parts: [Vec<Hashed>; 16] = Default::default();
        for m in members {
            parts[nibble(&m.1, depth)].push(m);
        }
        let children: [Trie; 16] = parts.map(|p| Trie::build(p, depth + 1));
        let hashes = Box::new(std::array::from_fn(|i| children[i].content_hash()));
        Trie::Branch {
            children: Box::new(children),
            hashes,
            count,
        }
    }

    fn count(&self) -> usize {
        match self {
            Trie::Bucket(m) => m.len(),
            Trie::Branch { count, .. } => *count,
        }
    }

    fn feed_content(&self, h: &mut Sha256) {
        match self {
            Trie::Bucket(members) => {
                h.update([T_BUCKET]);
                for m in members {
                    h.update((m.key.len() as u32).to_le_bytes());
                    h.update(m.key.as_bytes());
                    m.node.reference().feed(h);
                }
            }
            Trie::Branch { hashes, .. } => {
                h.update([T_BRANCH]);
                for hash in hashes.iter() {
                    h.update(hash.as_bytes());
                }
            }
        }
    }

    fn content_hash(&self) -> Hash {
        let mut h = Sha256::new();
        self.feed_content(&mut h);
        finish(h)
    }

    /// Runs `f` on the member `key` (if any) and keeps the trie's shape and hashes right for
    /// whatever `f` did to it: changed it, removed it (`None` back) or inserted it.
    fn edit<R>(
        &mut self,
        key: &str,
        kh: &[u8; 32],
        depth: usize,
        f: impl FnOnce(&mut Slot) -> R,
    ) -> R {
        match self {
            Trie::Bucket(members) => {
                let found = members.binary_search_by(|m| (*m.key).cmp(key));
                let mut slot = Slot {
                    node: match found {
                        Ok(i) => Some(std::mem::replace(
                            &mut members[i].node,
                            Node::Scalar(Ref::Hash(Hash::ZERO)),
                        )),
                        Err(_) => None,
                    },
                };
                let r = f(&mut slot);
                match (found, slot.node) {
                    (Ok(i), Some(node)) => members[i].node = node,
                    (Ok(i), None) => {
                        members.remove(i);
                    }
                    (Err(i), Some(node)) => members.insert(
                        i,
                        Member {
                            key: key.into(),
                            node,
                        },
                    ),
                    (Err(_), None) => {}
                }
                if members.len() > FANOUT && depth < MAX_DEPTH {
                    let all = std::mem::take(members)
                        .into_iter()
                        .map(|m| {
                            let kh = key_hash(&m.key);
                            (m.key, kh, m.node)
                        })
                        .collect();
                    *self = Trie::build(all, depth);
                }
                r
            }
            Trie::Branch {
                children,
                hashes,
                count,
            } => {
                let i = nibble(kh, depth);
                let before = children[i].count();
                let r = children[i].edit(key, kh, depth + 1, f);
                let after = children[i].count();
                *count = *count + after - before;
                if *count <= FANOUT {
                    let mut all = Vec::with_capacity(*count);
                    for child in children.iter_mut() {
                        child.drain_into(&mut all);
                    }
                    all.sort_unstable_by(|a, b| a.key.cmp(&b.key));
                    *self = Trie::Bucket(all);
                } else {
                    hashes[i] = children[i].content_hash();
                }
                r
            }
        }
    }

    fn drain_into(&mut self, out: &mut Vec<Member>) {
        match self {
            Trie::Bucket(members) => out.append(members),
            Trie::Branch { children, .. } => {
                for child in children.iter_mut() {
                    child.drain_into(out);
                }
            }
        }
    }
}

/// A member's place during [`ObjectNode::edit`]: `Some` if the member exists (or is to).
pub(crate) struct Slot {
    pub(crate) node: Option<Node>,
}

impl ObjectNode {
    /// Runs `f` on member `key`'s slot, then rehashes the path to it.
    pub(crate) fn edit<R>(&mut self, key: &str, f: impl FnOnce(&mut Slot) -> R) -> R {
        let kh = key_hash(key);
        let before = self.root.count();
        let r = self.root.edit(key, &kh, 0, f);
        self.len = self.len + self.root.count() - before;
        self.rehash();
        r
    }

    fn rehash(&mut self) {
        let mut h = Sha256::new();
        h.update([T_OBJECT]);
        h.update((self.len as u64).to_le_bytes());
        self.root.feed_content(&mut h);
        self.hash = finish(h);
    }
}

/// The structural hash of `value` computed from scratch.
pub(crate) fn hash_of(value: &Value) -> Hash {
    Node::build(value).hash()
}
