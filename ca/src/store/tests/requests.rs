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
        expires_at: 1_000,
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

pub(super) async fn a_request_expires_once_and_an_approval_sets_its_time(store: Fresh) {
    apply(&store, Change::CreateRequest(request("r_4")))
        .await
        .unwrap();
    let mut approved = approve("r_4", &[], &["user:b", "user:c"], RequestStatus::Approved);
    if let Change::Approve { expires_at, .. } = &mut approved {
        *expires_at = 5_000;
    }
    apply(&store, approved).await.unwrap();
    let found = store.access_request("r_4").await.unwrap().unwrap();
    assert_eq!(
        (found.status, found.expires_at),
        (RequestStatus::Approved, 5_000)
    );
    let expire = |status| Change::ExpireRequest {
        id: "r_4".into(),
        status,
    };
    assert_eq!(
        apply(&store, expire(RequestStatus::Pending)).await,
        Err(Error::Conflict(Conflict::RequestChanged)),
        "it is approved, not pending"
    );
    apply(&store, expire(RequestStatus::Approved))
        .await
        .unwrap();
    assert_eq!(
        store.access_request("r_4").await.unwrap().unwrap().status,
        RequestStatus::Expired
    );
    assert_eq!(
        apply(&store, expire(RequestStatus::Approved)).await,
        Err(Error::Conflict(Conflict::RequestChanged)),
        "once"
    );
    // An expired request is neither issued nor decided any more.
    let mut issued = cert(9, None, 2_000);
    issued.request_id = "r_4".into();
    assert_eq!(
        apply(
            &store,
            Change::IssueForRequest {
                certificate: issued,
                request: "r_4".into(),
            }
        )
        .await,
        Err(Error::Conflict(Conflict::RequestChanged))
    );
    assert_eq!(
        apply(
            &store,
            Change::Deny {
                id: "r_4".into(),
                by: "user:b".into(),
                reason: "no".into(),
            }
        )
        .await,
        Err(Error::Conflict(Conflict::RequestChanged))
    );
    assert!(store.pending_requests(0).await.unwrap().is_empty());
    assert_eq!(store.decided_requests(10).await.unwrap().len(), 1);
}
