//! The PostgreSQL backend: the store shared by several CA replicas.
//!
//! tokio-postgres with a deadpool pool, TLS through rustls (`tls.rs`),
//! numbered migrations in `ca/migrations/postgres/` applied at start by one
//! replica at a time under an advisory lock (`migrate.rs`). Every append
//! locks the audit chain's head row, so appends from every replica form one
//! chain; within a replica the audit writer still groups them, and one group
//! goes to the database in two round trips (`audit.rs`). Conflicts the CA
//! expects are raised by the statements that meet them with SQLSTATEs of our
//! own (`conflict.rs`), never recognised by message. Commits are durable on
//! return (`synchronous_commit = on` is set on every connection). New audit
//! rows from other replicas are announced with NOTIFY and heard through one
//! LISTEN connection per process (`listen.rs`).
//!
//! Nothing here blocks a thread: the driver is async end to end.

mod audit;
mod ca_keys;
mod certificates;
mod change;
mod conflict;
mod hosts;
mod incidents;
mod lifecycle;
mod listen;
mod locks;
mod migrate;
mod overrides;
mod requests;
mod sessions;
mod settings;
mod tls;
mod ui_sessions;
mod webhooks;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::watch;
use tokio_postgres::types::ToSql;

pub(crate) use settings::{Settings, SslMode};

use super::{Access, Error, OpenError};

/// How long a caller waits for a pooled connection, or for a new one to be
/// made, before the store answers `Unavailable`.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// Set on every connection: commits are durable before they return (the CA
/// answers only then), lock waits are bounded (a replica stuck holding the
/// chain's head cannot stall the others for ever), and a transaction left
/// open by a hung client is ended by the server.
const SESSION_OPTIONS: &str = "-c synchronous_commit=on -c lock_timeout=10s \
    -c idle_in_transaction_session_timeout=30s -c statement_timeout=60s";

/// The store in a PostgreSQL database.
pub(crate) struct PostgresStore {
    pool: Pool,
    /// What the pool connects to; the LISTEN connection uses it too.
    connect: Arc<settings::Connect>,
    read_only: bool,
    /// Serials reserved and not yet handed out (see `certificates.rs`).
    serials: tokio::sync::Mutex<certificates::SerialBlock>,
    /// The audit log's tip, for `audit_tip` (see `listen.rs`).
    tip: Arc<watch::Sender<u64>>,
    listener: OnceLock<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.connect.display)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, migrates (read-write) or checks the schema (read-only).
    pub(crate) async fn open(settings: &Settings, access: Access) -> Result<Self, OpenError> {
        let connect = Arc::new(settings.connect()?);
        let display = connect.display.clone();
        let open_err = |message: String| OpenError::Open {
            path: display.clone().into(),
            message,
        };
        match access {
            Access::ReadWrite => migrate::run(&connect).await?,
            Access::ReadOnly => migrate::check(&connect).await?,
        }
        let mut config = connect.config.clone();
        if access == Access::ReadOnly {
            let options = format!(
                "{} -c default_transaction_read_only=on",
                config.get_options().unwrap_or_default()
            );
            config.options(options.trim());
        }
        let manager = Manager::from_config(
            config,
            connect.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| open_err(format!("cannot make the connection pool: {e}")))?;
        let store = Self {
            pool,
            connect,
            read_only: access == Access::ReadOnly,
            serials: tokio::sync::Mutex::new(certificates::SerialBlock::default()),
            tip: Arc::new(watch::channel(0).0),
            listener: OnceLock::new(),
        };
        let client = store.client().await.map_err(|e| open_err(e.to_string()))?;
        let tip = audit::max_seq(&client)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        drop(client);
        store.tip.send_replace(tip);
        Ok(store)
    }

    /// A connection of its own, outside the pool (`store migrate`).
    pub(crate) async fn dedicated(&self) -> Result<tokio_postgres::Client, OpenError> {
        migrate::connect_one(&self.connect).await
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => conflict::map_error(&e),
            other => Error::Unavailable(format!("no database connection: {other}")),
        })
    }

    /// A pooled connection for a write; `Unavailable` when opened read-only.
    async fn writer(&self) -> Result<deadpool_postgres::Object, Error> {
        if self.read_only {
            return Err(Error::Unavailable(format!(
                "{} was opened read-only",
                self.connect.display
            )));
        }
        self.client().await
    }

    /// Rows of one read statement.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| conflict::map_error(&e))?;
        client
            .query(&statement, params)
            .await
            .map_err(|e| conflict::map_error(&e))
    }

    /// At most one row of one read statement.
    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| conflict::map_error(&e))?;
        client
            .query_opt(&statement, params)
            .await
            .map_err(|e| conflict::map_error(&e))
    }

    /// One write statement, alone (its own transaction); rows changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        let client = self.writer().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| conflict::map_error(&e))?;
        client
            .execute(&statement, params)
            .await
            .map_err(|e| conflict::map_error(&e))
    }
}

#[cfg(test)]
impl PostgresStore {
    /// Whether this store's connections run over TLS (`pg_stat_ssl`).
    pub(crate) async fn connection_uses_tls(&self) -> Result<bool, Error> {
        let row = self
            .query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?;
        Ok(row.is_some_and(|r| r.get(0)))
    }
}

/// Serials and times are unsigned in the domain and BIGINT here; they stay
/// far below `i64::MAX`.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Opens the PostgreSQL store `settings` names.
pub(crate) async fn open(
    settings: &Settings,
    access: Access,
) -> Result<Arc<dyn super::Store>, OpenError> {
    Ok(Arc::new(PostgresStore::open(settings, access).await?))
}
