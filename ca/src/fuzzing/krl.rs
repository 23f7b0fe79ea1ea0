//! KRL target: what the CA writes (`crate::krl`), read back by the host's
//! KRL check, lists exactly the serials and key IDs asked for; arbitrary
//! bytes into the host's check are a typed refusal or a listing.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::OnceLock;

use ssh_key::private::Ed25519Keypair;
use ssh_key::{HashAlg, PrivateKey, PublicKey};

use super::Reader;
use crate::krl::{CaRevocations, Error, Krl};

/// The host's reader: a KRL's listing (see `shiftkey::fuzzing::krl_listing`
/// for the format), or why it refused the file.
pub type ReadKrl = fn(&[u8]) -> Result<String, String>;

/// The CA keys the fuzzer revokes under (fixed seeds; nothing trusts them).
fn ca_keys() -> &'static [PublicKey; 4] {
    static KEYS: OnceLock<[PublicKey; 4]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [1u8, 2, 3, 4].map(|seed| {
            PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
                .public_key()
                .clone()
        })
    })
}

/// The fuzz entry point. Selector bit 0 clear: the rest goes to the host's
/// reader as it is. Set: the rest describes a KRL (see [`spec`]) that the
/// CA writes and the host reads back.
pub fn krl(data: &[u8], read: ReadKrl) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        let _ = read(rest);
        return;
    }
    let Some(krl) = spec(rest) else {
        return;
    };
    let invalid = krl.comment.contains('\0')
        || krl
            .ca_keys
            .iter()
            .flat_map(|ca| &ca.key_ids)
            .any(|id| id.is_empty() || id.contains('\0'));
    let bytes = match krl.to_bytes() {
        Ok(bytes) => bytes,
        Err(Error::EmptyKeyId | Error::KeyIdContainsNul { .. } | Error::CommentContainsNul) => {
            assert!(invalid, "the writer refused a valid KRL");
            return;
        }
        Err(e) => panic!("the writer failed on a KRL of {} bytes: {e}", rest.len()),
    };
    assert!(
        !invalid,
        "the writer accepted a key ID or comment OpenSSH cannot read"
    );
    assert_eq!(
        read(&bytes).as_deref(),
        Ok(expected_listing(&krl).as_str()),
        "the host reads something else than the CA wrote"
    );
}

/// For the replay test's check against `ssh-keygen -Q -l`: the KRL a
/// round-trip input makes the CA write, and what the host must list for it.
pub fn written(data: &[u8]) -> Option<(Vec<u8>, String)> {
    let (&selector, rest) = data.split_first()?;
    if selector & 1 == 0 {
        return None;
    }
    let krl = spec(rest)?;
    let bytes = krl.to_bytes().ok()?;
    Some((bytes, expected_listing(&krl)))
}

/// What the host must list for `krl`: one block per distinct CA key with
/// something to revoke, in first-appearance order; serial 0 dropped.
pub(crate) fn expected_listing(krl: &Krl) -> String {
    let mut out = format!("version {} generated {}\n", krl.version, krl.generated_at);
    let mut seen: Vec<&PublicKey> = Vec::new();
    for ca in &krl.ca_keys {
        if seen.iter().any(|k| k.key_data() == ca.ca_key.key_data()) {
            continue;
        }
        seen.push(&ca.ca_key);
        let same = || {
            krl.ca_keys
                .iter()
                .filter(|other| other.ca_key.key_data() == ca.ca_key.key_data())
        };
        let serials: BTreeSet<u64> = same()
            .flat_map(|c| c.serials.iter().copied())
            .filter(|&s| s != 0)
            .collect();
        let ids: BTreeSet<&[u8]> = same()
            .flat_map(|c| c.key_ids.iter().map(|id| id.as_bytes()))
            .collect();
        if serials.is_empty() && ids.is_empty() {
            continue;
        }
        let _ = writeln!(out, "ca {}", ca.ca_key.fingerprint(HashAlg::Sha256));
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for s in serials {
            match runs.last_mut() {
                Some((_, hi)) if hi.checked_add(1) == Some(s) => *hi = s,
                _ => runs.push((s, s)),
            }
        }
        for (lo, hi) in runs {
            if lo == hi {
                let _ = writeln!(out, "serial {lo}");
            } else {
                let _ = writeln!(out, "serial {lo}-{hi}");
            }
        }
        for id in ids {
            let _ = writeln!(out, "id {}", hex::encode(id));
        }
    }
    out
}

/// Reads a KRL description: `version u64, generated_at u64, comment_len u8,
/// comment, entries u8 (at most 8)`, then per entry `ca u8 (of 4),
/// serials u8, key_ids u8`, each serial a `u8` step from the previous (so
/// runs are common) or, after a step of 255, a full `u64`; each key ID
/// `len u8, bytes`.
pub(crate) fn spec(data: &[u8]) -> Option<Krl> {
    let mut r = Reader(data);
    let version = r.u64()?;
    let generated_at = r.u64()?;
    let comment_len = r.u8()?;
    let comment = r.text(comment_len.into())?;
    let entries = r.u8()? % 9;
    let mut ca_keys = Vec::new();
    for _ in 0..entries {
        let ca = ca_keys_at(r.u8()?);
        let (serial_count, id_count) = (r.u8()?, r.u8()? % 16);
        let mut serials = Vec::new();
        let mut last = 0u64;
        for _ in 0..serial_count {
            let step = r.u8()?;
            last = if step == 255 {
                r.u64()?
            } else {
                last.wrapping_add(step.into())
            };
            serials.push(last);
        }
        let mut key_ids = Vec::new();
        for _ in 0..id_count {
            let len = r.u8()?;
            key_ids.push(r.text(len.into())?);
        }
        ca_keys.push(CaRevocations {
            ca_key: ca,
            serials,
            key_ids,
        });
    }
    Some(Krl {
        version,
        generated_at,
        comment,
        ca_keys,
        revoked_keys: Vec::new(),
    })
}

fn ca_keys_at(index: u8) -> PublicKey {
    let keys = ca_keys();
    keys[usize::from(index) % keys.len()].clone()
}

/// Seeds: KRLs of the shapes the CA serves (none, lists, ranges, key IDs,
/// several CAs), in the round-trip layout.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    fn entry(out: &mut Vec<u8>, ca: u8, steps: &[u8], ids: &[&str]) {
        out.extend([ca, steps.len() as u8, ids.len() as u8]);
        out.extend_from_slice(steps);
        for id in ids {
            out.push(id.len() as u8);
            out.extend_from_slice(id.as_bytes());
        }
    }
    let header = |entries: u8| {
        let mut out = vec![1];
        out.extend(7u64.to_be_bytes());
        out.extend(1_790_000_000u64.to_be_bytes());
        out.push(8);
        out.extend_from_slice(b"shiftkey");
        out.push(entries);
        out
    };
    let mut seeds = vec![header(0)];
    let mut one = header(1);
    entry(&mut one, 0, &[1, 1, 1, 1, 3, 1, 9], &[]);
    seeds.push(one);
    let mut ids = header(1);
    entry(
        &mut ids,
        1,
        &[],
        &["alice@example.com role=db-debug incident=INC-42 req=r_7f3a serial=1042"],
    );
    seeds.push(ids);
    let mut several = header(3);
    entry(
        &mut several,
        0,
        &[5, 1, 1, 20],
        &["bob@example.com role=ops"],
    );
    entry(&mut several, 2, &[1, 2, 3], &[]);
    entry(&mut several, 0, &[4, 2], &["carol"]);
    seeds.push(several);
    seeds
}
