//! Review UI sessions: who signed in, until when, and the form token, keyed
//! by the SHA-256 of the cookie's value (the value itself is never stored).
//! And one-time sign-in links for users of the CA's host, keyed the same
//! way by their token's SHA-256.

use async_trait::async_trait;

use super::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UiSession {
    /// Hex SHA-256 of the session cookie's value.
    pub(crate) id_hash: String,
    /// The ID token's email; for a local user's session (`local_uid` set),
    /// the user's name on the CA's host.
    pub(crate) email: String,
    /// Set for a session a one-time link started: the local user's uid.
    pub(crate) local_uid: Option<u32>,
    pub(crate) groups: Vec<String>,
    /// This session's CSRF token for forms.
    pub(crate) csrf: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) last_seen: i64,
}

/// A one-time sign-in link for a user of the CA's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UiLink {
    /// Hex SHA-256 of the link's token.
    pub(crate) token_hash: String,
    pub(crate) local_user: String,
    pub(crate) local_uid: u32,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

/// What using a link found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redeemed {
    /// The link was live and unused: it is used now, and is this one.
    Now(UiLink),
    /// Used before (at this time); nothing changed.
    AlreadyUsed { link: UiLink, used_at: i64 },
    /// Expired unused; nothing changed.
    Expired(UiLink),
    /// No such link.
    Unknown,
}

#[async_trait]
pub(crate) trait UiSessionStore {
    /// Records a new session, dropping those that expired by its creation.
    async fn create_ui_session(&self, session: UiSession) -> Result<(), Error>;

    async fn ui_session(&self, id_hash: &str) -> Result<Option<UiSession>, Error>;

    /// Notes that the session was used at `now`.
    async fn touch_ui_session(&self, id_hash: &str, now: i64) -> Result<(), Error>;

    async fn delete_ui_session(&self, id_hash: &str) -> Result<(), Error>;

    /// Records a new link, dropping links that expired a day before its
    /// creation (kept that long so a late use is told it expired).
    async fn create_ui_link(&self, link: UiLink) -> Result<(), Error>;

    /// Uses the link with this token hash at `now`: atomically, so of two
    /// uses at once only one is [`Redeemed::Now`].
    async fn redeem_ui_link(&self, token_hash: &str, now: i64) -> Result<Redeemed, Error>;
}
