use std::path::Path;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};
use tenantry_domain::OrgId;
use tenantry_ports::StoreError;

use crate::errors::store_error;
use secrecy::{ExposeSecret, SecretString};
use tenantry_migration::{Migrator, MigratorTrait};

/// Which SQL database a URL points at; decides dialect-specific behaviour and what production
/// mode accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL: the production database (RLS, `SKIP LOCKED`, many writers).
    Postgres,
    /// SQLite: the embedded default (one file, one writer at a time).
    Sqlite,
}

impl Backend {
    /// The backend a `postgres://`, `postgresql://` or `sqlite:` URL names.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase())?;
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }
}

/// How to reach the database. The URL may hold a password, so it stays secret.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// `postgres://user:pass@host:port/db` or `sqlite://path/to/file.db?mode=rwc`.
    pub url: SecretString,
    /// Most pooled connections.
    pub max_connections: u32,
    /// Bound on opening a connection or waiting for a free one.
    pub acquire_timeout: Duration,
    /// PostgreSQL `statement_timeout`: no query may hold a connection longer.
    pub statement_timeout: Duration,
}

impl SqlConfig {
    /// Defaults suited to one replica on a small machine.
    pub fn new(url: SecretString) -> Self {
        Self {
            url,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(15),
        }
    }
}

/// Failures of connecting and migrating. The message never contains the URL.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The URL names no supported database.
    #[error("unsupported database URL scheme (expected postgres:// or sqlite://)")]
    UnsupportedScheme,
    /// The SQLite file's folder could not be created.
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database refused or did not answer.
    #[error("database connection failed: {0}")]
    Connect(String),
    /// Applying migrations failed; nothing of the failing migration was kept.
    #[error("migration failed: {0}")]
    Migrate(String),
}

/// Which rows a transaction may see under Row-Level Security.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    /// One organization's ([`SqlDatabase::tenant`]).
    Tenant(OrgId),
    /// Across organizations, declared ([`SqlDatabase::platform`]).
    Platform,
}

/// How the connection pool is used now, for the pool gauges (saturation is `open - idle`
/// reaching `max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open.
    pub open: u32,
    /// Of those, waiting for work.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
    /// Transactions opened since start-up (each one checks a connection out).
    pub acquires: u64,
    /// Their total time to open: waiting for a free connection (or a new one) plus `BEGIN`.
    /// Divided by `acquires` over an interval it is the mean wait; it grows fast when the
    /// pool is saturated, before requests time out.
    pub acquire_wait: Duration,
}

