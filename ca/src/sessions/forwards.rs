//! `POST /v1/sessions/{session}/forwards`: whether a live session may
//! forward a TCP connection (`ssh -L` on the inner hop) to a destination.
//!
//! The target's sshd makes that connection, so a forward reaches whatever
//! the target can reach. The CA decides it as it decides a session: the
//! session's role as the policy says now must allow port forwarding
//! (`permit-port-forwarding` in its `extensions`) and cover the destination
//! with its `hosts` and `ports`; `localhost` and loopback addresses name the
//! session's own target (the target's loopback is the target). The person
//! must not be locked out. Allowed or refused, the decision is audited
//! before the answer leaves; the bastion opens nothing upstream without it.

use std::net::IpAddr;

use serde_json::json;
use shiftkey_wire::{ForwardGrant, ForwardRequest};

use super::{Error, Refusal, Sessions, clip, refusal};
use crate::audit::{Event, Outcome};
use crate::hosts::{EnrolledHost, HostKind, canonical_target};
use crate::policy::Target;
use crate::store::{self, SessionStatus};

/// The certificate extension (and role extension) that allows forwards.
const PORT_FORWARDING: &str = "permit-port-forwarding";

impl Sessions {
    /// Checks, audits and answers one forward of `session_id`.
    pub(crate) async fn authorize_forward(
        &self,
        bastion: &EnrolledHost,
        session_id: &str,
        request: ForwardRequest,
    ) -> Result<ForwardGrant, Error> {
        let detail = json!({
            "bastion": bastion.name,
            "session": clip(session_id),
            "channel": request.channel,
            "destination_as_asked": format!("{}:{}", clip(&request.host), request.port),
        });
        match self.check_forward(bastion, session_id, &request).await {
            Ok((identity, destination)) => {
                let mut detail = detail;
                detail["destination"] = json!(destination);
                self.base
                    .audit
                    .record(Event::new(
                        "session.forward",
                        identity,
                        Outcome::Allow,
                        detail,
                    ))
                    .await?;
                Ok(ForwardGrant { destination })
            }
            Err(refusal) => Err(self
                .deny_as("session.forward_denied", bastion, refusal, detail)
                .await),
        }
    }

    /// The identity the forward is for and its destination as checked.
    async fn check_forward(
        &self,
        bastion: &EnrolledHost,
        session_id: &str,
        request: &ForwardRequest,
    ) -> Result<(String, String), Refusal> {
        let unavailable =
            |_: store::Error| refusal("store-unavailable", "the CA cannot read its store");
        if bastion.kind != HostKind::Bastion {
            return Err(refusal(
                "not-a-bastion",
                "only enrolled bastions run sessions",
            ));
        }
        let session = self
            .base
            .store
            .session(session_id)
            .await
            .map_err(unavailable)?
            .filter(|s| s.bastion == bastion.name)
            .ok_or_else(|| refusal("session-unknown", "this bastion runs no such session"))?;
        let with_identity = |code, message: String| Refusal {
            code,
            message,
            identity: Some(session.identity.clone()),
        };
        if session.status != SessionStatus::Live {
            return Err(with_identity(
                "session-ended",
                format!("session {} is {}", session.id, session.status.as_str()),
            ));
        }
        let policy = self.base.policy.get();
        if let Some(reason) =
            crate::authority::person_lock(self.base.store.as_ref(), &policy, &session.identity)
                .await
                .map_err(unavailable)?
        {
            return Err(with_identity(
                "identity-locked",
                format!("an operator locked this identity out: {reason}"),
            ));
        }
        let role = policy.role(&session.role).ok_or_else(|| {
            with_identity(
                "role-gone",
                format!("the role {:?} is no longer in the policy", session.role),
            )
        })?;
        if !role.extensions().iter().any(|e| e == PORT_FORWARDING) {
            return Err(with_identity(
                "port-forwarding-not-permitted",
                format!("role {:?} does not permit port forwarding", session.role),
            ));
        }
        let host = if names_loopback(&request.host) {
            session_host(&session.target).to_owned()
        } else {
            canonical_target(&request.host)
        };
        let allowed = policy
            .check_target(&session.role, &host, request.port)
            .map_err(|denied| {
                with_identity(
                    denied.code.as_str(),
                    format!(
                        "forward to {}:{}: {}",
                        clip(&host),
                        request.port,
                        denied.message
                    ),
                )
            })?;
        let destination = match allowed.target() {
            Target::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{}", allowed.port()),
            target => format!("{target}:{}", allowed.port()),
        };
        Ok((session.identity, destination))
    }
}

/// `localhost` and loopback addresses: on the target, the target itself.
fn names_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The host of a session's `host:port` target (IPv6 without brackets).
fn session_host(target: &str) -> &str {
    target.rsplit_once(':').map_or(target, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::{names_loopback, session_host};

    #[test]
    fn loopback_names_mean_the_target() {
        for host in [
            "localhost",
            "LOCALHOST.",
            "127.0.0.1",
            "127.3.2.1",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
        ] {
            assert!(names_loopback(host), "{host}");
        }
        for host in ["localhost.evil.example", "10.0.0.1", "::2", "db-1", ""] {
            assert!(!names_loopback(host), "{host}");
        }
    }

    #[test]
    fn the_host_of_a_session_target() {
        assert_eq!(session_host("db-1.example:22"), "db-1.example");
        assert_eq!(session_host("::1:2222"), "::1");
        assert_eq!(session_host("127.0.0.1:22"), "127.0.0.1");
    }
}
