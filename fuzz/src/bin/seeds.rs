//! Writes each target's library seeds (`fuzzing::seeds`) into
//! `DIR/TARGET/lib-N`: `seeds DIR`. Used by `fuzz/make-corpus`; the
//! replay test also runs these seeds directly.
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let mut targets: Vec<(&str, Vec<Vec<u8>>)> = [
        "krl",
        "oidc_token",
        "oidc_jwks",
        "join_token",
        "pkcs11_uri",
        "certificate_request",
        "seal_manifest",
        "ui_cookie",
        "ui_form",
        "recording_upload",
    ]
    .into_iter()
    .map(|t| (t, shiftkey_ca::fuzzing::seeds(t)))
    .collect();
    targets.push(("host_auth", shiftkey_wire::fuzzing::seeds()));
    for target in ["bastion_channel", "sftp", "cast"] {
        targets.push((target, shiftkey_bastion::fuzzing::seeds(target)));
    }
    for (target, seeds) in targets {
        std::fs::create_dir_all(dir.join(target))?;
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(target).join(format!("lib-{i:02}")), seed)?;
        }
    }
    Ok(())
}
