//! Timers: setting and cancelling them (recorded host calls), firing them into the actor, and
//! rebuilding the table from the chain.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use theater_chain::{ChainError, ChainStore, Event};
use tokio::sync::mpsc;

use theater_core::{ActorHandle, ActorInput, HostCallError, HostCalls};

/// Name of a recorded timer set: request `{"name", "delay_ms", "every_ms"}`, result
/// `{"due_ms"}` (milliseconds since the Unix epoch) or `{"error"}`.
pub const TIMER_SET: &str = "theater:timers/set";
/// Name of a recorded timer cancel: request `{"name"}`, result `{"ok": true}` or `{"error"}`.
pub const TIMER_CANCEL: &str = "theater:timers/cancel";

/// The error an actor granted no timers gets (recorded like any answer).
pub const NOT_GRANTED: &str =
    "timers are not granted to this actor (add [interfaces.timers] to its manifest)";

/// The longest delay or period a timer may have: ten years.
pub const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

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

/// A recorded `set`: what the actor asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRequest {
    /// The timer's name.
    pub name: String,
    /// After how long it first fires.
    pub delay_ms: u64,
    /// Its period, for a periodic timer.
    pub every_ms: Option<u64>,
}

/// What a recorded `set` answered: when the timer is due, or why it was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SetAnswer {
    /// Refused (not granted, a delay over [`MAX_DELAY`]).
    Refused {
        /// What the actor was told.
        error: String,
    },
    /// Set: due at this time (ms since the Unix epoch).
    Due {
        /// When it is due.
        due_ms: u64,
    },
}

/// A recorded `cancel`: which timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// The timer's name.
    pub name: String,
}

/// What a recorded `cancel` answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CancelAnswer {
    /// Refused (not granted).
    Refused {
        /// What the actor was told.
        error: String,
    },
    /// Cancelled (if it was set).
    Done {
        /// Always true.
        ok: bool,
    },
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
pub struct TimerHandle {
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

/// A timer service for one actor: the [`TimerHandle`] its host functions use, and the
/// [`Scheduler`] to start once the actor is spawned (the actor needs the first before its
/// handle exists; the second needs the handle).
pub fn timers(clock: Arc<dyn Clock>) -> (TimerHandle, Scheduler) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        TimerHandle {
            tx,
            clock: Arc::clone(&clock),
        },
        Scheduler { rx, clock },
    )
}

/// Sets timer `name` to fire after `delay`, then every `every` if given, through `timers`
/// (`None`: not granted, and in replay, where nothing is scheduled). Recorded; replaces a timer
/// of the same name. Returns when it is due (ms since the Unix epoch), or the error the actor
/// gets: timers not granted, a period of 0, or a delay or period over [`MAX_DELAY`].
pub fn set(
    timers: Option<&TimerHandle>,
    host: &mut HostCalls,
    name: &str,
    delay: Duration,
    every: Option<Duration>,
) -> Result<Result<u64, String>, HostCallError> {
    if every == Some(Duration::ZERO) {
        return Ok(Err(
            "a periodic timer needs a period of at least 1 ms".into()
        ));
    }
    let delay_ms = millis(delay);
    let every_ms = every.map(|e| millis(e).max(1));
    let request = SetRequest {
        name: name.to_string(),
        delay_ms,
        every_ms,
    };
    // The cap is a recorded answer: a chain from before it (a longer timer) replays as it was.
    let over = delay > MAX_DELAY || every.is_some_and(|e| e > MAX_DELAY);
    let answer = host.call_typed(TIMER_SET, &request, || match timers {
        _ if over => SetAnswer::Refused {
            error: format!(
                "a timer's delay and period may be at most {} days",
                MAX_DELAY.as_secs() / 86_400
            ),
        },
        Some(t) => SetAnswer::Due {
            due_ms: t.clock.now_ms().saturating_add(delay_ms),
        },
        None => SetAnswer::Refused {
            error: NOT_GRANTED.into(),
        },
    })?;
    let due_ms = match answer {
        SetAnswer::Refused { error } => return Ok(Err(error)),
        SetAnswer::Due { due_ms } => due_ms,
    };
    if let Some(t) = timers {
        let tx = t.tx.clone();
        let scheduled = Scheduled {
            name: name.to_string(),
            due_ms,
            every_ms,
        };
        host.after_commit_quick(move |_| async move {
            let _ = tx.send(Command::Set(scheduled));
        });
    }
    Ok(Ok(due_ms))
}

