//! # theater-db
//!
//! The database capability (`[interfaces.db]`): SQL for Theater actors.
//!
//! - [`Database`] is the seam (JSON request in, JSON answer out, an input's writes as one
//!   unit); [`Sqlite`] implements it on an embedded SQLite file, one per actor. A server
//!   database can implement the same trait.
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
mod sqlite;
mod unit;

use std::sync::Arc;

pub use config::DbConfig;
pub use sqlite::{DEFAULT_MAX_RESULT_BYTES, DEFAULT_TIME_LIMIT, Sqlite};
pub use unit::{
    DB_RUN, Database, DbError, DbErrorKind, NOT_GRANTED, RunAnswer, reapply, run, same_answer,
};

use theater_chain::{BlobStore, Entry};
use theater_wasm::{Capability, Grant, HostState, Setup};
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

/// The database capability: one SQLite file per actor. Its grant is a [`DbGrant`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Db;

impl Capability for Db {
    const NAME: &'static str = "db";
    type Config = DbConfig;

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        theater_wasm::bindings::theater::actor::db::add_to_linker::<_, host::Data>(
            linker,
            host::view,
        )
    }

    fn grant(&self, config: &DbConfig, setup: &Setup<'_>) -> anyhow::Result<Arc<dyn Grant>> {
        let m = setup.manifest;
        let file = match &config.file {
            Some(f) => m.relative(f),
            None => setup.data_dir.join("db").join(format!("{}.sqlite", m.name)),
        };
        // A request may take no longer than the input it is part of.
        let db = Sqlite::open(&file)
            .map_err(|e| anyhow::anyhow!("the database {}: {e}", file.display()))?
            .with_time_limit(m.limits.cpu);
        Ok(Arc::new(DbGrant { db: Arc::new(db) }))
    }
}
