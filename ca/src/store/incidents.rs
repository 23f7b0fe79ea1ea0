//! Incidents: opened by people and alert sources, resolved once.

use async_trait::async_trait;

use super::Error;

/// An incident as stored: the API's type, field for field.
pub(crate) use shiftkey_wire::Incident;

#[async_trait]
pub(crate) trait IncidentStore {
    async fn incident(&self, id: &str) -> Result<Option<Incident>, Error>;

    /// Incidents, newest first (at most 500); only open ones when `open_only`.
    async fn incidents(&self, open_only: bool) -> Result<Vec<Incident>, Error>;
}
