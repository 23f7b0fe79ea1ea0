//! Who is asking: the caller of an API request, once authenticated.
//!
//! Two ways in: an OIDC ID token over HTTPS (`user:EMAIL` plus the token's
//! groups), or the CA's local Unix socket, where the kernel tells us the peer's
//! uid (`local:USER`). Nothing else becomes a `Caller`, except an incoming
//! webhook that `http::webhooks` authenticated by its shared secret
//! (`webhook:SOURCE`), which may only open and resolve incidents.

use std::fmt;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Authenticated by a verified OIDC ID token.
    User { email: String, groups: Vec<String> },
    /// Connected to the local socket; identity from `SO_PEERCRED`.
    Local { user: String, uid: u32 },
    /// An incoming webhook (`alertmanager`, `pagerduty`), authenticated by
    /// its shared secret. Only `http::webhooks` builds one, and only to open
    /// and resolve incidents: it holds no role and never asks for a certificate.
    Webhook { source: &'static str },
}

impl Caller {
    /// A caller from an ID token's email and groups, the email in its one
    /// canonical spelling ([`crate::policy::canonical_identity`]: identity
    /// providers disagree about case). None when the email cannot be an
    /// identity.
    pub(crate) fn user(email: &str, groups: Vec<String>) -> Option<Caller> {
        let identity = crate::policy::canonical_identity(&format!("user:{email}")).ok()?;
        let email = identity.strip_prefix("user:")?.to_owned();
        is_safe_token(&email).then_some(Caller::User { email, groups })
    }

    /// The identity as grants name it: `user:alice@example.com`, `local:root`.
    pub(crate) fn identity(&self) -> String {
        match self {
            Caller::User { email, .. } => format!("user:{email}"),
            Caller::Local { user, .. } => format!("local:{user}"),
            Caller::Webhook { source } => format!("webhook:{source}"),
        }
    }

    pub(crate) fn groups(&self) -> &[String] {
        match self {
            Caller::User { groups, .. } => groups,
            Caller::Local { .. } | Caller::Webhook { .. } => &[],
        }
    }

    /// How the caller appears first in a certificate's key ID.
    pub(crate) fn key_id_subject(&self) -> String {
        match self {
            Caller::User { email, .. } => email.clone(),
            Caller::Local { user, .. } => format!("local:{user}"),
            Caller::Webhook { source } => format!("webhook:{source}"),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.identity())
    }
}

/// True when `s` can sit in a key ID or audit field without being able to
/// forge structure: no whitespace, no control characters, no `=` or `,`.
pub(crate) fn is_safe_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '=' && c != ',' && c != '\0')
}

/// The user name for a uid, from the system's user database.
pub(crate) fn local_user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_spelled_as_grants_name_them() {
        let user = Caller::User {
            email: "alice@example.com".into(),
            groups: vec!["sre".into()],
        };
        assert_eq!(user.identity(), "user:alice@example.com");
        assert_eq!(user.key_id_subject(), "alice@example.com");
        let local = Caller::Local {
            user: "root".into(),
            uid: 0,
        };
        assert_eq!(local.identity(), "local:root");
        assert_eq!(local_user_name(0).as_deref(), Some("root"));
        let webhook = Caller::Webhook {
            source: "pagerduty",
        };
        assert_eq!(webhook.identity(), "webhook:pagerduty");
        assert!(webhook.groups().is_empty());
    }

    #[test]
    fn token_emails_become_one_canonical_identity() {
        let caller = Caller::user("Alice@Example.COM", vec!["SRE".into()]).unwrap();
        assert_eq!(caller.identity(), "user:alice@example.com");
        assert_eq!(caller.key_id_subject(), "alice@example.com");
        // Group names are the identity provider's, exactly.
        assert_eq!(caller.groups(), ["SRE".to_owned()]);
        for bad in [
            "",
            "alice",
            "a b@example.com",
            "alice@exa,mple.com",
            "ä@example.com",
        ] {
            assert!(Caller::user(bad, Vec::new()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn unsafe_tokens_are_refused() {
        for bad in ["", "a b", "a,b", "a\nb", "a\0b", "role=x", "tab\there"] {
            assert!(!is_safe_token(bad), "{bad:?}");
        }
        assert!(is_safe_token("alice@example.com"));
    }
}
