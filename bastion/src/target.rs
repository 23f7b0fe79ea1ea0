//! Target names, in one canonical form everywhere: the `[targets]` lookup,
//! the certificate the bastion presents, what it asks the CA, what it
//! records, and the name the target's host certificate must carry. A name
//! is lowercased and loses a trailing dot (`WEB-1.Example.COM.` is
//! `web-1.example.com`); an IP literal is written as Rust prints it.
//!
//! A port the user asked for is the port the bastion connects to: a
//! `[targets]` entry with another port is a refusal, never a silent swap.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// The SSH port when none is said.
const DEFAULT_PORT: u16 = 22;
/// DNS's limit on a name's length.
const MAX_NAME: usize = 253;

/// Why a target name or route is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TargetError {
    #[error("{0:?} is not a host name or IP address")]
    NotAName(String),
    #[error("{0:?} is not a port number (1-65535)")]
    NotAPort(String),
    #[error("use `ssh 'login%host[:port]@bastion'`: {0:?} has no login or no host")]
    NotSingleHop(String),
    #[error(
        "{name} is at port {listed} in the bastion's [targets], not {asked}; connect to {name}:{listed} (the bastion never swaps a port you asked for)"
    )]
    PortReplaced {
        name: String,
        asked: u16,
        listed: u16,
    },
    #[error("[targets]: {0:?} and another entry are the same name once lowercased")]
    Duplicate(String),
    #[error("[targets]: {name}: {address:?} is not HOST:PORT")]
    BadAddress { name: String, address: String },
}

/// A target's name in canonical form. Only [`TargetName::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TargetName(String);

