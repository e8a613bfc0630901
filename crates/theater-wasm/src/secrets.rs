//! Secrets: credentials the host uses on an actor's behalf (an outbound HTTP header, a
//! database password) or hands to a guest that must hold one, without their values ever
//! reaching a chain, a log or an answer of the host.
//!
//! A secret is declared by name with the place its value comes from, in the host's
//! configuration or in an actor's manifest, never with the value itself:
//!
//! ```toml
//! [secrets]
//! API_TOKEN = { env = "FETCHER_API_TOKEN" }   # an environment variable of the host
//! SIGNING_KEY = { file = "signing.key" }      # a file readable by its owner only (chmod 600)
//! ```
//!
//! The value is read at each use, so a secret kept in a file can be rotated while the host
//! runs (the next input uses the new value). What a chain records of a use is the secret's
//! name and its *version*: a keyed hash of the value under the host's own key (kept in the
//! data directory, `secrets.key`, owner-only), which changes when the value does and tells
//! nothing about it to whoever does not hold that key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

/// The file of a data directory that holds the host's key for secret versions.
pub const KEY_FILE: &str = "secrets.key";

/// Longest secret name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Where a secret's value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An environment variable of the host (read at each use; a running process's
    /// environment does not change, so rotating one takes a restart).
    Env(String),
    /// A file readable by its owner only: its content, less one final line break. Read at
    /// each use, so replacing it rotates the secret.
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

impl Source {
    /// Reads the value now; the error names the secret and its source, never a value.
    pub fn read(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let missing = |why: String| SecretError::Unavailable {
            name: name.to_string(),
            why,
        };
        let value = match self {
            Source::Env(var) => match std::env::var_os(var) {
                Some(v) => Zeroizing::new(v.into_encoded_bytes()),
                None => {
                    return Err(missing(format!(
                        "the environment variable {var} is not set"
                    )));
                }
            },
            Source::File(path) => {
                owner_only(path, "the file").map_err(missing)?;
                let mut bytes = Zeroizing::new(
                    std::fs::read(path)
                        .map_err(|e| missing(format!("the file {}: {e}", path.display())))?,
                );
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                bytes
            }
        };
        if value.is_empty() {
            return Err(missing(format!("its {self} is empty")));
        }
        Ok(value)
    }
}

/// Checks that `path` (`what` in messages: "the file", "the password_file") may be read by its
/// owner only, as a file holding a secret must be.
pub fn owner_only(path: &Path, what: &str) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{what} {} may be read by others (mode {:o}): make it readable by its owner only (chmod 600)",
                path.display(),
                meta.mode() & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}

/// Why a secret cannot be used. Never carries a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No declaration of the name reaches the actor.
    #[error(
        "secret {name} is not declared: add `{name} = {{ env = \"VAR\" }}` (or `{{ file = \"PATH\" }}`) to the [secrets] of the manifest or of the host's config"
    )]
    Undeclared {
        /// The secret's name.
        name: String,
    },
    /// Declared, but its value cannot be read now.
    #[error("secret {name}: {why}")]
    Unavailable {
        /// The secret's name.
        name: String,
        /// Why (the variable is not set, the file is missing or readable by others...).
        why: String,
    },
    /// The declarations are malformed.
    #[error("{0}")]
    Invalid(String),
}

/// Checks a secret's name: 1 to 64 ASCII letters, digits, `_`, `-` or `.`, starting with a
/// letter or `_`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a secret name (1 to {MAX_NAME_LEN} letters, digits, `_`, `-` or `.`, starting with a letter or `_`)"
        ))
    }
}

/// Reads a `[secrets]` table: each entry a name and `{ env = "VAR" }` or `{ file = "PATH" }`
/// (relative to `base`). An entry written as a value is refused without repeating it.
/// Errors are `(field, message)`, the field relative to the table's parent (`secrets.NAME`).
pub fn parse_table(
    table: &toml::Value,
    base: &Path,
) -> Result<BTreeMap<String, Source>, (String, String)> {
    let Some(table) = table.as_table() else {
        return Err((
            "secrets".into(),
            "must be a table of NAME = { env = \"VAR\" } or { file = \"PATH\" }".into(),
        ));
    };
    let mut out = BTreeMap::new();
    for (name, entry) in table {
        let field = format!("secrets.{name}");
        check_name(name).map_err(|e| (field.clone(), e))?;
        let how = "say where its value comes from, `{ env = \"VAR\" }` or `{ file = \"PATH\" }` (readable by its owner only)";
        let Some(entry) = entry.as_table() else {
            // Never echo it: it may be the very value that must not be written here.
            return Err((
                field,
                format!("a secret's value is never written in a configuration file: {how}"),
            ));
        };
        let text = |key: &str| -> Result<Option<String>, (String, String)> {
            match entry.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err((
                    format!("{field}.{key}"),
                    "must be a non-empty string".into(),
                )),
            }
        };
        if let Some(other) = entry.keys().find(|k| *k != "env" && *k != "file") {
            return Err((format!("{field}.{other}"), format!("unknown field: {how}")));
        }
        let source = match (text("env")?, text("file")?) {
            (Some(var), None) => Source::Env(var),
            (None, Some(file)) => Source::File(base.join(file)),
            _ => return Err((field, format!("needs exactly one of env and file: {how}"))),
        };
        out.insert(name.clone(), source);
    }
    Ok(out)
}

