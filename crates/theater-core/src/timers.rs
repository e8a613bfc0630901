//! Timers: an actor sets one-shot or periodic timers; each firing reaches it as a recorded
//! [`ActorInput::Timer`]. Setting and cancelling are recorded host calls (the due time reads
//! the clock), and take effect only once the entry that made them is durable. The chain is
//! the timer table: after a restart [`pending_timers`] rebuilds it, and a timer that came due
//! while the host was down fires late, once, rather than never.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use theater_chain::{ChainError, ChainStore, Event, Payload};
use tokio::sync::mpsc;

use crate::{ActorHandle, ActorInput, HostCallError, HostCalls};

/// Name of a recorded timer set: request `{"name", "delay_ms", "every_ms"}`, result
/// `{"due_ms"}` (milliseconds since the Unix epoch).
pub const TIMER_SET: &str = "theater:timers/set";
/// Name of a recorded timer cancel: request `{"name"}`, result `{"ok": true}`.
pub const TIMER_CANCEL: &str = "theater:timers/cancel";

/// Where timers read the time and wait. [`SystemClock`] in production; tests use
/// [`TokioClock`] with tokio's paused time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that starts at `base_ms` and moves with tokio's time (so a test with paused time
/// controls it).
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    base_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Reads `base_ms` now.
    pub fn starting_at(base_ms: u64) -> Self {
        TokioClock {
            base_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }
}

/// A timer waiting to fire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// Its name (setting a name again replaces the timer).
    pub name: String,
    /// When it is due, in milliseconds since the Unix epoch.
    pub due_ms: u64,
    /// For a periodic timer, its period.
    pub every_ms: Option<u64>,
}

enum Command {
    Set(Scheduled),
    Cancel(String),
}

/// What an actor's host side uses to set and cancel its timers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Timers {
    tx: mpsc::UnboundedSender<Command>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Set(s) => write!(f, "Set({s:?})"),
            Command::Cancel(n) => write!(f, "Cancel({n:?})"),
        }
    }
}

/// Fires an actor's timers once it runs: see [`Scheduler::run`].
#[derive(Debug)]
pub struct Scheduler {
    rx: mpsc::UnboundedReceiver<Command>,
    clock: Arc<dyn Clock>,
}

/// A timer service for one actor: the [`Timers`] its host functions use, and the
/// [`Scheduler`] to start once the actor is spawned (the actor needs the first before its
/// handle exists; the second needs the handle).
pub fn timers(clock: Arc<dyn Clock>) -> (Timers, Scheduler) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Timers {
            tx,
            clock: Arc::clone(&clock),
        },
        Scheduler { rx, clock },
    )
}

impl Timers {
    /// Timers connected to no scheduler: for replaying a chain, where every set and cancel
    /// is answered from the recording and nothing is scheduled.
    pub fn detached() -> Self {
        timers(Arc::new(SystemClock)).0
    }

    /// Sets timer `name` to fire after `delay`, then every `every` if given (recorded).
    /// Replaces a timer of the same name. Returns when it is due (ms since the Unix epoch).
    pub fn set(
        &self,
        host: &mut HostCalls,
        name: &str,
        delay: Duration,
        every: Option<Duration>,
    ) -> Result<u64, HostCallError> {
        let delay_ms = delay.as_millis() as u64;
        let every_ms = every.map(|e| (e.as_millis() as u64).max(1));
        let request =
            Payload::json(json!({"name": name, "delay_ms": delay_ms, "every_ms": every_ms}));
        let now = self.clock.now_ms();
        let result = host.call_sync(TIMER_SET, request, || {
            Payload::json(json!({"due_ms": now.saturating_add(delay_ms)}))
        })?;
        let due_ms = result.json["due_ms"]
            .as_u64()
            .ok_or(HostCallError::Malformed {
                name: TIMER_SET.into(),
            })?;
        let tx = self.tx.clone();
        let scheduled = Scheduled {
            name: name.to_string(),
            due_ms,
            every_ms,
        };
        host.after_commit(move |_| async move {
            let _ = tx.send(Command::Set(scheduled));
        });
        Ok(due_ms)
    }

    /// Cancels timer `name`, if set (recorded, so the chain knows).
    pub fn cancel(&self, host: &mut HostCalls, name: &str) -> Result<(), HostCallError> {
        let request = Payload::json(json!({"name": name}));
        host.call_sync(TIMER_CANCEL, request, || Payload::json(json!({"ok": true})))?;
        let tx = self.tx.clone();
        let name = name.to_string();
        host.after_commit(move |_| async move {
            let _ = tx.send(Command::Cancel(name));
        });
        Ok(())
    }
}

