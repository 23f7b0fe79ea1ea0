//! Webhook replay state and notification claims.

use super::Fresh;
use crate::store::Admission;

pub(super) async fn replays_are_refused_within_the_window_and_claims_go_to_one(store: Fresh) {
    let admit = |id: &'static str, now: i64| {
        let store = store.clone();
        async move {
            store
                .admit_webhook_event("pagerduty", id, now, 720, 3)
                .await
                .unwrap()
        }
    };
    assert_eq!(admit("e1", 1_000).await, Admission::New);
    assert_eq!(admit("e1", 1_100).await, Admission::Replayed);
    // Another source's ID of the same text is another event.
    assert_eq!(
        store
            .admit_webhook_event("alertmanager", "e1", 1_100, 720, 3)
            .await
            .unwrap(),
        Admission::New
    );
    assert_eq!(admit("e2", 1_200).await, Admission::New);
    assert_eq!(
        admit("e3", 1_300).await,
        Admission::Full,
        "at most 3 remembered"
    );
    // A delivery that failed on our side is let through again.
    store.forget_webhook_event("pagerduty", "e2").await.unwrap();
    assert_eq!(admit("e2", 1_300).await, Admission::New);
    // Past the window, IDs are forgotten (and the room is back).
    assert_eq!(admit("e1", 1_000 + 721).await, Admission::New);

    assert!(
        store
            .claim_notification(7, "replica-a", 10, 86_400)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_notification(7, "replica-b", 11, 86_400)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_notification(8, "replica-b", 11, 86_400)
            .await
            .unwrap()
    );
}
