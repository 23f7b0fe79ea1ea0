//! In-process issuance for `benches/issuance.rs`, which cannot reach the
//! crate's `pub(crate)` internals. Not an API: nothing else may use it.
//!
//! [`sign_in_process`] does what [`crate::issuance::Issuance::issue`] does for one
//! request once the caller is authenticated, minus HTTP and the store:
//! `issue::validate` → `Policy::evaluate` → `issue::certify_blocking` (the key-file signer) → `to_openssh`,
//! with the crate's own functions. It never writes an audit row, so the
//! certificates it makes are thrown away and its CA key is a fresh one that
//! lives only for the call.

use std::time::{Duration, Instant};

use chrono::Utc;
use shiftkey_wire::CertificateRequest;
use ssh_key::{Algorithm, PrivateKey};

use crate::identity::Caller;
use crate::issue;
use crate::keys::rng;
use crate::policy::Policy;
use crate::secret::CaKey;
use crate::signer::CaSigner;

/// Why the in-process run stopped. Each names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the bench policy is invalid: {0}")]
    Policy(String),
    #[error("cannot make the bench CA key: {0}")]
    CaKey(String),
    #[error("the bench request was rejected: {0}")]
    Rejected(String),
    #[error("the bench policy denied the request: {0}")]
    Denied(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Issues `n` certificates for `request` from `email` (in `groups`) under
/// `policy_toml`, one after another on this thread, and returns each one's
/// latency. Every request must be allowed: a denial is an error, not a
/// faster path.
pub fn sign_in_process(
    policy_toml: &str,
    email: &str,
    groups: &[String],
    request: &CertificateRequest,
    n: usize,
) -> Result<Vec<Duration>, Error> {
    let policy = Policy::parse(policy_toml, "bench-policy.toml")
        .map_err(|e| Error::Policy(e.to_string()))?;
    let key = PrivateKey::random(&mut rng(), Algorithm::Ed25519)
        .map_err(|e| Error::CaKey(e.to_string()))?;
    let ca = CaKey::new(key).map_err(|e| Error::CaKey(e.to_string()))?;
    let ca = CaSigner::from_ca_key(ca).map_err(|e| Error::CaKey(e.to_string()))?;
    let caller = Caller::User {
        email: email.to_owned(),
        groups: groups.to_vec(),
    };
    let mut latencies = Vec::with_capacity(n);
    for serial in 1..=n as u64 {
        let started = Instant::now();
        let line = issue_one(&policy, &ca, &caller, request, serial)?;
        latencies.push(started.elapsed());
        std::hint::black_box(line);
    }
    Ok(latencies)
}

/// The per-request steps of `Ca::issue`, in its order.
fn issue_one(
    policy: &Policy,
    ca: &CaSigner,
    caller: &Caller,
    request: &CertificateRequest,
    serial: u64,
) -> Result<String, Error> {
    let request_id = crate::issuance::new_request_id();
    let identity = caller.identity();
    let valid = issue::validate(request).map_err(|e| Error::Rejected(e.to_string()))?;
    let allowed = policy
        .evaluate(&valid.query(&identity, caller.groups(), None, &[], &[], Utc::now()))
        .map_err(|d| Error::Denied(d.to_string()))?;
    let signed = issue::certify_blocking(
        ca,
        &caller.key_id_subject(),
        &valid,
        &allowed,
        &request_id,
        serial,
    )
    .map_err(|e| Error::Sign(e.to_string()))?;
    Ok(signed.line)
}
