//! Measuring a figure and its baseline in the same run, and printing the table.

use std::time::{Duration, Instant};

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// Timed samples per side; the median is reported.
    pub(crate) samples: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { samples: 7 }
    }
}

/// Whether a bigger or a smaller figure is better.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Better {
    Higher,
    Lower,
}

/// One line of the table.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) unit: &'static str,
    pub(crate) ours: f64,
    pub(crate) baseline_name: String,
    pub(crate) baseline: f64,
    pub(crate) better: Better,
    /// What the row should reach, if it has a target.
    pub(crate) target: Option<Target>,
}

/// A row's target.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// The ratio must be at least this.
    Ratio(f64),
    /// Theater's figure must be at most this (an absolute budget, e.g. µs per spawn).
    AtMost(f64),
}

impl Target {
    fn describe(self, row: &Row) -> String {
        let (met, text) = match self {
            Target::Ratio(t) => (row.ratio() >= t, format!("ratio ≥ {t:.2}")),
            Target::AtMost(t) => (row.ours <= t, format!("≤ {}", human(t, row.unit))),
        };
        format!("{text} {}", if met { "ok" } else { "MISSED" })
    }
}

impl Row {
    /// ours / baseline for throughputs; baseline / ours for latencies: above 1 means faster.
    pub(crate) fn ratio(&self) -> f64 {
        match self.better {
            Better::Higher => self.ours / self.baseline,
            Better::Lower => self.baseline / self.ours,
        }
    }
}

pub(crate) struct Report {
    pub(crate) settings: Settings,
    filter: Option<String>,
    rows: Vec<Row>,
}

impl Report {
    pub(crate) fn new(settings: Settings, filter: Option<String>) -> Self {
        Report {
            settings,
            filter,
            rows: Vec::new(),
        }
    }

    pub(crate) fn wants(&self, name: &str) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| name.contains(f.as_str()))
    }

    pub(crate) fn push(&mut self, row: Row) {
        eprintln!(
            "  {:<44} {:>10} vs {:>10}  ratio {:.2}",
            row.name,
            human(row.ours, row.unit),
            human(row.baseline, row.unit),
            row.ratio()
        );
        self.rows.push(row);
    }

    pub(crate) fn print(&self) {
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                let target = r.target.map(|t| t.describe(r)).unwrap_or_default();
                [
                    r.name.clone(),
                    human(r.ours, r.unit),
                    r.baseline_name.clone(),
                    human(r.baseline, r.unit),
                    format!("{:.2}", r.ratio()),
                    target,
                ]
            })
            .collect();
        let head = [
            "benchmark",
            "theater",
            "baseline (same run)",
            "baseline",
            "ratio",
            "target",
        ];
        let mut w = head.map(|h| h.chars().count());
        for row in &cells {
            for (i, c) in row.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |c: [&str; 6]| {
            format!(
                "{:<w0$}  {:>w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {}",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            )
        };
        println!();
        println!("{}", line(head));
        println!("{}", "-".repeat(w.iter().sum::<usize>() + 22));
        for row in &cells {
            println!("{}", line(row.each_ref().map(String::as_str)));
        }
        println!();
        println!(
            "ratio: theater ÷ baseline for throughputs, baseline ÷ theater for latencies \
             (higher is better); medians of {} interleaved samples per side.",
            self.settings.samples
        );
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "name": r.name, "unit": r.unit, "theater": r.ours,
                        "baseline_name": r.baseline_name, "baseline": r.baseline,
                        "ratio": r.ratio(),
                        "target": r.target.map(|t| t.describe(r)),
                    })
                })
                .collect(),
        )
    }
}

