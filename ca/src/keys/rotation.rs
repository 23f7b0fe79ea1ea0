//! CA key rotation, phase by phase (`shiftkey-ca keys rotate|activate|
//! retire|status`): each phase reads the store's key rows, checks what it
//! may do, and commits its change with its audit row (which is also its
//! event on `/v1/events`, so every replica reloads its signers).
//!
//! Phases: `rotate` makes the next key (a file under `keys/`, or on the
//! token when the active key is a PKCS#11 key) and publishes it beside the
//! active one; `activate` makes it sign (the old key stays published as
//! `previous`); `retire` stops publishing the previous key, refused while a
//! certificate it signed can still be valid unless forced; the emergency
//! rotation does all three at once and revokes everything the old key
//! signed (the KRL names the key).
//!
//! Never: overwrite or delete a key; retire the active key; commit a phase
//! without its audit row.
//!
//! Command code: anyhow is the error type here, as in `cli.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use ssh_key::{Certificate, HashAlg};

use super::{CaKind, KeySettings};
use crate::audit::{Audit, Event, Outcome};
use crate::clock::unix_now;
use crate::secret::Secret;
use crate::signer::{self, CaSigner, KeyLocation, Provenance};
use crate::store::{Change, KeyPhase, KeyState, Store, StoredCaKey};

/// Audit row (and event) kinds of the phases.
pub(crate) const ROTATED: &str = "ca_key.rotated";
pub(crate) const ACTIVATED: &str = "ca_key.activated";
pub(crate) const RETIRED: &str = "ca_key.retired";
pub(crate) const REFUSED: &str = "ca_key.refused";

/// How many numbered names `rotate` tries for the next key before giving up.
const MAX_NAME_TRIES: u32 = 100;

/// What the rotation commands work on.
pub(crate) struct Rotation {
    store: Arc<dyn Store>,
    audit: Audit,
    actor: String,
    data_dir: PathBuf,
    settings: KeySettings,
    passphrase: Option<Secret>,
}

/// One key as `keys status` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KeyView {
    pub(crate) kind: String,
    pub(crate) state: &'static str,
    pub(crate) fingerprint: String,
    pub(crate) location: String,
    pub(crate) created_at: Option<i64>,
    pub(crate) activated_at: Option<i64>,
    pub(crate) retired_at: Option<i64>,
    pub(crate) revoked: bool,
}

/// An enrolled host that has not reported a published user CA key.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Lagging {
    pub(crate) host: String,
    /// Published user CA keys (fingerprints) the host did not report.
    pub(crate) missing: Vec<String>,
    /// When it last reported (unix seconds); none: never since enrolling.
    pub(crate) reported_at: Option<i64>,
}

/// `keys status`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Status {
    pub(crate) keys: Vec<KeyView>,
    /// Hosts that have not installed every published user CA key.
    pub(crate) lagging: Vec<Lagging>,
}

/// What a phase did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PhaseResult {
    pub(crate) phase: &'static str,
    pub(crate) kind: &'static str,
    /// The key that signs after the phase.
    pub(crate) active: String,
    /// The key made, activated or retired.
    pub(crate) key: String,
    pub(crate) location: String,
    /// Hosts that had not picked up the next user key (activate).
    pub(crate) lagging: Vec<Lagging>,
    /// Certificates of the retired key still valid (forced or emergency).
    pub(crate) still_valid: usize,
    pub(crate) audit_seq: u64,
}

impl Rotation {
    pub(crate) async fn open(
        data_dir: &Path,
        config: Option<&Path>,
        passphrase: Option<Secret>,
    ) -> anyhow::Result<Self> {
        let store =
            crate::config::open_store(data_dir, config, crate::store::Access::ReadWrite).await?;
        let settings = crate::config::key_settings(data_dir, config)?;
        let uid = nix::unistd::Uid::current().as_raw();
        let user = crate::identity::local_user_name(uid).unwrap_or_else(|| uid.to_string());
        Ok(Self {
            audit: Audit::start(Arc::clone(&store)),
            store,
            actor: format!("local:{user}"),
            data_dir: data_dir.to_owned(),
            settings,
            passphrase,
        })
    }

