//! On-call overrides: covers and swaps that put someone on call instead of
//! the schedule's own answer.

use async_trait::async_trait;

use super::Error;

/// An on-call override as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct StoredOverride {
    /// `ov_` and hex digits: how the API and audit rows name it.
    pub(crate) id: String,
    pub(crate) schedule: String,
    pub(crate) member: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) reason: String,
    pub(crate) created_by: String,
    pub(crate) created_at: String,
}

#[async_trait]
pub(crate) trait OverrideStore {
    /// Overrides that have not ended by `now`, by start (at most 1000).
    async fn current_overrides(&self, now: i64) -> Result<Vec<StoredOverride>, Error>;

    /// The override with this ID, ended or not.
    async fn on_call_override(&self, id: &str) -> Result<Option<StoredOverride>, Error>;
}
