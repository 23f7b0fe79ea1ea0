//! Fuzz targets for the CA's parsers of untrusted input, called by the AFL
//! binaries in `fuzz/` (thin wrappers) and by the corpus and regression
//! replay in `cargo test`. Not an API: everything here exists for those two
//! callers, behind `#[doc(hidden)]`.
//!
//! Each target checks properties, not only "no panic": round trips where a
//! writer exists, a typed error for every refusal, and that what a parser
//! keeps is bounded by its input. A failed property panics, which AFL
//! records as a crash. Keys used here come from fixed seeds so that runs
//! are reproducible; nothing trusts them.

mod certificate_request;
mod join_token;
mod krl;
mod manifest;
mod oidc;
mod pkcs11_uri;
mod policy;
mod ssh;
mod ui_cookie;
mod ui_form;

pub use certificate_request::certificate_request;
pub use join_token::{join_token, join_token_made_by_the_ca_reads_back};
pub use krl::{ReadKrl, krl, written as krl_written};
pub use manifest::seal_manifest;
pub use oidc::{oidc_jwks, oidc_token};
pub use pkcs11_uri::pkcs11_uri;
pub use policy::policy;
pub use ssh::ssh_key;
pub use ui_cookie::{ui_cookie, ui_session_cookies};
pub use ui_form::UiForms;

/// Webhook target (`crate::http::webhooks`): Alertmanager and PagerDuty
/// deliveries, their bearer token and HMAC signature checks, and the
/// actions a verified body asks for. The properties are documented on
/// `http/webhooks/fuzzing.rs`.
pub fn webhook(data: &[u8]) {
    crate::http::webhooks::fuzzing::webhook(data);
}

/// iCalendar target (`crate::policy`'s calendar schedules): `.ics` exports
/// as PagerDuty, Opsgenie and Google write them. The properties are
/// documented on `policy/fuzzing.rs`.
pub fn ical(data: &[u8]) {
    crate::policy::fuzzing::calendar(data);
}

/// Recording upload target (`crate::recordings`): recording files as a
/// bastion uploads them (untrusted gzip, indexed as the seal does, whole
/// and cut short) and seal requests. The properties are documented on
/// `recordings/fuzzing.rs`.
pub fn recording_upload(data: &[u8]) {
    crate::recordings::fuzzing::recording_upload(data);
}

/// Seed inputs each target's corpus starts from, by target name; the
/// corpus files in `fuzz/corpus/` are these plus real files made by
/// OpenSSH and the providers' documented formats.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "krl" => krl::seeds(),
        "oidc_token" => oidc::token_seeds(),
        "oidc_jwks" => oidc::jwks_seeds(),
        "join_token" => join_token::seeds(),
        "pkcs11_uri" => pkcs11_uri::seeds(),
        "certificate_request" => certificate_request::seeds(),
        "seal_manifest" => manifest::seeds(),
        "ui_cookie" => ui_cookie::seeds(),
        "ui_form" => ui_form::seeds(),
        "recording_upload" => crate::recordings::fuzzing::seeds(),
        _ => Vec::new(),
    }
}

/// Big-endian fields taken from the front of a fuzz input.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }
    pub(crate) fn text(&mut self, n: usize) -> Option<String> {
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}
