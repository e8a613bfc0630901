//! `GET /metrics` on the management API: the host's actors in the OpenMetrics text format,
//! encoded by `prometheus-client` from what each actor's runtime counts
//! ([`theater_core::ActorMetrics`]) and what the host reads at scrape time (mailbox depth,
//! the chain's size on disk).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use theater_core::{ActorMetrics, ActorStatus, Histogram};

use crate::host::Host;

/// The content type of [`scrape`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One actor as a scrape sees it.
#[derive(Debug)]
struct Seen {
    name: String,
    metrics: Arc<ActorMetrics>,
    running: bool,
    mailbox: usize,
    chain_bytes: u64,
}

#[derive(Debug)]
struct Actors(Vec<Seen>);

type Labels<'a> = [(&'static str, &'a str); 1];

impl Actors {
    fn counter(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: impl Fn(&ActorMetrics) -> &AtomicU64,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for a in &self.0 {
            let labels: Labels<'_> = [("actor", &a.name)];
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(
                    &ActorMetrics::get(value(&a.metrics)),
                    None,
                )?;
        }
        Ok(())
    }

    fn gauge(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: impl Fn(&Seen) -> i64,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
        for a in &self.0 {
            let labels: Labels<'_> = [("actor", &a.name)];
            family.encode_family(&labels)?.encode_gauge(&value(a))?;
        }
        Ok(())
    }

    fn histogram(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: impl Fn(&ActorMetrics) -> &Histogram,
    ) -> Result<(), std::fmt::Error> {
        let mut family =
            encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
        for a in &self.0 {
            let labels: Labels<'_> = [("actor", &a.name)];
            let (sum, count, buckets) = value(&a.metrics).read();
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

impl Collector for Actors {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        self.counter(
            e,
            "theater_actor_inputs",
            "Inputs handled and recorded (failed ones too)",
            |m| &m.inputs,
        )?;
        self.counter(
            e,
            "theater_actor_failures",
            "Inputs recorded as failed (state unchanged)",
            |m| &m.failures,
        )?;
        self.counter(e, "theater_actor_restarts", "Restarts after a crash", |m| {
            &m.restarts
        })?;
        self.counter(e, "theater_actor_upgrades", "Code upgrades recorded", |m| {
            &m.upgrades
        })?;
        self.gauge(
            e,
            "theater_actor_running",
            "1 while the actor runs, 0 when stopped or failed",
            None,
            |a| i64::from(a.running),
        )?;
        self.gauge(
            e,
            "theater_actor_mailbox_depth",
            "Commands waiting in the actor's mailbox",
            None,
            |a| i64::try_from(a.mailbox).unwrap_or(i64::MAX),
        )?;
        self.histogram(
            e,
            "theater_actor_handle",
            "Time to handle and record one input (before its commit)",
            |m| &m.handle,
        )?;
        self.histogram(
            e,
            "theater_actor_commit",
            "Time to make a batch of new entries durable (group commit's fsync), when it had any",
            |m| &m.commit,
        )?;
        self.gauge(
            e,
            "theater_chain_entries",
            "Entries recorded in the actor's chain (its head's seq + 1, pruned ones included)",
            None,
            |a| i64::try_from(ActorMetrics::get(&a.metrics.chain_entries)).unwrap_or(i64::MAX),
        )?;
        self.gauge(
            e,
            "theater_chain",
            "Size of the actor's chain log on disk",
            Some(&Unit::Bytes),
            |a| i64::try_from(a.chain_bytes).unwrap_or(i64::MAX),
        )?;
        let mut family = e.encode_descriptor(
            "theater_http_requests",
            "HTTP requests answered for the actor, by status",
            None,
            MetricType::Counter,
        )?;
        for a in &self.0 {
            for (status, n) in a.metrics.http_by_status() {
                let status = status.to_string();
                let labels = [("actor", a.name.as_str()), ("status", status.as_str())];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        Ok(())
    }
}

/// The host's metrics now, as OpenMetrics text.
pub(crate) async fn scrape(host: &Host) -> Result<String, std::fmt::Error> {
    let mut seen = Vec::new();
    for a in host.list().await {
        let Some(h) = a.handle else { continue };
        let chain_bytes = host.chain_bytes(&a.name).unwrap_or(0);
        seen.push(Seen {
            name: a.name,
            metrics: Arc::clone(h.metrics()),
            running: matches!(h.status(), ActorStatus::Running),
            mailbox: h.mailbox_depth(),
            chain_bytes,
        });
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Actors(seen)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}
