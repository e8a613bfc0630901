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

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
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
    #[arg(long, requires_all = ["nats", "host"])]
    cluster: Option<String>,
    /// The NATS servers of the cluster, comma-separated (nats://127.0.0.1:4222,...).
    #[arg(long, requires_all = ["cluster", "host"])]
    nats: Option<String>,
    /// This host's name in the cluster (unique).
    #[arg(long, requires_all = ["cluster", "nats"])]
    host: Option<String>,
    /// Shards the cluster's actors are spread over (the same on every host).
    #[arg(long, default_value_t = 16, requires = "cluster")]
    shards: u32,
    /// How long a host keeps its shards without renewing them, in milliseconds: a dead
    /// host's actors move after about this long.
    #[arg(long, default_value_t = 6000, requires = "cluster")]
    lease_ms: u64,
}

impl ClusterArgs {
    fn options(&self) -> anyhow::Result<Option<crate::cluster::ClusterOptions>> {
        let (Some(name), Some(nats), Some(host)) = (&self.cluster, &self.nats, &self.host) else {
            return Ok(None);
        };
        if self.shards == 0 {
            anyhow::bail!("--shards must be at least 1");
        }
        if self.lease_ms < 300 {
            anyhow::bail!("--lease-ms must be at least 300");
        }
        let config = theater_cluster::ClusterConfig::new(name, nats, host)?;
        let mut options = crate::cluster::ClusterOptions::new(config);
        options.shards = self.shards;
        options.lease = std::time::Duration::from_millis(self.lease_ms);
        Ok(Some(options))
    }
}

pub(crate) fn run(
    manifests: Vec<PathBuf>,
    data_dir: PathBuf,
    admin: SocketAddr,
    cluster: ClusterArgs,
) -> anyhow::Result<ExitCode> {
    let cluster = cluster.options()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let host = Host::start_with(&manifests, &data_dir, cluster).await?;
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
    })
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
