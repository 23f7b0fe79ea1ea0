//! CA keys under rotation and hosts' CA key reports, in PostgreSQL.

use async_trait::async_trait;

use super::change::Stmt;
use super::conflict::code;
use super::{PostgresStore, from_sql, to_sql};
use crate::store::{CaKeyStore, Conflict, Error, HostCaReport, KeyPhase, KeyState, StoredCaKey};

fn key_params(k: &StoredCaKey) -> Vec<super::change::Param> {
    vec![
        Box::new(k.fingerprint.clone()),
        Box::new(k.kind.clone()),
        Box::new(k.state.as_str().to_owned()),
        Box::new(k.public_line.clone()),
        Box::new(k.location.clone()),
        Box::new(k.created_at),
        Box::new(k.activated_at),
        Box::new(k.retired_at),
        Box::new(i64::from(k.revoked)),
    ]
}

const INSERT: &str = "INSERT INTO ca_keys (fingerprint, kind, state, public_line, location, created_at, activated_at, retired_at, revoked)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

fn changed() -> super::change::Param {
    Box::new(code(Conflict::KeyStateChanged))
}

pub(super) fn apply(phase: &KeyPhase) -> Vec<Stmt> {
    match phase {
        KeyPhase::Rotate { current, next } => vec![
            Stmt::new(
                "INSERT INTO ca_keys (fingerprint, kind, state, public_line, location, created_at, activated_at, retired_at, revoked)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
                 WHERE NOT EXISTS (SELECT 1 FROM ca_keys WHERE kind = $2 AND state = 'active')",
                key_params(current),
            ),
            Stmt::new(
                "SELECT shiftkey_expect_one((SELECT count(*) FROM ca_keys
                     WHERE kind = $1 AND state = 'active' AND fingerprint = $2), $3)",
                vec![
                    Box::new(current.kind.clone()),
                    Box::new(current.fingerprint.clone()),
                    changed(),
                ],
            ),
            Stmt::new(
                "SELECT shiftkey_expect_one(1 - (SELECT count(*) FROM ca_keys
                     WHERE kind = $1 AND state IN ('next', 'previous')), $2)",
                vec![Box::new(next.kind.clone()), changed()],
            ),
            Stmt::new(INSERT, key_params(next)),
        ],
        KeyPhase::Activate {
            kind,
            active,
            next,
            at,
        } => vec![
            Stmt::new(
                "WITH moved AS (UPDATE ca_keys SET state = 'previous'
                     WHERE fingerprint = $1 AND kind = $2 AND state = 'active' RETURNING 1)
                 SELECT shiftkey_expect_one((SELECT count(*) FROM moved), $3)",
                vec![Box::new(active.clone()), Box::new(kind.clone()), changed()],
            ),
            Stmt::new(
                "WITH moved AS (UPDATE ca_keys SET state = 'active', activated_at = $3
                     WHERE fingerprint = $1 AND kind = $2 AND state = 'next' RETURNING 1)
                 SELECT shiftkey_expect_one((SELECT count(*) FROM moved), $4)",
                vec![
                    Box::new(next.clone()),
                    Box::new(kind.clone()),
                    Box::new(*at),
                    changed(),
                ],
            ),
        ],
        KeyPhase::Retire {
            fingerprint,
            at,
            revoked,
        } => vec![Stmt::new(
            "WITH moved AS (UPDATE ca_keys SET state = 'retired', retired_at = $2, revoked = $3
                 WHERE fingerprint = $1 AND state = 'previous' RETURNING 1)
             SELECT shiftkey_expect_one((SELECT count(*) FROM moved), $4)",
            vec![
                Box::new(fingerprint.clone()),
                Box::new(*at),
                Box::new(i64::from(*revoked)),
                changed(),
            ],
        )],
    }
}

#[async_trait]
impl CaKeyStore for PostgresStore {
    async fn ca_keys(&self) -> Result<Vec<StoredCaKey>, Error> {
        let rows = self
            .query(
                "SELECT fingerprint, kind, state, public_line, location, created_at, activated_at,
                        retired_at, revoked
                 FROM ca_keys ORDER BY created_at, fingerprint",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredCaKey {
                fingerprint: r.get(0),
                kind: r.get(1),
                // The CHECK constraint allows only the four states.
                state: KeyState::parse(r.get(2)).unwrap_or(KeyState::Retired),
                public_line: r.get(3),
                location: r.get(4),
                created_at: r.get(5),
                activated_at: r.get(6),
                retired_at: r.get(7),
                revoked: r.get::<_, i64>(8) != 0,
            })
            .collect())
    }

    async fn ca_key_generation(&self) -> Result<u64, Error> {
        let row = self
            .query_opt(
                "SELECT count(*) + count(activated_at) + count(retired_at) FROM ca_keys",
                &[],
            )
            .await?;
        Ok(row.map_or(0, |r| from_sql(r.get(0))))
    }

    async fn report_ca_keys(&self, report: HostCaReport) -> Result<(), Error> {
        self.execute(
            "INSERT INTO host_ca_reports (name, fingerprints, reported_at)
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM hosts WHERE name = $1)
             ON CONFLICT (name) DO UPDATE SET fingerprints = excluded.fingerprints,
                 reported_at = excluded.reported_at",
            &[&report.name, &report.fingerprints, &report.reported_at],
        )
        .await
        .map(|_| ())
    }

    async fn host_ca_reports(&self) -> Result<Vec<HostCaReport>, Error> {
        let rows = self
            .query(
                "SELECT name, fingerprints, reported_at FROM host_ca_reports ORDER BY name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| HostCaReport {
                name: r.get(0),
                fingerprints: r.get(1),
                reported_at: r.get(2),
            })
            .collect())
    }

    async fn certificates_valid_at(&self, now: u64) -> Result<Vec<String>, Error> {
        let rows = self
            .query(
                "SELECT certificate FROM certificates WHERE valid_before > $1
                 UNION ALL SELECT certificate FROM host_certificates WHERE valid_before > $1",
                &[&to_sql(now)],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
