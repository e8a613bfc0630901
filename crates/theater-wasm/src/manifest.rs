//! Actor manifests: TOML files naming an actor, its component, its init parameters, its
//! limits and the interfaces it is granted.
//!
//! ```toml
//! name = "counter"                    # the actor's id (and its chain's)
//! component = "counter.wasm"          # relative to this file
//!
//! [init]                              # optional: parameters given to the actor's init
//! count = 10
//!
//! [limits]                            # optional
//! memory_mb = 64                      # linear memory per instance
//! cpu_ms = 1000                       # wall-clock budget per input
//! audit_every = 10000                 # compare the guest's own state ~1 input in N
//! crash_on_trap = false               # true: a trap crashes the actor (nothing recorded)
//!
//! [activation]                        # only for a family (name = "room-*")
//! idle_ms = 300000                    # passivate a member idle this long
//! max_active = 1000                   # most members active at once
//!
//! [retention]                         # optional: what of the chain to keep
//! keep_entries = 100000               # at least this many behind the newest snapshot
//! keep_days = 30                      # and at least this many days (default: any age)
//! keep_all = false                    # true: never prune
//! reads = "digest"                    # a read's output: its digest, or "full"
//!
//! [secrets]                           # optional: names, and where values come from
//! API_TOKEN = { env = "API_TOKEN" }   # (never a value: see `theater_wasm::secrets`)
//!
//! [interfaces.files]                  # a capability granted, with its config
//! dir = "public"                      # (each is checked by its capability: see
//!                                     # `Capabilities::check`)
//! ```
//!
//! This module reads the file; each `[interfaces.NAME]` section is kept as it is, for the
//! capability `NAME` of the host's [`crate::Capabilities`] to check and grant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use theater_chain::ChainId;

use crate::ManifestError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    component: PathBuf,
    #[serde(default)]
    init: Option<toml::Value>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    interfaces: BTreeMap<String, toml::Value>,
    #[serde(default)]
    activation: Option<RawActivation>,
    #[serde(default)]
    secrets: Option<toml::Value>,
    #[serde(default)]
    retention: Option<RawRetention>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    #[serde(default)]
    keep_entries: Option<u64>,
    #[serde(default)]
    keep_days: Option<u32>,
    #[serde(default)]
    keep_all: Option<bool>,
    #[serde(default)]
    reads: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawActivation {
    idle_ms: Option<u64>,
    max_active: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<u64>,
    cpu_ms: Option<u64>,
    audit_every: Option<u32>,
    crash_on_trap: Option<bool>,
}

/// Resource limits of one actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// Longest time one input may run before it is stopped.
    pub cpu: Duration,
    /// How often the host compares a guest's own copy of its state with what the guest
    /// reported (world `actor`): about one input in this many, chosen by a hash of the state
    /// and the input so that replay audits the same ones. A mismatch fails the input and
    /// leaves the state unchanged. 1: every input; 0: never. An audit costs O(state) (the
    /// guest's whole copy crosses the boundary and is compared), so the default, 10,000,
    /// keeps it to about 1% of an input's cost with a few MB of state. A guest built with
    /// `theater-guest` reports exactly what it changed; audits catch other guests' mistakes.
    pub audit_every: u32,
    /// A trap crashes the actor instead of failing the input (`[limits] crash_on_trap`,
    /// default false): nothing is recorded for the input, and the actor restarts from its
    /// chain, or, for a child, stops and its parent is told ("let it crash").
    pub crash_on_trap: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu: Duration::from_secs(1),
            audit_every: 10_000,
            crash_on_trap: false,
        }
    }
}

/// Longest actor name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Checks an actor's name: it names its chain's directory and addresses it, so it is 1 to
/// 128 bytes of ASCII letters, digits, `-`, `_` and `.`, not starting with `.` (no `..`, no
/// separators, no hidden files).
pub fn check_name(name: &str) -> Result<ChainId, String> {
    let bad = |why: &str| Err(format!("invalid actor name {name:?}: {why}"));
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad(&format!("must be 1 to {MAX_NAME_LEN} bytes"));
    }
    if name.starts_with('.') {
        return bad("must not start with `.`");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return bad(&format!(
            "{c:?} is not allowed (letters, digits, `-`, `_` and `.` only)"
        ));
    }
    ChainId::new(name).map_err(|e| e.to_string())
}

