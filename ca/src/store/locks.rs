//! Identities an operator locked out.

use async_trait::async_trait;

use super::Error;

#[async_trait]
pub(crate) trait LockStore {
    /// Why `identity` is locked, if it is.
    async fn lock_of(&self, identity: &str) -> Result<Option<String>, Error>;
}
