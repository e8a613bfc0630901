//! [`Postgres`]: the [`Database`] of one actor on a PostgreSQL server, and [`PgServer`], a
//! host's pool of connections to one server.
//!
//! Each actor gets a role of its own (`LOGIN`, no other privilege) and a schema it owns; its
//! connections log in as that role, so its SQL reaches its own schema and nothing else, and
//! no statement it sends can change that (`RESET ROLE` returns to itself). The host's
//! bookkeeping (the applied mark of each actor) lives in the schema `theater_host`, which
//! actor roles cannot read or write: the host writes an actor's mark through a function that
//! checks a key only the host holds, and a host that takes an actor over replaces the key and
//! ends the previous host's sessions, so a stale host can never commit for it.

pub(crate) mod sql;
mod values;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use futures_util::{StreamExt, pin_mut};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Notify, OnceCell, OwnedSemaphorePermit, Semaphore};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::unit::{Limits, hex};
use crate::{Database, DbError};
use values::{Cell, Param, Unmapped};

/// How many connections a host opens to one server by default, all actors together.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// The host's schema on every database it uses.
pub(crate) const HOST_SCHEMA: &str = "theater_host";

/// What a request answers once the server ended the input's transaction (the connection
/// was lost).
const UNIT_LOST: &str = "the connection to PostgreSQL was lost and with it this input's transaction (every write of the input so far is undone, and nothing more can run until the input ends)";

/// How long a connection or the host's set-up may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an actor's set-up on the server may take.
const SET_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a cancelled request may take to stop before its connection is closed.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// How many prepared statements a connection keeps.
const STATEMENT_CACHE: usize = 256;

/// One connection, logged in as one actor's role, with its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// Commands to send before the next one (`BEGIN` of a unit not begun on the server yet,
    /// the release of the last request's savepoint).
    pending: String,
    _permit: OwnedSemaphorePermit,
}