    /// The key ca.toml names for `kind`, opened (to read its public key).
    async fn configured(&self, kind: CaKind) -> anyhow::Result<CaSigner> {
        let data_dir = self.data_dir.clone();
        let location = self.settings.location(kind).clone();
        let options = self.settings.pkcs11_options();
        let passphrase = self.secret();
        tokio::task::spawn_blocking(move || {
            signer::open(&data_dir, kind, &location, passphrase.as_ref(), &options)
        })
        .await
        .context("the key thread stopped")?
        .with_context(|| format!("cannot open the {} CA key ca.toml names", kind.as_str()))
    }

    fn secret(&self) -> Option<Secret> {
        self.passphrase
            .as_ref()
            .map(|p| Secret::new(p.expose().to_owned()))
    }

    /// The kind's rows, and its active key (recorded, or the configured
    /// one as a row not yet stored).
    async fn rows(&self, kind: CaKind) -> anyhow::Result<(Vec<StoredCaKey>, StoredCaKey)> {
        let rows: Vec<StoredCaKey> = self
            .store
            .ca_keys()
            .await?
            .into_iter()
            .filter(|r| r.kind == kind.as_str())
            .collect();
        let active = match rows.iter().find(|r| r.state == KeyState::Active) {
            Some(row) => row.clone(),
            None => {
                let signer = self.configured(kind).await?;
                StoredCaKey {
                    fingerprint: signer.fingerprint().to_owned(),
                    kind: kind.as_str().to_owned(),
                    state: KeyState::Active,
                    public_line: signer.public_line().to_owned(),
                    location: signer.location().to_string(),
                    created_at: 0,
                    activated_at: None,
                    retired_at: None,
                    revoked: false,
                }
            }
        };
        Ok((rows, active))
    }

    pub(crate) async fn status(&self) -> anyhow::Result<Status> {
        let mut keys = Vec::new();
        for kind in [CaKind::User, CaKind::Host] {
            let (rows, active) = self.rows(kind).await?;
            if rows.is_empty() {
                keys.push(view(&active, false));
            }
            keys.extend(rows.iter().map(|r| view(r, true)));
        }
        let lagging = self.lagging().await?;
        Ok(Status { keys, lagging })
    }

    /// Enrolled hosts (not bastions: they follow on their own) whose last
    /// report lacks a published user CA key.
    async fn lagging(&self) -> anyhow::Result<Vec<Lagging>> {
        let (rows, active) = self.rows(CaKind::User).await?;
        let mut published: Vec<String> = vec![active.fingerprint.clone()];
        published.extend(
            rows.iter()
                .filter(|r| r.state.published() && r.state != KeyState::Active)
                .map(|r| r.fingerprint.clone()),
        );
        let reports = self.store.host_ca_reports().await?;
        let mut lagging = Vec::new();
        for host in self.store.hosts().await? {
            if host.kind != "host" {
                continue;
            }
            let report = reports.iter().find(|r| r.name == host.name);
            let missing: Vec<String> = published
                .iter()
                .filter(|fp| report.is_none_or(|r| !r.fingerprints.contains(fp)))
                .cloned()
                .collect();
            if !missing.is_empty() {
                lagging.push(Lagging {
                    host: host.name,
                    missing,
                    reported_at: report.map(|r| r.reported_at),
                });
            }
        }
        Ok(lagging)
    }

    /// A refusal, audited before it is answered.
    async fn refuse(
        &self,
        phase: &'static str,
        kind: CaKind,
        message: String,
    ) -> anyhow::Result<anyhow::Error> {
        self.audit
            .record(Event::new(
                REFUSED,
                self.actor.clone(),
                Outcome::Deny,
                json!({ "phase": phase, "kind": kind.as_str(), "reason": message }),
            ))
            .await?;
        Ok(anyhow::anyhow!(message))
    }

    /// What `rotate` would do, for its confirmation: the kind's active key
    /// and that no rotation is under way.
    pub(crate) async fn check_rotate(&self, kind: CaKind) -> anyhow::Result<StoredCaKey> {
        let (rows, active) = self.rows(kind).await?;
        if let Some(pending) = rows
            .iter()
            .find(|r| matches!(r.state, KeyState::Next | KeyState::Previous))
        {
            let message = format!(
                "a {} CA rotation is under way: key {} is {}\nhint: finish it first (`shiftkey-ca keys {} --{}`), see `shiftkey-ca keys status`",
                kind.as_str(),
                pending.fingerprint,
                pending.state.as_str(),
                if pending.state == KeyState::Next {
                    "activate"
                } else {
                    "retire"
                },
                kind.as_str()
            );
            return Err(self.refuse("rotate", kind, message).await?);
        }
        Ok(active)
    }

