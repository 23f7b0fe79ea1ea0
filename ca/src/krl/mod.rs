//! OpenSSH Key Revocation Lists (KRLs): the binary file sshd reads through
//! `RevokedKeys` (and `ssh-keygen -Q` checks against), written from the
//! CA's revocation records.
//!
//! Neither ssh-key nor russh reads or writes KRLs, so this module encodes
//! the format of OpenSSH's `PROTOCOL.krl` by hand; the tests check every
//! shape it writes against the real `ssh-keygen`.
//!
//! Owns: the encoding, per CA key, of revoked certificate serials and key
//! IDs, and of revoked keys by blob (a CA key retired in an emergency:
//! OpenSSH refuses every certificate whose signing key is revoked). Never:
//! decides what is revoked (the store does), revokes by fingerprint, or
//! signs the KRL. Hosts fetch it from the CA over
//! TLS; OpenSSH does not support KRL signatures, and 9.4 and later refuse
//! to load a KRL that carries one.
//!
//! What we write: the header (flags 0, reserved empty), then one
//! `KRL_SECTION_CERTIFICATES` section for each distinct CA key with
//! something to revoke, holding its serial subsections in ascending order
//! (a run of at least [`MIN_RANGE_RUN`] consecutive serials as one range,
//! the other serials in lists), then one key ID subsection; then, if any
//! key is revoked outright, one `KRL_SECTION_EXPLICIT_KEY` section holding
//! their public key blobs. OpenSSH also
//! knows a serial bitmap subsection (`ssh-keygen -k` picks it by a size
//! model); lists and ranges are simpler and read the same.

// A KRL is a security control that every host loads: encoding must fail
// with an error, never panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::collections::BTreeSet;

use ssh_key::PublicKey;

/// `"SSHKRL\n\0"`, read as a big-endian uint64.
const KRL_MAGIC: u64 = 0x5353_484b_524c_0a00;
const KRL_FORMAT_VERSION: u32 = 1;

const KRL_SECTION_CERTIFICATES: u8 = 1;
const KRL_SECTION_EXPLICIT_KEY: u8 = 2;
const KRL_SECTION_CERT_SERIAL_LIST: u8 = 0x20;
const KRL_SECTION_CERT_SERIAL_RANGE: u8 = 0x21;
const KRL_SECTION_CERT_KEY_ID: u8 = 0x23;

/// Runs of at least this many consecutive serials are written as one range
/// subsection (type, length and two uint64s: 21 bytes) rather than as list
/// entries (8 bytes each).
const MIN_RANGE_RUN: u64 = 3;

/// The serial OpenSSH reads as "no serial", which never appears in a KRL.
///
/// OpenSSH's revocation check skips serial 0 ("the default when the CA
/// doesn't specify one"), so listing it would revoke nothing; worse, its
/// KRL reader rejects a serial or range that includes 0
/// (`ssh_krl_revoke_cert_by_serial_range` fails for `lo == 0`), so the whole
/// file would fail to load and sshd would refuse every key it checks
/// against it. [`Krl::to_bytes`] therefore drops 0; revoke such a
/// certificate by key ID. Shiftkey itself issues serials from 1.
const NO_SERIAL: u64 = 0;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(
        "cannot revoke an empty certificate key ID: it would revoke every certificate without one; revoke by serial instead"
    )]
    EmptyKeyId,
    #[error(
        "cannot revoke key ID {key_id:?}: it contains a NUL byte, which OpenSSH cannot read from a KRL; revoke by serial instead"
    )]
    KeyIdContainsNul { key_id: String },
    #[error("the KRL comment contains a NUL byte, which OpenSSH cannot read; remove it")]
    CommentContainsNul,
    #[error("cannot encode CA public key {fingerprint} for the KRL: {source}")]
    CaKey {
        fingerprint: String,
        source: ssh_key::Error,
    },
    #[error(
        "a KRL field of {len} bytes exceeds the 4 GiB an SSH string can hold; revoke fewer certificates per CA key"
    )]
    TooLarge { len: usize },
}

/// A Key Revocation List as [`Krl::to_bytes`] writes it.
#[derive(Debug, Clone)]
pub(crate) struct Krl {
    /// Increases whenever the revocations change, so hosts can tell a newer
    /// list from an older one.
    pub(crate) version: u64,
    /// When the list was generated, in seconds since the Unix epoch.
    pub(crate) generated_at: u64,
    /// Free text shown by `ssh-keygen -Q -l`; must not contain NUL.
    pub(crate) comment: String,
    /// Revocations per issuing CA. Entries for the same CA key (compared
    /// without their comments) are merged.
    pub(crate) ca_keys: Vec<CaRevocations>,
    /// Keys revoked outright, by blob: for a CA key, every certificate it
    /// signed is refused (`sshd` and `ssh-keygen -Q` check the signing key
    /// of a certificate against the KRL too).
    pub(crate) revoked_keys: Vec<PublicKey>,
}

/// The certificates of one CA key to revoke: each certificate that this key
/// signed and whose serial or key ID is listed. A certificate from another
/// CA with the same serial or key ID is unaffected.
#[derive(Debug, Clone)]
pub(crate) struct CaRevocations {
    pub(crate) ca_key: PublicKey,
    /// In any order, repeats allowed; 0 is dropped (see [`NO_SERIAL`]).
    pub(crate) serials: Vec<u64>,
    /// Exact key IDs; in any order, repeats allowed; each non-empty and
    /// free of NUL bytes.
    pub(crate) key_ids: Vec<String>,
}

