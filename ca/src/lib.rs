//! The Shiftkey certificate authority.
//!
//! Owns the CA keys, the policy decision, issuing user certificates and the
//! audit log, and serves them over HTTPS and a local socket.
//!
//! Layers, arrows pointing down only (ARCHITECTURE.md draws them): wiring
//! (`cli`, `server`) → `http`, `ui` → the domain services → `store` and
//! `recording_store`, which use nothing of ours above them.
//!
//! Never: sign a certificate without a policy `Allowed` (the proof type from
//! `policy`) and a committed audit row; hold a private key outside
//! `secret::CaKey`; log a token or key; answer before the audit row is
//! durable; keep process-wide mutable state (what replicas share is in the
//! store, the rest is application state).

// Wiring: the command line and the running service.
mod cli;
mod init;
mod listen;
mod operator;
mod quickstart;
mod server;
mod store_migrate;

// The HTTP API and the review UI: routes, extractors, the error→status map.
mod http;
mod ui;

// The domain: decisions, each returning typed results and errors.
mod audit;
mod authority;
mod base;
mod current_policy;
mod deliveries;
mod events;
mod free_text;
mod hosts;
mod incidents;
mod issuance;
mod notify;
mod oncall;
mod recordings;
mod requests;
mod revocation;
mod sessions;
mod web_sessions;

// What the domain is built from.
/// In-process issuance for `benches/issuance.rs` only, with a throwaway CA
/// key and no audit row; not an API.
#[doc(hidden)]
pub mod bench;
mod clock;
mod config;
mod env_vars;
/// Fuzz targets (`fuzz/`) and their corpus replay; not an API.
#[doc(hidden)]
pub mod fuzzing;
mod identity;
mod issue;
mod keys;
mod krl;
mod metrics;
mod oidc;
mod policy;
mod secret;
mod signer;
#[cfg(test)]
mod testkit;
mod tls;

// Storage: the rows and the recordings' bytes; nothing of ours above them.
mod recording_store;
mod store;

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
        builder.with_ansi(colour(&std::io::stderr())).init();
    }
}

/// Colour in log lines only for a person at a terminal: stderr is one and
/// `NO_COLOR` is not set (a service's journal or a log file gets none).
fn colour(stderr: &impl std::io::IsTerminal) -> bool {
    std::env::var_os(env_vars::NO_COLOR).is_none() && stderr.is_terminal()
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_colour_when_stderr_is_not_a_terminal() {
        // A file stands in for a service's stderr (the journal, a log file).
        let file = tempfile::tempfile().unwrap();
        assert!(!super::colour(&file));
    }
}
