//! CA keys under rotation and hosts' CA key reports, in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};

use super::{SqliteStore, WriteError, json_list, parse_list, to_sql};
use crate::store::{CaKeyStore, Conflict, Error, HostCaReport, KeyPhase, KeyState, StoredCaKey};

const COLUMNS: &str = "fingerprint, kind, state, public_line, location, created_at, activated_at, retired_at, revoked";

fn insert(conn: &Connection, k: &StoredCaKey) -> Result<(), WriteError> {
    conn.prepare_cached(
        "INSERT INTO ca_keys (fingerprint, kind, state, public_line, location, created_at, activated_at, retired_at, revoked)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        k.fingerprint,
        k.kind,
        k.state.as_str(),
        k.public_line,
        k.location,
        k.created_at,
        k.activated_at,
        k.retired_at,
        i64::from(k.revoked)
    ])?;
    Ok(())
}

fn expect_one(changed: usize) -> Result<(), WriteError> {
    if changed == 1 {
        Ok(())
    } else {
        Err(Conflict::KeyStateChanged.into())
    }
}

pub(super) fn apply(conn: &Connection, phase: &KeyPhase) -> Result<(), WriteError> {
    match phase {
        KeyPhase::Rotate { current, next } => {
            let active: Option<String> = conn
                .prepare_cached(
                    "SELECT fingerprint FROM ca_keys WHERE kind = ?1 AND state = 'active'",
                )?
                .query_map([&current.kind], |r| r.get(0))?
                .next()
                .transpose()?;
            match active {
                None => insert(conn, current)?,
                Some(fp) if fp == current.fingerprint => {}
                Some(_) => return Err(Conflict::KeyStateChanged.into()),
            }
            let pending: i64 = conn.query_row(
                "SELECT COUNT(*) FROM ca_keys WHERE kind = ?1 AND state IN ('next', 'previous')",
                [&next.kind],
                |r| r.get(0),
            )?;
            if pending != 0 {
                return Err(Conflict::KeyStateChanged.into());
            }
            insert(conn, next)
        }
        KeyPhase::Activate {
            kind,
            active,
            next,
            at,
        } => {
            expect_one(
                conn.prepare_cached(
                    "UPDATE ca_keys SET state = 'previous'
                     WHERE fingerprint = ?1 AND kind = ?2 AND state = 'active'",
                )?
                .execute(params![active, kind])?,
            )?;
            expect_one(
                conn.prepare_cached(
                    "UPDATE ca_keys SET state = 'active', activated_at = ?3
                     WHERE fingerprint = ?1 AND kind = ?2 AND state = 'next'",
                )?
                .execute(params![next, kind, at])?,
            )
        }
        KeyPhase::Retire {
            fingerprint,
            at,
            revoked,
        } => expect_one(
            conn.prepare_cached(
                "UPDATE ca_keys SET state = 'retired', retired_at = ?2, revoked = ?3
                 WHERE fingerprint = ?1 AND state = 'previous'",
            )?
            .execute(params![fingerprint, at, i64::from(*revoked)])?,
        ),
    }
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredCaKey> {
    let state: String = r.get(2)?;
    Ok(StoredCaKey {
        fingerprint: r.get(0)?,
        kind: r.get(1)?,
        // The CHECK constraint allows only the four states.
        state: KeyState::parse(&state).unwrap_or(KeyState::Retired),
        public_line: r.get(3)?,
        location: r.get(4)?,
        created_at: r.get(5)?,
        activated_at: r.get(6)?,
        retired_at: r.get(7)?,
        revoked: r.get::<_, i64>(8)? != 0,
    })
}

#[async_trait]
impl CaKeyStore for SqliteStore {
    async fn ca_keys(&self) -> Result<Vec<StoredCaKey>, Error> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM ca_keys ORDER BY created_at, rowid"
            ))?;
            let rows = stmt.query_map([], from_row)?;
            rows.collect()
        })
        .await
    }

    async fn ca_key_generation(&self) -> Result<u64, Error> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COUNT(*) + COUNT(activated_at) + COUNT(retired_at) FROM ca_keys",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .await
        .map(super::from_sql)
    }

    async fn report_ca_keys(&self, report: HostCaReport) -> Result<(), Error> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO host_ca_reports (name, fingerprints, reported_at)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM hosts WHERE name = ?1)
                 ON CONFLICT(name) DO UPDATE SET fingerprints = excluded.fingerprints,
                     reported_at = excluded.reported_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    report.name,
                    json_list(&report.fingerprints),
                    report.reported_at
                ])
            })
            .map(|_| ())
            .map_err(super::map_error)
        })
        .await
    }

    async fn host_ca_reports(&self) -> Result<Vec<HostCaReport>, Error> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, fingerprints, reported_at FROM host_ca_reports ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(HostCaReport {
                    name: r.get(0)?,
                    fingerprints: parse_list(&r.get::<_, String>(1)?),
                    reported_at: r.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn certificates_valid_at(&self, now: u64) -> Result<Vec<String>, Error> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT certificate FROM certificates WHERE valid_before > ?1
                 UNION ALL SELECT certificate FROM host_certificates WHERE valid_before > ?1",
            )?;
            let rows = stmt.query_map([to_sql(now)], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }
}
