//! Seal manifest target: what the CA signs when it seals a recording
//! (`shiftkey_wire::RecordingManifest`, `recordings::upload`) and the
//! `metadata.json` an export carries (`RecordingDetail`), as `shiftkey
//! recordings verify` reads them.
//!
//! Properties: a manifest that parses serializes to bytes that parse back
//! to the same manifest and serialize to the same bytes again (the seal is
//! over bytes, so the writer must be stable); those bytes, signed as the
//! CA signs them (SSHSIG, namespace `shiftkey-recording@shiftkey`),
//! verify, and no other bytes verify under that signature (the input's own
//! spelling, when it differs, and the signed bytes with one byte changed);
//! an export's metadata round-trips the same way.

use std::sync::OnceLock;

use shiftkey_wire::{RECORDING_NAMESPACE, RecordingDetail, RecordingManifest};
use ssh_key::private::Ed25519Keypair;
use ssh_key::{HashAlg, PrivateKey};

/// A fixed CA key (nothing trusts it).
fn ca_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::from(Ed25519Keypair::from_seed(&[0x3c; 32])))
}

/// The fuzz entry point: the first byte picks a manifest (even) or an
/// export's metadata (odd); the rest is the JSON.
pub fn seal_manifest(data: &[u8]) {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    if selector & 1 == 1 {
        if let Ok(detail) = serde_json::from_slice::<RecordingDetail>(json) {
            let bytes = serde_json::to_vec(&detail).unwrap_or_default();
            let again: RecordingDetail = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("our metadata does not read back: {e}"));
            assert_eq!(again, detail);
            assert_eq!(serde_json::to_vec(&again).unwrap_or_default(), bytes);
            if let Some(text) = &detail.manifest {
                manifest(text.as_bytes(), selector);
            }
        }
        return;
    }
    manifest(json, selector);
}

fn manifest(json: &[u8], selector: u8) {
    let Ok(parsed) = serde_json::from_slice::<RecordingManifest>(json) else {
        return;
    };
    let bytes = serde_json::to_vec(&parsed).unwrap_or_default();
    let again: RecordingManifest = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("our manifest does not read back: {e}"));
    assert_eq!(
        again, parsed,
        "a manifest changes through a write and a read"
    );
    assert_eq!(
        serde_json::to_vec(&again).unwrap_or_default(),
        bytes,
        "the manifest's bytes are not stable"
    );
    let key = ca_key();
    let signature = key
        .sign(RECORDING_NAMESPACE, HashAlg::Sha512, &bytes)
        .unwrap_or_else(|e| panic!("cannot sign: {e}"));
    let public = key.public_key();
    assert!(
        public
            .verify(RECORDING_NAMESPACE, &bytes, &signature)
            .is_ok()
    );
    if json != bytes.as_slice() {
        assert!(
            public
                .verify(RECORDING_NAMESPACE, json, &signature)
                .is_err(),
            "the signature verifies bytes it was not made over"
        );
    }
    let mut changed = bytes.clone();
    let at = usize::from(selector) % changed.len().max(1);
    if let Some(byte) = changed.get_mut(at) {
        *byte ^= 0x20;
        assert!(
            public
                .verify(RECORDING_NAMESPACE, &changed, &signature)
                .is_err(),
            "a manifest changed at byte {at} still verifies"
        );
    }
}

/// Manifests as the CA writes them: sealed, lost, verification failed.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let file = |name: &str, kind: &str, command: Option<&str>| {
        serde_json::json!({
            "name": name, "kind": kind, "command": command, "bytes": 18234,
            "sha256": "9f2c4e1a7b3d5f6e8a0c2e4f6a8b0d1f3e5a7c9e1b3d5f7a9c2e4f6a8b0d1f3e"
        })
    };
    let manifest = |status: &str, problems: Vec<&str>, files: Vec<serde_json::Value>| {
        serde_json::json!({
            "version": 1, "session_id": "ses_5f0c2a9d81e34b7a", "identity": "alice@example.com",
            "user_serial": 4_113_809_221_u64, "role": "oncall-db", "incident": "INC-4211",
            "principal": "postgres", "target": "db-1.prod", "client_address": "192.0.2.10:51522",
            "bastion": "bastion-1", "started_at": 1_765_090_800, "ended_at": 1_765_091_700,
            "exit_status": 0, "end_reason": "closed", "status": status, "problems": problems,
            "sealed_at": 1_765_091_702, "files": files
        })
    };
    let sealed = manifest(
        "sealed",
        vec![],
        vec![
            file("channel-0.cast.gz", "shell", None),
            file("channel-1.cast.gz", "exec", Some("pg_dump -Fc app")),
            file("channel-2.sftp.jsonl.gz", "sftp", None),
        ],
    );
    let lost = manifest(
        "lost",
        vec!["the bastion stopped reporting; recording truncated"],
        vec![file("channel-0.cast.gz", "shell", None)],
    );
    let failed = manifest(
        "verification-failed",
        vec!["channel-0.cast.gz: 18234 bytes, the bastion said 18300"],
        vec![file("channel-0.cast.gz", "shell", None)],
    );
    let mut out: Vec<Vec<u8>> = [&sealed, &lost, &failed]
        .iter()
        .map(|m| [b"\0".as_slice(), m.to_string().as_bytes()].concat())
        .collect();
    out.push(
        [
            b"\x02".as_slice(),
            serde_json::to_string_pretty(&sealed)
                .unwrap_or_default()
                .as_bytes(),
        ]
        .concat(),
    );
    out
}
