//! Tells the CA, every [`INTERVAL`], which sessions this bastion runs, so
//! that the CA can mark a session `lost` when its bastion stops naming it
//! (killed, or the machine gone). The CA's side of this is not built yet
//! (`POST /v1/sessions/heartbeat` answers 404 until it is): the bastion
//! says so once in its log and keeps sending.

use std::sync::Arc;
use std::time::Duration;

use shiftkey_wire::SessionHeartbeat;

use crate::bastion::Bastion;
use crate::ca::{CallError, unix_now};

/// How often the live sessions are named to the CA.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// The heartbeat for the sessions running now.
pub(crate) fn beat(sessions: Vec<String>) -> SessionHeartbeat {
    SessionHeartbeat {
        sessions,
        interval_seconds: INTERVAL.as_secs(),
        sent_at: unix_now(),
    }
}

/// Runs forever.
pub(crate) async fn run(bastion: Arc<Bastion>) {
    let mut missing_said = false;
    loop {
        tokio::time::sleep(INTERVAL).await;
        match bastion.ca.heartbeat(&beat(bastion.live_ids())).await {
            Ok(()) => missing_said = false,
            Err(CallError::Refused(r)) if r.status == 404 || r.status == 405 => {
                if !missing_said {
                    tracing::info!(
                        "the CA does not take session heartbeats yet (POST /v1/sessions/heartbeat answers {}); a session whose bastion dies stays live at the CA",
                        r.status
                    );
                    missing_said = true;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the session heartbeat did not reach the CA; will retry")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_names_the_sessions_and_the_interval() {
        let b = beat(vec!["s_01".into(), "s_02".into()]);
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["sessions"], serde_json::json!(["s_01", "s_02"]));
        assert_eq!(json["interval_seconds"], 10);
        assert!(json["sent_at"].as_u64().unwrap() > 1_700_000_000);
    }
}