/// A host's connections to one PostgreSQL server: at most `max` open at once, all actors
/// together; an idle one is kept for its actor until another actor needs the room.
pub struct PgServer {
    config: tokio_postgres::Config,
    /// TLS, when the URL asks for it (`sslmode=require`).
    tls: Option<MakeRustlsConnect>,
    permits: Arc<Semaphore>,
    /// Idle connections, the least recently used first: (role, connection).
    idle: SyncMutex<Vec<(String, Conn)>>,
    /// Told when a connection goes idle (a waiter may close it to make room).
    returned: Notify,
    max: usize,
    /// Where the host user's password is read again for each set-up connection, so that a
    /// rotated one is used without a restart (`None`: the one in `config`, if any).
    password: std::sync::OnceLock<crate::PasswordSource>,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("host", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl PgServer {
    /// A pool for the server `config` names, whose user (the host's) creates the actors'
    /// roles and schemas: it needs `CREATEROLE` and `CREATE` on the database.
    pub fn new(config: tokio_postgres::Config, max: usize) -> Arc<Self> {
        // Without extra roots building TLS cannot fail; if it did, a URL that requires TLS
        // would fail to connect (never connect in the clear).
        Self::with_roots(config.clone(), max, Vec::new()).unwrap_or_else(|e| {
            tracing::error!("TLS for PostgreSQL: {e}");
            Self::build(config, max, None)
        })
    }

    /// A pool whose TLS (when the URL says `sslmode=require`) trusts Mozilla's roots and
    /// `extra`: the server's certificate is always checked, its name against the URL's host.
    pub fn with_roots(
        config: tokio_postgres::Config,
        max: usize,
        extra: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Result<Arc<Self>, String> {
        let tls = if crate::config::tls(&config) {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for cert in extra {
                roots
                    .add(cert)
                    .map_err(|e| format!("a certificate of ca_file is not usable: {e}"))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let client = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(MakeRustlsConnect::new(client))
        } else {
            None
        };
        Ok(Self::build(config, max, tls))
    }

    fn build(
        config: tokio_postgres::Config,
        max: usize,
        tls: Option<MakeRustlsConnect>,
    ) -> Arc<Self> {
        Arc::new(PgServer {
            config,
            tls,
            permits: Arc::new(Semaphore::new(max.max(1))),
            idle: SyncMutex::new(Vec::new()),
            returned: Notify::new(),
            max: max.max(1),
            password: std::sync::OnceLock::new(),
        })
    }

    /// Reads the host user's password from `source` at each set-up connection from now on
    /// (a rotated secret is used without a restart).
    pub fn read_password_from(&self, source: crate::PasswordSource) {
        let _ = self.password.set(source);
    }

    /// The database's name.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("postgres")
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(String, Conn)>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle connection of `role`, if one is open.
    fn take_idle(&self, role: &str) -> Option<Conn> {
        let mut idle = self.idle();
        let i = idle.iter().rposition(|(r, _)| r == role)?;
        let (_, conn) = idle.remove(i);
        drop(idle);
        (!conn.client.is_closed()).then_some(conn)
    }

    /// Keeps `conn` for `role`'s next request.
    fn put_idle(&self, role: &str, conn: Conn) {
        if !conn.client.is_closed() {
            self.idle().push((role.to_string(), conn));
            self.returned.notify_one();
        }
    }

    /// Rolls back the unit open on `conn` (if it reached the server) and keeps `conn` idle for
    /// `role`; closes it if that fails (the server rolls back then).
    async fn roll_back(&self, role: &str, mut conn: Conn) {
        let begun = !std::mem::take(&mut conn.pending).starts_with("BEGIN");
        let rolled_back =
            || tokio::time::timeout(CONNECT_TIMEOUT, conn.client.batch_execute("ROLLBACK"));
        if !begun || matches!(rolled_back().await, Ok(Ok(()))) {
            self.put_idle(role, conn);
        }
    }

    /// Closes `role`'s idle connections.
    fn purge(&self, role: &str) {
        self.idle().retain(|(r, _)| r != role);
    }

    /// A connection as `role`: an idle one, or a new one once there is room (closing the
    /// least recently used idle connection if need be), waiting at most `wait`.
    async fn connect(&self, role: &str, password: &str, wait: Duration) -> Result<Conn, DbError> {
        let deadline = tokio::time::Instant::now() + wait;
        let permit = loop {
            // Registered before looking, so a connection that goes idle meanwhile wakes it.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(conn) = self.take_idle(role) {
                return Ok(conn);
            }
            if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
                break p;
            }
            let evicted = {
                let mut idle = self.idle();
                (!idle.is_empty()).then(|| idle.remove(0))
            };
            if evicted.is_some() {
                continue;
            }
            // Every connection is in use: wait for one to close or to go idle.
            tokio::select! {
                p = Arc::clone(&self.permits).acquire_owned() => {
                    break p.map_err(|_| DbError::unavailable("the connection pool is closed"))?;
                }
                () = &mut returned => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(DbError::unavailable(format!(
                        "all {} connections of this host to PostgreSQL stayed busy for {} ms",
                        self.max,
                        wait.as_millis()
                    )));
                }
            }
        };
        let mut config = self.config.clone();
        config
            .user(role)
            .password(password)
            .application_name(format!("theater {role}"));
        let client = open(&config, self.tls.as_ref()).await.map_err(|e| {
            DbError::unavailable(format!("cannot connect to PostgreSQL as {role}: {e}"))
        })?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            pending: String::new(),
            _permit: permit,
        })
    }

    /// A connection as the host's own user (not counted in the pool: set-up only).
    async fn admin(&self) -> Result<Client, DbError> {
        let mut config = std::borrow::Cow::Borrowed(&self.config);
        if let Some(source) = self.password.get()
            && let Some(password) = source.read().map_err(DbError::unavailable)?
        {
            config.to_mut().password(password);
        }
        open(&config, self.tls.as_ref())
            .await
            .map_err(|e| DbError::unavailable(format!("cannot connect to PostgreSQL: {e}")))
    }
}

/// Opens a connection (over `tls` if given) and drives it on the current runtime.
async fn open(
    config: &tokio_postgres::Config,
    tls: Option<&MakeRustlsConnect>,
) -> Result<Client, String> {
    let timed_out = || format!("no answer within {} s", CONNECT_TIMEOUT.as_secs());
    let client = match tls {
        Some(tls) => {
            let (client, connection) =
                tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls.clone()))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| describe(&e))?;
            tokio::spawn(drive(connection));
            client
        }
        None => {
            let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| describe(&e))?;
            tokio::spawn(drive(connection));
            client
        }
    };
    Ok(client)
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        tracing::debug!("a PostgreSQL connection ended: {e}");
    }
}

/// An error as the actor sees it: the server's message, its SQLSTATE, detail and hint.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!(": {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" (hint: {h})"));
            }
            s
        }
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// What an actor's database connection is doing between requests.
#[derive(Default)]
struct Session {
    /// The connection of the open unit (between requests outside a unit, it is in the
    /// server's idle list).
    conn: Option<Conn>,
    /// Whether an input's unit is open.
    unit: bool,
}

/// One actor's database on a PostgreSQL server: its own role and schema. Requests run with
/// the limits of [`crate::Sqlite`] (time, result size); an input's writes are one
/// transaction, each request within it a savepoint, so a failed request leaves the unit as
/// it was before it.
pub struct Postgres {
    server: Arc<PgServer>,
    role: String,
    schema: String,
    /// The role's password, new at each grant (set on the server at set-up).
    password: String,
    /// The key the applied mark is written with, new at each grant.
    key: String,
    ready: OnceCell<()>,
    session: Mutex<Session>,
    /// A failed input's unit waits to be rolled back.
    rollback: Arc<AtomicBool>,
    /// The open unit was lost, and the actor was told.
    lost: AtomicBool,
    limits: Limits,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("server", &self.server)
            .field("role", &self.role)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).unwrap_or_else(|_| {
        // No system randomness: a key from the clock is still unknown to the actor.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes[..16].copy_from_slice(&t.to_le_bytes());
    });
    hex(&bytes)
}

