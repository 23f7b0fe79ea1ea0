//! Tells the CA, every `heartbeat_interval` (10 s by default), which
//! sessions this bastion runs. The CA seals a live session nobody names for
//! its `[recordings] lost_after` (30 s by default) as lost, so a session
//! whose bastion died is sealed with what reached the CA, not left live
//! forever. The CA answers with the named sessions it no longer holds live
//! (sealed as lost during a partition, ended): they end here too, since the
//! CA no longer takes their recording.

use std::sync::Arc;
use std::time::Duration;

use shiftkey_wire::{SessionHeartbeat, SessionHeartbeatAck};

use crate::bastion::Bastion;
use crate::ca::unix_now;

/// Default of `heartbeat_interval`.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// What a session the CA no longer holds live is told as it ends.
const NOT_LIVE: &str =
    "the CA no longer holds this session live (its bastion was silent too long); reconnect";

/// The heartbeat for the sessions running now.
pub(crate) fn beat(sessions: Vec<String>, interval: Duration) -> SessionHeartbeat {
    SessionHeartbeat {
        sessions,
        interval_seconds: interval.as_secs(),
        sent_at: unix_now(),
    }
}

/// Whether the CA may take this bastion for dead between two beats that
/// arrive on time: its silence should allow for at least two of them.
pub(crate) fn too_slow(interval: Duration, ack: &SessionHeartbeatAck) -> bool {
    interval.as_secs().saturating_mul(2) > ack.lost_after_seconds
}

/// Runs forever.
pub(crate) async fn run(bastion: Arc<Bastion>, interval: Duration) {
    let mut warned = false;
    loop {
        tokio::time::sleep(interval).await;
        match bastion
            .ca
            .heartbeat(&beat(bastion.live_ids(), interval))
            .await
        {
            Ok(ack) => {
                if too_slow(interval, &ack) && !warned {
                    tracing::warn!(
                        interval_seconds = interval.as_secs(),
                        lost_after_seconds = ack.lost_after_seconds,
                        "heartbeat_interval is more than half the CA's [recordings] lost_after: a late heartbeat makes the CA seal live sessions as lost; shorten heartbeat_interval"
                    );
                    warned = true;
                }
                if !ack.not_live.is_empty() {
                    bastion.end_sessions(NOT_LIVE, |s| ack.not_live.iter().any(|id| id == s.id()));
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
        let b = beat(vec!["s_01".into(), "s_02".into()], DEFAULT_INTERVAL);
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["sessions"], serde_json::json!(["s_01", "s_02"]));
        assert_eq!(json["interval_seconds"], 10);
        assert!(json["sent_at"].as_u64().unwrap() > 1_700_000_000);
    }

    #[test]
    fn an_interval_near_the_cas_silence_is_named() {
        let ack = |lost_after_seconds| SessionHeartbeatAck {
            not_live: vec![],
            lost_after_seconds,
        };
        assert!(!too_slow(DEFAULT_INTERVAL, &ack(30)));
        assert!(!too_slow(DEFAULT_INTERVAL, &ack(20)));
        assert!(too_slow(DEFAULT_INTERVAL, &ack(15)));
    }
}
