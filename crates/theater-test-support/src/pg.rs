//! A PostgreSQL database of one test's own on the machine's server: created with a unique
//! name, dropped (with the roles Theater made in it) when the guard drops.
//!
//! The server is the one at `THEATER_PG_URL` (default `postgres://root@127.0.0.1:5432/postgres`
//! with the current user, trust authentication). Without a server the test says it skipped,
//! unless `THEATER_REQUIRE_POSTGRES=1` (set by `.ci/run`) makes that a failure.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{NoTls, SimpleQueryMessage};

/// Whether a missing server must fail the test (`THEATER_REQUIRE_POSTGRES=1`, set in CI).
pub fn required() -> bool {
    std::env::var("THEATER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// The URL of the server's maintenance database, as the host's user.
pub fn admin_url() -> String {
    std::env::var("THEATER_PG_URL").unwrap_or_else(|_| {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        format!("postgres://{user}@127.0.0.1:5432/postgres")
    })
}

/// Runs `sql` (one or more statements, simple protocol) on `url`, on a thread of its own so
/// that async tests may call it: every row's values as text.
pub fn simple(url: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, connection) = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio_postgres::connect(&url, NoTls),
            )
            .await
            .map_err(|_| format!("{url}: no answer in 5 s"))?
            .map_err(|e| format!("{url}: {e}"))?;
            tokio::spawn(connection);
            let messages = client
                .simple_query(&sql)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) => db.message().to_string(),
                    None => e.to_string(),
                })?;
            Ok(messages
                .into_iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_string))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect())
        })
    })
    .join()
    .map_err(|_| "the query thread panicked".to_string())?
}

/// A database of one test's own.
#[derive(Debug)]
pub struct PgDatabase {
    /// Its name.
    pub name: String,
    admin: String,
}

static COUNT: AtomicU32 = AtomicU32::new(0);

impl PgDatabase {
    /// A new, empty database; `None` (the test skips) if no server answers, unless
    /// `THEATER_REQUIRE_POSTGRES=1`: then it panics.
    pub fn create() -> Option<PgDatabase> {
        let admin = admin_url();
        let name = format!(
            "tt_{}_{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = simple(&admin, &format!("CREATE DATABASE {name}")) {
            assert!(
                !required(),
                "THEATER_REQUIRE_POSTGRES=1 but no PostgreSQL server took CREATE DATABASE at {admin}: {e}"
            );
            eprintln!("skipped: no PostgreSQL server at {admin} ({e})");
            return None;
        }
        Some(PgDatabase { name, admin })
    }

    /// Its URL, as the host's user.
    pub fn url(&self) -> String {
        let base = self
            .admin
            .rsplit_once('/')
            .map_or(self.admin.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }

    /// Runs `sql` on it as the host's user: the rows, values as text.
    pub fn sql(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        simple(&self.url(), sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs `sql` on it as the host's user: the error, if any.
    pub fn try_sql(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        simple(&self.url(), sql)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // The actors' roles (named in the host's table) outlive the database: drop them too.
        let roles = self
            .try_sql("SELECT actor FROM theater_host.applied")
            .unwrap_or_default();
        let _ = simple(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        for role in roles.into_iter().flatten().flatten() {
            let _ = simple(&self.admin, &format!("DROP ROLE IF EXISTS \"{role}\""));
        }
    }
}