/// `parts` joined by `_` as a PostgreSQL identifier that needs no quoting rules: lower case
/// letters, digits and `_`, at most 63 bytes; anything changed or cut gets a hash suffix so
/// two names never meet.
pub fn identifier(parts: &[&str]) -> String {
    let joined = parts.join("_");
    let mut id: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert(0, '_');
    }
    if id != joined || id.len() > 63 {
        let h = hex(&Sha256::digest(joined.as_bytes()));
        id.truncate(54);
        id.push('_');
        id.push_str(&h[..8]);
    }
    id
}

/// What a failed request says, and whether its connection is gone.
struct Failure {
    error: DbError,
    broken: bool,
}

impl From<DbError> for Failure {
    fn from(error: DbError) -> Self {
        Failure {
            error,
            broken: false,
        }
    }
}

impl Postgres {
    /// The database of actor `actor` on `server`, in `schema` (default `theater_<actor>`).
    pub fn new(server: Arc<PgServer>, actor: &str, schema: Option<&str>) -> Self {
        // Roles are the server's, not the database's: the name carries a hash of both parts,
        // so (`app`, `a_b`) and (`app_a`, `b`) never share one.
        let both = hex(&Sha256::digest(format!("{}\0{actor}", server.dbname())));
        let role = identifier(&["theater", server.dbname(), actor, &both[..8]]);
        let schema = schema.map_or_else(|| identifier(&["theater", actor]), str::to_string);
        Postgres {
            server,
            role,
            schema,
            password: random_hex(),
            key: random_hex(),
            ready: OnceCell::new(),
            session: Mutex::new(Session::default()),
            rollback: Arc::new(AtomicBool::new(false)),
            lost: AtomicBool::new(false),
            limits: Limits {
                time: crate::DEFAULT_TIME_LIMIT,
                result_bytes: crate::DEFAULT_MAX_RESULT_BYTES,
            },
        }
    }

