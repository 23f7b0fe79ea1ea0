//! What a session's own bastion reports about the session while it runs:
//! the requests it refused inside it.

use serde_json::json;
use shiftkey_wire::{SessionEvent, SessionEventKind};

use super::{Error, Recordings, clip};
use crate::audit::{Event, Outcome};
use crate::hosts::EnrolledHost;

impl Recordings {
    /// `POST /v1/sessions/{session}/events`: the session's bastion reports
    /// what it refused inside the session (a second program request on a
    /// channel), audited as `session.request_refused`. Only the session's
    /// own bastion may report, as for its recording; a refused report is
    /// audited as `session.event_refused`.
    pub(crate) async fn record_session_event(
        &self,
        host: &EnrolledHost,
        session: &str,
        event: SessionEvent,
    ) -> Result<(), Error> {
        let row = match self.bastions_session(host, session).await {
            Ok(row) => row,
            Err(error) => {
                return Err(self
                    .base
                    .audit
                    .refuse(
                        "session.event_refused",
                        host.identity(),
                        Outcome::Deny,
                        error,
                        json!({ "session": clip(session), "request": clip(&event.request) }),
                    )
                    .await);
            }
        };
        let kind = match event.kind {
            SessionEventKind::RequestRefused => "session.request_refused",
        };
        self.base
            .audit
            .record(Event::new(
                kind,
                host.identity(),
                Outcome::Deny,
                json!({
                    "session": row.id,
                    "identity": row.identity,
                    "channel": event.channel,
                    "request": clip(&event.request),
                    "code": clip(&event.code),
                    "message": clip(&event.message),
                }),
            ))
            .await?;
        Ok(())
    }
}
