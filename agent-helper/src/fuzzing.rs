//! Fuzz entry points for the host side's parsers, called by the AFL
//! binaries in `fuzz/` and by the corpus replay test. Not an API.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::host::krl;

/// The KRL a host is about to install, as the host reads it, in the
/// canonical listing the CA side's round trip compares against:
///
/// ```text
/// version V generated G
/// ca SHA256:...          (one block per certificates section, in order;
/// serial LO-HI            `ca *` for OpenSSH's any-CA wildcard)
/// serial N
/// id HEX
/// keys N                 (keys revoked by blob or fingerprint)
/// ```
///
/// Serials are merged into maximal runs, key IDs sorted and deduplicated:
/// two files list the same exactly when they revoke the same.
///
/// Checks, for every input that reads: the quick check agrees, and what it
/// keeps is bounded by the input's size (no length taken from the input
/// allocates beyond a small multiple of what the input holds).
pub fn krl_listing(bytes: &[u8]) -> Result<String, String> {
    let decoded = krl::decode(bytes).map_err(|e| e.to_string())?;
    assert_eq!(
        krl::parse(bytes).as_ref(),
        Ok(&decoded.info),
        "parse and decode disagree"
    );
    assert!(krl::same_revocations(bytes, bytes));
    // A serial bitmap byte holds at most four runs (0b0101_0101): at most
    // four ranges per input byte; key IDs are copies of input bytes.
    let ranges: usize = decoded.certificates.iter().map(|c| c.serials.len()).sum();
    let id_bytes: usize = decoded
        .certificates
        .iter()
        .flat_map(|c| &c.key_ids)
        .map(|id| id.len() + 1)
        .sum();
    assert!(
        ranges <= 4 * bytes.len() && id_bytes <= bytes.len(),
        "kept {ranges} serial ranges and {id_bytes} key ID bytes from {} bytes",
        bytes.len()
    );

    let mut out = String::new();
    let info = &decoded.info;
    let _ = writeln!(
        out,
        "version {} generated {}",
        info.version, info.generated_at
    );
    for section in &decoded.certificates {
        match &section.ca_key {
            Some(key) => {
                let _ = writeln!(out, "ca {}", key.fingerprint(ssh_key::HashAlg::Sha256));
            }
            None => out.push_str("ca *\n"),
        }
        let mut ranges = section.serials.clone();
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (lo, hi) in ranges {
            assert!(lo != 0 && lo <= hi, "the reader kept the range {lo}-{hi}");
            match merged.last_mut() {
                Some((_, last)) if lo <= last.saturating_add(1) => *last = (*last).max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        for (lo, hi) in merged {
            if lo == hi {
                let _ = writeln!(out, "serial {lo}");
            } else {
                let _ = writeln!(out, "serial {lo}-{hi}");
            }
        }
        let ids: BTreeSet<&[u8]> = section.key_ids.iter().map(Vec::as_slice).collect();
        for id in ids {
            assert!(!id.contains(&0), "the reader kept a key ID with NUL");
            let _ = writeln!(out, "id {}", hex(id));
        }
    }
    if decoded.keys > 0 {
        let _ = writeln!(out, "keys {}", decoded.keys);
    }
    Ok(out)
}

/// Arbitrary bytes into the host's KRL check: a typed refusal or a
/// listing, never a panic.
pub fn krl_read(data: &[u8]) {
    let _ = krl_listing(data);
}

/// Lower-case hex, as the CA side's expected listing writes key IDs.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// One stream (`o` output or `i` input) of an asciicast file, rebuilt by
/// the reader `shiftkey recordings cat` uses: the bastion's `cast` fuzz
/// target writes events and checks this gives back the exact bytes.
pub fn cast_bytes(cast: &[u8], stream: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    crate::recordings::exact_bytes(cast, stream, &mut out).map_err(|e| format!("{e:#}"))?;
    Ok(out)
}