    /// Interrupts a request that runs longer than `limit` (default
    /// [`crate::DEFAULT_TIME_LIMIT`]): the server cancels it and the actor is answered
    /// "query interrupted after N ms".
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.limits.time = limit;
        self
    }

    /// Refuses a request whose rows take more than `bytes` (default
    /// [`crate::DEFAULT_MAX_RESULT_BYTES`]).
    pub fn with_max_result_bytes(mut self, bytes: usize) -> Self {
        self.limits.result_bytes = bytes;
        self
    }

    /// The actor's role (its connections log in as it).
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The actor's schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Creates (or takes over) the actor's role and schema and the host's bookkeeping, once
    /// per grant: a new password and mark key, and every other session of the role ended.
    async fn ready(&self) -> Result<(), DbError> {
        self.ready
            .get_or_try_init(|| async {
                tokio::time::timeout(SET_UP_TIMEOUT, self.set_up())
                    .await
                    .unwrap_or_else(|_| {
                        Err(DbError::unavailable(format!(
                            "no answer within {} s",
                            SET_UP_TIMEOUT.as_secs()
                        )))
                    })
                    .map_err(|e| e.context("setting up the actor's role and schema on PostgreSQL"))
            })
            .await
            .map(|_| ())
    }

    async fn set_up(&self) -> Result<(), DbError> {
        let admin = self.server.admin().await?;
        let (role, schema, h) = (&self.role, &self.schema, HOST_SCHEMA);
        let verifier = postgres_protocol::password::scram_sha_256(self.password.as_bytes());
        // Only the key's hash is sent, and stored.
        let key_hash = hex(&Sha256::digest(self.key.as_bytes()));
        // Run as the host's user: nothing it calls may resolve to an object an actor made
        // (search_path), and nothing an actor holds may stall it for long (lock_timeout; a
        // lock on a table actors cannot touch serializes hosts setting up at once, and lets
        // commits through).
        let script = format!(
            r#"BEGIN ISOLATION LEVEL READ COMMITTED;
SET LOCAL search_path = pg_catalog, pg_temp;
SET LOCAL lock_timeout = '10s';
CREATE SCHEMA IF NOT EXISTS {h};
CREATE TABLE IF NOT EXISTS {h}.applied (actor text PRIMARY KEY, seq bigint, key_hash bytea NOT NULL);
LOCK TABLE {h}.applied IN SHARE UPDATE EXCLUSIVE MODE;
REVOKE ALL ON SCHEMA {h} FROM PUBLIC;
CREATE OR REPLACE FUNCTION {h}.mark_applied(p_seq bigint, p_key text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
  UPDATE {h}.applied SET seq = p_seq
   WHERE actor = session_user::text AND key_hash = sha256(convert_to(p_key, 'UTF8'));
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the applied mark of % is refused: another host has taken this actor over', session_user;
  END IF;
END $f$;
CREATE OR REPLACE FUNCTION {h}.applied_seq() RETURNS bigint
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
  SELECT seq FROM {h}.applied WHERE actor = session_user::text $f$;
REVOKE ALL ON FUNCTION {h}.mark_applied(bigint, text), {h}.applied_seq() FROM PUBLIC;
DO $d$ DECLARE r record; BEGIN
  SELECT oid, rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
    INTO r FROM pg_catalog.pg_roles WHERE rolname = '{role}';
  IF NOT FOUND THEN
    CREATE ROLE "{role}";
  ELSIF r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls
     OR EXISTS (SELECT FROM pg_catalog.pg_auth_members WHERE member = r.oid) THEN
    RAISE EXCEPTION 'the role % exists with privileges an actor must not have (an attribute or a membership): drop it, or rename the actor', r.rolname;
  END IF;
END $d$;
ALTER ROLE "{role}" WITH LOGIN PASSWORD '{verifier}';
GRANT "{role}" TO CURRENT_USER;
ALTER ROLE "{role}" SET search_path = "{schema}";
CREATE SCHEMA IF NOT EXISTS "{schema}" AUTHORIZATION "{role}";
GRANT USAGE ON SCHEMA {h} TO "{role}";
GRANT EXECUTE ON FUNCTION {h}.mark_applied(bigint, text), {h}.applied_seq() TO "{role}";
INSERT INTO {h}.applied (actor, seq, key_hash) VALUES ('{role}', NULL, decode('{key_hash}', 'hex'))
  ON CONFLICT (actor) DO UPDATE SET key_hash = EXCLUDED.key_hash;
COMMIT;"#
        );
        let failed = |e: tokio_postgres::Error| DbError::unavailable(describe(&e));
        // Two hosts creating `theater_host` at the same moment: one loses, and tries again.
        let mut attempt = 0;
        while let Err(e) = admin.batch_execute(&script).await {
            let _ = admin.batch_execute("ROLLBACK").await;
            let raced = e.code().is_some_and(|c| {
                [
                    SqlState::UNIQUE_VIOLATION,
                    SqlState::DUPLICATE_SCHEMA,
                    SqlState::DUPLICATE_TABLE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::INTERNAL_ERROR,
                ]
                .contains(c)
            });
            attempt += 1;
            if raced && attempt < 3 {
                continue;
            }
            let mut message = describe(&e);
            if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                message.push_str(" (the host's user needs CREATEROLE and CREATE on the database)");
            }
            return Err(DbError::unavailable(message));
        }
        let owner: String = admin
            .query_one(
                "SELECT pg_catalog.pg_get_userbyid(nspowner)::text FROM pg_catalog.pg_namespace WHERE nspname = $1",
                &[schema],
            )
            .await
            .map_err(failed)?
            .get(0);
        if owner != *role {
            return Err(DbError::unavailable(format!(
                "the schema {schema} belongs to {owner}, not to the actor's role {role}: name another one with `schema = ...` in [interfaces.db]"
            )));
        }
        // A host that ran this actor before (or runs it still) commits nothing more.
        self.server.purge(role);
        admin
            .execute(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename = $1 AND pid <> pg_catalog.pg_backend_pid()",
                &[role],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// Rolls back a failed input's unit, if one waits.
    async fn settle(&self, s: &mut Session) {
        if self.rollback.swap(false, Ordering::AcqRel) {
            s.unit = false;
            self.lost.store(false, Ordering::Release);
            if let Some(conn) = s.conn.take() {
                self.server.roll_back(&self.role, conn).await;
            }
        }
    }

    /// The unit's connection, or one from the pool.
    async fn conn(&self, s: &mut Session) -> Result<Conn, DbError> {
        match s.conn.take() {
            Some(conn) => Ok(conn),
            None => {
                self.server
                    .connect(
                        &self.role,
                        &self.password,
                        self.limits.time.max(CONNECT_TIMEOUT),
                    )
                    .await
            }
        }
    }

    /// Gives `conn` back after a request: kept for the unit, or idle in the pool.
    fn give_back(&self, s: &mut Session, conn: Conn) {
        if s.unit {
            s.conn = Some(conn);
        } else {
            self.server.put_idle(&self.role, conn);
        }
    }

    /// Runs `request`, within the limits if `limited`.
    async fn run_limited(&self, request: &Value, limited: bool) -> Result<Value, DbError> {
        self.ready().await?;
        let mut s = self.session.lock().await;
        self.settle(&mut s).await;
        if s.unit && self.lost.load(Ordering::Acquire) {
            return Err(DbError::unit_lost(UNIT_LOST));
        }
        let mut conn = self.conn(&mut s).await?;
        let budget = if limited {
            self.limits.result_bytes
        } else {
            usize::MAX
        };
        let mut answer = self
            .guarded(&mut conn, request, budget, s.unit, limited)
            .await;
        if let Err(f) = &answer
            && !f.broken
            && f.error
                .message
                .contains("cached plan must not change result type")
        {
            // A table changed under a prepared statement: prepare again, once.
            conn.statements.clear();
            answer = self
                .guarded(&mut conn, request, budget, s.unit, limited)
                .await;
        }
        match answer {
            Ok(v) => {
                self.give_back(&mut s, conn);
                Ok(v)
            }
            Err(Failure { error, broken }) => {
                if broken || conn.client.is_closed() {
                    drop(conn);
                    if s.unit {
                        self.lost.store(true, Ordering::Release);
                        return Err(DbError::unit_lost(format!("{UNIT_LOST}: {error}")));
                    }
                } else {
                    self.give_back(&mut s, conn);
                }
                Err(error)
            }
        }
    }

    /// Runs `request` on `conn` (in the open unit if `unit`), cancelling it on the server
    /// once it runs past the time limit (if `limited`).
    async fn guarded(
        &self,
        conn: &mut Conn,
        request: &Value,
        budget: usize,
        unit: bool,
        limited: bool,
    ) -> Result<Value, Failure> {
        let cancel = conn.client.cancel_token();
        let work = in_transaction(conn, request, budget, unit);
        pin_mut!(work);
        if !limited {
            return work.await;
        }
        let limit = self.limits.time;
        let interrupted = || {
            DbError::limit(format!(
                "query interrupted after {} ms (the database's time limit per request)",
                limit.as_millis()
            ))
        };
        match tokio::time::timeout(limit, &mut work).await {
            Ok(Err(f)) if f.error.message.contains("SQLSTATE 57014") => Err(Failure {
                error: interrupted(),
                broken: f.broken,
            }),
            Ok(r) => r,
            Err(_) => {
                match &self.server.tls {
                    Some(tls) => {
                        let _ =
                            tokio::time::timeout(CANCEL_GRACE, cancel.cancel_query(tls.clone()))
                                .await;
                    }
                    None => {
                        let _ =
                            tokio::time::timeout(CANCEL_GRACE, cancel.cancel_query(NoTls)).await;
                    }
                }
                match tokio::time::timeout(CANCEL_GRACE, &mut work).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(f)) => Err(Failure {
                        error: interrupted(),
                        broken: f.broken,
                    }),
                    Err(_) => Err(Failure {
                        error: interrupted(),
                        broken: true,
                    }),
                }
            }
        }
    }
}

