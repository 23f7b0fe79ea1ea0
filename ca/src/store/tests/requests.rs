//! Access requests: conditional approvals and decisions.

use super::{Fresh, apply, cert};
use crate::store::{Change, Conflict, Error, RequestStatus, StoredRequest};

fn request(id: &str) -> StoredRequest {
    StoredRequest {
        id: id.into(),
        requester: "user:a@example.com".into(),
        role: "prod".into(),
        incident: None,
        reason: Some("why".into()),
        request: "{}".into(),
        status: RequestStatus::Pending,
        approvals: Vec::new(),
        approvals_needed: 2,
        denied_by: None,
        decision_reason: None,
        serial: None,
        created_at: 100,
        expires_at: 1_000,
    }
}

fn approve(id: &str, expected: &[&str], approvals: &[&str], status: RequestStatus) -> Change {
    Change::Approve {
        id: id.into(),
        expected: expected.iter().map(|s| (*s).to_owned()).collect(),
        approvals: approvals.iter().map(|s| (*s).to_owned()).collect(),
        status,
    }
}

pub(super) async fn approvals_race_and_the_second_looks_again(store: Fresh) {
    apply(&store, Change::CreateRequest(request("r_1")))
        .await
        .unwrap();
    apply(
        &store,
        approve("r_1", &[], &["user:b"], RequestStatus::Pending),
    )
    .await
    .unwrap();
    // A second approver who read the request before the first approval.
    assert_eq!(
        apply(
            &store,
            approve("r_1", &[], &["user:c"], RequestStatus::Pending)
        )
        .await,
        Err(Error::Conflict(Conflict::RequestChanged))
    );
    apply(
        &store,
        approve(
            "r_1",
            &["user:b"],
            &["user:b", "user:c"],
            RequestStatus::Approved,
        ),
    )
    .await
    .unwrap();
    let found = store.access_request("r_1").await.unwrap().unwrap();
    assert_eq!(found.status, RequestStatus::Approved);
    assert_eq!(found.approvals, ["user:b", "user:c"]);
    assert!(store.pending_requests(500).await.unwrap().is_empty());
    assert_eq!(store.decided_requests(10).await.unwrap().len(), 1);
}

pub(super) async fn only_an_approved_request_is_issued_and_only_a_pending_one_denied(store: Fresh) {
    apply(&store, Change::CreateRequest(request("r_2")))
        .await
        .unwrap();
    assert_eq!(store.pending_requests(500).await.unwrap().len(), 1);
    assert!(
        store.pending_requests(1_000).await.unwrap().is_empty(),
        "expired"
    );
    let issue = |serial| Change::IssueForRequest {
        certificate: cert(serial, None, 2_000),
        request: "r_2".into(),
    };
    assert_eq!(
        apply(&store, issue(1)).await,
        Err(Error::Conflict(Conflict::RequestChanged)),
        "still pending"
    );
    assert!(
        store.user_certificate(1).await.unwrap().is_none(),
        "and no certificate row"
    );
    let deny = || Change::Deny {
        id: "r_2".into(),
        by: "user:b".into(),
        reason: "no".into(),
    };
    apply(&store, deny()).await.unwrap();
    assert_eq!(
        apply(&store, deny()).await,
        Err(Error::Conflict(Conflict::RequestChanged))
    );
    apply(&store, Change::CreateRequest(request("r_3")))
        .await
        .unwrap();
    apply(
        &store,
        approve("r_3", &[], &["user:b", "user:c"], RequestStatus::Approved),
    )
    .await
    .unwrap();
    let mut issued = cert(2, None, 2_000);
    issued.request_id = "r_3".into();
    apply(
        &store,
        Change::IssueForRequest {
            certificate: issued.clone(),
            request: "r_3".into(),
        },
    )
    .await
    .unwrap();
    let found = store.access_request("r_3").await.unwrap().unwrap();
    assert_eq!(
        (found.status, found.serial),
        (RequestStatus::Issued, Some(2))
    );
    issued.serial = 3;
    assert_eq!(
        apply(
            &store,
            Change::IssueForRequest {
                certificate: issued,
                request: "r_3".into(),
            }
        )
        .await,
        Err(Error::Conflict(Conflict::RequestChanged)),
        "once"
    );
}
