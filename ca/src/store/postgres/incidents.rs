//! Incidents in PostgreSQL.

use async_trait::async_trait;

use super::change::Stmt;
use super::conflict::code;
use super::{PostgresStore, to_sql};
use crate::store::{Conflict, Error, Incident, IncidentStore};

const COLUMNS: &str =
    "id, title, severity, status, source, opened_by, opened_at, resolved_by, resolved_at";

fn incident_row(r: &tokio_postgres::Row) -> Incident {
    Incident {
        id: r.get(0),
        title: r.get(1),
        // The API's type; severities are 1 to 4.
        severity: u8::try_from(r.get::<_, i64>(2)).unwrap_or(u8::MAX),
        status: r.get(3),
        source: r.get(4),
        opened_by: r.get(5),
        opened_at: r.get(6),
        resolved_by: r.get(7),
        resolved_at: r.get(8),
    }
}

/// `IncidentExists` if the ID is taken; `alert_key` names the
/// Alertmanager firing it is for.
pub(super) fn open(i: &Incident, alert_key: Option<&str>) -> Stmt {
    Stmt::new(
        "WITH opened AS (
             INSERT INTO incidents (id, title, severity, status, source, opened_by, opened_at, alert_key)
             VALUES ($1, $2, $3, 'open', $4, $5, $6, $8) ON CONFLICT (id) DO NOTHING RETURNING 1)
         SELECT shiftkey_expect_one((SELECT count(*) FROM opened), $7)",
        vec![
            Box::new(i.id.clone()),
            Box::new(i.title.clone()),
            Box::new(i64::from(i.severity)),
            Box::new(i.source.clone()),
            Box::new(i.opened_by.clone()),
            Box::new(i.opened_at.clone()),
            Box::new(code(Conflict::IncidentExists)),
            Box::new(alert_key.map(str::to_owned)),
        ],
    )
}

/// Resolves the incident (`IncidentNotOpen` unless open) and revokes every
/// certificate issued under it that is live at `now`. With the
/// `certificates_incident_open` trigger locking the incident's row, none
/// can slip in between, from any replica.
pub(super) fn resolve(id: &str, by: &str, at: &str, now: u64) -> Vec<Stmt> {
    vec![
        Stmt::new(
            "WITH resolved AS (
                 UPDATE incidents SET status = 'resolved', resolved_by = $2, resolved_at = $3
                 WHERE id = $1 AND status = 'open' RETURNING 1)
             SELECT shiftkey_expect_one((SELECT count(*) FROM resolved), $4)",
            vec![
                Box::new(id.to_owned()),
                Box::new(by.to_owned()),
                Box::new(at.to_owned()),
                Box::new(code(Conflict::IncidentNotOpen)),
            ],
        ),
        Stmt::new(
            "INSERT INTO revocations (serial, revoked_at, revoked_by, reason)
             SELECT serial, $2, $3, 'incident ' || $1 || ' resolved' FROM certificates
             WHERE incident = $1 AND valid_before > $4
             ON CONFLICT (serial) DO NOTHING",
            vec![
                Box::new(id.to_owned()),
                Box::new(at.to_owned()),
                Box::new(by.to_owned()),
                Box::new(to_sql(now)),
            ],
        ),
    ]
}

#[async_trait]
impl IncidentStore for PostgresStore {
    async fn incident(&self, id: &str) -> Result<Option<Incident>, Error> {
        let row = self
            .query_opt(
                &format!("SELECT {COLUMNS} FROM incidents WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(incident_row))
    }

    async fn incidents(&self, open_only: bool) -> Result<Vec<Incident>, Error> {
        let filter = if open_only {
            "WHERE status = 'open'"
        } else {
            ""
        };
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM incidents {filter} ORDER BY opened_at DESC LIMIT 500"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(incident_row).collect())
    }

    async fn alert_incident(&self, alert_key: &str) -> Result<Option<Incident>, Error> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM incidents WHERE alert_key = $1 ORDER BY opened_at, id LIMIT 1"
                ),
                &[&alert_key],
            )
            .await?;
        Ok(row.as_ref().map(incident_row))
    }

    async fn alert_key_of(&self, id: &str) -> Result<Option<String>, Error> {
        let row = self
            .query_opt("SELECT alert_key FROM incidents WHERE id = $1", &[&id])
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }
}