    /// Makes the next key and publishes it beside the active one.
    pub(crate) async fn rotate(&self, kind: CaKind) -> anyhow::Result<PhaseResult> {
        let active = self.check_rotate(kind).await?;
        let current: KeyLocation = active
            .location
            .parse()
            .with_context(|| format!("the active key's location {}", active.location))?;
        let signer = self.create_next(kind, &current).await?;
        let now = unix_now_i64();
        let current_row = StoredCaKey {
            created_at: if active.created_at == 0 {
                now
            } else {
                active.created_at
            },
            activated_at: active.activated_at.or(Some(now)),
            ..active.clone()
        };
        let next = StoredCaKey {
            fingerprint: signer.fingerprint().to_owned(),
            kind: kind.as_str().to_owned(),
            state: KeyState::Next,
            public_line: signer.public_line().to_owned(),
            location: signer.location().to_string(),
            created_at: now,
            activated_at: None,
            retired_at: None,
            revoked: false,
        };
        let seq = self
            .audit
            .record_change(
                Event::new(
                    ROTATED,
                    self.actor.clone(),
                    Outcome::Info,
                    json!({ "kind": kind.as_str(), "next": next.fingerprint,
                            "location": next.location, "active": active.fingerprint }),
                ),
                Change::KeyPhase(KeyPhase::Rotate {
                    current: Box::new(current_row),
                    next: Box::new(next.clone()),
                }),
            )
            .await
            .context("cannot record the next key")?;
        Ok(PhaseResult {
            phase: "rotate",
            kind: kind.as_str(),
            active: active.fingerprint,
            key: next.fingerprint,
            location: next.location,
            lagging: Vec::new(),
            still_valid: 0,
            audit_seq: seq,
        })
    }

    /// Creates the next key beside the active one: `keys/user_ca-N` for key
    /// files, object `LABEL-N` on the active key's token.
    async fn create_next(&self, kind: CaKind, current: &KeyLocation) -> anyhow::Result<CaSigner> {
        let data_dir = self.data_dir.clone();
        let current = current.clone();
        let options = self.settings.pkcs11_options();
        let algorithm = self.settings.algorithm;
        let passphrase = self.secret();
        tokio::task::spawn_blocking(move || -> anyhow::Result<CaSigner> {
            for n in 2..2 + MAX_NAME_TRIES {
                let location = next_location(kind, &current, n)?;
                if let KeyLocation::NamedFile(name) = &location
                    && signer::file::named_path(&data_dir, name).exists()
                {
                    continue;
                }
                let (signer, provenance) = signer::ensure(
                    &data_dir,
                    kind,
                    &location,
                    match location {
                        KeyLocation::Pkcs11(_) => algorithm,
                        _ => signer::KeyAlgorithm::Ed25519,
                    },
                    passphrase.as_ref(),
                    &options,
                )
                .with_context(|| format!("cannot create the next key at {location}"))?;
                // A key that was already on the token is someone else's (or
                // an earlier attempt's): never adopt it, take the next name.
                if provenance == Provenance::Created {
                    return Ok(signer);
                }
            }
            bail!("no free name for the next key after {MAX_NAME_TRIES} tries; clean up keys/ or the token")
        })
        .await
        .context("the key thread stopped")?
    }

    /// Makes the next key sign; returns the hosts that have not picked it
    /// up (the caller warned about them before confirming).
    pub(crate) async fn check_activate(
        &self,
        kind: CaKind,
    ) -> anyhow::Result<(StoredCaKey, StoredCaKey, Vec<Lagging>)> {
        let (rows, active) = self.rows(kind).await?;
        let Some(next) = rows.iter().find(|r| r.state == KeyState::Next).cloned() else {
            let message = format!(
                "there is no next {} CA key to activate\nhint: `shiftkey-ca keys rotate --{}` makes one and publishes it; activate once hosts have refreshed",
                kind.as_str(),
                kind.as_str()
            );
            return Err(self.refuse("activate", kind, message).await?);
        };
        let lagging = match kind {
            CaKind::User => self
                .lagging()
                .await?
                .into_iter()
                .filter(|l| l.missing.contains(&next.fingerprint))
                .collect(),
            CaKind::Host => Vec::new(),
        };
        Ok((active, next, lagging))
    }

