//! Identity locks in PostgreSQL.

use async_trait::async_trait;

use super::change::Stmt;
use super::{PostgresStore, to_sql};
use crate::store::{Error, LockStore};

/// Locks `identities` (one person's) out and revokes their certificates
/// live at `now`, in the same transaction.
pub(super) fn lock(identities: &[String], by: &str, at: &str, reason: &str, now: u64) -> Vec<Stmt> {
    identities
        .iter()
        .flat_map(|identity| lock_one(identity, by, at, reason, now))
        .collect()
}

fn lock_one(identity: &str, by: &str, at: &str, reason: &str, now: u64) -> [Stmt; 2] {
    [
        Stmt::new(
            "INSERT INTO identity_locks (identity, locked_by, locked_at, reason) VALUES ($1, $2, $3, $4)
             ON CONFLICT (identity) DO UPDATE SET locked_by = excluded.locked_by,
                 locked_at = excluded.locked_at, reason = excluded.reason",
            vec![
                Box::new(identity.to_owned()),
                Box::new(by.to_owned()),
                Box::new(at.to_owned()),
                Box::new(reason.to_owned()),
            ],
        ),
        Stmt::new(
            "INSERT INTO revocations (serial, revoked_at, revoked_by, reason)
             SELECT serial, $2, $3, 'identity locked: ' || $4 FROM certificates
             WHERE identity = $1 AND valid_before > $5
             ON CONFLICT (serial) DO NOTHING",
            vec![
                Box::new(identity.to_owned()),
                Box::new(at.to_owned()),
                Box::new(by.to_owned()),
                Box::new(reason.to_owned()),
                Box::new(to_sql(now)),
            ],
        ),
    ]
}

pub(super) fn unlock(identities: &[String]) -> Stmt {
    Stmt::new(
        "DELETE FROM identity_locks WHERE identity = ANY($1)",
        vec![Box::new(identities.to_vec())],
    )
}

#[async_trait]
impl LockStore for PostgresStore {
    async fn lock_of(&self, identity: &str) -> Result<Option<String>, Error> {
        let row = self
            .query_opt(
                "SELECT reason FROM identity_locks WHERE identity = $1",
                &[&identity],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }
}
