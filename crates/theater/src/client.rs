//! The CLI side of the management API: `theater ps`, `spawn`, `state`, `send`, `stop`, `upgrade`, `restart`,
//! `events`, `shutdown`, talking to the `theater run` whose data directory is given.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Subcommand;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::admin::AdminFiles;
use crate::exit;

#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// List the actors of the running host: name, status, head seq and hash; members of a
    /// family are `active` or `passive`.
    Ps,
    /// Start a new actor on the running host from a manifest (a family's manifest adds the
    /// family). The host starts it again on its next run, until `theater stop`.
    Spawn {
        /// The actor's manifest (TOML).
        manifest: PathBuf,
        /// Its name (default: the manifest's).
        #[arg(long)]
        name: Option<String>,
        /// Its init parameters, as JSON (default: the manifest's [init]).
        #[arg(long)]
        init: Option<String>,
    },
    /// Print an actor's current state.
    State {
        /// The actor.
        name: String,
    },
    /// Send an actor a message (or, with --request, a request and print the reply).
    Send {
        /// The actor.
        name: String,
        /// The payload, as JSON.
        json: String,
        /// Wait for the reply.
        #[arg(long)]
        request: bool,
    },
    /// Stop an actor (everything it acknowledged is durable).
    Stop {
        /// The actor.
        name: String,
    },
    /// Run another component for an actor from its next input on, keeping its state and
    /// history (an upgrade entry in its chain), if the component accepts the state; a
    /// refusal changes nothing. Rolling back is the same command with the earlier component.
    Upgrade {
        /// The actor.
        name: String,
        /// The component: a file, or the SHA-256 of one the host has run (its store,
        /// <data-dir>/components).
        component: String,
    },
    /// Start an actor again from its chain.
    Restart {
        /// The actor.
        name: String,
    },
    /// Print an actor's events (entries, restarts, stop); with --follow, as they happen.
    Events {
        /// The actor.
        name: String,
        /// Keep printing until the actor stops or Ctrl-C.
        #[arg(long)]
        follow: bool,
    },
    /// Stop the running host cleanly.
    Shutdown,
    /// Sign a checkpoint of the running host's audit log now (its witnesses cosign it) and
    /// print it; `theater audit prove` uses the latest.
    Checkpoint,
}

struct Api {
    addr: String,
    token: String,
}

impl Api {
    fn find(data_dir: &Path) -> anyhow::Result<Api> {
        let read = |name: &str| {
            std::fs::read_to_string(data_dir.join(name))
                .map(|s| s.trim().to_string())
                .with_context(|| {
                    format!(
                        "no running host found for the data directory {} (start one with `theater run`)",
                        data_dir.display()
                    )
                })
        };
        Ok(Api {
            addr: read(AdminFiles::ADDR)?,
            token: read(AdminFiles::TOKEN)?,
        })
    }

    async fn connect(
        &self,
    ) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.addr).await.with_context(|| {
            format!(
                "the host's management API at {} does not answer (is `theater run` still running?)",
                self.addr
            )
        })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", &self.addr);
        req = req.header("authorization", format!("Bearer {}", self.token));
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        Ok(req.body(Full::new(bytes))?)
    }

    /// One request; the answer's status and JSON body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut sender = self.connect().await?;
        let res = sender
            .send_request(self.request(method, path, body)?)
            .await?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, v))
    }
}

/// A one-time link to the web console of the host running in `data_dir`.
pub(crate) fn console_url(data_dir: &Path) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let api = Api::find(data_dir)?;
        let (status, body) = api.call(Method::POST, "/console/code", None).await?;
        let code = body["code"]
            .as_str()
            .filter(|_| status.is_success())
            .with_context(|| format!("the host did not give a console code ({status}): {body}"))?;
        Ok(format!("http://{}/console/#code={code}", api.addr))
    })
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