impl TargetName {
    /// Lowercase, without a trailing dot; a host name (letters, digits,
    /// `-`, `_`, dots between non-empty labels) or an IP literal (IPv6 with
    /// or without brackets).
    pub(crate) fn parse(raw: &str) -> Result<Self, TargetError> {
        let refuse = || TargetError::NotAName(raw.chars().take(MAX_NAME).collect());
        let unbracketed = raw
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(raw);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Self(ip.to_string()));
        }
        let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || name.len() > MAX_NAME || !name.split('.').all(label_ok) {
            return Err(refuse());
        }
        Ok(Self(name))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    fn is_ipv6(&self) -> bool {
        self.0.contains(':')
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the bastion connects for a session: the canonical name (what the
/// CA authorizes and the target's certificate must name), the port, and
/// the address to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) name: TargetName,
    pub(crate) port: u16,
    pub(crate) dial: String,
}

impl Route {
    /// `name:port` as the CA and the recordings show it.
    pub(crate) fn label(&self) -> String {
        if self.name.is_ipv6() {
            format!("[{}]:{}", self.name, self.port)
        } else {
            format!("{}:{}", self.name, self.port)
        }
    }
}

/// `[targets]`: fixed addresses for names, keyed by canonical name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Targets(BTreeMap<TargetName, (String, u16)>);

impl Targets {
    /// Checks and canonicalizes the configuration's table.
    pub(crate) fn from_config(raw: &BTreeMap<String, String>) -> Result<Self, TargetError> {
        let mut targets = BTreeMap::new();
        for (name, address) in raw {
            let key = TargetName::parse(name)?;
            let bad = || TargetError::BadAddress {
                name: name.clone(),
                address: address.clone(),
            };
            let (host, port) = split_host_port(address).map_err(|_| bad())?;
            if host.is_empty() {
                return Err(bad());
            }
            let port = port.unwrap_or(DEFAULT_PORT);
            if targets.insert(key, (host.to_owned(), port)).is_some() {
                return Err(TargetError::Duplicate(name.clone()));
            }
        }
        Ok(Self(targets))
    }

    /// The route to `name`; `asked` is the port the user named (None when
    /// the single-hop form named none).
    pub(crate) fn route(&self, name: TargetName, asked: Option<u16>) -> Result<Route, TargetError> {
        match self.0.get(&name) {
            Some((host, listed)) => {
                if let Some(asked) = asked
                    && asked != *listed
                {
                    return Err(TargetError::PortReplaced {
                        name: name.0,
                        asked,
                        listed: *listed,
                    });
                }
                let dial = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]:{listed}")
                } else {
                    format!("{host}:{listed}")
                };
                Ok(Route {
                    name,
                    port: *listed,
                    dial,
                })
            }
            None => {
                let port = asked.unwrap_or(DEFAULT_PORT);
                let dial = if name.is_ipv6() {
                    format!("[{name}]:{port}")
                } else {
                    format!("{name}:{port}")
                };
                Ok(Route { name, port, dial })
            }
        }
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` (a bare IPv6 literal has no port).
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), TargetError> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| TargetError::NotAPort(p.chars().take(16).collect()))
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| TargetError::NotAName(text.to_owned()))?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host, Some(port(p)?))),
                None => Err(TargetError::NotAName(text.to_owned())),
            },
        };
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Ok((text, None)),
        Some((host, p)) => Ok((host, Some(port(p)?))),
        None => Ok((text, None)),
    }
}

/// The single-hop user name `login%host[:port]`: the login, the target's
/// name and the port if one was named.
pub(crate) fn parse_single_hop(
    user: &str,
) -> Result<(String, TargetName, Option<u16>), TargetError> {
    let (login, target) = user
        .split_once('%')
        .ok_or_else(|| TargetError::NotSingleHop(user.chars().take(64).collect()))?;
    let (host, port) = split_host_port(target)?;
    if login.is_empty() || host.is_empty() {
        return Err(TargetError::NotSingleHop(user.chars().take(64).collect()));
    }
    Ok((login.to_owned(), TargetName::parse(host)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TargetName {
        TargetName::parse(s).unwrap()
    }

    #[test]
    fn names_have_one_canonical_form() {
        assert_eq!(name("WEB-1.Example.COM.").as_str(), "web-1.example.com");
        assert_eq!(name("db_2.internal").as_str(), "db_2.internal");
        assert_eq!(name("127.0.0.1").as_str(), "127.0.0.1");
        assert_eq!(name("[::1]").as_str(), "::1");
        assert_eq!(name("0:0:0:0:0:0:0:1").as_str(), "::1");
        for bad in [
            "",
            ".",
            "a..b",
            "a b",
            "a/b",
            "évil.example",
            "a:b",
            "-x.",
            &"a".repeat(300),
        ] {
            assert!(TargetName::parse(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn a_listed_target_keeps_its_port_and_refuses_another() {
        let raw = BTreeMap::from([("Web-1.Test".to_owned(), "10.0.0.5:2200".to_owned())]);
        let targets = Targets::from_config(&raw).unwrap();
        let route = targets.route(name("web-1.test."), None).unwrap();
        assert_eq!(route.dial, "10.0.0.5:2200");
        assert_eq!(route.label(), "web-1.test:2200");
        assert!(targets.route(name("WEB-1.TEST"), Some(2200)).is_ok());
        assert_eq!(
            targets.route(name("web-1.test"), Some(80)),
            Err(TargetError::PortReplaced {
                name: "web-1.test".into(),
                asked: 80,
                listed: 2200
            })
        );
        // Not listed: the name and port as asked (DNS decides).
        let route = targets.route(name("db-1.prod"), Some(2222)).unwrap();
        assert_eq!(route.dial, "db-1.prod:2222");
        let route = targets.route(name("::1"), None).unwrap();
        assert_eq!(
            (route.dial.as_str(), route.label()),
            ("[::1]:22", "[::1]:22".into())
        );
    }

    #[test]
    fn targets_that_collide_once_lowercased_are_refused() {
        let raw = BTreeMap::from([
            ("a.test".to_owned(), "10.0.0.1:22".to_owned()),
            ("A.TEST.".to_owned(), "10.0.0.2:22".to_owned()),
        ]);
        assert!(matches!(
            Targets::from_config(&raw),
            Err(TargetError::Duplicate(_))
        ));
        let raw = BTreeMap::from([("a.test".to_owned(), "10.0.0.1:x".to_owned())]);
        assert!(Targets::from_config(&raw).is_err());
        let raw = BTreeMap::from([("a.test".to_owned(), "[2001:db8::1]:2022".to_owned())]);
        let t = Targets::from_config(&raw).unwrap();
        assert_eq!(
            t.route(name("a.test"), None).unwrap().dial,
            "[2001:db8::1]:2022"
        );
    }

    #[test]
    fn the_single_hop_user_is_split_into_login_host_and_port() {
        assert_eq!(
            parse_single_hop("postgres%DB-1.prod.:2222").unwrap(),
            ("postgres".into(), name("db-1.prod"), Some(2222))
        );
        assert_eq!(
            parse_single_hop("ops%[::1]:22").unwrap(),
            ("ops".into(), name("::1"), Some(22))
        );
        assert_eq!(
            parse_single_hop("ops%host").unwrap(),
            ("ops".into(), name("host"), None)
        );
        for bad in [
            "ops",
            "%host",
            "ops%",
            "ops%host:0",
            "ops%host:99999",
            "ops%ho st",
        ] {
            assert!(parse_single_hop(bad).is_err(), "{bad:?} was taken");
        }
    }
}
