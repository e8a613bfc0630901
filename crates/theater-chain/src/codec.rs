//! The canonical, versioned byte encoding of an entry (format versions 1 and 2).
//!
//! All integers are little-endian; `bytes` is a `u32` length then the raw bytes; `str` is
//! `bytes` holding UTF-8; `payload` is `bytes` of canonical JSON then `bytes` of binary data.
//!
//! ```text
//! u8        version: 1 (state hash over canonical JSON) or 2 (structural state hash);
//!           the rest of the layout is the same
//! u64       seq
//! [u8; 32]  parent hash
//! [u8; 32]  state hash
//! u32       number of refs, then each: str chain id, u64 seq, [u8; 32] hash
//! u8        event tag: 0 init {payload params}            (the code not recorded)
//!                      1 input {payload input, payload output}
//!                      2 failed {payload input, str error}
//!                      3 init {[u8; 32] code, payload params}
//!                      4 upgrade {[u8; 32] code, u8 0 | 1 then [u8; 32] from}
//!                      5 read {payload input, [u8; 32] output digest}
//! u32       number of host calls, then each: str name, payload request, payload result
//! ```
//!
//! The fixed-position header (version, seq, parent, state hash) lets a verifier check
//! links without decoding payloads; refs come before the event for the same reason.

use serde_json::Value;

use crate::canonical::write_json;
use crate::{ChainId, ChainRef, Entry, Event, Hash, HostCall, Payload};

/// The encoding version written by this crate.
pub const FORMAT_VERSION: u8 = 2;

/// The oldest encoding version this crate still reads.
pub const MIN_FORMAT_VERSION: u8 = 1;

/// Bytes of the fixed header: version, seq, parent, state hash.
pub(crate) const HEADER_LEN: usize = 1 + 8 + 32 + 32;

/// An encoded entry could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end before the entry does.
    #[error("entry ends early: needed {needed} more bytes at byte {at}")]
    Truncated {
        /// Where the missing bytes start.
        at: usize,
        /// How many were needed.
        needed: usize,
    },
    /// The version byte is not one this crate reads.
    #[error("unknown entry format version {0}")]
    Version(u8),
    /// The event tag is unknown.
    #[error("unknown event tag {0}")]
    EventTag(u8),
    /// A string is not valid UTF-8 or a chain id is invalid.
    #[error("invalid text at byte {0}")]
    Text(usize),
    /// A JSON part does not parse.
    #[error("invalid JSON at byte {at}: {message}")]
    Json {
        /// Where the JSON starts.
        at: usize,
        /// The parser's complaint.
        message: String,
    },
    /// Bytes remain after the entry.
    #[error("{0} unexpected bytes after the entry")]
    Trailing(usize),
}

/// Encodes `entry` canonically.
pub(crate) fn encode(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + approx_payload_len(&entry.event));
    encode_into(entry, &mut out);
    out
}

/// Appends the canonical encoding of `entry` to `out`.
pub(crate) fn encode_into(entry: &Entry, out: &mut Vec<u8>) {
    out.reserve(128 + approx_payload_len(&entry.event));
    let out = &mut *out;
    out.push(entry.version);
    out.extend_from_slice(&entry.seq.to_le_bytes());
    out.extend_from_slice(entry.parent.as_bytes());
    out.extend_from_slice(entry.state_hash.as_bytes());
    put_u32(out, entry.refs.len());
    for r in &entry.refs {
        put_bytes(out, r.chain.as_str().as_bytes());
        out.extend_from_slice(&r.seq.to_le_bytes());
        out.extend_from_slice(r.hash.as_bytes());
    }
    match &entry.event {
        Event::Init { params, code: None } => {
            out.push(0);
            put_payload(out, params);
        }
        Event::Init {
            params,
            code: Some(code),
        } => {
            out.push(3);
            out.extend_from_slice(code.as_bytes());
            put_payload(out, params);
        }
        Event::Upgrade { code, from } => {
            out.push(4);
            out.extend_from_slice(code.as_bytes());
            match from {
                None => out.push(0),
                Some(from) => {
                    out.push(1);
                    out.extend_from_slice(from.as_bytes());
                }
            }
        }
        Event::Input { input, output } => {
            out.push(1);
            put_payload(out, input);
            put_payload(out, output);
        }
        Event::Failed { input, error } => {
            out.push(2);
            put_payload(out, input);
            put_bytes(out, error.as_bytes());
        }
        Event::Read { input, output } => {
            out.push(5);
            put_payload(out, input);
            out.extend_from_slice(output.as_bytes());
        }
    }
    put_u32(out, entry.host_calls.len());
    for c in &entry.host_calls {
        put_bytes(out, c.name.as_bytes());
        put_payload(out, &c.request);
        put_payload(out, &c.result);
    }
}

