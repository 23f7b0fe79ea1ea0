//! The store's behaviour, written once against `dyn Store`: each test is a
//! function taking a fresh store, run for every backend (`sqlite.rs`,
//! `postgres.rs`: `every_behaviour_test!` lists them once). A new concern's
//! test goes in its own file here and in that list; both backends then run
//! it. Backend-specific checks (files, migrations from older schemas,
//! triggers, several replicas, TLS) sit in the backend's file.

mod audit;
mod ca_keys;
mod certificates;
mod hosts;
mod lifecycle;
mod overrides;
mod postgres;
mod requests;
mod sessions;
mod sqlite;
mod ui_sessions;
mod webhooks;

use std::sync::Arc;

use super::{
    Change, Entry, Incident, IssuedCertificate, NewAuditRow, Session, SessionStatus, Store,
};

/// The stores the tests run on.
type Fresh = Arc<dyn Store>;

/// One audit row with `change`, appended alone.
async fn apply(store: &Fresh, change: Change) -> Result<u64, super::Error> {
    store
        .append(vec![entry(change)])
        .await
        .pop()
        .unwrap_or_else(|| Err(super::Error::Failed("no answer".into())))
}

fn entry(change: Change) -> Entry {
    Entry {
        row: row("test.change"),
        change: Some(change),
    }
}

fn row(kind: &str) -> NewAuditRow {
    NewAuditRow {
        kind: kind.into(),
        actor: "system".into(),
        outcome: "info".into(),
        detail: "{}".into(),
    }
}

fn cert(serial: u64, incident: Option<&str>, valid_before: u64) -> IssuedCertificate {
    IssuedCertificate {
        serial,
        key_id: format!("a role=r req=r_1 serial={serial}"),
        identity: "user:a@example.com".into(),
        role: "r".into(),
        incident: incident.map(str::to_owned),
        request_id: format!("r_{serial}"),
        principals: vec!["p".into()],
        valid_after: 0,
        valid_before,
        key_fingerprint: format!("SHA256:{serial}"),
        issued_at: "2026-11-25T00:00:00Z".into(),
        certificate: "ssh-ed25519-cert-v01@openssh.com AAAA".into(),
    }
}

fn incident(id: &str) -> Incident {
    Incident {
        id: id.into(),
        title: "t".into(),
        severity: 2,
        status: "open".into(),
        source: "manual".into(),
        opened_by: "local:root".into(),
        opened_at: "2026-11-25T00:00:00Z".into(),
        resolved_by: None,
        resolved_at: None,
    }
}

fn session(id: &str, target: &str, started_at: i64) -> Session {
    Session {
        id: id.into(),
        identity: "user:alice@example.com".into(),
        user_serial: 7,
        session_serial: 8,
        role: "shell".into(),
        incident: Some("INC-1".into()),
        principal: "postgres".into(),
        target: target.into(),
        client_address: "127.0.0.1:5000".into(),
        bastion: "bastion-1".into(),
        started_at,
        ended_at: None,
        exit_status: None,
        end_reason: None,
        status: SessionStatus::Live,
        last_seen: None,
        recording_deleted_at: None,
        held: None,
    }
}

/// Starts a session (its certificate too; the incident it names is opened
/// first when it is not yet).
async fn start_session(store: &Fresh, s: Session) {
    if let Some(id) = &s.incident
        && store.incident(id).await.unwrap().is_none()
    {
        apply(store, Change::OpenIncident(incident(id)))
            .await
            .unwrap();
    }
    let serial = store.next_serial().await.unwrap();
    let mut certificate = cert(serial, s.incident.as_deref(), 4_000_000_000);
    certificate.request_id = s.id.clone();
    apply(
        store,
        Change::StartSession {
            certificate,
            session: Box::new(s),
        },
    )
    .await
    .unwrap();
}

/// Declares, for one backend, a `#[tokio::test]` per behaviour test, each
/// on a store from `$fresh` (an async fn returning `(guard, Fresh)`).
macro_rules! behaviour_tests {
    ($fresh:path => $($module:ident::$test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let (_guard, store) = $fresh().await;
                super::$module::$test(store).await;
            }
        )*
    };
}
use behaviour_tests;

/// Every behaviour test, for `behaviour_tests!`.
macro_rules! every_behaviour_test {
    ($fresh:path) => {
        super::behaviour_tests! { $fresh =>
            audit::appends_chain_gaplessly_under_concurrency,
            audit::a_conflicting_entry_leaves_its_neighbours_and_takes_no_number,
            audit::rows_are_filtered_and_paged,
            audit::the_notifier_says_when_the_log_grows,
            certificates::serials_are_never_handed_out_twice,
            certificates::resolving_revokes_live_certificates_and_refuses_new_ones,
            certificates::an_incident_opens_once,
            certificates::selectors_name_live_unrevoked_certificates,
            certificates::locking_revokes_and_unlocking_keeps_revocations,
            certificates::the_krl_lists_live_revocations_and_moves_its_version,
            certificates::an_alert_incident_is_found_by_its_firing,
            ca_keys::phases_move_keys_once_and_the_generation_grows,
            ca_keys::a_hosts_report_replaces_its_last_and_unknown_hosts_are_ignored,
            hosts::a_join_token_is_spent_once,
            hosts::renewal_moves_the_host_to_its_new_key,
            overrides::overrides_shorten_and_delete_as_they_were_read,
            requests::approvals_race_and_the_second_looks_again,
            requests::only_an_approved_request_is_issued_and_only_a_pending_one_denied,
            requests::a_request_expires_once_and_an_approval_sets_its_time,
            sessions::sealing_is_once_and_search_finds_substrings,
            sessions::filters_match_hosts_with_or_without_port,
            sessions::uploads_move_only_from_the_length_they_saw,
            sessions::no_upload_lands_once_the_seal_starts,
            sessions::reads_are_remembered_per_reviewer_purpose_and_file,
            lifecycle::uploads_stop_at_the_session_size_limit,
            lifecycle::heartbeats_keep_sessions_and_name_the_ones_that_are_not_live,
            lifecycle::a_silent_session_is_claimed_once_and_sealed_as_lost,
            lifecycle::retention_deletes_only_old_unheld_recordings_outside_open_incidents,
            ui_sessions::sessions_are_kept_by_hash_and_expired_ones_swept,
            webhooks::replays_are_refused_within_the_window_and_claims_go_to_one,
            ui_sessions::a_sign_in_link_is_used_once_and_not_after_expiry,
            ui_sessions::a_local_users_session_keeps_its_uid,
        }
    };
}
use every_behaviour_test;