    pub(crate) async fn activate(&self, kind: CaKind) -> anyhow::Result<PhaseResult> {
        let (active, next, lagging) = self.check_activate(kind).await?;
        let hosts: Vec<&str> = lagging.iter().map(|l| l.host.as_str()).collect();
        let seq = self
            .audit
            .record_change(
                Event::new(
                    ACTIVATED,
                    self.actor.clone(),
                    Outcome::Info,
                    json!({ "kind": kind.as_str(), "active": next.fingerprint,
                            "previous": active.fingerprint, "lagging_hosts": hosts }),
                ),
                Change::KeyPhase(KeyPhase::Activate {
                    kind: kind.as_str().to_owned(),
                    active: active.fingerprint.clone(),
                    next: next.fingerprint.clone(),
                    at: unix_now_i64(),
                }),
            )
            .await
            .context("cannot activate the next key")?;
        Ok(PhaseResult {
            phase: "activate",
            kind: kind.as_str(),
            active: next.fingerprint.clone(),
            key: next.fingerprint,
            location: next.location,
            lagging,
            still_valid: 0,
            audit_seq: seq,
        })
    }

    /// The previous key, and how many certificates it signed are still
    /// valid.
    pub(crate) async fn check_retire(
        &self,
        kind: CaKind,
        force: bool,
    ) -> anyhow::Result<(StoredCaKey, StoredCaKey, usize)> {
        let (rows, active) = self.rows(kind).await?;
        let Some(previous) = rows.iter().find(|r| r.state == KeyState::Previous).cloned() else {
            let message = format!(
                "there is no previous {} CA key to retire (the active key is never retired)\nhint: `shiftkey-ca keys status` shows the states",
                kind.as_str()
            );
            return Err(self.refuse("retire", kind, message).await?);
        };
        let still_valid = self.valid_certificates_of(&previous.fingerprint).await?;
        if still_valid > 0 && !force {
            let message = format!(
                "{still_valid} certificate(s) signed by {} can still be valid; retiring it now locks their holders out\nhint: wait until they expire (24 h at most) and retry, or pass --force",
                previous.fingerprint
            );
            return Err(self.refuse("retire", kind, message).await?);
        }
        Ok((active, previous, still_valid))
    }

    /// Certificates signed by the key `fingerprint` that are valid now.
    async fn valid_certificates_of(&self, fingerprint: &str) -> anyhow::Result<usize> {
        let lines = self.store.certificates_valid_at(unix_now()).await?;
        Ok(lines
            .iter()
            .filter_map(|l| Certificate::from_openssh(l).ok())
            .filter(|c| c.signature_key().fingerprint(HashAlg::Sha256).to_string() == fingerprint)
            .count())
    }

    pub(crate) async fn retire(&self, kind: CaKind, force: bool) -> anyhow::Result<PhaseResult> {
        let (active, previous, still_valid) = self.check_retire(kind, force).await?;
        self.commit_retire(kind, &active, &previous, still_valid, false)
            .await
    }

    async fn commit_retire(
        &self,
        kind: CaKind,
        active: &StoredCaKey,
        previous: &StoredCaKey,
        still_valid: usize,
        revoked: bool,
    ) -> anyhow::Result<PhaseResult> {
        let seq = self
            .audit
            .record_change(
                Event::new(
                    RETIRED,
                    self.actor.clone(),
                    Outcome::Info,
                    json!({ "kind": kind.as_str(), "retired": previous.fingerprint,
                            "active": active.fingerprint, "still_valid": still_valid,
                            "revoked": revoked }),
                ),
                Change::KeyPhase(KeyPhase::Retire {
                    fingerprint: previous.fingerprint.clone(),
                    at: unix_now_i64(),
                    revoked,
                }),
            )
            .await
            .context("cannot retire the key")?;
        Ok(PhaseResult {
            phase: "retire",
            kind: kind.as_str(),
            active: active.fingerprint.clone(),
            key: previous.fingerprint.clone(),
            location: previous.location.clone(),
            lagging: Vec::new(),
            still_valid,
            audit_seq: seq,
        })
    }

