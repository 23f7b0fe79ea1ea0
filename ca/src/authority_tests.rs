//! The powers wired through the domain: each is refused for whom the
//! policy's authority does not name, with an `authority.denied` row before
//! the answer, allowed with the rule named in the change's row; locks take
//! every identity of a person and every power.

use chrono::Utc;

use crate::authority::Error as AuthorityError;
use crate::identity::Caller;
use crate::incidents::{self, Incidents};
use crate::oncall::{self, OnCall};
use crate::policy::{DenyCode, canonical_identity};
use crate::store::{AuditFilter, AuditRow, Change};
use crate::testkit::World;

const POLICY: &str = r#"
admins = ["user:admin@example.com"]

[settings]
max_ttl = "1h"
max_override = "8h"

[[person]]
name = "alice"
identities = ["user:alice@example.com", "local:alice"]

[[schedule]]
name = "primary"
timezone = "UTC"
rotation = { members = ["carol@example.com"], start = "2026-01-01T00:00", shift = "24h" }

[[role]]
name = "shell"
principals = ["ops"]
hosts = ["db-1"]
max_ttl = "10m"

[[grant]]
identities = ["user:alice@example.com", "local:bob"]
roles = ["shell"]

[[authority]]
identities = ["user:alice@example.com"]
actions = ["incident.open"]
severities = ["sev3", "sev4"]

[[authority]]
identities = ["user:alice@example.com"]
actions = ["override.create", "override.shorten", "override.delete"]
schedules = ["primary"]
for = "self"
"#;

fn user(email: &str) -> Caller {
    Caller::user(email, Vec::new()).unwrap()
}

fn local(user: &str) -> Caller {
    Caller::Local {
        user: user.into(),
        uid: 1000,
    }
}