/// One statement of a request, checked: its SQL, whether it is a query, its parameters.
type Checked<'a> = (&'a str, bool, Vec<Param<'a>>);

/// What a request asks, checked before anything is sent: `(sql, is a query)` for each of its
/// statements.
fn statements(request: &Value) -> Result<Vec<Checked<'_>>, DbError> {
    fn one(r: &Value) -> Result<(&str, bool), DbError> {
        match (r.get("query"), r.get("execute")) {
            (Some(Value::String(q)), None) => Ok((q.as_str(), true)),
            (None, Some(Value::String(e))) => Ok((e.as_str(), false)),
            _ => Err(DbError::refused(format!(
                "expected {{\"query\": sql}}, {{\"execute\": sql}} or {{\"transaction\": [...]}}, got {r}"
            ))),
        }
    }
    let list: Vec<&Value> = match request.get("transaction") {
        None => vec![request],
        Some(Value::Array(list)) => list.iter().collect(),
        Some(_) => return Err("transaction must be an array of requests".into()),
    };
    list.into_iter()
        .map(|r| {
            let (sql, query) = one(r)?;
            if let Some(why) = sql::refused(sql) {
                return Err(DbError::refused(why));
            }
            Ok((sql, query, params(r)?))
        })
        .collect::<Result<Vec<_>, DbError>>()
        .map_err(|e| match request.get("transaction") {
            Some(_) => e.context("a statement of the transaction is refused, nothing was applied"),
            None => e,
        })
}

/// Savepoint SQL of a request within the unit.
const SAVE_REQUEST: &str = "SAVEPOINT theater_request";
const UNDO_REQUEST: &str =
    "ROLLBACK TO SAVEPOINT theater_request; RELEASE SAVEPOINT theater_request";
const KEEP_REQUEST: &str = "RELEASE SAVEPOINT theater_request; ";
const READ_ONLY: &str = "SAVEPOINT theater_query; SET LOCAL transaction_read_only = on";
const UNDO_QUERY: &str = "ROLLBACK TO SAVEPOINT theater_query; RELEASE SAVEPOINT theater_query";