impl Scheduler {
    /// Starts firing timers into `actor`: the `pending` ones (from [`pending_timers`], for a
    /// restart) and every one set from now on. Each firing is an [`ActorInput::Timer`]; a
    /// timer that is already due fires at once. Ends when the actor stops.
    pub fn run(self, actor: ActorHandle, pending: Vec<Scheduled>) -> tokio::task::JoinHandle<()> {
        let Scheduler { mut rx, clock } = self;
        tokio::spawn(async move {
            let mut table: BTreeMap<String, Scheduled> =
                pending.into_iter().map(|s| (s.name.clone(), s)).collect();
            loop {
                let next = table.values().min_by_key(|s| s.due_ms).cloned();
                let wait = next
                    .as_ref()
                    .map(|s| s.due_ms.saturating_sub(clock.now_ms()));
                tokio::select! {
                    command = rx.recv() => match command {
                        Some(Command::Set(s)) => { table.insert(s.name.clone(), s); }
                        Some(Command::Cancel(name)) => { table.remove(&name); }
                        None => break,
                    },
                    () = sleep_ms(wait) => {
                        let Some(timer) = next else { continue };
                        let input = ActorInput::Timer {
                            name: timer.name.clone(),
                            due_ms: timer.due_ms,
                        };
                        match timer.every_ms {
                            // The next period after now: a host that was down fires a
                            // periodic timer once, late, not once per missed period.
                            Some(every) => {
                                let now = clock.now_ms();
                                let mut due = timer.due_ms + every;
                                if due <= now {
                                    due += (now - due) / every * every + every;
                                }
                                table.insert(timer.name.clone(), Scheduled { due_ms: due, ..timer });
                            }
                            None => { table.remove(&timer.name); }
                        }
                        if actor.tell(input).await.is_err() {
                            break;
                        }
                    }
                }
            }
        })
    }
}

async fn sleep_ms(ms: Option<u64>) {
    match ms {
        Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        None => std::future::pending().await,
    }
}

/// The timers an actor's chain leaves pending: every set not cancelled, replaced or (for a
/// one-shot) fired, with periodic timers advanced past their recorded firings. What a host
/// starts a restarted actor's [`Scheduler`] with. A pruned chain starts from the table its
/// anchor snapshot carries (see [`snapshot_host`]).
pub fn pending_timers(chain: &dyn ChainStore) -> Result<Vec<Scheduled>, ChainError> {
    let (mut table, from) = match chain.anchor() {
        Some(anchor) => {
            let snap = chain.snapshot_at(anchor.seq)?;
            (table_of(snap.as_ref()), anchor.seq + 1)
        }
        None => (BTreeMap::new(), chain.start()),
    };
    advance(chain, from, &mut table)?;
    Ok(table.into_values().collect())
}

/// What a snapshot at the chain's head carries for timers: `{"timers": [...]}`, the table at
/// the head. Built from the newest earlier snapshot's table and the entries after it; entries
/// that touch no timer are skipped without being decoded.
pub fn snapshot_host(chain: &dyn ChainStore) -> Result<serde_json::Value, ChainError> {
    let base = match chain.latest_snapshot()? {
        Some(s) if s.seq >= chain.start() => Some(s),
        _ => None,
    };
    let (mut table, from) = match &base {
        Some(s) => (table_of(Some(s)), s.seq + 1),
        None => (BTreeMap::new(), chain.start()),
    };
    advance(chain, from, &mut table)?;
    let timers: Vec<_> = table
        .values()
        .map(|t| json!({"name": t.name, "due_ms": t.due_ms, "every_ms": t.every_ms}))
        .collect();
    Ok(json!({ SNAPSHOT_KEY: timers }))
}

const SNAPSHOT_KEY: &str = "timers";

fn table_of(snapshot: Option<&theater_chain::Snapshot>) -> BTreeMap<String, Scheduled> {
    let listed = snapshot
        .and_then(|s| s.host.get(SNAPSHOT_KEY))
        .and_then(serde_json::Value::as_array);
    listed
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some(Scheduled {
                name: t["name"].as_str()?.to_string(),
                due_ms: t["due_ms"].as_u64()?,
                every_ms: t["every_ms"].as_u64(),
            })
        })
        .map(|t| (t.name.clone(), t))
        .collect()
}

/// Applies the entries from `from` to the head to `table`.
fn advance(
    chain: &dyn ChainStore,
    from: u64,
    table: &mut BTreeMap<String, Scheduled>,
) -> Result<(), ChainError> {
    let calls = memchr::memmem::Finder::new(b"theater:timers/");
    let firing = memchr::memmem::Finder::new(br#""type":"timer""#);
    let mut touching = Vec::new();
    chain.for_each_record(from, &mut |rec| {
        if calls.find(rec.body).is_some() || firing.find(rec.body).is_some() {
            touching.push(rec.seq);
        }
        Ok(())
    })?;
    for seq in touching {
        let entry = chain.get(seq)?;
        let input = match entry.event() {
            Event::Input { input, .. } => Some(input),
            Event::Init { .. } => None,
            _ => continue, // a failed input set nothing
        };
        if let Some(input) = input
            && input.json["type"] == "timer"
            && let (Some(name), Some(due)) =
                (input.json["name"].as_str(), input.json["due_ms"].as_u64())
            && let Some(t) = table.get(name).cloned()
        {
            match t.every_ms {
                // The next period after this firing.
                Some(every) => {
                    table.insert(
                        t.name.clone(),
                        Scheduled {
                            due_ms: due + every,
                            ..t
                        },
                    );
                }
                // A one-shot is done once it fired (not an older one of the same name).
                None if t.due_ms == due => {
                    table.remove(name);
                }
                None => {}
            }
        }
        for call in entry.host_calls() {
            let name = call.request.json["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if call.name == TIMER_SET {
                if let Some(due_ms) = call.result.json["due_ms"].as_u64() {
                    let every_ms = call.request.json["every_ms"].as_u64();
                    table.insert(
                        name.clone(),
                        Scheduled {
                            name,
                            due_ms,
                            every_ms,
                        },
                    );
                }
            } else if call.name == TIMER_CANCEL {
                table.remove(&name);
            }
        }
    }
    Ok(())
}