/// A family of actors declared by one manifest whose name is a pattern (`room-*`): every
/// name with the prefix is an actor of the family, created on its first message (or
/// activated from its chain if it has one), and passivated when idle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    /// What every member's name starts with (`room-`).
    pub prefix: String,
    /// A member idle this long is passivated (`[activation] idle_ms`, default 5 minutes).
    pub idle: Duration,
    /// At most this many members are active at once; activating one more passivates the
    /// least recently active (`[activation] max_active`, default 1,000).
    pub max_active: usize,
}

impl Family {
    /// Whether `name` is a member's name (the prefix, then a valid rest).
    pub fn covers(&self, name: &str) -> bool {
        name.len() > self.prefix.len() && name.starts_with(&self.prefix) && check_name(name).is_ok()
    }
}

/// A parsed, checked manifest.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Manifest {
    /// The file it came from.
    pub path: PathBuf,
    /// The actor's id.
    pub name: ChainId,
    /// The component, resolved against the manifest's directory.
    pub component: PathBuf,
    /// Parameters for the actor's init (`null` if none).
    pub init: Value,
    /// Limits.
    pub limits: Limits,
    /// Granted interfaces and their raw config, by interface name.
    pub interfaces: BTreeMap<String, toml::Value>,
    /// Set when the name is a pattern (`room-*`): the manifest declares a family of actors.
    pub family: Option<Family>,
    /// The secrets this manifest declares (`[secrets]`: names and where their values come
    /// from, never the values; see [`crate::secrets`]).
    pub secrets: BTreeMap<String, crate::secrets::Source>,
    /// What of its chain to keep (`[retention]`: `keep_entries`, `keep_days`; without the
    /// section, [`theater_core::Retention::default`]); `None` (`keep_all = true`):
    /// everything.
    pub retention: Option<theater_core::Retention>,
    /// Whether the manifest's `[retention]` chooses what to prune (`keep_entries`,
    /// `keep_days` or `keep_all`) rather than leaving it to the default.
    pub retention_declared: bool,
    /// What an entry records of an input that left the state unchanged (`[retention]
    /// reads`, default `"digest"`).
    pub reads: theater_core::Reads,
}

/// Largest memory limit accepted (4 GiB, the wasm32 maximum).
const MAX_MEMORY_MB: u64 = 4096;

impl Manifest {
    /// Whether the manifest grants the interface `name` (`msg`, `files`, `http`, ...).
    pub fn grants(&self, name: &str) -> bool {
        self.interfaces.contains_key(name)
    }

