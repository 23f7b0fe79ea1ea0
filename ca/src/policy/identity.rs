//! Identities: who asks, who is named in the policy, and the one canonical
//! spelling every comparison uses.
//!
//! [`canonical_identity`] is the only place an identity's spelling is
//! decided: `user:` emails are lowercased (identity providers disagree
//! about case, and `Alice@Example.COM` is the same mailbox), `local:` Unix
//! user names and `group:` names are kept exactly (both are
//! case-sensitive where they come from), `webhook:` sources are
//! lowercased. The policy canonicalises every identity it reads at load and
//! every identity it is asked about, so two spellings of one identity can
//! never be two subjects.
//!
//! `person:NAME` names a `[[person]]` of the policy (several identities of
//! one human); it only appears in policy lists, never as a caller.

use std::fmt;

/// The prefixes an identity may have, for messages.
const KINDS: &str =
    "\"user:EMAIL\", \"local:USER\", \"group:NAME\", \"person:NAME\" or \"webhook:SOURCE\"";

/// An identity that is not in any canonical form: what was wrong and how
/// to write it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidIdentity(pub(crate) String);

/// The canonical spelling of a caller's identity (`user:EMAIL` with the
/// email lowercased, `local:USER`, `webhook:SOURCE` lowercased). Every
/// identity the CA stores or compares goes through here; groups and
/// persons are not callers and are refused.
pub(crate) fn canonical_identity(text: &str) -> Result<String, InvalidIdentity> {
    Identity::parse_subject(text)
        .map(|identity| identity.to_string())
        .map_err(InvalidIdentity)
}

/// Someone or something named by the policy or asking the CA.
///
/// Values are canonical: building one goes through the parsers below.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Identity {
    /// `user:EMAIL`, from the identity provider; the email lowercased.
    User(String),
    /// `group:NAME`, from the identity provider's groups claim; exact.
    Group(String),
    /// `local:USER`, from the CA's Unix socket; exact.
    Local(String),
    /// `webhook:SOURCE`, an alert source authenticated by its secret.
    Webhook(String),
    /// `person:NAME`, a `[[person]]` of the policy.
    Person(String),
}

impl Identity {
    /// Parses any prefixed identity.
    pub(crate) fn parse(text: &str) -> Result<Identity, String> {
        if let Some(email) = text.strip_prefix("user:") {
            check_email(email)?;
            Ok(Identity::User(email.to_ascii_lowercase()))
        } else if let Some(group) = text.strip_prefix("group:") {
            check_group(group)?;
            Ok(Identity::Group(group.to_owned()))
        } else if let Some(user) = text.strip_prefix("local:") {
            check_local_user(user)?;
            Ok(Identity::Local(user.to_owned()))
        } else if let Some(source) = text.strip_prefix("webhook:") {
            check_webhook(source)?;
            Ok(Identity::Webhook(source.to_ascii_lowercase()))
        } else if let Some(name) = text.strip_prefix("person:") {
            check_person(name)?;
            Ok(Identity::Person(name.to_owned()))
        } else if check_email(text).is_ok() {
            Err(format!(
                "identity {text:?} has no prefix; write \"user:{text}\""
            ))
        } else {
            Err(format!("invalid identity {text:?}; write {KINDS}"))
        }
    }

    /// Parses a rotation member or override member: a bare email (meaning
    /// `user:EMAIL`), `user:EMAIL` or `local:USER`. Groups, persons and
    /// webhooks cannot be on call.
    pub(crate) fn parse_member(text: &str) -> Result<Identity, String> {
        if !text.contains(':') {
            check_email(text)?;
            return Ok(Identity::User(text.to_ascii_lowercase()));
        }
        match Identity::parse(text)? {
            Identity::Group(_) => Err(format!(
                "{text:?}: a group cannot be on call; list its members instead"
            )),
            Identity::Person(_) => Err(format!(
                "{text:?}: name one of the person's identities (user:EMAIL or local:USER)"
            )),
            Identity::Webhook(_) => Err(format!("{text:?}: a webhook cannot be on call")),
            person => Ok(person),
        }
    }

