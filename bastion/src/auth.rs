//! Logins on either hop: the decision on a certificate (that is
//! [`verify_user_cert`]'s), and what a refusal costs. Every refusal is
//! counted (`shiftkey_bastion_logins_refused_total{reason}`) and logged,
//! at most [`LOG_BURST`] lines per [`LOG_WINDOW`] with a count of the rest.
//! Only a certificate whose signature chains to the CA's user key is
//! reported to the CA's audit log, once per certificate and reason in
//! [`REPORT_EVERY`]: certificates from any other CA and plain keys are
//! anyone's to make, and must not be able to fill the audit log or slow
//! issuance.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::keys::Certificate;

use crate::bastion::Bastion;
use crate::ca::unix_now;
use crate::verify::{Refusal, VerifiedUser, verify_user_cert};

/// Refusal log lines let through per window.
const LOG_BURST: u32 = 10;
const LOG_WINDOW: Duration = Duration::from_secs(10);
/// The same certificate refused for the same reason is reported this often at most.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Remembered (certificate, reason) pairs; older ones are forgotten first.
const MAX_REMEMBERED: usize = 4096;

/// Rate limits for refusal logs and reports.
#[derive(Debug, Default)]
pub(crate) struct LoginRefusals {
    log: Mutex<LogWindow>,
    reported: Mutex<HashMap<(u64, String), Instant>>,
}

#[derive(Debug, Default)]
struct LogWindow {
    started: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LoginRefusals {
    /// Whether to log one more refusal now; with the number of refusals
    /// not logged since the last line that was.
    fn may_log(&self, now: Instant) -> Option<u64> {
        let mut w = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.started
            .is_none_or(|s| now.duration_since(s) >= LOG_WINDOW)
        {
            w.started = Some(now);
            w.logged = 0;
        }
        if w.logged < LOG_BURST {
            w.logged += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }

    /// Whether to report this certificate's refusal to the CA now.
    fn may_report(&self, serial: u64, code: &str, now: Instant) -> bool {
        let mut seen = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (serial, code.to_owned());
        if seen
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < REPORT_EVERY)
        {
            return false;
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, at| now.duration_since(*at) < REPORT_EVERY);
            if seen.len() >= MAX_REMEMBERED {
                return false;
            }
        }
        seen.insert(key, now);
        true
    }
}

/// Where a login came from and what it asked for, for the log and the report.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) client: SocketAddr,
    pub(crate) login: Option<String>,
    pub(crate) target: Option<String>,
}

/// Decides a certificate login: the proof on yes; on no the refusal is
/// counted, logged and (when it is ours) reported.
pub(crate) fn certificate_login(
    bastion: &Arc<Bastion>,
    certificate: &Certificate,
    attempt: &Attempt,
) -> Option<VerifiedUser> {
    match verify_user_cert(
        &bastion.trust,
        certificate,
        None,
        attempt.client.ip(),
        unix_now(),
    ) {
        Ok(verified) => {
            tracing::info!(client = %attempt.client, key_id = %verified.key_id(), serial = verified.serial(),
                           login = ?attempt.login, "certificate accepted");
            Some(verified)
        }
        Err(refusal) => {
            refused(bastion, certificate, attempt, &refusal);
            None
        }
    }
}

fn refused(
    bastion: &Arc<Bastion>,
    certificate: &Certificate,
    attempt: &Attempt,
    refusal: &Refusal,
) {
    bastion.metrics.login_refused(refusal.code());
    let now = Instant::now();
    if let Some(suppressed) = bastion.refusals.may_log(now) {
        tracing::warn!(client = %attempt.client, key_id = %clip(certificate.key_id()), serial = certificate.serial(),
                       login = ?attempt.login, %refusal, not_logged_before = suppressed, "login refused");
    }
    if !refusal.chains_to_ca()
        || !bastion
            .refusals
            .may_report(certificate.serial(), refusal.code(), now)
    {
        return;
    }
    let report = shiftkey_wire::SessionRefusal {
        user_certificate: certificate.to_openssh().unwrap_or_default(),
        principal: attempt.login.clone(),
        target: attempt.target.clone(),
        client_address: attempt.client.ip().to_string(),
        code: refusal.code().to_owned(),
        message: refusal.to_string(),
    };
    let ca = Arc::clone(&bastion.ca);
    tokio::spawn(async move {
        let sent: Result<serde_json::Value, _> = ca
            .post_bytes(
                "/v1/sessions/refused",
                serde_json::to_vec(&report).unwrap_or_default(),
                "application/json",
            )
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not report a refusal to the CA");
        }
    });
}

/// A plain key (no certificate): never accepted, counted and logged like
/// a refused certificate, never reported.
pub(crate) fn plain_key_login(bastion: &Bastion, attempt: &Attempt) {
    bastion.metrics.login_refused("plain-key");
    if let Some(suppressed) = bastion.refusals.may_log(Instant::now()) {
        tracing::warn!(client = %attempt.client, login = ?attempt.login, not_logged_before = suppressed,
                       "login refused: a plain key, not a certificate from the CA");
    }
}

fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logging_is_a_burst_per_window_with_a_count_of_the_rest() {
        let r = LoginRefusals::default();
        let t0 = Instant::now();
        for _ in 0..LOG_BURST {
            assert_eq!(r.may_log(t0), Some(0));
        }
        for _ in 0..500 {
            assert_eq!(r.may_log(t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(r.may_log(t0 + LOG_WINDOW), Some(500));
        assert_eq!(r.may_log(t0 + LOG_WINDOW), Some(0));
    }

    #[test]
    fn one_report_per_certificate_and_reason_a_minute() {
        let r = LoginRefusals::default();
        let t0 = Instant::now();
        assert!(r.may_report(7, "certificate-revoked", t0));
        assert!(!r.may_report(7, "certificate-revoked", t0 + Duration::from_secs(59)));
        assert!(r.may_report(7, "source-address", t0));
        assert!(r.may_report(8, "certificate-revoked", t0));
        assert!(r.may_report(7, "certificate-revoked", t0 + REPORT_EVERY));
        // Many distinct certificates cannot grow the table without bound.
        for serial in 0..(MAX_REMEMBERED as u64 * 2) {
            r.may_report(1000 + serial, "x", t0);
        }
        assert!(r.reported.lock().unwrap().len() <= MAX_REMEMBERED);
    }
}
