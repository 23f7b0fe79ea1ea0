//! Heartbeats and lost sessions, the per-session size limit, retention and
//! legal holds, through the recordings domain on a real store and a real
//! recording directory.

use std::io::Write;
use std::time::Duration;

use shiftkey_wire::SessionHeartbeat;

use super::tests::{SESSION, bastion, claim, gzip, seal_request, world_with};
use super::*;
use crate::hosts::HostKind;
use crate::testkit::World;

fn beat(sessions: &[&str]) -> SessionHeartbeat {
    SessionHeartbeat {
        sessions: sessions.iter().map(|s| (*s).to_owned()).collect(),
        interval_seconds: 1,
        sent_at: 0,
    }
}

fn limits(lost_after: u64) -> Limits {
    Limits {
        lost_after: Duration::from_secs(lost_after),
        ..Limits::default()
    }
}

async fn kinds(world: &World, prefix: &str) -> Vec<String> {
    world
        .audit
        .rows(crate::store::AuditFilter {
            kind_prefix: Some(prefix.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect()
}

/// A gzip stream as a killed bastion leaves it: sync-flushed, no trailer.
fn cut_gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.flush().unwrap();
    gz.get_ref().clone()
}

fn user(email: &str) -> Caller {
    Caller::User {
        email: email.into(),
        groups: vec![],
    }
}

/// `caller`'s use of `recording.hold` on `session`, as the policy decides.
async fn hold_power(
    world: &World,
    caller: &Caller,
    session: &str,
) -> Result<Granted, authority::Error> {
    let row = world.store.session(session).await.unwrap().unwrap();
    authority::authorize(
        &world.base(),
        caller,
        &Action::HoldRecording {
            role: &row.role,
            owner: &row.identity,
        },
        json!({ "session": session }),
    )
    .await
}

async fn reviewer(recordings: &Recordings) -> Reviewer {
    let caller = Caller::User {
        email: "reviewer@example.com".into(),
        groups: vec![],
    };
    recordings.reviewer(&caller, "/p").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_its_bastion_keeps_naming_is_not_lost() {
    // Started ten seconds ago; lost after five of silence.
    let (world, recordings) = world_with(limits(5)).await;
    let ack = recordings
        .heartbeat(&bastion("bastion-1"), beat(&[SESSION]))
        .await
        .unwrap();
    assert!(ack.not_live.is_empty());
    assert_eq!(ack.lost_after_seconds, 5);
    assert_eq!(recordings.seal_lost_sessions().await.unwrap(), 0);
    let row = world.store.session(SESSION).await.unwrap().unwrap();
    assert_eq!(row.status, SessionStatus::Live);
    // Another bastion naming it keeps nothing alive, and is told.
    let ack = recordings
        .heartbeat(&bastion("bastion-2"), beat(&[SESSION, "../x"]))
        .await
        .unwrap();
    assert_eq!(ack.not_live, ["../x", SESSION]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bastions_send_heartbeats_and_a_refusal_is_audited() {
    let (world, recordings) = world_with(limits(5)).await;
    let mut host = bastion("db-1");
    host.kind = HostKind::Host;
    assert!(matches!(
        recordings.heartbeat(&host, beat(&[SESSION])).await,
        Err(Error::NotABastion)
    ));
    let many: Vec<&str> = vec![SESSION; MAX_HEARTBEAT_SESSIONS + 1];
    assert!(matches!(
        recordings
            .heartbeat(&bastion("bastion-1"), beat(&many))
            .await,
        Err(Error::BadHeartbeat(_))
    ));
    assert_eq!(
        kinds(&world, "session.heartbeat_refused").await,
        ["session.heartbeat_refused", "session.heartbeat_refused"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_session_is_sealed_as_lost_with_what_reached_the_ca() {
    let (world, recordings) = world_with(limits(5)).await;
    let b = bastion("bastion-1");
    let cast = cut_gzip(concat!(
        r#"{"version":2,"width":80,"height":24,"shiftkey":{"kind":"shell"}}"#,
        "\n",
        r#"[0.5,"i","echo before-the-kill\r"]"#,
        "\n",
        r#"[0.6,"o","before-the-kill\r\n"]"#,
        "\n",
    ));
    recordings
        .upload_chunk(&b, SESSION, "1.cast.gz", Some(0), cast.clone())
        .await
        .unwrap();
    // Started ten seconds ago, never named since: silent for five.
    assert_eq!(recordings.seal_lost_sessions().await.unwrap(), 1);
    assert_eq!(
        recordings.seal_lost_sessions().await.unwrap(),
        0,
        "sealed once"
    );
    let detail = recordings
        .recording(&reviewer(&recordings).await, SESSION, Purpose::View)
        .await
        .unwrap();
    assert_eq!(detail.info.status, "lost");
    assert!(
        detail.problems[0].contains("truncated"),
        "{:?}",
        detail.problems
    );
    assert_eq!(detail.problems.len(), 1, "an early end is no damage");
    assert_eq!(detail.info.files.len(), 1);
    assert_eq!(detail.info.files[0].sha256, upload::sha256_hex(&cast));
    assert_eq!(detail.info.files[0].bytes, cast.len() as u64);
    // The seal verifies as what it is: signed by the user CA, status lost.
    let manifest_text = detail.manifest.unwrap();
    let signature: ssh_key::SshSig = detail.info.signature.unwrap().parse().unwrap();
    world
        .keys
        .user()
        .public_key()
        .verify(NAMESPACE, manifest_text.as_bytes(), &signature)
        .unwrap();
    let manifest: shiftkey_wire::RecordingManifest = serde_json::from_str(&manifest_text).unwrap();
    assert_eq!(manifest.status, "lost");
    assert_eq!(manifest.exit_status, None);
    // Searchable, like any sealed session.
    let found = world.store.search("before-the-kill", 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(kinds(&world, "recording.lost").await, ["recording.lost"]);
    // The bastion, back from the dead, may neither add nor seal; its
    // heartbeat is told to end the session.
    assert!(matches!(
        recordings
            .upload_chunk(
                &b,
                SESSION,
                "1.cast.gz",
                Some(cast.len() as u64),
                b"x".to_vec()
            )
            .await,
        Err(Error::NotLive { .. })
    ));
    assert!(matches!(
        recordings
            .seal(&b, SESSION, seal_request(vec![claim("1.cast.gz", &cast)]))
            .await,
        Err(Error::SealFinal { .. })
    ));
    let ack = recordings.heartbeat(&b, beat(&[SESSION])).await.unwrap();
    assert_eq!(ack.not_live, [SESSION]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_ca_processes_seal_a_lost_session_once() {
    let (world, first) = world_with(limits(5)).await;
    let second = Recordings::new(&world.base(), Arc::clone(&world.bytes), limits(5));
    let (a, b) = tokio::join!(first.seal_lost_sessions(), second.seal_lost_sessions());
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    assert_eq!(kinds(&world, "recording.lost").await, ["recording.lost"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_session_limit_are_refused_and_audited() {
    let (world, recordings) = world_with(Limits {
        max_session_size: 10,
        ..Limits::default()
    })
    .await;
    let b = bastion("bastion-1");
    recordings
        .upload_chunk(&b, SESSION, "1.cast.gz", Some(0), b"abcdef".to_vec())
        .await
        .unwrap();
    let refused = recordings
        .upload_chunk(&b, SESSION, "2.cast.gz", Some(0), b"ghijk".to_vec())
        .await;
    assert!(
        matches!(refused, Err(Error::TooLarge { limit: 10, .. })),
        "{refused:?}"
    );
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("max_session_size")
    );
    recordings
        .upload_chunk(&b, SESSION, "2.cast.gz", Some(0), b"ghij".to_vec())
        .await
        .unwrap();
    assert_eq!(
        kinds(&world, "recording.upload_refused").await,
        ["recording.upload_refused"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_sealed_recordings_unless_held_and_audits_each() {
    let (world, recordings) = world_with(Limits {
        retention: Some(Duration::ZERO),
        ..Limits::default()
    })
    .await;
    let b = bastion("bastion-1");
    let cast = gzip("{\"version\":2}\n[0.5,\"i\",\"rm -rf /tmp/x\\r\"]\n");
    recordings
        .upload_chunk(&b, SESSION, "1.cast.gz", Some(0), cast.clone())
        .await
        .unwrap();
    // Live: never deleted.
    assert_eq!(recordings.apply_retention().await.unwrap().deleted, 0);
    recordings
        .seal(&b, SESSION, seal_request(vec![claim("1.cast.gz", &cast)]))
        .await
        .unwrap();
    let legal = hold_power(&world, &user("legal@example.com"), SESSION)
        .await
        .unwrap();
    retention::hold(&world.audit, SESSION, "legal case 7", &legal)
        .await
        .unwrap();
    let pass = recordings.apply_retention().await.unwrap();
    assert_eq!(pass.deleted, 0, "held");
    assert_eq!(
        world.bytes.held(SESSION, "1.cast.gz").await.unwrap(),
        Some(cast.len() as u64)
    );
    let reviewer = reviewer(&recordings).await;
    let detail = recordings
        .recording(&reviewer, SESSION, Purpose::View)
        .await
        .unwrap();
    assert_eq!(detail.info.held.as_deref(), Some("legal case 7"));

    assert!(matches!(
        retention::release(&world.audit, SESSION, "x", &legal).await,
        Err(Error::BadHold(_))
    ));
    retention::release(&world.audit, SESSION, "case closed", &legal)
        .await
        .unwrap();
    assert!(matches!(
        retention::release(&world.audit, SESSION, "case closed", &legal).await,
        Err(Error::NotHeld(_))
    ));
    let pass = recordings.apply_retention().await.unwrap();
    assert_eq!((pass.deleted, pass.purged), (1, 1));
    assert!(
        !world.dir.path().join("recordings").join(SESSION).exists(),
        "the bytes are gone"
    );
    assert!(world.store.search("rm -rf", 10).await.unwrap().is_empty());
    // The row and the seal stay; the bytes are gone, and reads say so.
    let detail = recordings
        .recording(&reviewer, SESSION, Purpose::View)
        .await
        .unwrap();
    assert!(detail.info.deleted_at.is_some());
    assert!(detail.manifest.is_some());
    assert!(matches!(
        recordings
            .read_file(&reviewer, SESSION, "1.cast.gz", 0, None, Purpose::View)
            .await,
        Err(Error::Deleted { .. })
    ));
    assert!(matches!(
        retention::hold(&world.audit, SESSION, "too late", &legal).await,
        Err(Error::HoldTooLate(_))
    ));
    // A deleted recording is still the policy's to show: a reviewer of
    // another role is refused, not told that it was deleted.
    let dba = recordings
        .reviewer(&user("dba@example.com"), "/p")
        .await
        .unwrap();
    for read in [
        recordings
            .read_file(&dba, SESSION, "1.cast.gz", 0, None, Purpose::View)
            .await
            .err(),
        recordings
            .recording(&dba, SESSION, Purpose::View)
            .await
            .err(),
    ] {
        assert!(
            matches!(read, Some(Error::Authority(authority::Error::Denied(_)))),
            "{read:?}"
        );
    }
    let lifecycle: Vec<String> = kinds(&world, "recording")
        .await
        .into_iter()
        .filter(|k| !matches!(k.as_str(), "recording.viewed" | "recording.sealed"))
        .collect();
    assert_eq!(
        lifecycle,
        ["recording.held", "recording.released", "recording.deleted"]
    );
    let held = &world
        .audit
        .rows(crate::store::AuditFilter {
            kind_prefix: Some("recording.held".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(held.actor, "user:legal@example.com");
    let detail: serde_json::Value = serde_json::from_str(&held.detail).unwrap();
    assert_eq!(detail["authority"]["action"], "recording.hold");
    assert_eq!(
        recordings.apply_retention().await.unwrap(),
        retention::Pass::default()
    );
}

/// Holding a recording past retention (and releasing it) is a power: a
/// reviewer of everything does not have it, the policy's `recording.hold`
/// entry gives it for its roles, refusals are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legal_hold_is_a_power_the_policy_grants() {
    let (world, _recordings) = world_with(Limits::default()).await;
    for who in ["reviewer@example.com", "dba@example.com", "a@example.com"] {
        let refused = hold_power(&world, &user(who), SESSION).await;
        assert!(
            matches!(refused, Err(authority::Error::Denied(_))),
            "{who}: {refused:?}"
        );
    }
    let denied = world
        .audit
        .rows(crate::store::AuditFilter {
            kind_prefix: Some("authority.denied".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(denied.len(), 3);
    for row in &denied {
        let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap();
        assert_eq!(
            (&detail["action"], &detail["session"]),
            (&json!("recording.hold"), &json!(SESSION))
        );
    }
    assert!(
        hold_power(&world, &user("legal@example.com"), SESSION)
            .await
            .is_ok()
    );
    let root = Caller::Local {
        user: "root".into(),
        uid: 0,
    };
    assert!(hold_power(&world, &root, SESSION).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_under_an_open_incident_is_kept() {
    let (world, recordings) = world_with(Limits {
        retention: Some(Duration::ZERO),
        ..Limits::default()
    })
    .await;
    // A second session, under an incident that is open.
    let opened = crate::store::Incident {
        id: "INC-9".into(),
        title: "t".into(),
        severity: 2,
        status: "open".into(),
        source: "manual".into(),
        opened_by: "local:root".into(),
        opened_at: "2026-11-25T00:00:00Z".into(),
        resolved_by: None,
        resolved_at: None,
    };
    world
        .audit
        .record_change(
            Event::new("incident.opened", "local:root", Outcome::Info, json!({})),
            Change::OpenIncident(opened),
        )
        .await
        .unwrap();
    let b = bastion("bastion-1");
    let mut row = world.store.session(SESSION).await.unwrap().unwrap();
    row.id = "s_00000000000000ff".into();
    row.incident = Some("INC-9".into());
    let serial = world.store.next_serial().await.unwrap();
    let mut certificate = placeholder_certificate(serial, &row.id);
    certificate.incident = Some("INC-9".into());
    world
        .audit
        .record_change(
            Event::new(
                "session.authorized",
                "user:a@example.com",
                Outcome::Allow,
                json!({}),
            ),
            Change::StartSession {
                certificate,
                session: Box::new(row.clone()),
            },
        )
        .await
        .unwrap();
    for id in [SESSION, row.id.as_str()] {
        recordings.seal(&b, id, seal_request(vec![])).await.unwrap();
    }
    let pass = recordings.apply_retention().await.unwrap();
    assert_eq!(pass.deleted, 1);
    let kept = world.store.session(&row.id).await.unwrap().unwrap();
    assert_eq!(kept.recording_deleted_at, None, "its incident is open");
}

fn placeholder_certificate(serial: u64, session: &str) -> crate::store::IssuedCertificate {
    crate::store::IssuedCertificate {
        serial,
        key_id: "a".into(),
        identity: "user:a@example.com".into(),
        role: "shell".into(),
        incident: None,
        request_id: session.into(),
        principals: vec!["ops".into()],
        valid_after: 0,
        valid_before: 9_999_999_999,
        key_fingerprint: "SHA256:y".into(),
        issued_at: "x".into(),
        certificate: "x".into(),
    }
}
