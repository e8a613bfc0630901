//! # theater-timers
//!
//! The timers capability (`[interfaces.timers]`): an actor sets one-shot or periodic timers,
//! and each firing reaches it as a recorded [`theater_core::ActorInput::Timer`].
//!
//! - Setting and cancelling are recorded host calls (the due time reads the clock), and take
//!   effect only once the entry that made them is durable.
//! - The chain is the timer table: after a restart [`pending_timers`] rebuilds it (from the
//!   newest snapshot that carries it, then the entries after), and a timer that came due while
//!   the host was down fires late, once, rather than never.
//! - An actor granted no timers gets an error from [`set`] and [`cancel`], recorded like any
//!   answer, so its chain replays.
//! - A cancel (or a re-set) takes effect once its entry is durable; a firing that had already
//!   left the scheduler by then (waiting in the mailbox, say) still arrives, once. The firing
//!   is recorded as it arrived, so replay agrees, and the rebuilt table ignores it. An actor
//!   that must not act on it checks the firing against its own record of what it set (its
//!   name, and its `due_ms` against the one `set` returned).
//!
//! ## Example
//!
//! ```no_run
//! use theater_timers::Timers;
//! use theater_wasm::{Capabilities, WasmConfig, WasmHost};
//!
//! # fn main() -> anyhow::Result<()> {
//! let host = WasmHost::new(
//!     WasmConfig::default().capabilities(Capabilities::new().with(Timers::system())),
//! )?;
//! # Ok(())
//! # }
//! ```

mod config;
mod host;
mod schedule;

use std::sync::{Arc, Mutex, PoisonError};

pub use config::TimersConfig;
pub use schedule::{
    CancelAnswer, CancelRequest, Clock, MAX_DELAY, NOT_GRANTED, Scheduled, Scheduler, SetAnswer,
    SetRequest, SystemClock, TIMER_CANCEL, TIMER_SET, TimerHandle, TokioClock, cancel,
    pending_timers, set, snapshot_host, timers,
};

use theater_chain::{ChainError, ChainStore};
use theater_core::ActorHandle;
use theater_wasm::{Capability, Grant, HostState, Setup};
use wasmtime::component::Linker;

/// The timers of one actor: what its host functions set and cancel them with, and the
/// scheduler that fires them once the actor runs.
#[derive(Debug)]
pub struct TimerGrant {
    /// Sets and cancels the actor's timers.
    pub timers: TimerHandle,
    /// Fires them, from the table the chain left, once started.
    scheduler: Mutex<Option<(Scheduler, Vec<Scheduled>)>>,
}

impl TimerGrant {
    /// Timers on `clock`, starting from the `pending` ones (see [`pending_timers`]).
    pub fn new(clock: Arc<dyn Clock>, pending: Vec<Scheduled>) -> Self {
        let (timers, scheduler) = timers(clock);
        TimerGrant {
            timers,
            scheduler: Mutex::new(Some((scheduler, pending))),
        }
    }
}

impl Grant for TimerGrant {
    fn snapshot(&self, chain: &dyn ChainStore) -> Result<Option<serde_json::Value>, ChainError> {
        // The timers still pending go with it, so pruning the entries that set them loses none.
        snapshot_host(chain).map(Some)
    }

    fn start(&self, actor: &ActorHandle) {
        let taken = self
            .scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((scheduler, pending)) = taken {
            if !pending.is_empty() {
                tracing::info!(actor = %actor.id(), timers = pending.len(), "timers resumed from the chain");
            }
            scheduler.run(actor.clone(), pending);
        }
    }
}

/// What an actor granted no timers holds: its snapshots still carry the timer table (empty,
/// or what an earlier grant left pending), so pruning loses no timer if timers are granted
/// again.
#[derive(Clone, Copy, Debug)]
pub struct NoTimers;

impl Grant for NoTimers {
    fn snapshot(&self, chain: &dyn ChainStore) -> Result<Option<serde_json::Value>, ChainError> {
        snapshot_host(chain).map(Some)
    }
}

/// The timers capability, on a clock. Its grant is a [`TimerGrant`].
#[derive(Clone, Debug)]
pub struct Timers {
    clock: Arc<dyn Clock>,
}

impl Timers {
    /// Timers on the system's wall clock.
    pub fn system() -> Self {
        Timers::on(Arc::new(SystemClock))
    }

    /// Timers on `clock` (tests use a [`TokioClock`] with paused time).
    pub fn on(clock: Arc<dyn Clock>) -> Self {
        Timers { clock }
    }
}

impl Capability for Timers {
    const NAME: &'static str = "timers";
    type Config = TimersConfig;

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        theater_wasm::bindings::theater::actor::timers::add_to_linker::<_, host::Data>(
            linker,
            host::view,
        )
    }

    fn ungranted(&self) -> Option<Arc<dyn Grant>> {
        Some(Arc::new(NoTimers))
    }

    fn grant(&self, _: &TimersConfig, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>> {
        // What the chain left scheduled (timers set before a restart of the host).
        let pending = pending_timers(setup.chain)?;
        Ok(Arc::new(TimerGrant::new(Arc::clone(&self.clock), pending)))
    }
}
