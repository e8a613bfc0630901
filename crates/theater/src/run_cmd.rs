//! `theater run`: start actors from manifests and serve until Ctrl-C (or SIGTERM, or
//! `theater shutdown`), then stop cleanly with every acknowledged entry durable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use theater_core::Shutdown;

use crate::admin::{self, AdminFiles};
use crate::host::Host;

/// The data directory when none is given: `theater-data` in the working directory.
pub(crate) const DEFAULT_DATA_DIR: &str = "theater-data";

/// Writes `text` to `path`, readable by its owner only, replacing any file there at once: a
/// reader sees the old content or the new, never a part, and an old file's looser mode does
/// not carry over.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for the token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `theater run`'s cluster flags: all three of `--cluster`, `--nats` and `--host`, or none
/// (one host on its own, the default).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ClusterArgs {
    /// Join this Theater cluster (its streams and subjects are named after it).
    #[arg(long)]
    cluster: Option<String>,
    /// The NATS servers of the cluster, comma-separated (nats://127.0.0.1:4222,...).
    #[arg(long)]
    nats: Option<String>,
    /// This host's name in the cluster (unique).
    #[arg(long)]
    host: Option<String>,
    /// Shards the cluster's actors are spread over (the same on every host; default 16).
    #[arg(long)]
    shards: Option<u32>,
    /// How long a host keeps its shards without renewing them, in milliseconds: a dead
    /// host's actors move after about this long (default 6000).
    #[arg(long)]
    lease_ms: Option<u64>,
}

/// A host configuration file (`theater run --config FILE`): manifests to run, the cluster
/// to join, secrets and PostgreSQL connections its actors may name. Flags given on the
/// command line win over it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HostFile {
    /// Manifests, relative to the file's directory.
    #[serde(default)]
    manifests: Vec<PathBuf>,
    /// The cluster to join.
    cluster: Option<ClusterFile>,
    /// Secrets every actor may name: `NAME = { env = "VAR" }` or `{ file = "PATH" }`.
    secrets: Option<toml::Value>,
    /// The secrets read from `secrets`, file paths resolved against the file's directory.
    #[serde(skip)]
    pub(crate) secret_sources: std::collections::BTreeMap<String, theater_wasm::secrets::Source>,
    /// PostgreSQL connections manifests may name (`[interfaces.db] connection = "NAME"`).
    #[serde(default)]
    databases: std::collections::BTreeMap<String, theater_db::ConnectionConfig>,
    /// The connections of `databases`, checked, their paths resolved.
    #[serde(skip)]
    pub(crate) connections: theater_db::Connections,
    /// The audit log (`[audit]`; its presence turns it on).
    audit: Option<AuditFile>,
}

/// The `[audit]` table of a [`HostFile`].
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditFile {
    origin: Option<String>,
    checkpoint_every: Option<u64>,
    checkpoint_ms: Option<u64>,
    #[serde(default)]
    witnesses: Vec<crate::audit::WitnessTarget>,
}

impl HostFile {
    /// The audit options: the file's `[audit]`, or the defaults when `flag` (`--audit`).
    pub(crate) fn audit(&self, flag: bool) -> anyhow::Result<Option<crate::audit::AuditOptions>> {
        let Some(a) = &self.audit else {
            return Ok(flag.then(crate::audit::AuditOptions::default));
        };
        let mut options = crate::audit::AuditOptions {
            origin: a.origin.clone(),
            witnesses: a.witnesses.clone(),
            ..Default::default()
        };
        if let Some(n) = a.checkpoint_every {
            anyhow::ensure!(n > 0, "[audit] checkpoint_every must be at least 1");
            options.every_entries = n;
        }
        if let Some(ms) = a.checkpoint_ms {
            anyhow::ensure!(ms >= 100, "[audit] checkpoint_ms must be at least 100");
            options.every = std::time::Duration::from_millis(ms);
        }
        Ok(Some(options))
    }
}

/// The `[cluster]` table of a [`HostFile`].
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    name: String,
    /// One URL, or several (`["nats://a:4222", "nats://b:4222"]`).
    nats: Servers,
    host: String,
    shards: Option<u32>,
    lease_ms: Option<u64>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Servers {
    One(String),
    Many(Vec<String>),
}