    /// Parses the identity of a caller: `user:EMAIL`, `local:USER` or
    /// `webhook:SOURCE` (who asks, who opened an incident, who created an
    /// override).
    pub(crate) fn parse_subject(text: &str) -> Result<Identity, String> {
        match Identity::parse(text)? {
            Identity::Group(_) => Err(format!(
                "{text:?} is a group; a caller is \"user:EMAIL\", \"local:USER\" or \
                 \"webhook:SOURCE\""
            )),
            Identity::Person(_) => Err(format!(
                "{text:?} is a person of the policy; a caller is one of its identities"
            )),
            subject => Ok(subject),
        }
    }

    /// A human's identity: `user:` or `local:`.
    pub(crate) fn is_human(&self) -> bool {
        matches!(self, Identity::User(_) | Identity::Local(_))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::User(email) => write!(f, "user:{email}"),
            Identity::Group(name) => write!(f, "group:{name}"),
            Identity::Local(user) => write!(f, "local:{user}"),
            Identity::Webhook(source) => write!(f, "webhook:{source}"),
            Identity::Person(name) => write!(f, "person:{name}"),
        }
    }
}

fn check_email(email: &str) -> Result<(), String> {
    let bad = || format!("invalid email {email:?}; write e.g. \"alice@example.com\"");
    let Some((local, domain)) = email.split_once('@') else {
        return Err(bad());
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-!#$%&'*/=?^`{|}~".contains(c));
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok && email.len() <= 254 {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Group names come from the identity provider and are matched exactly, so
/// we accept most text, but no control characters, no surrounding blanks.
fn check_group(group: &str) -> Result<(), String> {
    let ok = !group.is_empty()
        && group.chars().count() <= 256
        && group.trim() == group
        && !group.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid group name {group:?}: 1 to 256 characters, no control characters, \
             no leading or trailing blanks"
        ))
    }
}

fn check_local_user(user: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&user.len())
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid local user {user:?}: 1 to 32 characters of A-Z a-z 0-9 . _ -, \
             not starting with '-'"
        ))
    }
}

/// Webhook sources are the CA's own names (`alertmanager`, `pagerduty`).
fn check_webhook(source: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&source.len())
        && source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid webhook source {source:?}: 1 to 64 characters of A-Z a-z 0-9 . _ -"
        ))
    }
}

