//! On-call overrides in PostgreSQL.

use async_trait::async_trait;

use super::PostgresStore;
use super::change::Stmt;
use super::conflict::code;
use crate::store::{Conflict, Error, OverrideStore, StoredOverride};

const COLUMNS: &str = "id, schedule, member, start, \"end\", reason, created_by, created_at";

fn override_row(r: &tokio_postgres::Row) -> StoredOverride {
    StoredOverride {
        id: r.get(0),
        schedule: r.get(1),
        member: r.get(2),
        start: r.get(3),
        end: r.get(4),
        reason: r.get(5),
        created_by: r.get(6),
        created_at: r.get(7),
    }
}

pub(super) fn insert(o: &StoredOverride) -> Stmt {
    Stmt::new(
        "INSERT INTO oncall_overrides (id, schedule, member, start, \"end\", reason, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        vec![
            Box::new(o.id.clone()),
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

/// Moves the override's end to `end` (after its start), only if it still
/// ends at `expected_end` (`OverrideChanged` otherwise).
pub(super) fn shorten(id: &str, expected_end: i64, end: i64) -> Stmt {
    Stmt::new(
        "WITH changed AS (
             UPDATE oncall_overrides SET \"end\" = $3
             WHERE id = $1 AND \"end\" = $2 AND start < $3 RETURNING 1)
         SELECT shiftkey_expect_one((SELECT count(*) FROM changed), $4)",
        vec![
            Box::new(id.to_owned()),
            Box::new(expected_end),
            Box::new(end),
            Box::new(code(Conflict::OverrideChanged)),
        ],
    )
}

/// Removes the override, only if it still ends at `expected_end`
/// (`OverrideChanged` otherwise).
pub(super) fn delete(id: &str, expected_end: i64) -> Stmt {
    Stmt::new(
        "WITH changed AS (
             DELETE FROM oncall_overrides WHERE id = $1 AND \"end\" = $2 RETURNING 1)
         SELECT shiftkey_expect_one((SELECT count(*) FROM changed), $3)",
        vec![
            Box::new(id.to_owned()),
            Box::new(expected_end),
            Box::new(code(Conflict::OverrideChanged)),
        ],
    )
}

#[async_trait]
impl OverrideStore for PostgresStore {
    async fn current_overrides(&self, now: i64) -> Result<Vec<StoredOverride>, Error> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM oncall_overrides WHERE \"end\" > $1
                     ORDER BY start, id LIMIT 1000"
                ),
                &[&now],
            )
            .await?;
        Ok(rows.iter().map(override_row).collect())
    }

    async fn on_call_override(&self, id: &str) -> Result<Option<StoredOverride>, Error> {
        let row = self
            .query_opt(
                &format!("SELECT {COLUMNS} FROM oncall_overrides WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(override_row))
    }
}