/// A secret's value, read for one use: its name, its value and its version. Its `Debug`
/// shows the name and version only; the value is wiped from memory when it is dropped.
#[derive(Clone)]
pub struct Secret {
    name: String,
    value: Zeroizing<Vec<u8>>,
    version: Option<String>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Secret {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value. Whatever is done with it must not reach a chain, a log or an answer.
    pub fn expose(&self) -> &[u8] {
        &self.value
    }

    /// The version recorded in place of the value: 16 hex digits of HMAC-SHA256 under the
    /// host's key (`None` without a key, as in replay tools that run without a data
    /// directory).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// `bytes` with every occurrence of the value replaced by `[secret NAME]`: as it is, and
    /// as a JSON string holds it (a server that echoes it in JSON escapes `"` and `\`).
    pub fn redact<'a>(&self, bytes: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let once = replace(bytes, &self.value, &self.name);
        let escaped = std::str::from_utf8(&self.value)
            .ok()
            .and_then(|v| serde_json::to_string(v).ok())
            .map(|q| Zeroizing::new(q.as_bytes()[1..q.len() - 1].to_vec()))
            .filter(|e| e[..] != self.value[..]);
        match (once, escaped) {
            (once, None) => once,
            (std::borrow::Cow::Borrowed(b), Some(e)) => replace(b, &e, &self.name),
            (std::borrow::Cow::Owned(b), Some(e)) => {
                std::borrow::Cow::Owned(replace(&b, &e, &self.name).into_owned())
            }
        }
    }

    /// [`Secret::redact`] for text.
    pub fn redact_str(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.redact(text.as_bytes())).into_owned()
    }
}

/// `bytes` with every occurrence of `value` replaced by `[secret NAME]`.
fn replace<'a>(bytes: &'a [u8], value: &[u8], name: &str) -> std::borrow::Cow<'a, [u8]> {
    if value.is_empty() || memchr::memmem::find(bytes, value).is_none() {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mark = format!("[secret {name}]");
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = memchr::memmem::find(rest, value) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(mark.as_bytes());
        rest = &rest[at + value.len()..];
    }
    out.extend_from_slice(rest);
    std::borrow::Cow::Owned(out)
}

/// The secrets an actor (or a host) can use: names and where their values come from, and the
/// host's key for versions. Cheap to clone.
#[derive(Clone, Default)]
pub struct Secrets {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    sources: BTreeMap<String, Source>,
    key: Option<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.inner.sources.iter()).finish()
    }
}

impl Secrets {
    /// Secrets from `sources`, without a key (versions are `None`).
    pub fn new(sources: BTreeMap<String, Source>) -> Secrets {
        Secrets {
            inner: Arc::new(Inner { sources, key: None }),
        }
    }

    /// These secrets, versioned under the key in `data_dir` ([`KEY_FILE`]), made on first
    /// use (32 random bytes, readable by the owner only).
    pub fn with_key_in(self, data_dir: &Path) -> Result<Secrets, SecretError> {
        let key = load_or_make_key(&data_dir.join(KEY_FILE))?;
        Ok(self.with_key(key))
    }

