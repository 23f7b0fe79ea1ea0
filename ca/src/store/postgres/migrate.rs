//! Numbered migrations (`ca/migrations/postgres/NNNN_*.sql`), each applied
//! in its own transaction and recorded in `schema_migrations`. Replicas
//! starting at once take turns: the first holds an advisory lock while it
//! migrates, the others wait for it and then find nothing left to do.

use tokio_postgres::Client;

use super::settings::Connect;
use crate::store::OpenError;

/// Numbered migrations, applied in order.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../migrations/postgres/0002_webhook_state.sql"),
    include_str!("../../../migrations/postgres/0003_identities_overrides_requests.sql"),
    include_str!("../../../migrations/postgres/0004_lost_sessions_retention.sql"),
    include_str!("../../../migrations/postgres/0005_ui_links.sql"),
    include_str!("../../../migrations/postgres/0006_ca_keys.sql"),
];

/// The advisory lock migrations run under ("shiftkey" in ASCII).
const MIGRATION_LOCK: i64 = 0x7368_6966_746b_6579;

fn open_err(connect: &Connect, e: impl std::fmt::Display) -> OpenError {
    OpenError::Open {
        path: connect.display.clone().into(),
        message: e.to_string(),
    }
}

/// One connection outside the pool, for migrations and checks.
pub(super) async fn connect_one(connect: &Connect) -> Result<Client, OpenError> {
    let (client, connection) = connect
        .config
        .connect(connect.tls.clone())
        .await
        .map_err(|e| open_err(connect, describe(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "store connection ended");
        }
    });
    Ok(client)
}

/// The error with the server's own message when it sent one.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// The schema's version: 0 for an empty database.
async fn version(client: &Client, connect: &Connect) -> Result<usize, OpenError> {
    let row = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| open_err(connect, describe(&e)))?;
    if !row.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(|e| open_err(connect, describe(&e)))?;
    let found = usize::try_from(row.get::<_, i32>(0)).unwrap_or(0);
    if found > MIGRATIONS.len() {
        return Err(OpenError::TooNew {
            path: connect.display.clone().into(),
            found,
            known: MIGRATIONS.len(),
        });
    }
    Ok(found)
}

/// Brings the schema up to this binary's version.
pub(super) async fn run(connect: &Connect) -> Result<(), OpenError> {
    let mut client = connect_one(connect).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| open_err(connect, describe(&e)))?;
    let migrated = apply(&mut client, connect).await;
    // Ending the connection releases the lock too; unlock explicitly so a
    // waiting replica goes on at once.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    migrated
}

async fn apply(client: &mut Client, connect: &Connect) -> Result<(), OpenError> {
    let current = version(client, connect).await?;
    if current == 0 {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version    integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await
            .map_err(|e| open_err(connect, describe(&e)))?;
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let number = index + 1;
        let failed = |e: tokio_postgres::Error| OpenError::Migrate {
            path: connect.display.clone().into(),
            version: number,
            message: describe(&e),
        };
        let tx = client.transaction().await.map_err(failed)?;
        tx.batch_execute(sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&i32::try_from(number).unwrap_or(i32::MAX)],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(version = number, database = %connect.display, "store migrated");
    }
    Ok(())
}

/// For a read-only open: the schema must be there and not newer than ours.
pub(super) async fn check(connect: &Connect) -> Result<(), OpenError> {
    let client = connect_one(connect).await?;
    if version(&client, connect).await? == 0 {
        return Err(OpenError::NoSchema {
            database: connect.display.clone(),
        });
    }
    Ok(())
}