/// Counts of [`SqlDatabase`]'s transaction openings, shared by its clones.
#[derive(Debug, Default)]
struct Acquisitions {
    count: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

/// The shared connection pool, plus what the server needs at start-up (migrations, backend).
#[derive(Clone)]
pub struct SqlDatabase {
    connection: DatabaseConnection,
    backend: Backend,
    acquisitions: std::sync::Arc<Acquisitions>,
}

/// An arbitrary, fixed key for the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK_KEY: i64 = 0x7465_6e61_6e74;

impl SqlDatabase {
    /// Opens the pool. For SQLite the file's folder is created first and the file is put in
    /// WAL mode (readers never block the writer) with a busy timeout, so concurrent requests
    /// queue instead of failing with "database is locked".
    ///
    /// # Errors
    /// [`SqlError::UnsupportedScheme`], [`SqlError::CreateDir`], [`SqlError::Connect`].
    pub async fn connect(config: &SqlConfig) -> Result<Self, SqlError> {
        let url = config.url.expose_secret();
        let backend = Backend::of_url(url).ok_or(SqlError::UnsupportedScheme)?;
        if backend == Backend::Sqlite {
            create_sqlite_folder(url)?;
        }
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(config.max_connections.max(1))
            .min_connections(1)
            .connect_timeout(config.acquire_timeout)
            .acquire_timeout(config.acquire_timeout)
            .statement_timeout(config.statement_timeout)
            .sqlx_logging(false)
            // Ping only connections idle long enough to have been dropped by the server or a
            // proxy; pinging on every checkout doubled the cost of each query.
            .test_before_acquire_if_idle_for(Duration::from_secs(30))
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
            });
        let connection =
            Database::connect(options).await.map_err(|err| SqlError::Connect(redact(&err.to_string(), url)))?;
        Ok(Self { connection, backend, acquisitions: std::sync::Arc::default() })
    }

    /// Wraps a pool the caller already opened, for a service that embeds Tenantry and keeps
    /// one pool for its own queries and Tenantry's: one pool means one connection budget
    /// against the server's `max_connections` and one place that sets timeouts, instead of two
    /// pools competing. (A `sqlx` pool becomes a `DatabaseConnection` with sea-orm's
    /// `SqlxPostgresConnector::from_sqlx_postgres_pool`.)
    ///
    /// The pool's options are the caller's: set a `statement_timeout` on PostgreSQL (what
    /// [`Self::connect`] does), and on SQLite WAL mode, a busy timeout and foreign keys on.
    /// Tenant isolation does not depend on them — every tenant transaction sets its own
    /// `tenantry.org_id` — but connecting as a role without `BYPASSRLS` does
    /// ([`Self::role_bypassing_row_security`] tells).
    ///
    /// # Errors
    /// [`SqlError::UnsupportedScheme`] for a pool of a database other than PostgreSQL or
    /// SQLite.
    pub fn from_connection(connection: DatabaseConnection) -> Result<Self, SqlError> {
        let backend = match connection.get_database_backend() {
            DbBackend::Postgres => Backend::Postgres,
            DbBackend::Sqlite => Backend::Sqlite,
            _ => return Err(SqlError::UnsupportedScheme),
        };
        Ok(Self { connection, backend, acquisitions: std::sync::Arc::default() })
    }

    /// Applies every pending migration. On PostgreSQL the run holds an advisory lock inside one
    /// transaction, so replicas starting together migrate once and a failure leaves nothing
    /// half-applied (PostgreSQL DDL is transactional).
    ///
    /// # Errors
    /// [`SqlError::Migrate`].
    #[tracing::instrument(name = "adapter.sql.migrate", skip_all)]
    pub async fn migrate(&self) -> Result<(), SqlError> {
        let fail = |err: sea_orm::DbErr| SqlError::Migrate(err.to_string());
        match self.backend {
            Backend::Postgres => {
                let txn = self.connection.begin().await.map_err(fail)?;
                txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))
                    .await
                    .map_err(fail)?;
                Migrator::up(&txn, None).await.map_err(fail)?;
                txn.commit().await.map_err(fail)
            }
            Backend::Sqlite => Migrator::up(&self.connection, None).await.map_err(fail),
        }
    }

    /// Names of migrations not yet applied (read-only: creates nothing).
    ///
    /// # Errors
    /// [`SqlError::Connect`] when the database cannot be read.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, SqlError> {
        let pending = Migrator::get_pending_migrations_read_only(&self.connection)
            .await
            .map_err(|err| SqlError::Connect(err.to_string()))?;
        Ok(pending.iter().map(|migration| migration.name().to_owned()).collect())
    }

    /// The role the pool connects as, when Row-Level Security would not bind it (a superuser
    /// or a `BYPASSRLS` role); `None` when it would, and always on SQLite (which has no RLS:
    /// its only wall is the repositories' own `org_id` filters).
    ///
    /// # Errors
    /// [`SqlError::Connect`] when the database cannot be asked.
    pub async fn role_bypassing_row_security(&self) -> Result<Option<String>, SqlError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let row = self
            .connection
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_user::text AS name, (rolsuper OR rolbypassrls) AS bypasses \
                 FROM pg_roles WHERE rolname = current_user",
            ))
            .await
            .map_err(|err| SqlError::Connect(err.to_string()))?;
        let Some(row) = row else { return Ok(None) };
        let bypasses: bool = row.try_get("", "bypasses").map_err(|err| SqlError::Connect(err.to_string()))?;
        let name: String = row.try_get("", "name").map_err(|err| SqlError::Connect(err.to_string()))?;
        Ok(bypasses.then_some(name))
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The sea-orm connection, for the repositories of this crate.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// The pool's figures now.
    #[must_use]
    pub fn pool_stats(&self) -> PoolStats {
        use std::sync::atomic::Ordering;
        let idle = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        // The backend is the connection's own: the accessors below never meet the other kind.
        let (open, idle, max) = match self.connection.get_database_backend() {
            DbBackend::Postgres => {
                let pool = self.connection.get_postgres_connection_pool();
                (pool.size(), idle(pool.num_idle()), pool.options().get_max_connections())
            }
            _ => {
                let pool = self.connection.get_sqlite_connection_pool();
                (pool.size(), idle(pool.num_idle()), pool.options().get_max_connections())
            }
        };
        PoolStats {
            open,
            idle,
            max,
            acquires: self.acquisitions.count.load(Ordering::Relaxed),
            acquire_wait: Duration::from_nanos(self.acquisitions.nanos.load(Ordering::Relaxed)),
        }
    }

    /// A cheap round trip.
    ///
    /// # Errors
    /// [`SqlError::Connect`].
    pub async fn ping(&self) -> Result<(), SqlError> {
        self.connection.ping().await.map_err(|err| SqlError::Connect(err.to_string()))
    }

    /// Closes every pooled connection (at shutdown, so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        if let Err(err) = self.connection.close_by_ref().await {
            tracing::warn!(error = %err, "closing the database pool failed");
        }
    }

    /// A transaction that sees only `org_id`'s rows: on PostgreSQL it sets `tenantry.org_id`
    /// for this transaction only (`set_config(…, true)`), which the Row-Level Security policies
    /// of every tenant table check, so a query that forgot its `org_id` filter still cannot
    /// reach another tenant. Every tenant-scoped repository method runs in one.
    pub(crate) async fn tenant(&self, org_id: OrgId) -> Result<DatabaseTransaction, StoreError> {
        self.scoped("tenantry.org_id", org_id.to_string()).await
    }

    /// A transaction allowed to cross tenants, for the few operations that are cross-tenant by
    /// nature and say so: finding a key or an invitation by its secret, a user's own
    /// memberships, account deletion, platform administration. Grep for `platform()` to
    /// review them all.
    pub(crate) async fn platform(&self) -> Result<DatabaseTransaction, StoreError> {
        self.scoped("tenantry.scope", "platform".to_owned()).await
    }

    /// Runs one read in a transaction of `scope` and commits it: the shape of every
    /// tenant-scoped (or declared cross-tenant) lookup.
    pub(crate) async fn read<T, F>(&self, scope: Scope, query: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(
            &'t DatabaseTransaction,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, sea_orm::DbErr>> + Send + 't>,
        >,
    {
        let txn = match scope {
            Scope::Tenant(org_id) => self.tenant(org_id).await?,
            Scope::Platform => self.platform().await?,
        };
        let found = query(&txn).await.map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(found)
    }

    async fn scoped(&self, setting: &'static str, value: String) -> Result<DatabaseTransaction, StoreError> {
        use std::sync::atomic::Ordering;
        let started = std::time::Instant::now();
        let txn = self.connection.begin().await;
        let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.acquisitions.count.fetch_add(1, Ordering::Relaxed);
        self.acquisitions.nanos.fetch_add(waited, Ordering::Relaxed);
        let txn = txn.map_err(store_error)?;
        if self.backend == Backend::Postgres {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT set_config($1, $2, true)",
                [setting.into(), value.into()],
            ))
            .await
            .map_err(store_error)?;
        }
        Ok(txn)
    }

    /// The sea-orm backend, for building dialect-specific statements.
    pub fn db_backend(&self) -> DbBackend {
        self.connection.get_database_backend()
    }
}