    /// These secrets, with the key found in `data_dir` if there is one (replay tools, which
    /// never make one). A key that cannot be used is said in the log, and versions are then
    /// not checked.
    pub fn with_existing_key_in(self, data_dir: &Path) -> Secrets {
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            return self;
        }
        match load_or_make_key(&path) {
            Ok(key) => self.with_key(key),
            Err(e) => {
                tracing::warn!("secret versions are not checked: {e}");
                self
            }
        }
    }

    fn with_key(self, key: Zeroizing<[u8; 32]>) -> Secrets {
        Secrets {
            inner: Arc::new(Inner {
                sources: self.inner.sources.clone(),
                key: Some(key),
            }),
        }
    }

    /// Whether versions are computed (a key is held).
    pub fn has_key(&self) -> bool {
        self.inner.key.is_some()
    }

    /// These secrets and `more` (an actor's own, from its manifest); a name declared by both
    /// is refused.
    pub fn and(&self, more: &BTreeMap<String, Source>) -> Result<Secrets, SecretError> {
        let mut sources = self.inner.sources.clone();
        for (name, source) in more {
            if sources.insert(name.clone(), source.clone()).is_some() {
                return Err(SecretError::Invalid(format!(
                    "secret {name} is declared by both the host's config and the manifest: keep one"
                )));
            }
        }
        Ok(Secrets {
            inner: Arc::new(Inner {
                sources,
                key: self.inner.key.clone(),
            }),
        })
    }

    /// The declared names and their sources.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Source)> {
        self.inner.sources.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// Where secret `name` comes from.
    pub fn source(&self, name: &str) -> Result<&Source, SecretError> {
        self.inner
            .sources
            .get(name)
            .ok_or_else(|| SecretError::Undeclared {
                name: name.to_string(),
            })
    }

    /// Secret `name`, read now.
    pub fn get(&self, name: &str) -> Result<Secret, SecretError> {
        let value = self.source(name)?.read(name)?;
        let version = self.version_of(name, &value);
        Ok(Secret {
            name: name.to_string(),
            value,
            version,
        })
    }

    /// The version of `value` as secret `name`: `None` without a key.
    pub fn version_of(&self, name: &str, value: &[u8]) -> Option<String> {
        let key = self.inner.key.as_ref()?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key[..]);
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(name.as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        let tag = ctx.sign();
        Some(
            tag.as_ref()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    /// Refuses a secret kept in a file under `dir` (the data directory, which holds the
    /// host's key and management token: a manifest must not name those as secrets).
    pub fn check_outside(&self, dir: &Path) -> Result<(), SecretError> {
        let Ok(dir) = std::fs::canonicalize(dir) else {
            return Ok(());
        };
        for (name, source) in &self.inner.sources {
            let Source::File(path) = source else { continue };
            // The file, or the directory it would be in, as the system resolves it.
            let resolved = std::fs::canonicalize(path).or_else(|_| {
                let parent = path.parent().unwrap_or(Path::new("."));
                std::fs::canonicalize(parent).map(|p| p.join(path.file_name().unwrap_or_default()))
            });
            if resolved.is_ok_and(|p| p.starts_with(&dir)) {
                return Err(SecretError::Invalid(format!(
                    "secret {name}: its file {} is inside the data directory {}, which holds the host's own key and token: keep secrets elsewhere",
                    path.display(),
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Reads every declared secret once: the first that cannot be read is the error.
    pub fn check_all(&self) -> Result<(), SecretError> {
        for name in self.inner.sources.keys() {
            self.get(name)?;
        }
        Ok(())
    }
}

fn load_or_make_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, SecretError> {
    let bad = |why: String| SecretError::Invalid(format!("the key {}: {why}", path.display()));
    if !path.exists() {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut key[..]).map_err(|e| bad(format!("no randomness: {e}")))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
        }
        // Written whole beside it under a name of its own, then linked into place: a crash
        // leaves no short key, and of two hosts starting at once the second to link keeps
        // the first's key (the link fails if the name exists), which both read back below.
        let mut tag = [0u8; 8];
        getrandom::fill(&mut tag).map_err(|e| bad(format!("no randomness: {e}")))?;
        let tmp = path.with_extension(format!(
            "key.{}",
            tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp).map_err(|e| bad(e.to_string()))?;
            f.write_all(&key[..]).map_err(|e| bad(e.to_string()))?;
            f.sync_all().map_err(|e| bad(e.to_string()))?;
        }
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                // The name durable too: a key lost to a crash would change every version.
                if let Some(dir) = path.parent() {
                    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // A file system without hard links: written in place, created only if absent
            // (a crash mid-write leaves a short key, refused below, to be deleted by hand).
            Err(_) => {
                use std::io::Write;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                match options.open(path) {
                    Ok(mut f) => {
                        f.write_all(&key[..]).map_err(|e| bad(e.to_string()))?;
                        f.sync_all().map_err(|e| bad(e.to_string()))?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(bad(e.to_string())),
                }
            }
        }
    }
    owner_only(path, "the key").map_err(SecretError::Invalid)?;
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| bad(e.to_string()))?);
    let key: [u8; 32] = bytes[..]
        .try_into()
        .map_err(|_| bad(format!("holds {} bytes, not 32", bytes.len())))?;
    Ok(Zeroizing::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Value {
        toml::from_str::<toml::Value>(text).unwrap()["secrets"].clone()
    }

    #[test]
    fn a_value_written_inline_is_refused_without_being_repeated() {
        let e = parse_table(
            &table("[secrets]\nTOKEN = \"hunter2-abc\"\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(e.0, "secrets.TOKEN");
        assert!(e.1.contains("never written"), "{}", e.1);
        assert!(!e.1.contains("hunter2"), "{}", e.1);
        let e = parse_table(
            &table("[secrets]\nTOKEN = { value = \"hunter2\" }\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(e.0, "secrets.TOKEN.value");
        assert!(!e.1.contains("hunter2"), "{}", e.1);
        let e = parse_table(
            &table("[secrets]\nTOKEN = { env = \"A\", file = \"b\" }\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.1.contains("exactly one"), "{}", e.1);
        let e = parse_table(
            &table("[secrets]\n\"9x\" = { env = \"A\" }\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.1.contains("not a secret name"), "{}", e.1);
        let ok = parse_table(
            &table("[secrets]\nA = { env = \"VAR_A\" }\nB = { file = \"b.key\" }\n"),
            Path::new("/base"),
        )
        .unwrap();
        assert_eq!(ok["A"], Source::Env("VAR_A".into()));
        assert_eq!(ok["B"], Source::File("/base/b.key".into()));
    }

    #[test]
    fn files_are_read_at_each_use_and_their_version_follows_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first-value\n").unwrap();
        let mut sources = BTreeMap::new();
        sources.insert("T".to_string(), Source::File(file.clone()));
        let secrets = Secrets::new(sources).with_key_in(dir.path()).unwrap();
        #[cfg(unix)]
        {
            // Readable by others: refused, naming the file and never the value.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = secrets.get("T").unwrap_err().to_string();
            assert!(e.contains("chmod 600") && e.contains("secret T"), "{e}");
            assert!(!e.contains("first-value"), "{e}");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let a = secrets.get("T").unwrap();
        assert_eq!(a.expose(), b"first-value");
        assert!(!format!("{a:?}").contains("first-value"));
        std::fs::write(&file, "second-value").unwrap();
        let b = secrets.get("T").unwrap();
        assert_eq!(b.expose(), b"second-value");
        assert_ne!(a.version(), b.version());
        assert_eq!(a.version().unwrap().len(), 16);
        // The same key (read back from the data directory) gives the same version.
        let again = Secrets::new(BTreeMap::new()).with_existing_key_in(dir.path());
        assert_eq!(
            again.version_of("T", b"second-value").as_deref(),
            b.version()
        );
        // Another host's key does not.
        let other = tempfile::tempdir().unwrap();
        let theirs = Secrets::new(BTreeMap::new())
            .with_key_in(other.path())
            .unwrap();
        assert_ne!(
            theirs.version_of("T", b"second-value").as_deref(),
            b.version()
        );
        std::fs::write(&file, "").unwrap();
        assert!(secrets.get("T").unwrap_err().to_string().contains("empty"));
        assert!(matches!(
            secrets.get("U"),
            Err(SecretError::Undeclared { .. })
        ));
    }

    #[test]
    fn errors_that_quote_a_string_leave_it_out() {
        use crate::manifest::scrub;
        assert_eq!(
            scrub(r#"invalid type: string "sk-live-1", expected a sequence"#),
            "invalid type: string \"…\", expected a sequence"
        );
        assert_eq!(
            scrub(r#"a string "x\"y" and string "z""#),
            "a string \"…\" and string \"…\""
        );
        assert_eq!(scrub("unknown field `API_KEY`"), "unknown field `API_KEY`");
    }

    #[test]
    fn redaction_replaces_every_occurrence() {
        let s = Secret {
            name: "T".into(),
            value: Zeroizing::new(b"abc".to_vec()),
            version: None,
        };
        assert_eq!(&*s.redact(b"xabcyabc"), b"x[secret T]y[secret T]");
        assert_eq!(&*s.redact(b"nothing"), b"nothing");
        assert_eq!(s.redact_str("Bearer abc"), "Bearer [secret T]");
        // As a JSON string holds it, too.
        let q = Secret {
            name: "Q".into(),
            value: Zeroizing::new(br#"a"b\c"#.to_vec()),
            version: None,
        };
        let echoed = serde_json::json!({ "auth": r#"a"b\c"# }).to_string();
        assert_eq!(q.redact_str(&echoed), r#"{"auth":"[secret Q]"}"#);
        assert_eq!(q.redact_str(r#"raw a"b\c"#), "raw [secret Q]");
    }
}
