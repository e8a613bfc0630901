//! # theater-db
//!
//! The database capability (`[interfaces.db]`): SQL for Theater actors.
//!
//! - [`Database`] is the seam (JSON request in, JSON answer out, an input's writes as one
//!   unit). [`Sqlite`] implements it on an embedded SQLite file, one per actor;
//!   [`Postgres`] on a PostgreSQL server, a role and a schema per actor, with a pool of
//!   connections per host and server ([`PgServer`]). The actor sees the same requests and
//!   answers on both (docs/DATABASES.md says where the dialects differ).
//! - Every request and its answer are recorded in the actor's chain ([`run`]), so replay needs
//!   no database. An input's writes are one transaction, committed once its entry is durable
//!   together with that entry's seq (table `_theater_applied`), and rolled back if the input
//!   fails; a restart after a crash in between applies the unit again ([`reapply`]).
//! - Within an input, a `transaction` request is applied whole or not at all (a savepoint).
//!   Bad SQL, a violated constraint or a wrong parameter is a clear error to the actor, and
//!   leaves the database as it was before that request. A `query` may only read. A request
//!   that runs too long is interrupted ([`Sqlite::with_time_limit`]) and one whose rows are
//!   too large is refused ([`Sqlite::with_max_result_bytes`]), each with an error the actor
//!   sees. If SQLite rolls the input's transaction back by itself (`INSERT OR ROLLBACK`, a
//!   full disk), the unit is lost: every later request of the input is refused, and nothing
//!   of it is committed.
//!
//! ```
//! use serde_json::json;
//! use theater_db::Sqlite;
//!
//! let db = Sqlite::open_in_memory()?;
//! db.run(&json!({"execute": "CREATE TABLE t (x INTEGER)"}))?;
//! db.run(&json!({"execute": "INSERT INTO t VALUES (?1)", "params": [42]}))?;
//! let rows = db.run(&json!({"query": "SELECT x FROM t"}))?;
//! assert_eq!(rows, json!({"columns": ["x"], "rows": [[42]]}));
//! # Ok::<(), theater_db::DbError>(())
//! ```

mod config;
mod host;
mod postgres;
mod sqlite;
mod unit;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub use config::{
    Backend, Connection, ConnectionConfig, DbConfig, PasswordSource, check_connection_name,
};
pub use postgres::{DEFAULT_MAX_CONNECTIONS, PgServer, Postgres, identifier};
pub use sqlite::{DEFAULT_MAX_RESULT_BYTES, DEFAULT_TIME_LIMIT, Sqlite};
pub use unit::{
    DB_RUN, Database, DbError, DbErrorKind, NOT_GRANTED, RunAnswer, reapply, run, same_answer,
};

use theater_chain::{BlobStore, Entry};
use theater_wasm::{Capability, FieldError, Grant, HostState, Manifest, Setup};
use wasmtime::component::Linker;

/// The database of one actor: what its `db.run` import uses.
#[derive(Clone, Debug)]
pub struct DbGrant {
    /// The database.
    pub db: Arc<dyn Database>,
}

#[async_trait::async_trait]
impl Grant for DbGrant {
    async fn reapply(&self, entry: &Entry, _blobs: &dyn BlobStore) -> Result<(), String> {
        if reapply(&*self.db, entry).await? {
            tracing::info!(seq = entry.seq(), "applied the entry's SQL again");
        }
        Ok(())
    }
}

/// The host's pools, by URL and password source.
type Servers = HashMap<(String, PasswordSource, Option<std::path::PathBuf>), Arc<PgServer>>;

/// The PostgreSQL connections of a host's configuration, by name.
pub type Connections = BTreeMap<String, Connection>;

/// The database capability: an SQLite file per actor, or a role and schema per actor on a
/// PostgreSQL server. Its grant is a [`DbGrant`]. It keeps the host's connection pool of
/// each server its actors use.
#[derive(Clone, Debug, Default)]
pub struct Db {
    servers: Arc<Mutex<Servers>>,
    /// The host's named connections; `None` where they are not known (offline tools, which
    /// then take any name a manifest gives).
    connections: Option<Arc<Connections>>,
}

impl Db {
    /// The capability, with no connection open yet and no named connection known (a
    /// manifest's `connection` is taken unchecked: for tools that never connect).
    pub fn new() -> Self {
        Db::default()
    }

    /// The capability of a host whose configuration names `connections` (`[databases]`):
    /// a manifest's `connection` must be one of them.
    pub fn with_connections(connections: Connections) -> Self {
        Db {
            connections: Some(Arc::new(connections)),
            ..Db::default()
        }
    }

