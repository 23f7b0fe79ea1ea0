//! OIDC login for the `shiftkey` client.
//!
//! Owns getting an ID token from the operator's OpenID provider, by the
//! authorization code flow with PKCE on a loopback redirect
//! ([`login_browser`]) or by the device authorization grant
//! ([`login_device`]), and caching that token until it expires
//! ([`cache_path`], [`save`], [`load`], [`remove`]).
//!
//! Must never: store a refresh token (none is requested: no
//! `offline_access`); follow an HTTP redirect from the provider; accept a
//! callback whose `state` it did not issue, or an ID token whose signature,
//! issuer, audience, expiry or nonce does not check out; write the token
//! anywhere but the 0600 cache under `$XDG_RUNTIME_DIR`. The CA verifies
//! every token again: nothing here is an authorization decision.

mod browser;
mod cache;
mod device;
mod error;
mod provider;
#[cfg(test)]
mod provider_tests;
mod token;

pub(crate) use browser::{BrowserOptions, login_browser};
#[cfg(test)]
pub(crate) use cache::cache_path;
pub(crate) use cache::{cache_path_for, load, remove, save};
pub(crate) use device::login_device;
pub(crate) use error::Error;
pub(crate) use token::IdToken;
