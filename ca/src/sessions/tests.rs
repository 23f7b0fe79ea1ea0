//! The CA's decision on bastion sessions: every refusal audited, the race
//! with an incident's resolution too; target names in one form; refused
//! logins reported only for this CA's certificates.

use ssh_key::{Algorithm, PrivateKey};

use super::*;
use crate::store::{AuditFilter, Incident};
use crate::testkit::World;

const POLICY: &str = r#"
[settings]
max_ttl = "1h"

[[role]]
name = "shell"
principals = ["ops"]
hosts = ["db-1"]
max_ttl = "10m"
"#;

fn key() -> PrivateKey {
    PrivateKey::random(&mut rng(), Algorithm::Ed25519).unwrap()
}

fn bastion() -> EnrolledHost {
    EnrolledHost {
        name: "bastion-1".into(),
        kind: HostKind::Bastion,
        principals: vec!["bastion-1".into()],
        key: key().public_key().clone(),
    }
}

/// A user certificate signed by `ca`, valid from `valid_after` for an hour.
fn user_cert(
    ca: &impl ssh_key::SigningKey,
    serial: u64,
    valid_after: u64,
    key_id: &str,
) -> Certificate {
    let user = key();
    let mut b = Builder::new_with_random_nonce(
        &mut rng(),
        user.public_key().key_data().clone(),
        valid_after,
        valid_after + 3600,
    )
    .unwrap();
    b.serial(serial)
        .unwrap()
        .cert_type(CertType::User)
        .unwrap()
        .key_id(key_id)
        .unwrap()
        .valid_principal("ops")
        .unwrap();
    b.sign(ca).unwrap()
}

/// The CA's world with incident INC-1 open and a certificate of role
/// `shell` issued under it (recorded as the CA records issuance).
async fn world() -> (World, Sessions, Certificate) {
    let world = World::new(POLICY);
    let base = world.base();
    world
        .audit
        .record_change(
            Event::new("incident.opened", "local:root", Outcome::Info, json!({})),
            Change::OpenIncident(Incident {
                id: "INC-1".into(),
                title: "t".into(),
                severity: 2,
                status: "open".into(),
                source: "manual".into(),
                opened_by: "local:root".into(),
                opened_at: "2026-11-25T00:00:00Z".into(),
                resolved_by: None,
                resolved_at: None,
            }),
        )
        .await
        .unwrap();
    let serial = world.store.next_serial().await.unwrap();
    let now = u64::try_from(Utc::now().timestamp()).unwrap();
    let key_id = format!("a@example.com role=shell incident=INC-1 req=r_1 serial={serial}");
    let cert = user_cert(&world.keys.user(), serial, now - 60, &key_id);
    world
        .audit
        .record_change(
            Event::new(
                "certificate.issued",
                "user:a@example.com",
                Outcome::Allow,
                json!({}),
            ),
            Change::Issue(IssuedCertificate {
                serial,
                key_id,
                identity: "user:a@example.com".into(),
                role: "shell".into(),
                incident: Some("INC-1".into()),
                request_id: "r_1".into(),
                principals: vec!["ops".into()],
                valid_after: now - 60,
                valid_before: now + 3540,
                key_fingerprint: cert.public_key().fingerprint(HashAlg::Sha256).to_string(),
                issued_at: "2026-11-25T00:00:00Z".into(),
                certificate: cert.to_openssh().unwrap(),
            }),
        )
        .await
        .unwrap();
    let sessions = Sessions::new(&base, Arc::new(Incidents::new(&base)));
    (world, sessions, cert)
}

fn request(cert: &Certificate, target: &str) -> SessionRequest {
    SessionRequest {
        user_certificate: cert.to_openssh().unwrap(),
        principal: "ops".into(),
        target_host: target.into(),
        target_port: 22,
        client_address: "192.0.2.1:5000".into(),
        session_key: key().public_key().to_openssh().unwrap(),
    }
}