    /// The named connection `name`, or an error saying which the host has.
    fn connection(&self, name: &str) -> Result<Option<&Connection>, String> {
        let Some(known) = &self.connections else {
            return Ok(None);
        };
        match known.get(name) {
            Some(c) => Ok(Some(c)),
            None if known.is_empty() => Err(format!(
                "the host's configuration names no database connection, so not {name:?}: declare [databases.{name}] in the file given to `theater run --config`"
            )),
            None => Err(format!(
                "the host's configuration names no database connection {name:?} (it has: {})",
                known.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// The host's pool for `url` (one per server, database and user), made at first use;
    /// `password`'s file and `ca_file` are resolved already.
    fn server(
        &self,
        url: &str,
        password: &PasswordSource,
        ca_file: Option<std::path::PathBuf>,
        secrets: &theater_wasm::Secrets,
    ) -> anyhow::Result<Arc<PgServer>> {
        let source = match password {
            PasswordSource::Secret { name, .. } => PasswordSource::Secret {
                name: name.clone(),
                source: Some(secrets.source(name)?.clone()),
            },
            other => other.clone(),
        };
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (url.to_string(), source.clone(), ca_file.clone());
        if let Some(s) = servers.get(&key) {
            return Ok(Arc::clone(s));
        }
        let mut config = config::postgres_config(url).map_err(anyhow::Error::msg)?;
        if let Some(pw) = source.read().map_err(anyhow::Error::msg)? {
            config.password(pw);
        }
        let extra = match &ca_file {
            None => Vec::new(),
            Some(path) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| anyhow::anyhow!("ca_file {}: {e}", path.display()))?;
                if certs.is_empty() {
                    anyhow::bail!("ca_file {} holds no PEM certificate", path.display());
                }
                certs
            }
        };
        let server = PgServer::with_roots(config, DEFAULT_MAX_CONNECTIONS, extra)
            .map_err(anyhow::Error::msg)?;
        if matches!(source, PasswordSource::Secret { .. }) {
            server.read_password_from(source.clone());
        }
        servers.insert(key, Arc::clone(&server));
        Ok(server)
    }
}

impl Capability for Db {
    const NAME: &'static str = "db";
    type Config = DbConfig;

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        theater_wasm::bindings::theater::actor::db::add_to_linker::<_, host::Data>(
            linker,
            host::view,
        )
    }

    fn check(&self, config: &DbConfig, _manifest: &Manifest) -> Result<(), FieldError> {
        let backend = config
            .backend()
            .map_err(|(field, message)| FieldError::at(field, message))?;
        if let Backend::Named { connection, .. } = backend {
            self.connection(&connection)
                .map_err(|message| FieldError::at("connection", message))?;
        }
        Ok(())
    }

    fn secrets_named(&self, config: &DbConfig) -> Vec<String> {
        let named = config
            .connection
            .as_deref()
            .and_then(|name| self.connection(name).ok().flatten())
            .and_then(|c| match &c.password {
                PasswordSource::Secret { name, .. } => Some(name.clone()),
                _ => None,
            });
        config
            .password_secret
            .iter()
            .cloned()
            .chain(named)
            .collect()
    }

    fn grant(&self, config: &DbConfig, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>> {
        let m = setup.manifest;
        let backend = config
            .backend()
            .map_err(|(field, message)| anyhow::anyhow!("[interfaces.db] {field}: {message}"))?;
        let (server, schema) = match backend {
            Backend::Sqlite(file) => {
                let file = match file {
                    Some(f) => m.relative(f),
                    None => setup.data_dir.join("db").join(format!("{}.sqlite", m.name)),
                };
                // A request may take no longer than the input it is part of.
                let db = Sqlite::open(&file)
                    .map_err(|e| anyhow::anyhow!("the database {}: {e}", file.display()))?
                    .with_time_limit(m.limits.cpu);
                return Ok(Arc::new(DbGrant { db: Arc::new(db) }));
            }
            Backend::Postgres {
                url,
                password,
                schema,
                ca_file,
            } => {
                let password = match password {
                    PasswordSource::File(f) => PasswordSource::File(m.relative(f)),
                    other => other,
                };
                let ca_file = ca_file.map(|f| m.relative(f));
                (self.server(&url, &password, ca_file, setup.secrets), schema)
            }
            Backend::Named { connection, schema } => {
                let server = match self.connection(&connection) {
                    Ok(Some(c)) => self
                        .server(&c.url, &c.password, c.ca_file.clone(), setup.secrets)
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "connection {connection:?} (databases.{connection} of the host's configuration): {e}"
                            )
                        }),
                    Ok(None) => Err(anyhow::anyhow!(
                        "connection {connection:?}: this host knows no named connections"
                    )),
                    Err(e) => Err(anyhow::anyhow!("connection: {e}")),
                };
                (server, schema)
            }
        };
        let server = server.map_err(|e| anyhow::anyhow!("[interfaces.db] {e}"))?;
        // Connected at the first request (or repair): the server may start later.
        let db =
            Postgres::new(server, m.name.as_str(), schema.as_deref()).with_time_limit(m.limits.cpu);
        Ok(Arc::new(DbGrant { db: Arc::new(db) }))
    }
}
