//! The Shiftkey certificate authority.
//!
//! Owns the CA keys, the policy decision, issuing user certificates and the
//! audit log, and serves them over HTTPS and a local socket.
//!
//! Never: sign a certificate without a policy `Allowed` (the proof type from
//! `policy`) and a committed audit row; hold a private key outside
//! `secret::CaKey`; log a token or key; answer before the audit row is durable.

mod audit;
/// In-process issuance for `benches/issuance.rs` only, with a throwaway CA
/// key and no audit row; not an API.
#[doc(hidden)]
pub mod bench;
mod cli;
mod config;
mod env_vars;
mod events;
mod hosts;
mod http;
mod identity;
mod init;
mod issue;
mod keys;
mod krl;
mod local_client;
mod metrics;
mod notify;
mod oidc;
mod policy;
mod quickstart;
mod recordings;
mod requests;
mod revocation;
mod secret;
mod server;
mod service;
mod sessions;
mod signer;
mod store;
mod tls;
mod ui;

pub use cli::{Cli, run};
/// The CA signer for `benches/signer.rs` and the PKCS#11 end-to-end tests;
/// not an API.
#[doc(hidden)]
pub use signer::harness as signer_harness;

/// Installs the process-wide rustls crypto provider and the log subscriber.
/// Call once, first thing in `main`.
pub fn init_process() {
    // Several of our dependencies pull in both ring and aws-lc-rs; rustls
    // needs exactly one default. Failing means one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_env(env_vars::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var(env_vars::LOG_FORMAT).as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder
            .with_ansi(std::env::var_os("NO_COLOR").is_none())
            .init();
    }
}
