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

    /// The incident opened for the Alertmanager firing `alert_key`
    /// (`FINGERPRINT@STARTS_AT`); `None` when none was.
    async fn alert_incident(&self, alert_key: &str) -> Result<Option<Incident>, Error>;

    /// The firing an Alertmanager incident was opened for (`None` for
    /// other incidents and for those opened before the CA kept it).
    async fn alert_key_of(&self, id: &str) -> Result<Option<String>, Error>;
}
