//! Native Rust actors for Theater's tests and benchmarks, and small helpers around them.
//!
//! | actor | what it exercises |
//! |---|---|
//! | [`Counter`] | plain transitions: `{"add": n}`; anything else fails |
//! | [`Account`] | an invariant: `verify_state` rejects a negative balance |
//! | [`Dice`] | recorded host calls: reads the clock and randomness |
//! | [`Crashy`] | crashes: `{"panic": true}` panics, `{"fatal": true}` is fatal |
//! | [`Sleepy`] | slowness: sleeps `{"sleep_ms": n}` before counting |

pub mod nats;
pub mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use theater_chain::ChainId;
use theater_core::{Actor, ActorError, ActorInput, ActorOutput, HostCalls};

/// A valid chain id for tests.
pub fn id(name: &str) -> ChainId {
    ChainId::new(name).unwrap_or_else(|e| panic!("test chain id: {e}"))
}

fn payload(input: &ActorInput) -> Result<&Value, ActorError> {
    input
        .payload()
        .ok_or_else(|| ActorError::Failed("expected a message or request".into()))
}

/// `{"count": n}`; `{"add": k}` adds k and replies with the new count.
#[derive(Debug, Default, Clone)]
pub struct Counter;

#[async_trait]
impl Actor for Counter {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Ok(json!({"count": 0}))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        _: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let add = payload(input)?["add"]
            .as_i64()
            .ok_or_else(|| ActorError::Failed("expected {\"add\": n}".into()))?;
        let count = state["count"].as_i64().unwrap_or(0).wrapping_add(add);
        Ok((ActorOutput::reply(json!(count)), json!({"count": count})))
    }
}

/// A counter whose state also carries `padding` bytes of text, for benchmarks of large states.
#[derive(Debug, Clone)]
pub struct PaddedCounter {
    /// Bytes of padding in the state.
    pub padding: usize,
}

#[async_trait]
impl Actor for PaddedCounter {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Ok(json!({"count": 0, "padding": "x".repeat(self.padding)}))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        _: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let add = payload(input)?["add"].as_i64().unwrap_or(1);
        let mut next = state.clone();
        let count = state["count"].as_i64().unwrap_or(0).wrapping_add(add);
        next["count"] = json!(count);
        Ok((ActorOutput::reply(json!(count)), next))
    }
}

/// `{"balance": n}`; `{"deposit": k}` / `{"withdraw": k}`. `verify_state` rejects a
/// negative balance, so an overdraft is recorded as failed and changes nothing.
#[derive(Debug, Default, Clone)]
pub struct Account;

#[async_trait]
impl Actor for Account {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Ok(json!({"balance": 0}))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        _: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let p = payload(input)?;
        let balance = state["balance"].as_i64().unwrap_or(0);
        let next = if let Some(d) = p["deposit"].as_i64() {
            balance.wrapping_add(d)
        } else if let Some(w) = p["withdraw"].as_i64() {
            // No check here on purpose: the invariant lives in verify_state.
            balance.wrapping_sub(w)
        } else {
            return Err(ActorError::Failed(format!("unknown operation {p}")));
        };
        Ok((ActorOutput::reply(json!(next)), json!({"balance": next})))
    }

    async fn verify_state(&mut self, state: &theater_core::State) -> Result<(), ActorError> {
        match state.value()["balance"].as_i64() {
            Some(b) if b >= 0 => Ok(()),
            _ => Err(ActorError::Failed("the balance is negative".into())),
        }
    }
}

/// Reads the clock and randomness through [`HostCalls`] on every input and keeps them in
/// its state: replay is only exact if the recorded results are fed back.
#[derive(Debug, Default, Clone)]
pub struct Dice;

#[async_trait]
impl Actor for Dice {
    async fn init(&mut self, host: &mut HostCalls) -> Result<Value, ActorError> {
        let started = host.now_millis()?;
        Ok(json!({"started": started, "rolls": []}))
    }

    async fn handle_input(
        &mut self,
        _: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let at = host.now_millis()?;
        let bytes = host.random_bytes(8)?;
        let roll = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])) % 6 + 1;
        let mut next = state.clone();
        if let Some(rolls) = next["rolls"].as_array_mut() {
            rolls.push(json!({"at": at, "roll": roll}));
        }
        Ok((ActorOutput::reply(json!(roll)), next))
    }
}

/// A counter that panics on `{"panic": true}` and reports itself broken on
/// `{"fatal": true}`. Counts its instances in `created`.
#[derive(Debug, Clone, Default)]
pub struct Crashy {
    /// How many instances were made (shared by every clone).
    pub created: Arc<AtomicU64>,
}

impl Crashy {
    /// A fresh instance, counted.
    pub fn make(&self) -> Crashy {
        self.created.fetch_add(1, Ordering::SeqCst);
        self.clone()
    }
}

#[async_trait]
impl Actor for Crashy {
    async fn init(&mut self, host: &mut HostCalls) -> Result<Value, ActorError> {
        Counter.init(host).await
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let p = payload(input)?;
        if p["panic"] == json!(true) {
            panic!("asked to panic");
        }
        if p["fatal"] == json!(true) {
            return Err(ActorError::Fatal("asked to die".into()));
        }
        Counter.handle_input(input, state, host).await
    }
}

/// A counter that sleeps `{"sleep_ms": n}` before counting.
#[derive(Debug, Default, Clone)]
pub struct Sleepy;

#[async_trait]
impl Actor for Sleepy {
    async fn init(&mut self, host: &mut HostCalls) -> Result<Value, ActorError> {
        Counter.init(host).await
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        _: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let ms = payload(input)?["sleep_ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let count = state["count"].as_i64().unwrap_or(0) + 1;
        Ok((ActorOutput::reply(json!(count)), json!({"count": count})))
    }
}

/// `{"add": n}` as a request.
pub fn add(n: i64) -> ActorInput {
    ActorInput::request(json!({"add": n}))
}

/// The workspace root.
pub fn workspace_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// The example component `name` (`target/examples/<name>.wasm`), built with every other
/// example on first use in this process (a rebuild is a quick no-op when nothing changed),
/// the wasm32 toolchain set up first if it is missing. Panics with the build's own message
/// if no toolchain can be had.
pub fn example_component(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let root = workspace_root();
    let built = BUILT.get_or_init(|| {
        theater_build::build_examples(&root, true, &mut std::io::stderr())
            .map(drop)
            .map_err(|e| e.to_string())
    });
    if let Err(e) = built {
        panic!("building the example components failed:\n{e}");
    }
    root.join("target/examples").join(format!("{name}.wasm"))
}

/// Writes `bytes` to `path`, readable by its owner only (what a secret's file must be).
pub fn write_private(path: &std::path::Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).expect("writes the file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .expect("sets its mode");
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("reads the directory") {
            let p = e.expect("reads an entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
