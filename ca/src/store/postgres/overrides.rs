//! On-call overrides in PostgreSQL.

use async_trait::async_trait;

use super::PostgresStore;
use super::change::Stmt;
use crate::store::{Error, OverrideStore, StoredOverride};

pub(super) fn insert(o: &StoredOverride) -> Stmt {
    Stmt::new(
        "INSERT INTO oncall_overrides (schedule, member, start, \"end\", reason, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            Box::new(o.schedule.clone()),
            Box::new(o.member.clone()),
            Box::new(o.start),
            Box::new(o.end),
            Box::new(o.reason.clone()),
            Box::new(o.created_by.clone()),
            Box::new(o.created_at.clone()),
        ],
    )
}

#[async_trait]
impl OverrideStore for PostgresStore {
    async fn current_overrides(&self, now: i64) -> Result<Vec<StoredOverride>, Error> {
        let rows = self
            .query(
                "SELECT schedule, member, start, \"end\", reason, created_by, created_at
                 FROM oncall_overrides WHERE \"end\" > $1 ORDER BY start, id LIMIT 1000",
                &[&now],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredOverride {
                schedule: r.get(0),
                member: r.get(1),
                start: r.get(2),
                end: r.get(3),
                reason: r.get(4),
                created_by: r.get(5),
                created_at: r.get(6),
            })
            .collect())
    }
}