impl Krl {
    /// Encodes the KRL in OpenSSH's binary format (`PROTOCOL.krl`), ready
    /// to be served as a host's `RevokedKeys` file.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        if self.comment.contains('\0') {
            return Err(Error::CommentContainsNul);
        }
        let mut out = Vec::new();
        put_u64(&mut out, KRL_MAGIC);
        out.extend_from_slice(&KRL_FORMAT_VERSION.to_be_bytes());
        put_u64(&mut out, self.version);
        put_u64(&mut out, self.generated_at);
        put_u64(&mut out, 0); // flags: none are defined
        put_string(&mut out, b"")?; // reserved
        put_string(&mut out, self.comment.as_bytes())?;
        for ca in merge_by_ca(&self.ca_keys)? {
            if ca.serials.is_empty() && ca.key_ids.is_empty() {
                // Nothing to revoke: OpenSSH would accept an empty section,
                // but it says nothing.
                continue;
            }
            let section = ca.encode()?;
            out.push(KRL_SECTION_CERTIFICATES);
            put_string(&mut out, &section)?;
        }
        if !self.revoked_keys.is_empty() {
            let mut section = Vec::new();
            let mut seen: Vec<&ssh_key::public::KeyData> = Vec::new();
            for key in &self.revoked_keys {
                if seen.contains(&key.key_data()) {
                    continue;
                }
                seen.push(key.key_data());
                let blob = key.to_bytes().map_err(|source| Error::CaKey {
                    fingerprint: key.fingerprint(Default::default()).to_string(),
                    source,
                })?;
                put_string(&mut section, &blob)?;
            }
            out.push(KRL_SECTION_EXPLICIT_KEY);
            put_string(&mut out, &section)?;
        }
        Ok(out)
    }
}

/// One CA's revocations, checked, sorted and deduplicated.
struct CaSection<'a> {
    ca_key: &'a PublicKey,
    /// Without [`NO_SERIAL`].
    serials: BTreeSet<u64>,
    /// Byte order, which is the order `ssh-keygen` writes them in.
    key_ids: BTreeSet<&'a str>,
}

/// Checks key IDs and merges entries for the same CA key, keeping the order
/// in which the CA keys first appear.
fn merge_by_ca(cas: &[CaRevocations]) -> Result<Vec<CaSection<'_>>, Error> {
    let mut merged: Vec<CaSection<'_>> = Vec::new();
    for ca in cas {
        for key_id in &ca.key_ids {
            check_key_id(key_id)?;
        }
        let serials = ca.serials.iter().copied().filter(|&s| s != NO_SERIAL);
        let key_ids = ca.key_ids.iter().map(String::as_str);
        if let Some(section) = merged
            .iter_mut()
            .find(|section| section.ca_key.key_data() == ca.ca_key.key_data())
        {
            section.serials.extend(serials);
            section.key_ids.extend(key_ids);
        } else {
            merged.push(CaSection {
                ca_key: &ca.ca_key,
                serials: serials.collect(),
                key_ids: key_ids.collect(),
            });
        }
    }
    Ok(merged)
}

fn check_key_id(key_id: &str) -> Result<(), Error> {
    if key_id.is_empty() {
        return Err(Error::EmptyKeyId);
    }
    if key_id.contains('\0') {
        return Err(Error::KeyIdContainsNul {
            key_id: key_id.to_owned(),
        });
    }
    Ok(())
}

impl CaSection<'_> {
    /// The body of a `KRL_SECTION_CERTIFICATES` section.
    fn encode(&self) -> Result<Vec<u8>, Error> {
        let blob = self.ca_key.to_bytes().map_err(|source| Error::CaKey {
            fingerprint: self.ca_key.fingerprint(Default::default()).to_string(),
            source,
        })?;
        let mut out = Vec::new();
        put_string(&mut out, &blob)?;
        put_string(&mut out, b"")?; // reserved

        // Subsections in ascending serial order, as `ssh-keygen` writes
        // them; consecutive short runs share one list.
        let mut list = Vec::new();
        for (lo, hi) in runs(&self.serials) {
            if hi - lo >= MIN_RANGE_RUN - 1 {
                flush_list(&mut out, &mut list)?;
                let mut range = Vec::with_capacity(16);
                put_u64(&mut range, lo);
                put_u64(&mut range, hi);
                put_subsection(&mut out, KRL_SECTION_CERT_SERIAL_RANGE, &range)?;
            } else {
                for serial in lo..=hi {
                    put_u64(&mut list, serial);
                }
            }
        }
        flush_list(&mut out, &mut list)?;

        if !self.key_ids.is_empty() {
            let mut ids = Vec::new();
            for key_id in &self.key_ids {
                put_string(&mut ids, key_id.as_bytes())?;
            }
            put_subsection(&mut out, KRL_SECTION_CERT_KEY_ID, &ids)?;
        }
        Ok(out)
    }
}

/// Maximal runs of consecutive serials, as inclusive `(lo, hi)` pairs, in
/// ascending order.
fn runs(serials: &BTreeSet<u64>) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &serial in serials {
        match runs.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(serial) => *hi = serial,
            _ => runs.push((serial, serial)),
        }
    }
    runs
}

/// Writes the pending serial list, if any, as one list subsection.
fn flush_list(out: &mut Vec<u8>, list: &mut Vec<u8>) -> Result<(), Error> {
    if !list.is_empty() {
        put_subsection(out, KRL_SECTION_CERT_SERIAL_LIST, list)?;
        list.clear();
    }
    Ok(())
}

/// `byte type, string data`: the shape of sections and subsections alike.
fn put_subsection(out: &mut Vec<u8>, section_type: u8, data: &[u8]) -> Result<(), Error> {
    out.push(section_type);
    put_string(out, data)
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// An SSH `string`: uint32 length, then the bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), Error> {
    let len = u32::try_from(bytes.len()).map_err(|_| Error::TooLarge { len: bytes.len() })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests;