async fn rows(world: &World, kind: &str) -> Vec<AuditRow> {
    world
        .audit
        .rows(AuditFilter {
            kinds: vec![kind.into()],
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

fn denied_code<T: std::fmt::Debug>(result: Result<T, AuthorityError>) -> DenyCode {
    match result {
        Err(AuthorityError::Denied(d)) => d.code,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn incident_denial<T: std::fmt::Debug>(result: Result<T, incidents::Error>) -> DenyCode {
    match result {
        Err(incidents::Error::Authority(e)) => denied_code::<()>(Err(e)),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn override_denial<T: std::fmt::Debug>(result: Result<T, oncall::Error>) -> DenyCode {
    match result {
        Err(oncall::Error::Authority(e)) => denied_code::<()>(Err(e)),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_open_only_as_the_authority_says_and_say_why() {
    let world = World::new(POLICY);
    let incidents = Incidents::new(&world.base());
    // Holding a role is no longer enough: bob is named nowhere else.
    let refused = incidents
        .open(
            &local("bob"),
            Some("INC-1".into()),
            "x".into(),
            1,
            "manual",
            None,
        )
        .await;
    assert_eq!(incident_denial(refused), DenyCode::NotAuthorized);
    let row = &rows(&world, "authority.denied").await[0];
    assert_eq!(row.actor, "local:bob");
    let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap();
    assert_eq!(detail["action"], "incident.open");
    assert_eq!(detail["denied"], "not-authorized");
    assert!(
        detail["message"].as_str().unwrap().contains("admins"),
        "{detail}"
    );
    assert!(incidents.get("INC-1").await.unwrap().is_none());
    // Alice may open sev3 (any spelling of her email), not sev1.
    let refused = incidents
        .open(
            &user("alice@example.com"),
            None,
            "x".into(),
            1,
            "manual",
            None,
        )
        .await;
    assert_eq!(incident_denial(refused), DenyCode::NotAuthorized);
    let opened = incidents
        .open(
            &user("Alice@Example.COM"),
            Some("INC-2".into()),
            "disk".into(),
            3,
            "manual",
            None,
        )
        .await
        .unwrap();
    assert_eq!(opened.opened_by, "user:alice@example.com");
    let row = &rows(&world, "incident.opened").await[0];
    let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap();
    assert_eq!(detail["authority"]["action"], "incident.open");
    assert!(
        detail["authority"]["via"]
            .as_str()
            .unwrap()
            .starts_with("[[authority]] at policy.toml:"),
        "{detail}"
    );
    // Resolving is admin-only here; the admin may.
    let refused = incidents.resolve(&user("alice@example.com"), "INC-2").await;
    assert_eq!(incident_denial(refused), DenyCode::NotAuthorized);
    incidents
        .resolve(&user("admin@example.com"), "INC-2")
        .await
        .unwrap();
    // Webhooks are no exception: admin-only until an entry names them.
    let hook = Caller::Webhook {
        source: "alertmanager",
    };
    let refused = incidents
        .open(&hook, None, "x".into(), 2, "alertmanager", None)
        .await;
    assert_eq!(incident_denial(refused), DenyCode::NotAuthorized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_are_created_shortened_and_deleted_within_the_authority() {
    let world = World::new(POLICY);
    let oncall = OnCall::new(&world.base());
    let alice = user("alice@example.com");
    let now = Utc::now().timestamp();
    // Taking carol's shift needs take_shifts; putting someone else on call,
    // `for = "others"`; more than max_override, nobody.
    let refused = oncall
        .add_override(
            &alice,
            "primary",
            "user:alice@example.com",
            now,
            now + 3600,
            "mine now",
        )
        .await;
    assert_eq!(override_denial(refused), DenyCode::NotAuthorized);
    let refused = oncall
        .add_override(
            &local("bob"),
            "primary",
            "local:bob",
            now,
            now + 3600,
            "mine now",
        )
        .await;
    assert_eq!(override_denial(refused), DenyCode::NotAuthorized);
    let refused = oncall
        .add_override(
            &user("admin@example.com"),
            "primary",
            "local:bob",
            now,
            now + 20 * 86_400,
            "long",
        )
        .await;
    assert_eq!(override_denial(refused), DenyCode::OverrideTooLong);
    // The admin puts alice on call; alice may shorten and delete her own.
    let made = oncall
        .add_override(
            &user("admin@example.com"),
            "primary",
            "user:Alice@Example.com",
            now,
            now + 3600,
            "cover",
        )
        .await
        .unwrap();
    assert_eq!(made.member, "user:alice@example.com");
    assert_eq!(made.created_by, "user:admin@example.com");
    assert!(made.id.starts_with("ov_"));
    assert_eq!(oncall.list().await.unwrap(), std::slice::from_ref(&made));
    let refused = oncall
        .shorten(&local("bob"), &made.id, now + 60, "shorter")
        .await;
    assert_eq!(override_denial(refused), DenyCode::NotAuthorized);
    let refused = oncall.shorten(&alice, &made.id, now + 7200, "longer").await;
    assert_eq!(override_denial(refused), DenyCode::OverrideInvalid);
    let short = oncall
        .shorten(&local("alice"), &made.id, now + 600, "back early")
        .await
        .unwrap();
    assert_eq!(short.end, now + 600);
    oncall.delete(&alice, &made.id, "not needed").await.unwrap();
    assert!(oncall.list().await.unwrap().is_empty());
    assert!(matches!(
        oncall.delete(&alice, &made.id, "again").await,
        Err(oncall::Error::NotFound(_))
    ));
    for kind in [
        "oncall.override",
        "oncall.override_shortened",
        "oncall.override_deleted",
    ] {
        let rows = rows(&world, kind).await;
        assert_eq!(rows.len(), 1, "{kind}");
        let detail: serde_json::Value = serde_json::from_str(&rows[0].detail).unwrap();
        assert_eq!(detail["override"], made.id.as_str(), "{kind}");
        assert!(detail["authority"]["via"].is_string(), "{kind}");
    }
    assert!(crate::events::KINDS.contains(&"oncall.override_deleted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_on_one_identity_takes_every_power_of_the_person() {
    let world = World::new(POLICY);
    let incidents = Incidents::new(&world.base());
    let alice = canonical_identity("user:alice@example.com").unwrap();
    world
        .audit
        .record_change(
            crate::audit::Event::new(
                "identity.locked",
                "local:root",
                crate::audit::Outcome::Info,
                serde_json::json!({}),
            ),
            Change::Lock {
                identities: vec!["local:alice".into()],
                by: "local:root".into(),
                at: "x".into(),
                reason: "laptop stolen".into(),
                now: 0,
            },
        )
        .await
        .unwrap();
    let refused = incidents
        .open(
            &user(&alice["user:".len()..]),
            None,
            "x".into(),
            3,
            "manual",
            None,
        )
        .await;
    assert_eq!(incident_denial(refused), DenyCode::IdentityLocked);
    let policy = world.policy.get();
    assert_eq!(
        crate::authority::person_lock(world.store.as_ref(), &policy, "user:alice@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("laptop stolen")
    );
    let viewer = crate::authority::Viewer::new(&world.base(), &user("alice@example.com"))
        .await
        .unwrap();
    assert!(!viewer.may_review_some());
    // Root is never locked out of its own CA.
    incidents
        .open(
            &local("root"),
            Some("INC-9".into()),
            "x".into(),
            1,
            "manual",
            None,
        )
        .await
        .unwrap();
}
