//! One person, one subject: `[[person]]` entries tie several identities of
//! one human together (`local:alice` on the CA host, `user:alice@example.com`
//! from the identity provider), and every comparison of subjects in the
//! policy goes through [`People::same`].
//!
//! What "the same person" changes: a list entry naming any identity of a
//! person names all of them (grants, admins, authority, approvers, rotation
//! members), a requester's approvals never count from any identity of the
//! same person, and a fact (incident, override) created by any identity of
//! the requester's person is self-served. Identities not in any
//! `[[person]]` are a person of their own.

use super::identity::Identity;

/// A checked `[[person]]`: a name and at least one identity, each identity
/// in no other person.
#[derive(Clone, Debug)]
pub(crate) struct Person {
    pub(super) name: String,
    /// Canonical `user:` and `local:` identities.
    pub(super) identities: Vec<Identity>,
    /// `file:line:col` of the entry.
    pub(super) origin: String,
}

/// Every declared person.
#[derive(Clone, Debug, Default)]
pub(crate) struct People {
    pub(super) persons: Vec<Person>,
}

impl People {
    /// The declared person `identity` belongs to.
    pub(super) fn of(&self, identity: &Identity) -> Option<&Person> {
        self.persons
            .iter()
            .find(|person| person.identities.contains(identity))
    }

    pub(super) fn named(&self, name: &str) -> Option<&Person> {
        self.persons.iter().find(|person| person.name == name)
    }

    /// Whether two subjects are one person: equal, or in one `[[person]]`.
    pub(super) fn same(&self, a: &Identity, b: &Identity) -> bool {
        a == b
            || self
                .of(a)
                .is_some_and(|person| person.identities.contains(b))
    }

    /// Every identity of `identity`'s person (itself first).
    pub(super) fn identities_of(&self, identity: &Identity) -> Vec<Identity> {
        let mut out = vec![identity.clone()];
        if let Some(person) = self.of(identity) {
            out.extend(person.identities.iter().filter(|i| *i != identity).cloned());
        }
        out
    }

    /// Whether the list entry `entry` names `subject` (who has `groups`).
    pub(super) fn names(&self, entry: &Identity, subject: &Identity, groups: &[String]) -> bool {
        match entry {
            Identity::Group(group) => groups.iter().any(|g| g == group),
            Identity::Person(name) => self
                .named(name)
                .is_some_and(|person| person.identities.contains(subject)),
            one => self.same(one, subject),
        }
    }
}