/// Creates the folder of a `sqlite://path?…` file, so the embedded default works from a fresh
/// clone with no `data/` folder.
fn create_sqlite_folder(url: &str) -> Result<(), SqlError> {
    let rest = url.split_once(':').map_or("", |(_, rest)| rest);
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    match Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent)
            .map_err(|source| SqlError::CreateDir { path: parent.display().to_string(), source }),
        _ => Ok(()),
    }
}

/// Drivers may echo the URL (password included) in their errors: cut it out.
fn redact(message: &str, url: &str) -> String {
    message.replace(url, "<database url>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_recognised_by_scheme() {
        assert_eq!(Backend::of_url("postgres://u@h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of_url("postgresql://u@h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of_url("sqlite://data/x.db?mode=rwc"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("mysql://h/db"), None);
        assert_eq!(Backend::of_url("nonsense"), None);
    }

    #[tokio::test]
    async fn a_sqlite_file_in_a_missing_folder_is_created_and_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nested/deeper/tenantry.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let db = SqlDatabase::connect(&SqlConfig::new(SecretString::from(url))).await.expect("connects");
        assert_eq!(db.backend(), Backend::Sqlite);
        assert!(!db.pending_migrations().await.expect("reads").is_empty());
        db.migrate().await.expect("migrates");
        db.migrate().await.expect("migrating twice is a no-op");
        assert!(db.pending_migrations().await.expect("reads").is_empty());
        assert!(file.exists());
        db.close().await;
    }

    #[tokio::test]
    async fn a_callers_own_pool_is_wrapped_migrated_and_shared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("shared.db").display());
        let pool = sea_orm::sqlx::SqlitePool::connect(&url).await.expect("the caller's pool");
        let connection = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool.clone());
        let db = SqlDatabase::from_connection(connection).expect("wraps");
        assert_eq!(db.backend(), Backend::Sqlite);
        db.migrate().await.expect("migrates through the caller's pool");
        // The caller's own handle on the same pool sees Tenantry's tables.
        let (tables,): (i64,) =
            sea_orm::sqlx::query_as("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'users'")
                .fetch_one(&pool)
                .await
                .expect("query");
        assert_eq!(tables, 1);
        db.close().await;
        assert!(pool.is_closed(), "one pool: closing it through Tenantry closes the caller's too");
    }

    #[tokio::test]
    async fn postgres_migrations_apply_once_even_when_replicas_race() {
        let Some(server) = tenantry_testkit::env::postgres_url() else {
            return;
        };
        let scratch = tenantry_testkit::postgres::ScratchPostgres::create(&server).await;
        let config = SqlConfig::new(SecretString::from(scratch.url.clone()));
        let a = SqlDatabase::connect(&config).await.expect("connects");
        let b = SqlDatabase::connect(&config).await.expect("connects");
        assert_eq!(a.backend(), Backend::Postgres);
        let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
        ra.expect("first replica migrates");
        rb.expect("second replica waits, then finds nothing to do");
        assert!(a.pending_migrations().await.expect("reads").is_empty());
        a.close().await;
        b.close().await;
        scratch.drop_database().await;
    }

    #[tokio::test]
    async fn a_superuser_is_reported_as_bypassing_row_level_security_and_the_app_role_is_not() {
        let Some(server) = tenantry_testkit::env::postgres_url() else {
            return;
        };
        let scratch = tenantry_testkit::postgres::ScratchPostgres::create(&server).await;
        let superuser = SqlDatabase::connect(&SqlConfig::new(SecretString::from(scratch.admin_url.clone())))
            .await
            .expect("connects");
        let app =
            SqlDatabase::connect(&SqlConfig::new(SecretString::from(scratch.url.clone()))).await.expect("connects");
        assert!(superuser.role_bypassing_row_security().await.expect("asks").is_some());
        assert_eq!(app.role_bypassing_row_security().await.expect("asks"), None);
        superuser.close().await;
        app.close().await;
        scratch.drop_database().await;
    }

    #[tokio::test]
    async fn connection_errors_never_show_the_password() {
        let url = "postgres://tenantry:s3cr3t-pw@127.0.0.1:1/nope";
        let mut config = SqlConfig::new(SecretString::from(url.to_owned()));
        config.acquire_timeout = Duration::from_secs(1);
        let err = SqlDatabase::connect(&config).await.err().expect("nothing listens on port 1");
        assert!(!err.to_string().contains("s3cr3t-pw"), "{err}");
    }
}
