//! [`ActorMetrics`]: what an actor's runtime counts as it goes (inputs, failures, restarts,
//! how long inputs and commits take, how long its chain is), kept in atomics so that
//! recording costs a few relaxed adds. An exporter (the host's `/metrics`) reads them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds of [`Histogram`]'s buckets, in seconds (an implicit `+Inf` follows).
pub const BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// A latency histogram with fixed buckets ([`BUCKETS`]); observing is lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The sum of observations in seconds, their count, and each bucket's upper bound with
    /// the observations above the bucket before it and at or below it (not cumulative,
    /// `+Inf` last: what `prometheus-client`'s encoder sums up).
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut count = 0;
        let mut buckets = Vec::with_capacity(BUCKETS.len() + 1);
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            buckets.push((BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }
}

/// One actor's counts (see the module docs). Shared by its runtime, its handle and an
/// exporter; give one to [`crate::RuntimeConfig::metrics`].
#[derive(Debug, Default)]
pub struct ActorMetrics {
    /// Inputs handled and recorded (failed ones too).
    pub inputs: AtomicU64,
    /// Inputs recorded as failed.
    pub failures: AtomicU64,
    /// Restarts after a crash.
    pub restarts: AtomicU64,
    /// Upgrades recorded.
    pub upgrades: AtomicU64,
    /// Entries in the chain (its head's seq + 1).
    pub chain_entries: AtomicU64,
    /// How long handling an input took, recording it included (not its commit).
    pub handle: Histogram,
    /// How long making a batch of entries durable took (the fsync, under group commit).
    pub commit: Histogram,
    /// HTTP requests answered for this actor, by status code.
    http: Mutex<BTreeMap<u16, u64>>,
}

impl ActorMetrics {
    /// Counts an HTTP request answered with `status`.
    pub fn http_answered(&self, status: u16) {
        let mut map = self.http.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(status).or_default() += 1;
    }

    /// HTTP requests answered, by status code.
    pub fn http_by_status(&self) -> BTreeMap<u16, u64> {
        self.http.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_observation_in_its_bucket_and_those_above() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let (sum, count, buckets) = h.read();
        assert_eq!(count, 3);
        assert!((sum - 60.00301).abs() < 1e-9, "{sum}");
        assert_eq!(buckets.len(), BUCKETS.len() + 1);
        assert_eq!(buckets[0], (0.00005, 1));
        let at = |bound: f64| buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.0025), 0);
        assert_eq!(at(0.005), 1);
        assert_eq!(at(10.0), 0);
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(buckets.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }
}
