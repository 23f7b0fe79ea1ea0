//! What one client may hold, and the one place each limit is checked:
//! connections not yet authenticated and channels open at once per source
//! address (OpenSSH's MaxStartups idea, per address), session channels
//! open at once per connection (OpenSSH's MaxSessions) and channels over a
//! connection's whole life (recording file names carry the channel
//! number). An admission is a guard that gives its place back when
//! dropped; a refusal names its reason for the metrics and the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::Limits;

/// Why a connection or channel was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error(
        "{0} connections from this address are not authenticated yet ([limits] max_startups_per_source)"
    )]
    StartupsPerSource(u32),
    #[error("{0} channels are open from this address ([limits] max_channels_per_source)")]
    ChannelsPerSource(u32),
    #[error("{0} session channels are open on this connection ([limits] max_sessions)")]
    MaxSessions(u32),
    #[error(
        "this connection has opened {0} channels, its limit ([limits] max_channels_per_connection); open a new connection"
    )]
    ChannelsPerConnection(u32),
}

impl Refused {
    /// The metrics label.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Refused::StartupsPerSource(_) => "startups-per-source",
            Refused::ChannelsPerSource(_) => "channels-per-source",
            Refused::MaxSessions(_) => "max-sessions",
            Refused::ChannelsPerConnection(_) => "channels-per-connection",
        }
    }
}

/// Counts per source address, shared by every connection.
#[derive(Debug)]
pub(crate) struct Sources {
    limits: Limits,
    startups: Arc<Table>,
    channels: Arc<Table>,
}

#[derive(Debug, Default)]
struct Table(Mutex<HashMap<IpAddr, u32>>);

impl Table {
    fn take(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<Slot> {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            table: Arc::clone(self),
            ip,
        })
    }

    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> u32 {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }
}

/// A place in a per-address count, given back on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    table: Arc<Table>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .table
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// IPv4 clients seen through an IPv6 socket count as their IPv4 address.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Sources {
    pub(crate) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            startups: Arc::default(),
            channels: Arc::default(),
        })
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A connection from `ip` that has not authenticated yet; the slot is
    /// dropped once it has.
    pub(crate) fn startup(&self, ip: IpAddr) -> Result<Slot, Refused> {
        let max = self.limits.max_startups_per_source;
        self.startups
            .take(source(ip), max)
            .ok_or(Refused::StartupsPerSource(max))
    }

    fn channel(&self, ip: IpAddr) -> Result<Slot, Refused> {
        let max = self.limits.max_channels_per_source;
        self.channels
            .take(source(ip), max)
            .ok_or(Refused::ChannelsPerSource(max))
    }

    /// Channels open from `ip` now.
    #[cfg(test)]
    pub(crate) fn channels_open(&self, ip: IpAddr) -> u32 {
        self.channels.count(source(ip))
    }
}

/// What kind of channel a connection opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelKind {
    /// A session channel (shell, exec, sftp): counts against `max_sessions`.
    Session,
    /// A direct-tcpip channel (`-J`'s inner hop, or `-L`).
    Forward,
}

/// One connection's channels.
#[derive(Debug)]
pub(crate) struct Channels {
    client: IpAddr,
    sessions_open: Arc<AtomicU32>,
    opened: u32,
}

/// Proof that a channel was admitted: its number on the connection (from
/// 1, at most `max_channels_per_connection`) and its places in the counts.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) number: u32,
    _source: Slot,
    _session: Option<SessionSlot>,
}

#[derive(Debug)]
struct SessionSlot(Arc<AtomicU32>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Channels {
    pub(crate) fn new(client: IpAddr) -> Self {
        Self {
            client,
            sessions_open: Arc::default(),
            opened: 0,
        }
    }

    /// Admits one more channel of `kind`, or says which limit stops it.
    pub(crate) fn admit(
        &mut self,
        sources: &Sources,
        kind: ChannelKind,
    ) -> Result<Admitted, Refused> {
        let limits = sources.limits();
        if self.opened >= limits.max_channels_per_connection {
            return Err(Refused::ChannelsPerConnection(
                limits.max_channels_per_connection,
            ));
        }
        let session = match kind {
            ChannelKind::Session => {
                let open = self.sessions_open.fetch_add(1, Ordering::AcqRel);
                let slot = SessionSlot(Arc::clone(&self.sessions_open));
                if open >= limits.max_sessions {
                    return Err(Refused::MaxSessions(limits.max_sessions));
                }
                Some(slot)
            }
            ChannelKind::Forward => None,
        };
        let source = sources.channel(self.client)?;
        self.opened += 1;
        Ok(Admitted {
            number: self.opened,
            _source: source,
            _session: session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> Limits {
        Limits {
            max_sessions: 2,
            max_channels_per_connection: 5,
            max_channels_per_source: 3,
            max_startups_per_source: 2,
            login_grace_time: Duration::from_secs(1),
            max_recording_size: 1,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn startups_are_counted_per_address_and_given_back() {
        let s = Sources::new(limits());
        let one = s.startup(A).unwrap();
        let _two = s.startup(A).unwrap();
        assert_eq!(s.startup(A).unwrap_err(), Refused::StartupsPerSource(2));
        assert!(s.startup(B).is_ok(), "another address has its own count");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(
            s.startup(mapped).is_err(),
            "IPv4-mapped is the same address"
        );
        drop(one);
        assert!(s.startup(A).is_ok());
    }

    #[test]
    fn session_channels_are_capped_at_once_and_all_channels_over_a_life() {
        let s = Sources::new(Limits {
            max_channels_per_source: 100,
            ..limits()
        });
        let mut c = Channels::new(A);
        let first = c.admit(&s, ChannelKind::Session).unwrap();
        assert_eq!(first.number, 1);
        let _second = c.admit(&s, ChannelKind::Session).unwrap();
        assert_eq!(
            c.admit(&s, ChannelKind::Session).unwrap_err(),
            Refused::MaxSessions(2)
        );
        // A refused open takes no number and no place.
        let forward = c.admit(&s, ChannelKind::Forward).unwrap();
        assert_eq!(forward.number, 3);
        drop(first);
        let again = c.admit(&s, ChannelKind::Session).unwrap();
        assert_eq!(again.number, 4);
        drop(again);
        let _fifth = c.admit(&s, ChannelKind::Session).unwrap();
        assert_eq!(
            c.admit(&s, ChannelKind::Forward).unwrap_err(),
            Refused::ChannelsPerConnection(5)
        );
    }

    #[test]
    fn channels_from_one_address_are_capped_across_connections() {
        let s = Sources::new(limits());
        let mut one = Channels::new(A);
        let mut two = Channels::new(A);
        let _a = one.admit(&s, ChannelKind::Forward).unwrap();
        let _b = two.admit(&s, ChannelKind::Forward).unwrap();
        let c = two.admit(&s, ChannelKind::Session).unwrap();
        assert_eq!(s.channels_open(A), 3);
        assert_eq!(
            one.admit(&s, ChannelKind::Session).unwrap_err(),
            Refused::ChannelsPerSource(3)
        );
        drop(c);
        assert!(one.admit(&s, ChannelKind::Session).is_ok());
        assert!(Channels::new(B).admit(&s, ChannelKind::Session).is_ok());
    }
}