/// Runs `request` in a transaction: the open unit (a failure undoes this request only), or
/// one of its own (read only for a query). Each statement and the commands around it go in
/// one round trip where they can (pipelined).
async fn in_transaction(
    conn: &mut Conn,
    request: &Value,
    mut budget: usize,
    unit: bool,
) -> Result<Value, Failure> {
    let list = statements(request)?;
    let broken = |e: tokio_postgres::Error| Failure {
        error: DbError::unavailable(describe(&e)),
        broken: true,
    };
    let single = request.get("transaction").is_none();
    match (unit, single) {
        (true, true) => {
            let (sql, query, params) = &list[0];
            let before = std::mem::take(&mut conn.pending);
            if *query {
                // Read only, whatever it is: undone either way.
                let pre = format!("{before}{READ_ONLY}");
                let (answer, after) =
                    pipelined(conn, sql, params, &mut budget, &pre, Some(UNDO_QUERY)).await?;
                after.map_err(broken)?;
                return answer
                    .map(|(columns, rows, _)| json!({"columns": columns, "rows": rows}))
                    .map_err(Failure::from);
            }
            let pre = format!("{before}{SAVE_REQUEST}");
            let (answer, _) = pipelined(conn, sql, params, &mut budget, &pre, None).await?;
            match answer {
                Ok(rows) => {
                    // Released with the next command (or by the commit).
                    conn.pending = KEEP_REQUEST.to_string();
                    Ok(execute_answer(rows))
                }
                Err(error) => {
                    let broken = conn.client.batch_execute(UNDO_REQUEST).await.is_err();
                    Err(Failure { error, broken })
                }
            }
        }
        (false, true) if list[0].1 => {
            let (sql, _, params) = &list[0];
            let (answer, after) = pipelined(
                conn,
                sql,
                params,
                &mut budget,
                "BEGIN READ ONLY",
                Some("COMMIT"),
            )
            .await?;
            // A failed query's COMMIT rolls back, and succeeds.
            after.map_err(broken)?;
            answer
                .map(|(columns, rows, _)| json!({"columns": columns, "rows": rows}))
                .map_err(Failure::from)
        }
        (_, false) if list.is_empty() => Ok(json!({"results": []})),
        (unit, _) => {
            // A transaction of statements, or a write outside a unit: one statement at a
            // time.
            let (open, done, undo) = if unit {
                let before = std::mem::take(&mut conn.pending);
                (format!("{before}{SAVE_REQUEST}"), None, UNDO_REQUEST)
            } else {
                ("BEGIN".to_string(), Some("COMMIT"), "ROLLBACK")
            };
            let mut results = Vec::with_capacity(list.len());
            let mut failed = None;
            for (i, (sql, query, params)) in list.iter().enumerate() {
                // Inside the transaction a query is made read only, and undone either way.
                // The transaction opens with the first statement, in its round trip.
                let open = if i == 0 { open.as_str() } else { "" };
                let pre = match (open, *query) {
                    ("", true) => READ_ONLY.to_string(),
                    (open, true) => format!("{open}; {READ_ONLY}"),
                    (open, false) => open.to_string(),
                };
                let post = query.then_some(UNDO_QUERY);
                let (answer, after) = pipelined(conn, sql, params, &mut budget, &pre, post).await?;
                after.map_err(broken)?;
                match answer {
                    Ok(rows) if *query => results.push(json!({"columns": rows.0, "rows": rows.1})),
                    Ok(rows) => results.push(execute_answer(rows)),
                    Err(e) if single => {
                        failed = Some(e);
                        break;
                    }
                    Err(e) => {
                        failed =
                            Some(e.context(&format!("statement {i} failed, nothing was applied")));
                        break;
                    }
                }
            }
            if let Some(error) = failed {
                let broken = conn.client.batch_execute(undo).await.is_err();
                return Err(Failure { error, broken });
            }
            match done {
                Some(done) => conn.client.batch_execute(done).await.map_err(broken)?,
                None => conn.pending = KEEP_REQUEST.to_string(),
            }
            Ok(if single {
                results.remove(0)
            } else {
                json!({"results": results})
            })
        }
    }
}

/// What an `execute` answers: the rows it changed, and its rows if it returns any.
fn execute_answer((columns, rows, changes): (Vec<String>, Vec<Value>, u64)) -> Value {
    if columns.is_empty() {
        json!({"changes": changes})
    } else {
        json!({"changes": changes, "columns": columns, "rows": rows})
    }
}

/// Runs `sql` (commands of the simple protocol), if there is any.
async fn batch(client: &Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    if sql.is_empty() {
        Ok(())
    } else {
        client.batch_execute(sql).await
    }
}

/// Rows of a statement: (columns, rows, rows affected).
type Rows = (Vec<String>, Vec<Value>, u64);