fn approx_payload_len(event: &Event) -> usize {
    match event {
        Event::Init { params, .. } => params.bytes.len(),
        Event::Upgrade { .. } => 0,
        Event::Input { input, output } => input.bytes.len() + output.bytes.len(),
        Event::Failed { input, error } => input.bytes.len() + error.len(),
        Event::Read { input, .. } => input.bytes.len(),
    }
}

/// Largest encoded entry a store accepts (1 GiB). Any field long enough to overflow a `u32`
/// length makes the whole entry longer than this, so stores reject it before it is written.
pub const MAX_ENTRY_LEN: usize = 1 << 30;

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Truncation only happens for fields over 4 GiB, i.e. entries over MAX_ENTRY_LEN,
    // which every store rejects.
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

pub(crate) fn put_payload(out: &mut Vec<u8>, p: &Payload) {
    // Reserve the length slot, write canonical JSON in place, then fill the slot.
    let slot = out.len();
    out.extend_from_slice(&[0; 4]);
    write_json(&p.json, out);
    let len = (out.len() - slot - 4) as u32; // see put_u32
    out[slot..slot + 4].copy_from_slice(&len.to_le_bytes());
    put_bytes(out, &p.bytes);
}

/// The fixed header of an encoded entry, read without decoding the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) version: u8,
    pub(crate) seq: u64,
    pub(crate) parent: Hash,
    pub(crate) state_hash: Hash,
}

pub(crate) fn decode_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    r.header()
}

/// Whether the entry encoded in `bytes` refers to entries of other chains (read from its
/// fixed-position refs count, nothing decoded); `None` if the bytes are too short.
pub fn has_refs(bytes: &[u8]) -> Option<bool> {
    let count = bytes.get(HEADER_LEN..HEADER_LEN + 4)?;
    Some(count != [0, 0, 0, 0])
}