async fn rows(world: &World, kind: &str) -> Vec<serde_json::Value> {
    world
        .audit
        .rows(AuditFilter {
            kinds: vec![kind.into()],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str(&r.detail).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_resolved_between_check_and_commit_is_a_denial_audited_before_the_answer() {
    let (world, sessions, cert) = world().await;
    let request = request(&cert, "db-1");
    // The checks pass while the incident is open...
    let checked = match sessions.check(&bastion(), &request).await {
        Ok(checked) => checked,
        Err(refusal) => panic!("{}", refusal.message),
    };
    // ... and it is resolved before the session's commit.
    world
        .audit
        .record_change(
            Event::new("incident.resolved", "local:root", Outcome::Info, json!({})),
            Change::ResolveIncident {
                id: "INC-1".into(),
                by: "local:root".into(),
                at: "2026-11-25T01:00:00Z".into(),
                now: u64::try_from(Utc::now().timestamp()).unwrap(),
            },
        )
        .await
        .unwrap();
    let answer = sessions
        .grant(
            &bastion(),
            &request,
            checked,
            json!({ "bastion": "bastion-1" }),
        )
        .await;
    assert!(
        matches!(
            answer,
            Err(Error::Denied {
                code: "incident-resolved",
                ..
            })
        ),
        "{answer:?}"
    );
    let denied = rows(&world, "session.denied").await;
    assert_eq!(denied.len(), 1, "the race path's denial has its row");
    assert_eq!(denied[0]["denied"], "incident-resolved");
    assert!(rows(&world, "session.authorized").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_target_is_decided_and_recorded_as_one_name() {
    let (world, sessions, cert) = world().await;
    let grant = sessions
        .authorize(&bastion(), request(&cert, "DB-1."))
        .await
        .unwrap();
    let row = world
        .store
        .session(&grant.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.target, "db-1:22");
    let authorized = rows(&world, "session.authorized").await;
    assert_eq!(authorized[0]["target"], "db-1:22");
    assert_eq!(authorized[0]["target_as_asked"], "DB-1.");
    // And a name the role does not cover stays refused, audited.
    let refused = sessions
        .authorize(&bastion(), request(&cert, "DB-1.evil.example."))
        .await;
    assert!(matches!(
        refused,
        Err(Error::Denied {
            code: "host-not-in-role",
            ..
        })
    ));
    assert_eq!(
        rows(&world, "session.denied").await[0]["target"],
        "db-1.evil.example:22"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_are_audited_only_for_certificates_of_this_ca() {
    let (world, sessions, ours) = world().await;
    let report = |cert: &Certificate| shiftkey_wire::SessionRefusal {
        user_certificate: cert.to_openssh().unwrap(),
        principal: Some("ops".into()),
        target: Some("db-1".into()),
        client_address: "192.0.2.1:5000".into(),
        code: "unknown-ca".into(),
        message: "not signed by the CA".into(),
    };
    // A certificate from a CA of the caller's own making: counted, dropped.
    let stranger = user_cert(&key(), 7, 1_000, "mallory role=shell");
    for _ in 0..50 {
        assert!(
            !sessions
                .record_bastion_refusal(&bastion(), report(&stranger))
                .await
                .unwrap()
        );
    }
    let garbage = shiftkey_wire::SessionRefusal {
        user_certificate: "not a certificate".into(),
        ..report(&stranger)
    };
    assert!(
        !sessions
            .record_bastion_refusal(&bastion(), garbage)
            .await
            .unwrap()
    );
    assert!(rows(&world, "session.denied").await.is_empty());
    let metrics = sessions.base.metrics.render();
    assert!(
        metrics.contains("bastion_reports_dropped_total{kind=\"not-this-ca\"} 51"),
        "{metrics}"
    );
    // Ours, even expired long ago: audited.
    let expired = user_cert(&world.keys.user(), 9, 1_000, "a@example.com role=shell");
    assert!(
        sessions
            .record_bastion_refusal(&bastion(), report(&expired))
            .await
            .unwrap()
    );
    assert!(
        sessions
            .record_bastion_refusal(&bastion(), report(&ours))
            .await
            .unwrap()
    );
    let denied = rows(&world, "session.denied").await;
    assert_eq!(denied.len(), 2);
    assert_eq!(denied[0]["user_serial"], 9);
}