impl HostFile {
    /// Reads `path`; its manifests are resolved against its directory.
    pub(crate) fn load(path: &Path) -> anyhow::Result<HostFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the host configuration {}", path.display()))?;
        // The message alone (with any string it quotes left out) and the line: toml's full
        // report quotes the line, which may hold a secret's value written where it does not
        // belong.
        let mut file: HostFile = toml::from_str(&text).map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| format!("line {}: ", text[..s.start].matches('\n').count() + 1))
                .unwrap_or_default();
            anyhow::anyhow!(
                "the host configuration {}: {line}{}",
                path.display(),
                theater_wasm::scrub_error(e.message())
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(table) = &file.secrets {
            file.secret_sources =
                theater_wasm::secrets::parse_table(table, base).map_err(|(field, message)| {
                    anyhow::anyhow!(
                        "the host configuration {}: {field}: {message}",
                        path.display()
                    )
                })?;
        }
        for (name, config) in &file.databases {
            let connection = theater_db::check_connection_name(name)
                .map_err(|e| ("", e))
                .and_then(|()| config.resolve(base))
                .map_err(|(field, message)| {
                    let at = if field.is_empty() {
                        format!("databases.{name}")
                    } else {
                        format!("databases.{name}.{field}")
                    };
                    anyhow::anyhow!("the host configuration {}: {at}: {message}", path.display())
                })?;
            if let theater_db::PasswordSource::Secret { name: secret, .. } = &connection.password
                && !file.secret_sources.contains_key(secret)
            {
                anyhow::bail!(
                    "the host configuration {}: databases.{name}.password_secret: no secret {secret:?} in this file's [secrets]",
                    path.display()
                );
            }
            file.connections.insert(name.clone(), connection);
        }
        for m in &mut file.manifests {
            if m.is_relative() {
                *m = base.join(&*m);
            }
        }
        Ok(file)
    }

    /// The manifests given on the command line, then the file's.
    pub(crate) fn manifests(&self, given: Vec<PathBuf>) -> Vec<PathBuf> {
        let mut all = given;
        all.extend(self.manifests.iter().cloned());
        all
    }

    /// `args`, with what the command line left out taken from the file's `[cluster]`.
    pub(crate) fn cluster(&self, mut args: ClusterArgs) -> ClusterArgs {
        if let Some(c) = &self.cluster {
            args.cluster.get_or_insert_with(|| c.name.clone());
            args.host.get_or_insert_with(|| c.host.clone());
            args.nats.get_or_insert_with(|| match &c.nats {
                Servers::One(s) => s.clone(),
                Servers::Many(v) => v.join(","),
            });
            args.shards = args.shards.or(c.shards);
            args.lease_ms = args.lease_ms.or(c.lease_ms);
        }
        args
    }
}

impl ClusterArgs {
    fn options(&self) -> anyhow::Result<Option<crate::cluster::ClusterOptions>> {
        let (name, nats, host) = match (&self.cluster, &self.nats, &self.host) {
            (Some(name), Some(nats), Some(host)) => (name, nats, host),
            (None, None, None) => {
                if self.shards.is_some() || self.lease_ms.is_some() {
                    anyhow::bail!("--shards and --lease-ms need --cluster, --nats and --host");
                }
                return Ok(None);
            }
            _ => anyhow::bail!(
                "a cluster needs all of --cluster NAME, --nats URL[,URL...] and --host NAME"
            ),
        };
        let shards = self.shards.unwrap_or(16);
        let lease_ms = self.lease_ms.unwrap_or(6000);
        if shards == 0 {
            anyhow::bail!("--shards must be at least 1");
        }
        if lease_ms < 300 {
            anyhow::bail!("--lease-ms must be at least 300 (got {lease_ms})");
        }
        let config = theater_cluster::ClusterConfig::new(name, nats, host)?;
        let mut options = crate::cluster::ClusterOptions::new(config);
        options.shards = shards;
        options.lease = std::time::Duration::from_millis(lease_ms);
        Ok(Some(options))
    }
}