/// Decodes only the header and the refs (no payloads): what cross-chain checks need.
pub(crate) fn decode_refs(bytes: &[u8]) -> Result<(Header, Vec<ChainRef>), DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let h = r.header()?;
    let refs = r.refs()?;
    Ok((h, refs))
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let h = r.header()?;
    let refs = r.refs()?;
    let event = match r.u8()? {
        0 => Event::Init {
            params: r.payload()?,
            code: None,
        },
        3 => Event::Init {
            code: Some(r.hash()?),
            params: r.payload()?,
        },
        4 => Event::Upgrade {
            code: r.hash()?,
            from: match r.u8()? {
                0 => None,
                1 => Some(r.hash()?),
                flag => return Err(DecodeError::EventTag(flag)),
            },
        },
        1 => Event::Input {
            input: r.payload()?,
            output: r.payload()?,
        },
        2 => Event::Failed {
            input: r.payload()?,
            error: r.string()?,
        },
        5 => Event::Read {
            input: r.payload()?,
            output: r.hash()?,
        },
        tag => return Err(DecodeError::EventTag(tag)),
    };
    let n = r.u32()?;
    let mut host_calls = Vec::with_capacity(n.min(1024) as usize);
    for _ in 0..n {
        host_calls.push(HostCall {
            name: r.string()?,
            request: r.payload()?,
            result: r.payload()?,
        });
    }
    if r.pos != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - r.pos));
    }
    Ok(Entry {
        version: h.version,
        seq: h.seq,
        parent: h.parent,
        state_hash: h.state_hash,
        refs,
        event,
        host_calls,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = self.bytes.len() - self.pos;
        if rest < n {
            return Err(DecodeError::Truncated {
                at: self.pos,
                needed: n - rest,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn hash(&mut self) -> Result<Hash, DecodeError> {
        Ok(Hash::from_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Text(at))
    }

    fn header(&mut self) -> Result<Header, DecodeError> {
        let v = self.u8()?;
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&v) {
            return Err(DecodeError::Version(v));
        }
        Ok(Header {
            version: v,
            seq: self.u64()?,
            parent: self.hash()?,
            state_hash: self.hash()?,
        })
    }

    fn refs(&mut self) -> Result<Vec<ChainRef>, DecodeError> {
        let n = self.u32()?;
        let mut refs = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            let at = self.pos;
            let chain = ChainId::new(self.string()?).map_err(|_| DecodeError::Text(at))?;
            refs.push(ChainRef {
                chain,
                seq: self.u64()?,
                hash: self.hash()?,
            });
        }
        Ok(refs)
    }

    fn payload(&mut self) -> Result<Payload, DecodeError> {
        let at = self.pos;
        let json_bytes = self.bytes()?;
        let json: Value = serde_json::from_slice(json_bytes).map_err(|e| DecodeError::Json {
            at,
            message: e.to_string(),
        })?;
        let bytes = self.bytes()?.to_vec();
        Ok(Payload { json, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewEntry;
    use serde_json::json;

    fn sample() -> Entry {
        let new = NewEntry::input(
            Payload::new(json!({"b": 2, "a": [1.5, "x"]}), b"body".to_vec()),
            Payload::json(json!(null)),
            Hash::digest(b"state"),
        )
        .with_host_calls(vec![HostCall {
            name: "theater:clock/now".into(),
            request: Payload::default(),
            result: Payload::json(json!(1_700_000_000_000u64)),
        }])
        .with_refs(vec![ChainRef {
            chain: ChainId::new("peer").unwrap_or_else(|e| panic!("{e}")),
            seq: 3,
            hash: Hash::digest(b"peer-3"),
        }]);
        Entry::new(7, Hash::digest(b"parent"), new)
    }

    #[test]
    fn round_trips() {
        let e = sample();
        let bytes = e.encode();
        assert_eq!(decode(&bytes), Ok(e.clone()));
        let h = decode_header(&bytes).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!((h.seq, h.parent), (7, e.parent));
        let (_, refs) = decode_refs(&bytes).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(refs, e.refs);
    }

    #[test]
    fn reports_truncation_and_trailing_bytes() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(DecodeError::Trailing(1)));
        let mut v3 = bytes.clone();
        v3[0] = 3;
        assert_eq!(decode(&v3), Err(DecodeError::Version(3)));
        let mut v0 = bytes;
        v0[0] = 0;
        assert_eq!(decode(&v0), Err(DecodeError::Version(0)));
    }

    /// The encoding is a contract with every stored chain: this pins it.
    #[test]
    fn encoding_is_stable() {
        let v1 = Entry::new(
            0,
            Hash::ZERO,
            NewEntry::init(
                Payload::json(json!({"n": 0})),
                Hash::of_json(&json!({"n": 0})),
            )
            .with_version(1),
        );
        assert_eq!(
            v1.hash().to_string(),
            "9014560228adefa400d4a4cda28570d1a95c0177133d1f1353bd0891f163fac9"
        );
        assert_eq!(decode(&v1.encode()).map(|e| e.version()), Ok(1));
        let v2 = Entry::new(
            0,
            Hash::ZERO,
            NewEntry::init(
                Payload::json(json!({"n": 0})),
                Hash::of_state(&json!({"n": 0})),
            ),
        );
        assert_eq!(v2.version(), 2);
        assert_eq!(
            v2.hash().to_string(),
            "642d8d63d2c581e4120b8df3e5f8302ce4b2331d077d9d897d6fad59d37a685b"
        );
    }

    /// Code records: an init with its code (tag 3) and an upgrade (tag 4), laid out as the
    /// module docs say; an init without code is tag 0 as before.
    #[test]
    fn code_records_round_trip_in_their_layout() {
        let code = Hash::digest(b"component v1");
        let next = Hash::digest(b"component v2");
        let tag_at = HEADER_LEN + 4;
        let init = Entry::new(
            0,
            Hash::ZERO,
            NewEntry::init_with_code(Payload::json(json!(0)), code, Hash::of_state(&json!(0))),
        );
        let bytes = init.encode();
        assert_eq!(bytes[tag_at], 3);
        assert_eq!(&bytes[tag_at + 1..tag_at + 33], code.as_bytes());
        assert_eq!(decode(&bytes), Ok(init.clone()));
        assert_eq!(init.event().code(), Some(code));
        for from in [None, Some(code)] {
            let up = Entry::new(
                1,
                init.hash(),
                NewEntry::upgrade(next, from, Hash::of_state(&json!(0))),
            );
            let bytes = up.encode();
            assert_eq!(bytes[tag_at], 4);
            assert_eq!(&bytes[tag_at + 1..tag_at + 33], next.as_bytes());
            assert_eq!(bytes[tag_at + 33], u8::from(from.is_some()));
            assert_eq!(decode(&bytes), Ok(up.clone()));
            assert_eq!(up.event().kind(), "upgrade");
            let mut bad = bytes.clone();
            bad[tag_at + 33] = 2;
            assert_eq!(decode(&bad), Err(DecodeError::EventTag(2)));
        }
        let old = Entry::new(
            0,
            Hash::ZERO,
            NewEntry::init(Payload::json(json!(0)), Hash::of_state(&json!(0))),
        );
        assert_eq!(old.encode()[tag_at], 0);
        assert_eq!(old.event().code(), None);
    }

    /// A read (tag 5): the input's payload, then the output's digest, as the module docs
    /// say; the digest is of the payload's own encoding.
    #[test]
    fn a_read_records_its_outputs_digest_in_its_layout() {
        let tag_at = HEADER_LEN + 4;
        let input = Payload::new(json!({"type": "http_request"}), b"GET".to_vec());
        let output = Payload::new(json!({"status": 200}), b"{\"id\":1}".to_vec());
        let read = Entry::new(
            5,
            Hash::digest(b"parent"),
            NewEntry::read(input.clone(), &output, Hash::of_state(&json!(0))),
        );
        let bytes = read.encode();
        assert_eq!(bytes[tag_at], 5);
        let mut encoded = Vec::new();
        put_payload(&mut encoded, &input);
        assert_eq!(&bytes[tag_at + 1..tag_at + 1 + encoded.len()], encoded);
        assert_eq!(
            &bytes[tag_at + 1 + encoded.len()..][..32],
            output.digest().as_bytes()
        );
        assert_eq!(decode(&bytes), Ok(read.clone()));
        assert_eq!(read.event().kind(), "read");
        assert_eq!(read.event().input(), Some(&input));
        // The digest is of both parts: either one changed changes it.
        let mut other = output.clone();
        other.bytes.push(b' ');
        assert_ne!(other.digest(), output.digest());
        other = output.clone();
        other.json = json!({"status": 201});
        assert_ne!(other.digest(), output.digest());
        assert_eq!(
            Payload::default().digest().to_string(),
            "6f161dd36dbfd03efd7d7919380a3f01cfb43c39634623068cd73d3380286586",
            "the digest of an empty payload (the JSON `null`, no bytes) is pinned"
        );
    }
}