    /// `path` as the manifest means it: relative to the manifest's directory.
    pub fn relative(&self, path: impl AsRef<Path>) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(path)
    }

    /// The manifest of the family member `name`, or of an actor spawned as `name`: this one
    /// named `name` (checked), with `init` if given.
    pub fn instance(&self, name: &str, init: Option<Value>) -> Result<Manifest, String> {
        let mut m = self.clone();
        m.name = check_name(name)?;
        m.family = None;
        if let Some(init) = init {
            m.init = init;
        }
        Ok(m)
    }

    /// Reads and checks the manifest at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks manifest `text`; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let err = |field: Option<&str>, message: String| ManifestError {
            path: path.to_path_buf(),
            field: field.map(str::to_string),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let message = scrub(e.message());
            let field = field_of(&e, text);
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            err(field.as_deref(), format!("{at}{message}"))
        })?;
        let family = match raw.name.strip_suffix('*') {
            Some(prefix) => {
                let named = (!prefix.is_empty())
                    .then(|| check_name(&format!("{prefix}x")).ok())
                    .flatten();
                named.ok_or_else(|| {
                    err(
                        Some("name"),
                        format!(
                            "a family's pattern is a name prefix then `*` (like `room-*`), got {:?}",
                            raw.name
                        ),
                    )
                })?;
                let a = raw.activation.unwrap_or_default();
                if a.max_active == Some(0) {
                    return Err(err(
                        Some("activation.max_active"),
                        "must be at least 1".into(),
                    ));
                }
                Some(Family {
                    prefix: prefix.to_string(),
                    idle: Duration::from_millis(a.idle_ms.unwrap_or(300_000)),
                    max_active: a.max_active.unwrap_or(1000),
                })
            }
            None if raw.activation.is_some() => {
                return Err(err(
                    Some("activation"),
                    "only a family of actors (a name like `room-*`) is activated on demand".into(),
                ));
            }
            None => None,
        };
        let name = match &family {
            Some(_) => ChainId::new(raw.name).map_err(|e| err(Some("name"), e.to_string()))?,
            None => check_name(&raw.name).map_err(|e| err(Some("name"), e))?,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let component = base.join(&raw.component);
        if !component.is_file() {
            return Err(err(
                Some("component"),
                format!(
                    "no file at {} (build the examples with `cargo xtask build-examples`)",
                    component.display()
                ),
            ));
        }
        let mut limits = Limits::default();
        if let Some(mb) = raw.limits.memory_mb {
            if mb == 0 || mb > MAX_MEMORY_MB {
                return Err(err(
                    Some("limits.memory_mb"),
                    format!("must be between 1 and {MAX_MEMORY_MB}, got {mb}"),
                ));
            }
            limits.memory_bytes = (mb as usize) << 20;
        }
        if let Some(ms) = raw.limits.cpu_ms {
            if ms == 0 {
                return Err(err(Some("limits.cpu_ms"), "must be at least 1".into()));
            }
            limits.cpu = Duration::from_millis(ms);
        }
        if let Some(n) = raw.limits.audit_every {
            limits.audit_every = n;
        }
        if let Some(c) = raw.limits.crash_on_trap {
            limits.crash_on_trap = c;
        }
        let init = match raw.init {
            None => Value::Null,
            Some(v) => serde_json::to_value(v).map_err(|e| err(Some("init"), e.to_string()))?,
        };
        let secrets = match &raw.secrets {
            None => BTreeMap::new(),
            Some(table) => crate::secrets::parse_table(table, base)
                .map_err(|(field, message)| err(Some(&field), message))?,
        };
        let r = raw.retention.unwrap_or_default();
        let retention_declared =
            r.keep_entries.is_some() || r.keep_days.is_some() || r.keep_all.is_some();
        let reads = match &r.reads {
            None => theater_core::Reads::default(),
            Some(s) => s
                .parse()
                .map_err(|e: String| err(Some("retention.reads"), e))?,
        };
        if r.keep_days == Some(0) {
            return Err(err(
                Some("retention.keep_days"),
                "must be at least 1 (leave it out to count entries only)".into(),
            ));
        }
        let retention = if r.keep_all == Some(true) {
            if let Some(field) = [
                ("keep_entries", r.keep_entries.is_some()),
                ("keep_days", r.keep_days.is_some()),
            ]
            .iter()
            .find_map(|(f, set)| set.then_some(*f))
            {
                return Err(err(
                    Some(&format!("retention.{field}")),
                    "cannot be set with keep_all = true (which keeps every entry)".into(),
                ));
            }
            None
        } else {
            let default = theater_core::Retention::default();
            Some(theater_core::Retention {
                keep_entries: r.keep_entries.unwrap_or(default.keep_entries),
                keep_days: r.keep_days.or(default.keep_days),
            })
        };
        Ok(Manifest {
            path: path.to_path_buf(),
            name,
            component,
            init,
            limits,
            interfaces: raw.interfaces,
            family,
            secrets,
            retention,
            retention_declared,
            reads,
        })
    }
}

/// A TOML or serde error message with the text of any string it quotes left out
/// (`invalid type: string "…", expected a table`): a string written where it does not belong
/// may be a secret's value pasted in the wrong place, and errors are printed.
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        let open = at + "string \"".len();
        out.push_str(&rest[..open]);
        // serde quotes with Rust's escapes: the string ends at the first unescaped quote.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest[open..].char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(open + i);
                    break;
                }
                _ => escaped = false,
            }
        }
        out.push('…');
        match end {
            Some(end) => rest = &rest[end..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// The field a TOML error in `text` is about: the one its message names (`missing field
/// \`dir\``), else the key on the line it points at.
pub(crate) fn field_of(e: &toml::de::Error, text: &str) -> Option<String> {
    let message = e.message();
    message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .map(str::to_string)
        .or_else(|| e.span().and_then(|s| key_at(text, s.start)))
}

/// The key on the line holding byte `at`, for errors that carry a position but no field name.
fn key_at(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    // Only a key as TOML writes one (dotted bare keys): a line that is not `key = ...` may
    // be anything, a secret pasted in the wrong place included, and is never repeated.
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    bare.then(|| key.to_string())
}