/// Cancels timer `name`, if set, through `timers` (`None`: not granted, and in replay).
/// Recorded, so the chain knows; the error is the one the actor gets.
pub fn cancel(
    timers: Option<&TimerHandle>,
    host: &mut HostCalls,
    name: &str,
) -> Result<Result<(), String>, HostCallError> {
    let request = CancelRequest {
        name: name.to_string(),
    };
    let answer = host.call_typed(TIMER_CANCEL, &request, || match timers {
        Some(_) => CancelAnswer::Done { ok: true },
        None => CancelAnswer::Refused {
            error: NOT_GRANTED.into(),
        },
    })?;
    if let CancelAnswer::Refused { error } = answer {
        return Ok(Err(error));
    }
    if let Some(t) = timers {
        let tx = t.tx.clone();
        let name = name.to_string();
        host.after_commit_quick(move |_| async move {
            let _ = tx.send(Command::Cancel(name));
        });
    }
    Ok(Ok(()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
                                let mut due = timer.due_ms.saturating_add(every);
                                if due <= now {
                                    due = due.saturating_add(
                                        ((now - due) / every).saturating_mul(every).saturating_add(every),
                                    );
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
/// starts a restarted actor's [`Scheduler`] with. Starts from the table the newest snapshot
/// carries (see [`snapshot_host`]).
pub fn pending_timers(chain: &dyn ChainStore) -> Result<Vec<Scheduled>, ChainError> {
    Ok(table_at_head(chain)?.into_values().collect())
}

/// What a snapshot at the chain's head carries for timers (under `"timers"`): the table at
/// the head, `[{"name", "due_ms", "every_ms"}]`.
pub fn snapshot_host(chain: &dyn ChainStore) -> Result<serde_json::Value, ChainError> {
    let timers: Vec<_> = table_at_head(chain)?
        .values()
        .map(|t| json!({"name": t.name, "due_ms": t.due_ms, "every_ms": t.every_ms}))
        .collect();
    Ok(json!(timers))
}

const SNAPSHOT_KEY: &str = "timers";

/// The timer table at the chain's head: from the newest stored snapshot that carries one (a
/// snapshot from before timers were kept in snapshots does not), then the entries after it;
/// entries that touch no timer are skipped without being decoded.
fn table_at_head(chain: &dyn ChainStore) -> Result<BTreeMap<String, Scheduled>, ChainError> {
    let base = chain
        .latest_snapshot()?
        .filter(|s| s.seq >= chain.start() && s.host.get(SNAPSHOT_KEY).is_some());
    let (mut table, from) = match &base {
        Some(s) => (table_of(s), s.seq + 1),
        None => (BTreeMap::new(), chain.start()),
    };
    advance(chain, from, &mut table)?;
    Ok(table)
}

fn table_of(snapshot: &theater_chain::Snapshot) -> BTreeMap<String, Scheduled> {
    let listed = snapshot
        .host
        .get(SNAPSHOT_KEY)
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
        // A failed input set nothing, but a firing it was happened all the same.
        let (input, succeeded) = match entry.event() {
            Event::Input { input, .. } | Event::Read { input, .. } => (Some(input), true),
            Event::Failed { input, .. } => (Some(input), false),
            Event::Init { .. } => (None, true),
            _ => continue,
        };
        if let Some(input) = input
            && let Ok(ActorInput::Timer { name, due_ms: due }) = ActorInput::from_payload(input)
            && let Some(t) = table.get(&name).cloned()
        {
            match t.every_ms {
                // The next period after this firing (not one of a timer set since).
                Some(every) if due >= t.due_ms => {
                    table.insert(
                        t.name.clone(),
                        Scheduled {
                            due_ms: due.saturating_add(every),
                            ..t
                        },
                    );
                }
                // A one-shot is done once it fired (not an older one of the same name).
                None if t.due_ms == due => {
                    table.remove(&name);
                }
                _ => {}
            }
        }
        if !succeeded {
            continue;
        }
        for call in entry.host_calls() {
            if call.name == TIMER_SET {
                let request = serde_json::from_value::<SetRequest>(call.request.json.clone());
                let answer = serde_json::from_value::<SetAnswer>(call.result.json.clone());
                if let (Ok(request), Ok(SetAnswer::Due { due_ms })) = (request, answer) {
                    table.insert(
                        request.name.clone(),
                        Scheduled {
                            name: request.name,
                            due_ms,
                            every_ms: request.every_ms,
                        },
                    );
                }
            } else if call.name == TIMER_CANCEL {
                let request = serde_json::from_value::<CancelRequest>(call.request.json.clone());
                let answer = serde_json::from_value::<CancelAnswer>(call.result.json.clone());
                if let (Ok(request), Ok(CancelAnswer::Done { .. })) = (request, answer) {
                    table.remove(&request.name);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use serde_json::Value;
    use theater_chain::{ChainId, Hash, HostCall, MemoryStore, NewEntry, Payload, Snapshot};

    fn chain() -> MemoryStore {
        let mut chain = MemoryStore::new(ChainId::new("timers").unwrap());
        chain
            .append(NewEntry::init(
                Payload::json(json!(0)),
                Hash::of_state(&json!(0)),
            ))
            .unwrap();
        chain
    }

    /// A handled request that set timer `name` due at `due_ms`.
    fn set_at(chain: &mut MemoryStore, name: &str, due_ms: u64, every_ms: Option<u64>) {
        let call = HostCall {
            name: TIMER_SET.into(),
            request: Payload::json(json!({"name": name, "delay_ms": 0, "every_ms": every_ms})),
            result: Payload::json(json!({"due_ms": due_ms})),
        };
        let input = ActorInput::request(json!("set")).to_payload();
        let entry = NewEntry::input(input, Payload::default(), Hash::of_state(&json!(0)));
        chain.append(entry.with_host_calls(vec![call])).unwrap();
    }

    /// A firing of `name` due at `due_ms`, whose input failed (`ok`: succeeded).
    fn fired(chain: &mut MemoryStore, name: &str, due_ms: u64, ok: bool) {
        let input = ActorInput::Timer {
            name: name.into(),
            due_ms,
        }
        .to_payload();
        let hash = Hash::of_state(&json!(0));
        let entry = match ok {
            true => NewEntry::input(input, Payload::default(), hash),
            false => NewEntry::failed(input, "the actor trapped", hash),
        };
        chain.append(entry).unwrap();
    }

    fn scheduled(name: &str, due_ms: u64, every_ms: Option<u64>) -> Scheduled {
        Scheduled {
            name: name.into(),
            due_ms,
            every_ms,
        }
    }

    #[test]
    fn a_firing_whose_input_failed_still_fired() {
        let mut chain = chain();
        set_at(&mut chain, "once", 1_100, None);
        set_at(&mut chain, "job", 1_050, Some(50));
        fired(&mut chain, "job", 1_050, false);
        fired(&mut chain, "once", 1_100, false);
        assert_eq!(
            pending_timers(&chain).unwrap(),
            vec![scheduled("job", 1_100, Some(50))]
        );
    }

    #[test]
    fn a_firing_of_a_periodic_timer_set_again_since_does_not_move_it() {
        let mut chain = chain();
        set_at(&mut chain, "job", 1_050, Some(50));
        // Re-set after the firing left the scheduler, before the actor handled it.
        set_at(&mut chain, "job", 2_000, Some(50));
        fired(&mut chain, "job", 1_050, true);
        assert_eq!(
            pending_timers(&chain).unwrap(),
            vec![scheduled("job", 2_000, Some(50))]
        );
        fired(&mut chain, "job", 2_000, true);
        assert_eq!(
            pending_timers(&chain).unwrap(),
            vec![scheduled("job", 2_050, Some(50))]
        );
    }

    #[test]
    fn a_huge_period_saturates_and_a_delay_over_the_cap_is_refused() {
        let mut chain = chain();
        // What an older host recorded for a period of u64::MAX ms.
        set_at(&mut chain, "job", 1_000, Some(u64::MAX));
        fired(&mut chain, "job", 1_000, true);
        assert_eq!(
            pending_timers(&chain).unwrap(),
            vec![scheduled("job", u64::MAX, Some(u64::MAX))]
        );
        let mut host = HostCalls::live();
        let huge = Duration::from_millis(u64::MAX);
        for (delay, every) in [(huge, None), (Duration::ZERO, Some(huge))] {
            let e = set(None, &mut host, "job", delay, every)
                .unwrap()
                .unwrap_err();
            assert!(e.contains("at most 3650 days"), "{e}");
        }
        let (t, _scheduler) = timers(Arc::new(SystemClock));
        assert!(
            set(Some(&t), &mut host, "ok", MAX_DELAY, Some(MAX_DELAY))
                .unwrap()
                .is_ok()
        );
        // A timer over the cap that an older host accepted replays as recorded.
        let old = HostCall {
            name: TIMER_SET.into(),
            request: Payload::json(json!({"name": "job", "delay_ms": u64::MAX, "every_ms": null})),
            result: Payload::json(json!({"due_ms": u64::MAX})),
        };
        let mut replaying = HostCalls::replaying(vec![old]);
        assert_eq!(
            set(None, &mut replaying, "job", huge, None).unwrap(),
            Ok(u64::MAX)
        );
    }

    #[test]
    fn timers_not_granted_are_a_recorded_error_that_replays() {
        let mut live = HostCalls::live();
        let ten = Duration::from_millis(10);
        let e = set(None, &mut live, "job", ten, Some(ten)).unwrap();
        assert_eq!(e, Err(NOT_GRANTED.to_string()));
        assert_eq!(
            cancel(None, &mut live, "job").unwrap(),
            Err(NOT_GRANTED.into())
        );
        let recorded = live.calls().to_vec();
        assert_eq!(recorded.len(), 2);
        let mut replay = HostCalls::replaying(recorded);
        assert_eq!(set(None, &mut replay, "job", ten, Some(ten)).unwrap(), e);
        assert_eq!(
            cancel(None, &mut replay, "job").unwrap(),
            Err(NOT_GRANTED.into())
        );
        assert_eq!(replay.unconsumed(), 0);
    }

    #[test]
    fn a_snapshot_without_timers_does_not_lose_them() {
        let mut chain = chain();
        set_at(&mut chain, "job", 1_050, Some(50));
        // A snapshot from before snapshots carried the timer table.
        let head = chain.head().unwrap();
        chain
            .save_snapshot(&Snapshot::new(head.seq, head.hash, json!(0)))
            .unwrap();
        set_at(&mut chain, "once", 5_000, None);
        let expected = vec![
            scheduled("job", 1_050, Some(50)),
            scheduled("once", 5_000, None),
        ];
        assert_eq!(pending_timers(&chain).unwrap(), expected);
        let host = snapshot_host(&chain).unwrap();
        let names: Vec<&Value> = host
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["name"])
            .collect();
        assert_eq!(names, [&json!("job"), &json!("once")]);
    }
}
