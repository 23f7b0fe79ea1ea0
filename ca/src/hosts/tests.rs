//! What the CA signs for a bastion to present under a target's name.

use std::time::Duration;

use ssh_key::{Algorithm, Certificate, PrivateKey};

use super::*;
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

/// An enrolled bastion, as `shiftkey-ca hosts token --bastion` and the
/// bastion's first start leave it.
async fn enrolled_bastion(world: &World, hosts: &Hosts) -> (EnrolledHost, Certificate) {
    let key = PrivateKey::random(&mut rng(), Algorithm::Ed25519).unwrap();
    let token = new_token(
        "bastion-1",
        vec!["bastion-1".into()],
        HostKind::Bastion,
        Duration::from_secs(600),
        "local:root".into(),
    )
    .unwrap();
    let names = vec!["bastion-1".to_owned()];
    let root = crate::identity::Caller::Local {
        user: "root".into(),
        uid: 0,
    };
    let granted = crate::authority::authorize(
        &world.base(),
        &root,
        &crate::policy::Action::EnrollHost { names: &names },
        serde_json::json!({}),
    )
    .await
    .unwrap();
    record_token(&world.audit, &token, &granted).await.unwrap();
    let own = hosts
        .enroll(
            shiftkey_wire::EnrollRequest {
                token: token.token.to_string(),
                host_key: key.public_key().to_openssh().unwrap(),
            },
            "https",
        )
        .await
        .unwrap();
    let host = EnrolledHost {
        name: "bastion-1".into(),
        kind: HostKind::Bastion,
        principals: vec!["bastion-1".into()],
        key: key.public_key().clone(),
    };
    (host, Certificate::from_openssh(&own.certificate).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presented_certificate_is_marked_and_names_the_target_in_one_form() {
    let world = World::new(POLICY);
    let hosts = Hosts::new(&world.base());
    let (bastion, own) = enrolled_bastion(&world, &hosts).await;
    let response = hosts.present_as(&bastion, "DB-1.").await.unwrap();
    let cert = Certificate::from_openssh(&response.certificate).unwrap();
    assert_eq!(cert.valid_principals(), ["db-1"]);
    assert!(
        cert.extensions()
            .contains_key(shiftkey_wire::PRESENTED_BY_BASTION_EXTENSION),
        "marked as presented by a bastion"
    );
    // The bastion's own certificate (its identity) is not marked.
    assert!(
        !own.extensions()
            .contains_key(shiftkey_wire::PRESENTED_BY_BASTION_EXTENSION)
    );
    // Not covered by any role, whatever the spelling.
    assert!(matches!(
        hosts.present_as(&bastion, "DB-1.evil.example").await,
        Err(Error::NotCovered(name)) if name == "db-1.evil.example"
    ));
}
