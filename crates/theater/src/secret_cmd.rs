//! `theater secret list`: the secrets a host's configuration and manifests declare, where
//! each comes from, whether it can be read now, and which actors use it, never a value.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use theater_wasm::Manifest;
use theater_wasm::secrets::Source;

use crate::exit;
use crate::run_cmd::HostFile;

/// `theater secret ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum SecretCommand {
    /// List the secrets the host's config and the manifests declare: name, where it is
    /// declared, its source (a variable or a file), whether it can be read now, and which
    /// actors use it. Never a value. Exits 1 if one cannot be read or is used undeclared.
    List {
        /// Actor manifests (TOML).
        manifests: Vec<PathBuf>,
        /// A host configuration file (its `[secrets]` and `manifests`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// One JSON object per secret instead of text.
        #[arg(long)]
        json: bool,
    },
}

struct Row {
    name: String,
    declared: String,
    source: Option<Source>,
    status: Result<(), String>,
    used_by: Vec<String>,
}

pub(crate) fn run(cmd: SecretCommand) -> anyhow::Result<ExitCode> {
    let SecretCommand::List {
        manifests,
        config,
        json,
    } = cmd;
    let file = match &config {
        Some(path) => HostFile::load(path)?,
        None => HostFile::default(),
    };
    let manifests = file.manifests(manifests);
    let capabilities = crate::capabilities::hosted(
        &theater_msg::Registry::new(),
        &crate::children::Actors::new(),
        // Without the host's configuration a connection's name is taken unchecked, as the
        // other offline tools take it.
        config.is_some().then(|| file.connections.clone()),
    );
    let mut rows: Vec<Row> = Vec::new();
    let status =
        |name: &str, source: &Source| source.read(name).map(drop).map_err(|e| e.to_string());
    for (name, source) in &file.secret_sources {
        rows.push(Row {
            name: name.clone(),
            declared: config
                .as_ref()
                .map_or("host".into(), |p| p.display().to_string()),
            source: Some(source.clone()),
            status: status(name, source),
            used_by: Vec::new(),
        });
    }
    for (connection, c) in &file.connections {
        if let theater_db::PasswordSource::Secret { name, .. } = &c.password
            && let Some(row) = rows.iter_mut().find(|r| r.name == *name)
        {
            row.used_by.push(format!("databases.{connection}"));
        }
    }
    let hosts = rows.len();
    let mut loaded = Vec::new();
    for path in &manifests {
        let m = Manifest::load(path)?;
        capabilities.check(&m)?;
        for (name, source) in &m.secrets {
            let twice = rows[..hosts].iter().any(|r| r.name == *name);
            rows.push(Row {
                name: name.clone(),
                declared: m.path.display().to_string(),
                source: Some(source.clone()),
                status: if twice {
                    Err("declared by the host's config too, which `theater run` refuses".into())
                } else {
                    status(name, source)
                },
                used_by: Vec::new(),
            });
        }
        loaded.push(m);
    }
    for m in &loaded {
        for (capability, name) in capabilities.secrets_named(m) {
            let user = format!("{} ({capability})", m.name.as_str());
            // The manifest's own declaration, else the host's.
            let own = rows
                .iter()
                .position(|r| r.name == name && r.declared == m.path.display().to_string());
            let host = rows.iter().position(|r| {
                r.name == name
                    && config
                        .as_ref()
                        .is_some_and(|c| r.declared == c.display().to_string())
            });
            match own.or(host) {
                Some(i) => rows[i].used_by.push(user),
                None => rows.push(Row {
                    name,
                    declared: "nowhere".into(),
                    source: None,
                    status: Err("used but not declared in [secrets]".into()),
                    used_by: vec![user],
                }),
            }
        }
    }
    rows.sort_by(|a, b| (&a.name, &a.declared).cmp(&(&b.name, &b.declared)));
    if json {
        for r in &rows {
            let line = json!({
                "name": r.name,
                "declared": r.declared,
                "source": r.source.as_ref().map(|s| match s {
                    Source::Env(v) => json!({"env": v}),
                    Source::File(p) => json!({"file": p}),
                }),
                "readable": r.status.is_ok(),
                "problem": r.status.as_ref().err(),
                "used_by": r.used_by,
            });
            println!("{line}");
        }
    } else if rows.is_empty() {
        println!("no secrets declared");
    } else {
        for r in &rows {
            let source = r.source.as_ref().map_or("-".to_string(), |s| s.to_string());
            let status = match &r.status {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("NOT READABLE: {e}"),
            };
            let used = if r.used_by.is_empty() {
                "unused".to_string()
            } else {
                format!("used by {}", r.used_by.join(", "))
            };
            println!(
                "{}  ({})  from {source}  {status}  {used}",
                r.name, r.declared
            );
        }
    }
    Ok(if rows.iter().all(|r| r.status.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::INVALID)
    })
}