    /// The emergency rotation: a next key, active at once, and the old key
    /// retired with everything it signed revoked. Mid-rotation, a previous
    /// key is retired first (not revoked: it did not leak), and a next key
    /// that never signed becomes the new key.
    pub(crate) async fn emergency(&self, kind: CaKind) -> anyhow::Result<Vec<PhaseResult>> {
        let mut results = Vec::new();
        let (rows, active) = self.rows(kind).await?;
        if let Some(previous) = rows.iter().find(|r| r.state == KeyState::Previous) {
            let still_valid = self.valid_certificates_of(&previous.fingerprint).await?;
            results.push(
                self.commit_retire(kind, &active, previous, still_valid, false)
                    .await?,
            );
        }
        if !rows.iter().any(|r| r.state == KeyState::Next) {
            results.push(self.rotate(kind).await?);
        }
        results.push(self.activate(kind).await?);
        let (active, previous, still_valid) = self.check_retire(kind, true).await?;
        results.push(
            self.commit_retire(kind, &active, &previous, still_valid, true)
                .await?,
        );
        Ok(results)
    }

    /// The emergency rotation's outage: the active key, how many valid
    /// certificates it signed, and the same for a previous key still
    /// published (retired too).
    pub(crate) async fn outage(
        &self,
        kind: CaKind,
    ) -> anyhow::Result<(StoredCaKey, usize, Option<(StoredCaKey, usize)>)> {
        let (rows, active) = self.rows(kind).await?;
        let count = self.valid_certificates_of(&active.fingerprint).await?;
        let previous = match rows.iter().find(|r| r.state == KeyState::Previous) {
            Some(p) => Some((p.clone(), self.valid_certificates_of(&p.fingerprint).await?)),
            None => None,
        };
        Ok((active, count, previous))
    }
}

/// Where the `n`th key of `kind` goes, beside `current`.
fn next_location(kind: CaKind, current: &KeyLocation, n: u32) -> anyhow::Result<KeyLocation> {
    Ok(match current {
        KeyLocation::File | KeyLocation::NamedFile(_) => {
            KeyLocation::NamedFile(format!("{}-{n}", kind.file_name()))
        }
        KeyLocation::Pkcs11(uri) => {
            let mut next = (**uri).clone();
            let base = uri
                .object
                .clone()
                .unwrap_or_else(|| kind.file_name().replace('_', "-"));
            let base = strip_number(&base);
            next.object = Some(format!("{base}-{n}"));
            // The id names the old key's objects; the new pair gets its own.
            next.id = None;
            KeyLocation::Pkcs11(Box::new(next))
        }
    })
}

/// `user-ca-3` → `user-ca`; `user-ca` stays.
fn strip_number(label: &str) -> &str {
    match label.rsplit_once('-') {
        Some((base, n)) if !base.is_empty() && n.parse::<u32>().is_ok() => base,
        _ => label,
    }
}

fn view(row: &StoredCaKey, recorded: bool) -> KeyView {
    KeyView {
        kind: row.kind.clone(),
        state: row.state.as_str(),
        fingerprint: row.fingerprint.clone(),
        location: row.location.clone(),
        created_at: recorded.then_some(row.created_at),
        activated_at: row.activated_at,
        retired_at: row.retired_at,
        revoked: row.revoked,
    }
}

fn unix_now_i64() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_names_count_up_from_the_base() {
        assert_eq!(strip_number("user-ca-3"), "user-ca");
        assert_eq!(strip_number("user-ca"), "user-ca");
        assert_eq!(strip_number("-2"), "-2");
        let next = next_location(CaKind::User, &KeyLocation::File, 2).unwrap();
        assert_eq!(next.to_string(), "file:user_ca-2");
        let uri: KeyLocation =
            "pkcs11:token=t;object=user-ca-2?module-path=/usr/lib/softhsm/libsofthsm2.so"
                .parse()
                .unwrap();
        let next = next_location(CaKind::User, &uri, 3).unwrap().to_string();
        assert!(next.contains("object=user-ca-3"), "{next}");
    }
}