/// Person names are the policy's own, like role names.
fn check_person(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid person name {name:?}: 1 to 64 characters of A-Z a-z 0-9 . _ -, \
             not starting with '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{Just, Strategy, prop_assert, prop_assert_eq, prop_oneof, proptest};

    use super::{Identity, canonical_identity};

    #[test]
    fn identities() {
        assert_eq!(
            Identity::parse("user:Alice@Example.com").unwrap(),
            Identity::User("alice@example.com".into())
        );
        assert_eq!(
            Identity::parse("group:sre").unwrap(),
            Identity::Group("sre".into())
        );
        assert_eq!(
            Identity::parse("local:root").unwrap(),
            Identity::Local("root".into())
        );
        assert_eq!(
            Identity::parse("webhook:Alertmanager").unwrap(),
            Identity::Webhook("alertmanager".into())
        );
        assert_eq!(
            Identity::parse("person:alice").unwrap(),
            Identity::Person("alice".into())
        );
        assert!(
            Identity::parse("alice@example.com")
                .unwrap_err()
                .contains("user:alice")
        );
        assert!(Identity::parse("users:alice@example.com").is_err());
        assert!(Identity::parse("user:alice").is_err());
        assert!(Identity::parse("user:alice@@example.com").is_err());
        assert!(Identity::parse("group:").is_err());
        assert!(Identity::parse("group: sre").is_err());
        assert!(Identity::parse("local:-rf").is_err());
        assert!(Identity::parse("local:ro ot").is_err());
        assert!(Identity::parse("person:a b").is_err());
        assert!(Identity::parse("webhook:").is_err());
        assert_eq!(
            Identity::parse_member("bob@example.com").unwrap(),
            Identity::User("bob@example.com".into())
        );
        assert!(Identity::parse_member("group:sre").is_err());
        assert!(Identity::parse_member("webhook:pagerduty").is_err());
        assert!(Identity::parse_member("person:bob").is_err());
        assert!(Identity::parse_subject("group:sre").is_err());
        assert!(Identity::parse_subject("person:bob").is_err());
        assert!(Identity::parse_subject("webhook:pagerduty").is_ok());
        assert_eq!(
            Identity::parse("user:a@b.c").unwrap().to_string(),
            "user:a@b.c"
        );
    }

    #[test]
    fn canonical_identities_lowercase_emails_and_keep_local_users() {
        assert_eq!(
            canonical_identity("user:Alice@Example.COM").unwrap(),
            "user:alice@example.com"
        );
        assert_eq!(canonical_identity("local:Alice").unwrap(), "local:Alice");
        assert_eq!(
            canonical_identity("webhook:PagerDuty").unwrap(),
            "webhook:pagerduty"
        );
        let err = canonical_identity("group:sre").unwrap_err().to_string();
        assert!(err.contains("is a group"), "{err}");
        assert!(canonical_identity("Alice@Example.com").is_err());
    }

    /// Emails as identity providers send them: any case, any of the
    /// characters an address may hold.
    fn email() -> impl Strategy<Value = String> {
        (
            "[a-zA-Z0-9._+-]{1,20}",
            "[a-zA-Z0-9]{1,10}(\\.[a-zA-Z0-9]{1,10}){0,3}",
        )
            .prop_map(|(local, domain)| format!("{local}@{domain}"))
    }

    fn any_identity_text() -> impl Strategy<Value = String> {
        prop_oneof![
            email().prop_map(|e| format!("user:{e}")),
            "[a-zA-Z0-9._][a-zA-Z0-9._-]{0,31}".prop_map(|u| format!("local:{u}")),
            "[a-zA-Z0-9._-]{1,20}".prop_map(|s| format!("webhook:{s}")),
            "[a-z]{1,8}:[ -~]{0,30}",
            "[ -~]{0,40}",
            Just("user:".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn canonical_is_idempotent(text in any_identity_text()) {
            if let Ok(once) = canonical_identity(&text) {
                prop_assert_eq!(canonical_identity(&once).unwrap(), once.clone());
                prop_assert_eq!(Identity::parse_subject(&text).unwrap().to_string(), once);
            }
        }

        #[test]
        fn one_mailbox_is_one_identity_whatever_the_case(email in email(), flips in proptest::collection::vec(proptest::bool::ANY, 40)) {
            let spelled: String = email
                .chars()
                .zip(flips.iter().cycle())
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect();
            let a = canonical_identity(&format!("user:{email}")).unwrap();
            let b = canonical_identity(&format!("user:{spelled}")).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.clone(), a.to_ascii_lowercase());
        }

        #[test]
        fn local_users_keep_their_case(user in "[a-z][a-z0-9]{0,10}") {
            let lower = canonical_identity(&format!("local:{user}")).unwrap();
            let upper = canonical_identity(&format!("local:{}", user.to_ascii_uppercase())).unwrap();
            prop_assert!(lower != upper);
        }

        #[test]
        fn canonical_never_panics_and_keeps_its_prefix(text in "\\PC{0,60}") {
            if let Ok(canonical) = canonical_identity(&text) {
                prop_assert!(
                    canonical.starts_with("user:")
                        || canonical.starts_with("local:")
                        || canonical.starts_with("webhook:")
                );
                prop_assert!(!canonical.chars().any(|c| c.is_whitespace() || c.is_control()));
            }
        }
    }
}