pub(crate) fn run(data_dir: PathBuf, cmd: ClientCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let api = Api::find(&data_dir)?;
        let (status, body) = match &cmd {
            ClientCommand::Ps => {
                let (status, body) = api.call(Method::GET, "/actors", None).await?;
                if status.is_success() {
                    // In a cluster, every actor of the cluster, with its host and whether
                    // it moves.
                    let cluster = body
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x.get("host").is_some()));
                    let place = |a: &serde_json::Value| {
                        if cluster {
                            format!(
                                "{:<16} {:<8} ",
                                a["host"].as_str().unwrap_or("-"),
                                a["placement"].as_str().unwrap_or("-")
                            )
                        } else {
                            String::new()
                        }
                    };
                    let header = serde_json::json!({"host": "host", "placement": "moves?"});
                    println!(
                        "{:<24} {}{:<24} {:>8} {:>9}  hash",
                        "name",
                        place(&header),
                        "status",
                        "seq",
                        "chain"
                    );
                    for a in body.as_array().into_iter().flatten() {
                        println!(
                            "{:<24} {}{:<24} {:>8} {:>9}  {}",
                            a["name"].as_str().unwrap_or("?"),
                            place(a),
                            a["status"].as_str().unwrap_or("?"),
                            a["seq"]
                                .as_u64()
                                .map(|s| s.to_string())
                                .unwrap_or("-".into()),
                            a["chain_bytes"].as_u64().map_or("-".into(), size),
                            a["hash"]
                                .as_str()
                                .map(|h| &h[..16.min(h.len())])
                                .unwrap_or("-"),
                        );
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                (status, body)
            }
            ClientCommand::Spawn {
                manifest,
                name,
                init,
            } => {
                let init = init
                    .as_deref()
                    .map(|j| {
                        serde_json::from_str::<Value>(j)
                            .with_context(|| format!("--init is not JSON: {j}"))
                    })
                    .transpose()?;
                // The host resolves the path: give it one that means the same there.
                let manifest = std::path::absolute(manifest)
                    .with_context(|| format!("cannot resolve {}", manifest.display()))?;
                let body = serde_json::json!({"manifest": manifest, "name": name, "init": init});
                api.call(Method::POST, "/actors", Some(&body)).await?
            }
            ClientCommand::State { name } => {
                api.call(Method::GET, &format!("/actors/{name}/state"), None)
                    .await?
            }
            ClientCommand::Send {
                name,
                json,
                request,
            } => {
                let payload: Value = serde_json::from_str(json)
                    .with_context(|| format!("the payload is not JSON: {json}"))?;
                let key = if *request { "request" } else { "message" };
                let body = serde_json::json!({ key: payload });
                api.call(Method::POST, &format!("/actors/{name}/send"), Some(&body))
                    .await?
            }
            ClientCommand::Stop { name } => {
                api.call(Method::POST, &format!("/actors/{name}/stop"), None)
                    .await?
            }
            ClientCommand::Upgrade { name, component } => {
                let path = Path::new(component);
                let body = if path.exists() || !is_sha256(component) {
                    // The host reads the file: give it a path that means the same there.
                    let path = std::path::absolute(path)
                        .with_context(|| format!("cannot resolve {component}"))?;
                    if !path.exists() {
                        anyhow::bail!(
                            "{component}: no such file (give a component file, or the SHA-256 of one the host has run)"
                        );
                    }
                    if !path.is_file() {
                        anyhow::bail!("{component} is not a file");
                    }
                    serde_json::json!({ "component": path })
                } else {
                    serde_json::json!({ "code": component })
                };
                api.call(Method::POST, &format!("/actors/{name}/upgrade"), Some(&body))
                    .await?
            }
            ClientCommand::Restart { name } => {
                api.call(Method::POST, &format!("/actors/{name}/restart"), None)
                    .await?
            }
            ClientCommand::Shutdown => api.call(Method::POST, "/shutdown", None).await?,
            ClientCommand::Checkpoint => {
                let (status, body) = api.call(Method::POST, "/checkpoint", None).await?;
                if let (true, Some(note)) = (status.is_success(), body["checkpoint"].as_str()) {
                    print!("{note}");
                    return Ok(ExitCode::SUCCESS);
                }
                (status, body)
            }
            ClientCommand::Events { name, follow } => {
                return events(&api, name, *follow).await;
            }
        };
        if status.is_success() {
            println!("{}", pretty(&body));
            Ok(ExitCode::SUCCESS)
        } else {
            let what = body
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| body.to_string(), str::to_string);
            match body.get("seq").and_then(Value::as_u64) {
                Some(seq) => eprintln!(
                    "error ({status}): {what} (the failure is recorded at seq {seq}; state unchanged)"
                ),
                None => eprintln!("error ({status}): {what}"),
            }
            Ok(ExitCode::from(
                if status == StatusCode::UNPROCESSABLE_ENTITY {
                    exit::INVALID
                } else {
                    exit::ERROR
                },
            ))
        }
    })
}

async fn events(api: &Api, name: &str, follow: bool) -> anyhow::Result<ExitCode> {
    if !follow {
        let (status, body) = api
            .call(Method::GET, &format!("/actors/{name}/state"), None)
            .await?;
        if !status.is_success() {
            bail!("{}", body.get("error").unwrap_or(&body));
        }
        println!(
            "{}",
            serde_json::json!({"event": "head", "seq": body["seq"], "hash": body["hash"]})
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut sender = api.connect().await?;
    let res = sender
        .send_request(api.request(Method::GET, &format!("/actors/{name}/events"), None)?)
        .await?;
    if !res.status().is_success() {
        let bytes = res.into_body().collect().await?.to_bytes();
        bail!("{}", String::from_utf8_lossy(&bytes).trim());
    }
    let mut body = res.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            print!("{}", String::from_utf8_lossy(&data));
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `s` is written as a SHA-256: 64 hex digits.
fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `bytes` for people: `812 B`, `4.2 KB`, `13.0 MB`, `1.2 GB`.
fn size(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::size(812), "812 B");
        assert_eq!(super::size(4_200), "4.2 KB");
        assert_eq!(super::size(13_040_000), "13.0 MB");
        assert_eq!(super::size(1_200_000_000), "1.2 GB");
    }
}
