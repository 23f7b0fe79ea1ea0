//! One-time sign-in links to the review UI for a user of the CA's host
//! (`shiftkey-ca ui link`), as Jupyter prints one: the break-glass and demo
//! path when no identity provider is at hand. The link signs in
//! `local:USER`, whose powers the policy decides as for anyone else.
//!
//! A link is a random 256-bit token in `{public_url}/ui/link?token=…`; the
//! store keeps only its SHA-256. It is valid for minutes (at most
//! [`MAX_TTL`]), works once, and only from a loopback peer that no proxy
//! stands in front of. Issuing, using and every refused use are audited
//! (`ui.link_issued`, `ui.link_used`, `ui.link_refused`) before the answer.
//! `[ui] local_link = false` turns it off, on both ends.
//!
//! Never: keep or log a token in the clear; sign anyone in from a peer that
//! is not loopback; let a link work twice or after its time; consume a link
//! on a refused peer (its owner can still use it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Needs, SignIn, powers, signed_in_detail};
use super::{UiError, error_page};
use crate::audit::{Audit, Event, Outcome};
use crate::config::UiSettings;
use crate::identity::Caller;
use crate::policy::Policy;
use crate::store::{Redeemed, Store, UiLink};
use crate::web_sessions::{digest, random_token};

/// The longest a link may be valid: long enough to open it, short enough
/// that a link left in a terminal's scrollback is dead.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(15 * 60);

/// A link made: the URL (holding the token, shown once) and when it ends.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) url: String,
    pub(crate) local_user: String,
    pub(crate) expires_at: i64,
}

/// Why no link was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IssueError {
    #[error(
        "the review UI is not configured: add [ui] with public_url to ca.toml (docs/ui.md), then restart the CA"
    )]
    NotConfigured,
    #[error(
        "one-time sign-in links are turned off ([ui] local_link = false in ca.toml)\nhint: sign in through the identity provider at {public_url}/ui/"
    )]
    TurnedOff { public_url: String },
    #[error("only a user of the CA's host gets a sign-in link, not {identity}")]
    NotLocal { identity: String },
    #[error(
        "{identity} may not use the review UI: {why} (this refusal is in the audit log)\nhint: run it as a user the policy names (local:root is always an admin)"
    )]
    NotAllowed { identity: String, why: String },
    #[error("--ttl must be between 1s and {}m, not {}s", MAX_TTL.as_secs() / 60, .0.as_secs())]
    Ttl(Duration),
    #[error("cannot record the link: {0}")]
    Store(#[from] crate::store::Error),
    #[error("cannot audit the link: {0}")]
    Audit(#[from] crate::audit::Error),
}

/// Makes a link for `caller`, a user of the CA's host, if the policy lets
/// them into the UI; audited either way.
pub(crate) async fn issue(
    store: &dyn Store,
    audit: &Audit,
    policy: &Policy,
    settings: Option<&UiSettings>,
    caller: &Caller,
    ttl: Duration,
) -> Result<Issued, IssueError> {
    let settings = settings.ok_or(IssueError::NotConfigured)?;
    let identity = caller.identity();
    let Caller::Local { user, uid } = caller else {
        return Err(IssueError::NotLocal { identity });
    };
    if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
        return Err(IssueError::Ttl(ttl));
    }
    let refuse = |why: &str| {
        Event::new(
            "ui.link_refused",
            identity.clone(),
            Outcome::Deny,
            json!({ "stage": "issue", "why": why }),
        )
    };
    if !settings.local_link {
        audit.record(refuse("local_link = false")).await?;
        return Err(IssueError::TurnedOff {
            public_url: settings.public_url.clone(),
        });
    }
    if !powers(policy, caller).any() {
        let why = policy.powers_denied(&identity, Needs::Any.kinds(), false);
        audit.record(refuse(&why)).await?;
        return Err(IssueError::NotAllowed { identity, why });
    }
    let token = zeroize::Zeroizing::new(random_token());
    let token_hash = digest(&token);
    let now = Utc::now().timestamp();
    let expires_at = now + i64::try_from(ttl.as_secs()).unwrap_or(0);
    store
        .create_ui_link(UiLink {
            token_hash: token_hash.clone(),
            local_user: user.clone(),
            local_uid: *uid,
            created_at: now,
            expires_at,
        })
        .await?;
    audit
        .record(Event::new(
            "ui.link_issued",
            identity,
            Outcome::Info,
            json!({
                "local_user": user,
                "expires_at": expires_at,
                // Names the link in the rows of its use, without the token.
                "link": &token_hash[..16],
            }),
        ))
        .await?;
    Ok(Issued {
        url: format!("{}/ui/link?token={}", settings.public_url, token.as_str()),
        local_user: user.clone(),
        expires_at,
    })
}

#[derive(Deserialize)]
pub(super) struct LinkQuery {
    token: Option<String>,
}

impl std::fmt::Debug for LinkQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkQuery").finish_non_exhaustive()
    }
}

/// Why a use of a link was refused: the page's status, title and words.
fn refused_page(status: StatusCode, title: &str, why: &str) -> Response {
    error_page(
        status,
        title,
        &format!(
            r#"<section class="refused"><h1>{}</h1><p>{}</p><p>On the CA's host, <code>shiftkey-ca ui link</code> prints a new link, valid for a few minutes and for one use, from this machine only. This refusal was written to the audit log.</p></section>"#,
            super::html::esc(title),
            super::html::esc(why)
        ),
    )
}

