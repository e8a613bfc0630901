//! The 32-byte SHA-256 digest used for entries, states and payloads.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 digest. Prints as 64 lowercase hex digits and parses back from them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The all-zero hash: the parent of every genesis entry.
    pub const ZERO: Hash = Hash([0; 32]);

    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Hash(bytes)
    }

    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// SHA-256 of `data`.
    pub fn digest(data: &[u8]) -> Self {
        Hash(Sha256::digest(data).into())
    }

    /// SHA-256 of everything `reader` yields, read in blocks (a file of any size in constant
    /// memory), and how many bytes that was.
    pub fn digest_reader(mut reader: impl std::io::Read) -> std::io::Result<(Self, u64)> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        Ok((Hash(hasher.finalize().into()), total))
    }

    /// SHA-256 of the canonical encoding of a JSON value: the hash Theater records for an
    /// actor's state. Equal for equal values, whatever the key order they were built in.
    pub fn of_json(value: &serde_json::Value) -> Self {
        let mut hasher = Sha256::new();
        crate::canonical::write_json(value, &mut HashWriter(&mut hasher));
        Hash(hasher.finalize().into())
    }

    /// Whether this is [`Hash::ZERO`].
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }

    /// The first 8 bytes as hex: a short form for logs and UIs.
    pub fn short(&self) -> String {
        let mut s = self.to_string();
        s.truncate(16);
        s
    }
}

/// Feeds canonical bytes straight into a hasher, with no intermediate buffer.
struct HashWriter<'a>(&'a mut Sha256);

impl crate::canonical::Sink for HashWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        // Only ASCII hex digits were written above.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// Why a string is not a [`Hash`](struct@Hash).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseHashError {
    /// The string is not 64 characters long.
    #[error("a hash is 64 hex digits, got {0} characters")]
    Length(usize),
    /// A character is not a hex digit.
    #[error("invalid hex digit {found:?} at position {position}")]
    Digit {
        /// The offending character.
        found: char,
        /// Its position in the string.
        position: usize,
    },
}

impl FromStr for Hash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(ParseHashError::Length(s.chars().count()));
        }
        let mut out = [0u8; 32];
        for (i, c) in s.chars().enumerate() {
            let v = c.to_digit(16).ok_or(ParseHashError::Digit {
                found: c,
                position: i,
            })?;
            // to_digit(16) is < 16, so it fits a nibble.
            let v = v as u8;
            out[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
        }
        Ok(Hash(out))
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_hex() {
        let h = Hash::digest(b"abc");
        assert_eq!(
            h.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(h.to_string().parse::<Hash>(), Ok(h));
        assert_eq!(h.to_string().to_uppercase().parse::<Hash>(), Ok(h));
        assert_eq!(h.short(), "ba7816bf8f01cfea");
    }

    #[test]
    fn rejects_bad_hex() {
        assert_eq!("ab".parse::<Hash>(), Err(ParseHashError::Length(2)));
        let bad = format!("{}x", "0".repeat(63));
        assert_eq!(
            bad.parse::<Hash>(),
            Err(ParseHashError::Digit {
                found: 'x',
                position: 63
            })
        );
        let multibyte = format!("{}é", "0".repeat(62));
        assert!(multibyte.parse::<Hash>().is_err());
    }

    #[test]
    fn serde_as_hex_string() -> Result<(), serde_json::Error> {
        let h = Hash::digest(b"x");
        let s = serde_json::to_string(&h)?;
        assert_eq!(s, format!("\"{h}\""));
        assert_eq!(serde_json::from_str::<Hash>(&s)?, h);
        Ok(())
    }
}