pub(crate) fn run(
    manifests: Vec<PathBuf>,
    data_dir: PathBuf,
    admin: SocketAddr,
    cluster: ClusterArgs,
    config: Option<PathBuf>,
    audit: bool,
) -> anyhow::Result<ExitCode> {
    let file = match &config {
        Some(path) => HostFile::load(path)?,
        None => HostFile::default(),
    };
    let manifests = file.manifests(manifests);
    if manifests.is_empty() {
        anyhow::bail!("no manifest to run: give one or more, or a --config file that lists them");
    }
    let cluster = file.cluster(cluster).options()?;
    let audit = file.audit(audit)?;
    let traces = init_tracing()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async move {
        let options = crate::host::HostOptions {
            cluster,
            secrets: file.secret_sources.clone(),
            databases: file.connections.clone(),
            audit,
        };
        let host = Host::start_with(&manifests, &data_dir, options).await?;
        let token = new_token()?;
        write_private(&data_dir.join(AdminFiles::TOKEN), &token)?;
        let shutdown = Shutdown::new();
        let addr = admin::serve(host.clone(), admin, token, shutdown.clone()).await?;
        write_private(&data_dir.join(AdminFiles::ADDR), &addr.to_string())?;
        println!(
            "theater: {} actor(s) running; chains in {}; management API on http://{addr}",
            host.actors.lock().await.len(),
            data_dir.join("chains").display()
        );
        if let Some(audit) = &host.audit {
            println!(
                "audit log in {}; checkpoints signed by {}",
                data_dir.join(crate::audit::AUDIT_DIR).display(),
                audit.vkey()
            );
        }
        println!(
            "Ctrl-C (or `theater shutdown --data-dir {}`) stops cleanly.",
            data_dir.display()
        );
        wait_for_stop(&shutdown).await;
        shutdown.cancel();
        host.shutdown().await;
        let _ = std::fs::remove_file(data_dir.join(AdminFiles::ADDR));
        println!("theater: stopped; every acknowledged entry is durable");
        Ok(ExitCode::SUCCESS)
    });
    if let Some(provider) = traces {
        // Sends the spans still batched.
        if let Err(e) = provider.shutdown() {
            eprintln!("theater: exporting the last traces failed: {e}");
        }
    }
    served
}

/// What the log shows when `RUST_LOG` is not set: `info`, without the spans of each input and
/// each HTTP request (targets `theater::input` and `theater::http`). Those spans are what
/// traces export (the exporter takes them whatever the log shows); formatting their fields
/// into the log on every request cost about a tenth of the server's CPU per request.
/// `RUST_LOG=info` shows them, and then a line logged while handling a request names it.
const DEFAULT_LOG: &str = "info,theater::input=warn,theater::http=warn";

/// Logs to stderr (`RUST_LOG`, default [`DEFAULT_LOG`]); with `OTEL_EXPORTER_OTLP_ENDPOINT`
/// set, also exports a span per input (and per HTTP request, continuing its `traceparent`) over OTLP
/// (HTTP/protobuf, the OpenTelemetry SDK's batch exporter, which the `OTEL_*` variables
/// configure). Returns the provider to shut down at the end, which flushes it.
fn init_tracing() -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    if endpoint.trim().is_empty() {
        let _ = tracing_subscriber::registry().with(fmt).try_init();
        return Ok(None);
    }
    if !endpoint.trim().starts_with("http://") {
        anyhow::bail!(
            "OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}: traces are exported over plain http only (no TLS client is built in): give an http:// address of a collector nearby"
        );
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .with_context(|| format!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}"))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource({
            // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win when set.
            let resource = opentelemetry_sdk::Resource::builder();
            if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
                resource.build()
            } else {
                resource.with_service_name("theater").build()
            }
        })
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "theater");
    let spans = tracing_subscriber::filter::Targets::new()
        .with_target("theater::input", tracing::Level::INFO)
        .with_target("theater::http", tracing::Level::INFO);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(spans);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(Some(provider))
}

async fn wait_for_stop(shutdown: &Shutdown) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                () = shutdown.cancelled() => {}
            }
            return;
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = shutdown.cancelled() => {}
    }
}
