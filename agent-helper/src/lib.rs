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
mod agent;
mod ca_client;
mod cli;
mod config;
mod env_vars;
mod login;
mod session;
mod ssh_config;
mod status;

pub use cli::{Cli, run};
