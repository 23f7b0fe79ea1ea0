//! Review UI sessions: who signed in, until when, and the form token, keyed
//! by the SHA-256 of the cookie's value (the value itself is never stored).

use async_trait::async_trait;

use super::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UiSession {
    /// Hex SHA-256 of the session cookie's value.
    pub(crate) id_hash: String,
    pub(crate) email: String,
    pub(crate) groups: Vec<String>,
    /// This session's CSRF token for forms.
    pub(crate) csrf: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) last_seen: i64,
}

#[async_trait]
pub(crate) trait UiSessionStore {
    /// Records a new session, dropping those that expired by its creation.
    async fn create_ui_session(&self, session: UiSession) -> Result<(), Error>;

    async fn ui_session(&self, id_hash: &str) -> Result<Option<UiSession>, Error>;

    /// Notes that the session was used at `now`.
    async fn touch_ui_session(&self, id_hash: &str, now: i64) -> Result<(), Error>;

    async fn delete_ui_session(&self, id_hash: &str) -> Result<(), Error>;
}