/// Runs `ours` and `baseline` alternately `samples` times each (after one warm-up run
/// each) and returns their median durations.
pub(crate) fn interleaved(
    samples: usize,
    mut ours: impl FnMut() -> anyhow::Result<()>,
    mut baseline: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(Duration, Duration)> {
    interleaved_timed(
        samples,
        || {
            let t = Instant::now();
            ours()?;
            Ok(t.elapsed())
        },
        || {
            let t = Instant::now();
            baseline()?;
            Ok(t.elapsed())
        },
    )
}

/// Like [`interleaved`], for runs that time themselves (to leave set-up out of the figure).
pub(crate) fn interleaved_timed(
    samples: usize,
    mut ours: impl FnMut() -> anyhow::Result<Duration>,
    mut baseline: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<(Duration, Duration)> {
    ours()?;
    baseline()?;
    let mut a = Vec::with_capacity(samples);
    let mut b = Vec::with_capacity(samples);
    for _ in 0..samples {
        a.push(ours()?);
        b.push(baseline()?);
    }
    Ok((median(&mut a), median(&mut b)))
}

pub(crate) fn median(xs: &mut [Duration]) -> Duration {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

/// The `p`-quantile (0.5: median, 0.99: p99) of `xs`.
pub(crate) fn percentile(xs: &mut [Duration], p: f64) -> Duration {
    xs.sort_unstable();
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i.min(xs.len().saturating_sub(1))]
}

/// Formats a figure with an SI prefix.
pub(crate) fn human(v: f64, unit: &str) -> String {
    let (scaled, prefix) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else if v >= 1.0 || v == 0.0 {
        (v, "")
    } else if v >= 1e-3 {
        (v * 1e3, "m")
    } else if v >= 1e-6 {
        (v * 1e6, "µ")
    } else {
        (v * 1e9, "n")
    };
    format!("{scaled:.2} {prefix}{unit}")
}

/// Per-second rates (medians over the samples) of `n` calls of `input` on `actor` and of `n`
/// calls of `direct`, interleaved round by round.
pub(crate) async fn versus(
    report: &Report,
    n: u32,
    actor: &theater_core::ActorHandle,
    input: &theater_core::ActorInput,
    mut direct: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    versus_async(report, n, actor, input, || std::future::ready(direct())).await
}

/// [`versus`] with a baseline that is itself asynchronous (a database client's request).
pub(crate) async fn versus_async<F, Fut>(
    report: &Report,
    n: u32,
    actor: &theater_core::ActorHandle,
    input: &theater_core::ActorInput,
    mut direct: F,
) -> anyhow::Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for round in 0..=report.settings.samples {
        let t = std::time::Instant::now();
        for _ in 0..n {
            let out = actor.call(input.clone()).await?;
            std::hint::black_box(out);
        }
        let a = t.elapsed();
        let t = std::time::Instant::now();
        for _ in 0..n {
            direct().await?;
        }
        let b = t.elapsed();
        if round > 0 {
            ours.push(a / n);
            base.push(b / n);
        }
    }
    let per = |d: std::time::Duration| 1.0 / d.as_secs_f64();
    Ok((per(median(&mut ours)), per(median(&mut base))))
}

/// A single-threaded tokio runtime, as every row runs on (the load and Theater share it).
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The example component `example`, granted what `grant` adds, spawned on a memory chain.
pub(crate) async fn spawn_example(
    example: &str,
    grant: impl Fn(theater_wasm::WasmActor) -> theater_wasm::WasmActor + Send + Sync + 'static,
) -> anyhow::Result<theater_core::ActorHandle> {
    use theater_wasm::{Limits, WasmConfig, WasmHost};
    let host = WasmHost::new(
        WasmConfig::default()
            .pooling(Some(4))
            .capabilities(capabilities()),
    )?;
    let component = host.load_file(theater_test_support::example_component(example))?;
    let id = theater_chain::ChainId::new(example)?;
    let actor_id = id.clone();
    Ok(theater_core::spawn(
        move || {
            grant(host.actor(
                &component,
                &actor_id,
                serde_json::Value::Null,
                Limits::default(),
            ))
        },
        Box::new(theater_chain::MemoryStore::new(id)),
        theater_core::ActorConfig::default(),
    )
    .await?)
}

/// Every capability's host functions (grants are given per actor).
pub(crate) fn capabilities() -> theater_wasm::Capabilities {
    theater_wasm::Capabilities::new()
        .with(theater_msg::Msg::new(theater_msg::Registry::new()))
        .with(theater_files::Files)
        .with(theater_timers::Timers::system())
        .with(theater_db::Db::new())
        .with(theater_http_client::HttpClient)
}