/// Sends `pre` (if not empty), the statement `sql` and `post` (if any) in one round trip when
/// the statement is prepared already (else `pre`, then the preparation, then the rest): the
/// statement's outcome and `post`'s. `Err` only if `pre` failed (the connection is unusable).
async fn pipelined(
    conn: &mut Conn,
    sql: &str,
    params: &[Param<'_>],
    budget: &mut usize,
    pre: &str,
    post: Option<&str>,
) -> Result<(Result<Rows, DbError>, Result<(), tokio_postgres::Error>), Failure> {
    let broken = |e: tokio_postgres::Error| Failure {
        error: DbError::unavailable(describe(&e)),
        broken: true,
    };
    let statement = match conn.statements.get(sql).cloned() {
        Some(s) => s,
        None => {
            batch(&conn.client, pre).await.map_err(broken)?;
            let prepared = prepare(conn, sql).await;
            let statement = match prepared {
                Ok(s) => s,
                Err(e) => {
                    let after = match post {
                        Some(post) => batch(&conn.client, post).await,
                        None => Ok(()),
                    };
                    return Ok((Err(e), after));
                }
            };
            let (answer, after) = futures_util::future::join(
                rows(&conn.client, &statement, params, budget),
                batch(&conn.client, post.unwrap_or("")),
            )
            .await;
            return Ok((answer, after));
        }
    };
    let (before, answer, after) = futures_util::future::join3(
        batch(&conn.client, pre),
        rows(&conn.client, &statement, params, budget),
        batch(&conn.client, post.unwrap_or("")),
    )
    .await;
    before.map_err(broken)?;
    Ok((answer, after))
}

fn params(request: &Value) -> Result<Vec<Param<'_>>, DbError> {
    match request.get("params") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a.iter().map(Param).collect()),
        Some(other) => Err(DbError::refused(format!(
            "params must be an array, got {other}"
        ))),
    }
}

/// An error of the server as the actor sees it.
fn refused(e: &tokio_postgres::Error) -> DbError {
    let message = describe(e);
    match e.code() {
        Some(c) if *c == SqlState::QUERY_CANCELED => DbError::limit(message),
        Some(c)
            if c.code().starts_with("08")
                || c.code().starts_with("53")
                || c.code().starts_with("57P") =>
        {
            DbError::unavailable(message)
        }
        Some(_) => DbError::refused(message),
        None => DbError::unavailable(message),
    }
}

/// The prepared statement of `sql` on `conn` (prepared once per connection).
async fn prepare(conn: &mut Conn, sql: &str) -> Result<Statement, DbError> {
    if let Some(s) = conn.statements.get(sql) {
        return Ok(s.clone());
    }
    let text = sql::numbered_placeholders(sql);
    let s = conn.client.prepare(&text).await.map_err(|e| refused(&e))?;
    if conn.statements.len() >= STATEMENT_CACHE {
        conn.statements.clear();
    }
    conn.statements.insert(sql.to_string(), s.clone());
    Ok(s)
}

