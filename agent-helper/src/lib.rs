//! The `shiftkey` client: what an on-call engineer runs.
//!
//! Owns signing in (OIDC in the browser, the device grant, or a pipeline's
//! token), generating a key in memory, getting it certified by the CA and
//! handing key and certificate to ssh-agent with a lifetime, plus the ssh
//! configuration that makes plain `ssh` work.
//!
//! Never: write a private key to disk (the one exception is `access --out
//! DIR`, asked for explicitly, for CI jobs without an agent); store a refresh
//! token; keep an ID token anywhere but memory or the 0600 cache under
//! `$XDG_RUNTIME_DIR`.

mod access;
mod ca_client;
mod cli;
mod config;
mod env_vars;
/// Fuzz targets (`fuzz/`) and their corpus replay; not an API.
#[doc(hidden)]
pub mod fuzzing;
mod host;
mod login;
mod oncall;
mod recordings;
mod requests;
mod session;
mod ssh_config;
mod status;

pub use cli::{Cli, run};

/// An error and its causes on one line (reqwest and openidconnect hide the
/// useful part in the source chain: "connection refused", "certificate not
/// trusted").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