/// Whether the request reached us directly from this machine: a loopback
/// peer, and no proxy header saying it stands in for someone else.
fn from_loopback(peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<SocketAddr, String> {
    let Some(peer) = peer else {
        return Err("not over TCP".into());
    };
    if !peer.ip().to_canonical().is_loopback() {
        return Err(format!("peer {} is not loopback", peer.ip()));
    }
    for proxied in ["forwarded", "x-forwarded-for", "x-real-ip"] {
        if headers.contains_key(proxied) {
            return Err(format!("a proxy forwarded it ({proxied} header)"));
        }
    }
    Ok(peer)
}

/// `GET /ui/link?token=…`: signs the link's local user in, once.
pub(super) async fn open(
    State(signin): State<Option<Arc<SignIn>>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Query(query): Query<LinkQuery>,
) -> Result<Response, UiError> {
    let signin = signin.ok_or(UiError::NotConfigured)?;
    let audit = signin.audit();
    let peer = peer.map(|axum::Extension(ConnectInfo(addr))| addr);
    let refuse = |identity: String, why: String| async move {
        audit
            .record(Event::new(
                "ui.link_refused",
                identity,
                Outcome::Deny,
                json!({ "stage": "use", "why": why, "peer": peer.map(|p| p.ip().to_string()) }),
            ))
            .await
    };
    if !signin.settings().local_link {
        refuse("anonymous".into(), "local_link = false".into()).await?;
        return Ok(refused_page(
            StatusCode::NOT_FOUND,
            "Sign-in links are turned off",
            "This CA's operators turned one-time sign-in links off ([ui] local_link = false). Sign in through the identity provider instead.",
        ));
    }
    let peer = match from_loopback(peer, &headers) {
        Ok(peer) => peer,
        Err(why) => {
            refuse("anonymous".into(), why).await?;
            return Ok(refused_page(
                StatusCode::FORBIDDEN,
                "Sign-in links work only on the CA's host",
                "A one-time sign-in link is accepted only from the CA's own machine (a loopback address, not through a proxy). The link was not used up.",
            ));
        }
    };
    let token = query.token.unwrap_or_default();
    let now = Utc::now().timestamp();
    let redeemed = if token.len() == 43 {
        signin.sessions().redeem_link(&digest(&token), now).await?
    } else {
        Redeemed::Unknown
    };
    let link = match redeemed {
        Redeemed::Now(link) => link,
        Redeemed::Unknown => {
            refuse("anonymous".into(), "no such link".into()).await?;
            return Ok(refused_page(
                StatusCode::FORBIDDEN,
                "This sign-in link is not valid",
                "The CA made no such link (check that it was copied whole).",
            ));
        }
        Redeemed::AlreadyUsed { link, used_at } => {
            refuse(
                format!("local:{}", link.local_user),
                format!("used before, at {used_at}"),
            )
            .await?;
            return Ok(refused_page(
                StatusCode::GONE,
                "This sign-in link was used already",
                "Each link signs in once. If you did not use it, someone else on this machine did: tell the CA's operators.",
            ));
        }
        Redeemed::Expired(link) => {
            refuse(format!("local:{}", link.local_user), "expired".into()).await?;
            return Ok(refused_page(
                StatusCode::GONE,
                "This sign-in link has expired",
                "Links are valid for a few minutes only.",
            ));
        }
    };
    let caller = Caller::Local {
        user: link.local_user.clone(),
        uid: link.local_uid,
    };
    let identity = caller.identity();
    // The policy may have changed since the link was made.
    let powers = signin.powers(&caller);
    if !powers.any() {
        refuse(identity.clone(), "no power the UI serves".into()).await?;
        return Ok(signin
            .refuse_page(&caller, "/ui/link", Needs::Any)
            .await?
            .into_response());
    }
    audit
        .record(Event::new(
            "ui.link_used",
            identity.clone(),
            Outcome::Allow,
            json!({ "link": &link.token_hash[..16], "peer": peer.ip().to_string() }),
        ))
        .await?;
    audit
        .record(Event::new(
            "ui.signed_in",
            identity,
            Outcome::Info,
            signed_in_detail(powers, "local link"),
        ))
        .await?;
    let ttl = signin.settings().session_ttl;
    let value = signin.sessions().start(&caller, ttl).await?;
    let mut response = super::auth::signed_in_page("/ui/", &value, ttl);
    // The token must not linger in the page's Referer or history cache.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_direct_loopback_peer_may_use_a_link() {
        let none = HeaderMap::new();
        let v4: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        for ok in [v4, v6, mapped] {
            assert!(from_loopback(Some(ok), &none).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.5:5000",
            "192.168.1.2:1",
            "[2001:db8::1]:1",
            "[::ffff:10.0.0.1]:1",
        ] {
            let addr: SocketAddr = bad.parse().unwrap();
            assert!(from_loopback(Some(addr), &none).is_err(), "{bad}");
        }
        assert!(
            from_loopback(None, &none).is_err(),
            "the Unix socket is no browser"
        );
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert!(from_loopback(Some(v4), &proxied).is_err());
    }
}
