//! Access requests: who decides (the policy's authority, never the
//! requester's person, each person once) and when they expire.

use std::sync::Arc;

use chrono::Utc;

use super::{Error, Requests};
use crate::identity::Caller;
use crate::incidents::Incidents;
use crate::issuance::Issuance;
use crate::oncall::OnCall;
use crate::policy::DenyCode;
use crate::store::{AuditFilter, Change, RequestStatus, StoredRequest};
use crate::testkit::World;

const POLICY: &str = r#"
[settings]
max_ttl = "1h"
approval_ttl = "30m"

[[person]]
name = "carol"
identities = ["user:carol@example.com", "local:carol"]

[[person]]
name = "bob"
identities = ["user:bob@example.com", "local:bob"]

[[role]]
name = "db"
principals = ["postgres"]
hosts = ["db-1"]
max_ttl = "10m"
approvals = 2
approvers = ["user:carol@example.com", "local:carol", "user:dan@example.com", "person:bob"]
pending_ttl = "2h"

[[grant]]
identities = ["user:bob@example.com"]
roles = ["db"]
"#;

fn requests(world: &World) -> Requests {
    let base = world.base();
    let incidents = Arc::new(Incidents::new(&base));
    let oncall = Arc::new(OnCall::new(&base));
    Requests::new(&base, Arc::new(Issuance::new(&base, incidents, oncall)))
}

fn user(email: &str) -> Caller {
    Caller::user(email, Vec::new()).unwrap()
}

async fn pending(world: &World, id: &str, expires_at: i64) {
    let now = Utc::now().timestamp();
    let request = StoredRequest {
        id: id.into(),
        requester: "user:bob@example.com".into(),
        role: "db".into(),
        incident: None,
        reason: Some("look at the replica lag".into()),
        request: "{}".into(),
        status: RequestStatus::Pending,
        approvals: Vec::new(),
        approvals_needed: 2,
        denied_by: None,
        decision_reason: None,
        serial: None,
        created_at: now,
        expires_at,
    };
    world
        .audit
        .record_change(
            crate::audit::Event::new(
                "request.created",
                "user:bob@example.com",
                crate::audit::Outcome::Info,
                serde_json::json!({}),
            ),
            Change::CreateRequest(request),
        )
        .await
        .unwrap();
}

async fn kinds(world: &World, kind: &str) -> usize {
    world
        .audit
        .rows(AuditFilter {
            kinds: vec![kind.into()],
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_count_people_and_never_the_requesters_own() {
    let world = World::new(POLICY);
    let requests = requests(&world);
    let now = Utc::now().timestamp();
    pending(&world, "r_1", now + 7200).await;
    // Bob is an approver, but not of his own request, under any identity.
    for bob in [
        user("bob@example.com"),
        Caller::Local {
            user: "bob".into(),
            uid: 1,
        },
    ] {
        match requests.decide(&bob, "r_1", true, None).await {
            Err(Error::Authority(crate::authority::Error::Denied(d))) => {
                assert_eq!(d.code, DenyCode::SelfApproval)
            }
            other => panic!("{other:?}"),
        }
    }
    // Carol approves twice, as two identities: one person, one approval.
    let once = requests
        .decide(&user("Carol@Example.com"), "r_1", true, None)
        .await
        .unwrap();
    assert_eq!(once.approvals, ["user:carol@example.com"]);
    let still = requests
        .decide(
            &Caller::Local {
                user: "carol".into(),
                uid: 2,
            },
            "r_1",
            true,
            None,
        )
        .await
        .unwrap();
    assert_eq!(still.status, "pending");
    assert_eq!(still.approvals, ["user:carol@example.com"]);
    // Dan makes two people: approved, and now the approval's clock runs.
    let done = requests
        .decide(&user("dan@example.com"), "r_1", true, None)
        .await
        .unwrap();
    assert_eq!(done.status, "approved");
    let expected = Utc::now().timestamp() + 30 * 60;
    assert!(
        (expected - 5..=expected).contains(&done.expires_at),
        "{}",
        done.expires_at
    );
    assert_eq!(kinds(&world, "authority.denied").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_their_time_expire_once_when_noticed() {
    let world = World::new(POLICY);
    let requests = requests(&world);
    let now = Utc::now().timestamp();
    pending(&world, "r_2", now - 1).await;
    let bob = user("bob@example.com");
    for _ in 0..2 {
        let seen = requests.look(&bob, "r_2").await.unwrap();
        assert_eq!(seen.status, "expired");
    }
    assert_eq!(kinds(&world, "request.expired").await, 1, "audited once");
    assert_eq!(
        world
            .store
            .access_request("r_2")
            .await
            .unwrap()
            .unwrap()
            .status,
        RequestStatus::Expired
    );
    assert!(matches!(
        requests
            .decide(&user("dan@example.com"), "r_2", true, None)
            .await,
        Err(Error::NotPending { .. })
    ));
    // An approval not used in time expires too, and issues nothing.
    pending(&world, "r_3", now + 7200).await;
    world
        .audit
        .record_change(
            crate::audit::Event::new(
                "request.approved",
                "system",
                crate::audit::Outcome::Info,
                serde_json::json!({}),
            ),
            Change::Approve {
                id: "r_3".into(),
                expected: Vec::new(),
                approvals: vec![
                    "user:carol@example.com".into(),
                    "user:dan@example.com".into(),
                ],
                status: RequestStatus::Approved,
                expires_at: now - 1,
            },
        )
        .await
        .unwrap();
    let seen = requests.look(&bob, "r_3").await.unwrap();
    assert_eq!(seen.status, "expired");
    assert!(seen.certificate.is_none());
    assert_eq!(kinds(&world, "request.expired").await, 2);
}