/// Runs `statement` and collects its rows within `budget` bytes.
async fn rows(
    client: &Client,
    statement: &Statement,
    params: &[Param<'_>],
    budget: &mut usize,
) -> Result<Rows, DbError> {
    let columns: Vec<String> = statement
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let stream = client
        .query_raw(statement, params.iter())
        .await
        .map_err(|e| match e.code() {
            None if std::error::Error::source(&e).is_some() && !client.is_closed() => {
                // A parameter the client could not encode.
                DbError::refused(format!("a parameter: {}", describe(&e)))
            }
            _ => refused(&e),
        })?;
    pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(row) = stream.next().await {
        let row = row.map_err(|e| refused(&e))?;
        let mut r = Vec::with_capacity(columns.len());
        for (i, column) in statement.columns().iter().enumerate() {
            let Cell(v, size) = row.try_get::<_, Cell>(i).map_err(|e| {
                if std::error::Error::source(&e).is_some_and(|c| c.is::<Unmapped>()) {
                    DbError::refused(format!(
                        "column {} has type {}, which has no JSON form here: cast it in the query ({}::text)",
                        column.name(),
                        column.type_(),
                        column.name()
                    ))
                } else {
                    DbError::refused(format!("column {}: {e}", column.name()))
                }
            })?;
            *budget = budget.checked_sub(size).ok_or_else(|| {
                DbError::limit("result over the database's size limit per request")
            })?;
            r.push(v);
        }
        out.push(Value::Array(r));
    }
    let changes = stream.rows_affected().unwrap_or(0);
    Ok((columns, out, changes))
}

#[async_trait::async_trait]
impl Database for Postgres {
    async fn run(&self, request: &Value) -> Result<Value, DbError> {
        self.run_limited(request, true).await
    }

    async fn rerun(&self, request: &Value) -> Result<Value, DbError> {
        self.run_limited(request, false).await
    }

    async fn begin_input(&self) -> Result<(), DbError> {
        self.ready().await?;
        let mut s = self.session.lock().await;
        self.settle(&mut s).await;
        if s.unit {
            return Err(DbError::unavailable(
                "a transaction is already open on this database",
            ));
        }
        let mut conn = self.conn(&mut s).await?;
        // Sent with the unit's first statement, in the same round trip.
        // Deferred constraints are checked at each statement: a violation found at COMMIT,
        // after the entry is durable, could never be applied.
        conn.pending = "BEGIN; SET CONSTRAINTS ALL IMMEDIATE; ".to_string();
        s.unit = true;
        s.conn = Some(conn);
        self.lost.store(false, Ordering::Release);
        Ok(())
    }

    async fn commit_input(&self, seq: u64) -> Result<(), DbError> {
        let mut s = self.session.lock().await;
        if !s.unit {
            return Err(DbError::unavailable(
                "no input's transaction is open to commit",
            ));
        }
        s.unit = false;
        if self.lost.swap(false, Ordering::AcqRel) {
            // As the actor was told: nothing to commit, and a repair applies nothing either.
            tracing::warn!(seq, "{UNIT_LOST}: the entry's unit committed nothing");
            s.conn = None;
            return Ok(());
        }
        let mut conn = s
            .conn
            .take()
            .ok_or_else(|| DbError::unavailable("the input's connection is gone"))?;
        if std::mem::take(&mut conn.pending).starts_with("BEGIN") {
            // No statement reached the server: nothing to commit (nor to repair).
            self.server.put_idle(&self.role, conn);
            return Ok(());
        }
        let seq = i64::try_from(seq).map_err(|e| DbError::unavailable(e.to_string()))?;
        let failed = |e: String| {
            // Dropping the connection rolls the unit back on the server (if it did not
            // commit: then the mark says so, and a repair applies nothing).
            DbError::unavailable(format!("cannot commit the input's transaction: {e}"))
        };
        let wait = self.limits.time.max(CONNECT_TIMEOUT);
        let committed = tokio::time::timeout(wait, async {
            // Prepared first, so that the mark's Bind goes out before COMMIT: the two then
            // share one round trip, in this order. If the mark is refused, COMMIT rolls back.
            let mark = prepare(
                &mut conn,
                &format!("SELECT {HOST_SCHEMA}.mark_applied($1, $2)"),
            )
            .await
            .map_err(|e| e.message)?;
            let (marked, committed) = futures_util::future::join(
                conn.client.execute(&mark, &[&seq, &self.key]),
                conn.client.batch_execute("COMMIT"),
            )
            .await;
            marked.map(|_| ()).and(committed).map_err(|e| describe(&e))
        })
        .await
        .map_err(|_| format!("no answer from the server within {} ms", wait.as_millis()))
        .and_then(|r| r);
        match committed {
            Ok(()) => {
                self.server.put_idle(&self.role, conn);
                Ok(())
            }
            Err(e) => Err(failed(e)),
        }
    }

    fn rollback_input(&self) {
        self.rollback.store(true, Ordering::Release);
        // At once if nothing else holds the session; otherwise before its next request.
        if let (Ok(mut s), Ok(rt)) = (
            self.session.try_lock(),
            tokio::runtime::Handle::try_current(),
        ) && self.rollback.swap(false, Ordering::AcqRel)
        {
            s.unit = false;
            self.lost.store(false, Ordering::Release);
            if let Some(conn) = s.conn.take() {
                let server = Arc::clone(&self.server);
                let role = self.role.clone();
                rt.spawn(async move { server.roll_back(&role, conn).await });
            }
        }
    }

    fn unit_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    async fn applied_seq(&self) -> Result<Option<u64>, DbError> {
        self.ready().await?;
        let mut s = self.session.lock().await;
        self.settle(&mut s).await;
        let conn = self.conn(&mut s).await?;
        let seq = tokio::time::timeout(
            CONNECT_TIMEOUT,
            conn.client
                .query_one(&format!("SELECT {HOST_SCHEMA}.applied_seq()"), &[]),
        )
        .await
        .map_err(|_| DbError::unavailable("no answer from the server"))
        .and_then(|r| r.map_err(|e| DbError::unavailable(describe(&e))));
        self.give_back(&mut s, conn);
        let seq: Option<i64> = seq?.get(0);
        Ok(seq.and_then(|s| u64::try_from(s).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain_short_and_distinct() {
        assert_eq!(identifier(&["theater", "inventory"]), "theater_inventory");
        let odd = identifier(&["theater", "Inventory-2"]);
        assert!(odd.starts_with("theater_inventory_2_"), "{odd}");
        assert_ne!(odd, identifier(&["theater", "inventory_2"]));
        let long = identifier(&["theater", &"x".repeat(100)]);
        assert_eq!(long.len(), 63);
        assert_ne!(long, identifier(&["theater", &"x".repeat(101)]));
        assert!(identifier(&["9lives"]).starts_with("_9lives"));
    }
}
