//! What enroll and refresh share: checking what the CA sent, turning it
//! into sshd's files, and applying a set of changes only if sshd accepts
//! them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use shiftkey_wire::HostCertificateResponse;
use ssh_key::certificate::CertType;
use ssh_key::{Certificate, HashAlg, PublicKey};

use super::files::Changes;
use super::krl::{self, KrlInfo};
use super::sshd::Sshd;
use super::{Layout, PUBLIC_FILE_MODE};
use crate::ca_client::CaClient;

/// A host certificate from the CA that is for our host key, of host type,
/// signed by one of the CA's host keys, valid now, and not one the CA minted
/// for a bastion to present under a target's name (those carry
/// [`shiftkey_wire::PRESENTED_BY_BASTION_EXTENSION`] and name the bastion,
/// never this host).
#[derive(Debug)]
pub(crate) struct CheckedCertificate {
    pub(crate) response: HostCertificateResponse,
    pub(crate) certificate: Certificate,
}

pub(crate) fn check_certificate(
    response: HostCertificateResponse,
    host_key: &PublicKey,
    now: u64,
) -> anyhow::Result<CheckedCertificate> {
    let bad = |why: String| {
        anyhow::anyhow!(
            "the CA sent a host certificate this host cannot use: {why}\nhint: is --ca really this host's Shiftkey CA? Tell its operator; nothing was installed"
        )
    };
    let certificate = Certificate::from_openssh(response.certificate.trim())
        .map_err(|e| bad(format!("it does not parse ({e})")))?;
    if certificate.cert_type() != CertType::Host {
        return Err(bad("it is not a host certificate".into()));
    }
    if certificate
        .extensions()
        .contains_key(shiftkey_wire::PRESENTED_BY_BASTION_EXTENSION)
    {
        return Err(bad(format!(
            "it is marked {}: the CA minted it for a bastion to present, it is no host's identity",
            shiftkey_wire::PRESENTED_BY_BASTION_EXTENSION
        )));
    }
    if certificate.public_key() != host_key.key_data() {
        return Err(bad(format!(
            "it is for another key than this host's {}",
            host_key.fingerprint(HashAlg::Sha256)
        )));
    }
    let ca_fingerprints: Vec<_> = response
        .host_ca_keys
        .iter()
        .filter_map(|line| PublicKey::from_openssh(line.trim()).ok())
        .map(|key| key.fingerprint(HashAlg::Sha256))
        .collect();
    certificate
        .validate_at(now, &ca_fingerprints)
        .map_err(|e| {
            bad(format!(
                "it is not valid now or not signed by the CA's host key ({e})"
            ))
        })?;
    Ok(CheckedCertificate {
        response,
        certificate,
    })
}

/// The `TrustedUserCAKeys` file: one key a line, each of which parses.
pub(crate) fn user_ca_file(keys: &[String]) -> anyhow::Result<String> {
    let mut text = String::new();
    for line in keys.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        // A certificate line does not parse as a key: only plain keys pass.
        PublicKey::from_openssh(line)
            .with_context(|| format!("the CA sent a user CA key that does not parse: {line:?}"))?;
        text.push_str(line);
        text.push('\n');
    }
    if text.is_empty() {
        bail!("the CA sent no user CA key; the installed one is kept");
    }
    Ok(text)
}

/// A login sshd may look up a principals file for: a plain user name.
fn is_login(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A principal as one line of an `AuthorizedPrincipalsFile`: no
/// whitespace (which sshd would read as options before it), no `#`.
fn is_principal(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@+:=".contains(&b))
}

/// The principals files to install (login → content), and warnings for
/// what was left out.
pub(crate) fn principals_files(
    map: &BTreeMap<String, Vec<String>>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut files = BTreeMap::new();
    let mut warnings = Vec::new();
    for (login, principals) in map {
        if !is_login(login) {
            warnings.push(format!(
                "left out login {:?}: not a plain user name",
                login.escape_debug().to_string()
            ));
            continue;
        }
        let mut text = String::new();
        for principal in principals {
            if is_principal(principal) {
                text.push_str(principal);
                text.push('\n');
            } else {
                warnings.push(format!(
                    "left out principal {:?} for {login}: not a plain name",
                    principal.escape_debug().to_string()
                ));
            }
        }
        if !text.is_empty() {
            files.insert(login.clone(), text);
        }
    }
    if files.is_empty() {
        warnings.push(
            "no role of the CA's policy covers this host's names: no certificate can log in here until one does".into(),
        );
    }
    (files, warnings)
}

/// The certificate and the principals files; principals files of logins
/// the CA no longer lists are removed.
pub(crate) fn stage_certificate(
    changes: &mut Changes,
    layout: &Layout,
    checked: &CheckedCertificate,
) -> anyhow::Result<Vec<String>> {
    let line = format!("{}\n", checked.response.certificate.trim());
    changes.write(
        &layout.host_certificate(),
        line.as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    stage_principals(changes, layout, &checked.response.authorized_principals)
}

/// The principals files, one per login; files of logins the CA no longer
/// lists are removed.
pub(crate) fn stage_principals(
    changes: &mut Changes,
    layout: &Layout,
    map: &BTreeMap<String, Vec<String>>,
) -> anyhow::Result<Vec<String>> {
    let (files, warnings) = principals_files(map);
    let dir = layout.principals_dir();
    changes.ensure_dir(&dir)?;
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && !name.starts_with('.') && !files.contains_key(&name) {
            changes.remove(&entry.path())?;
        }
    }
    for (login, text) in &files {
        changes.write(&dir.join(login), text.as_bytes(), PUBLIC_FILE_MODE)?;
    }
    Ok(warnings)
}

/// `GET /v1/krl`, checked.
pub(crate) async fn fetch_krl(client: &CaClient) -> anyhow::Result<(Vec<u8>, KrlInfo)> {
    let (_, bytes) = client
        .exchange_raw("GET", "/v1/krl", None, None)
        .await
        .context("cannot fetch the KRL")?;
    let info = krl::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("the KRL {} sent is not one: {e}", client.describe()))?;
    Ok((bytes.to_vec(), info))
}

/// `GET /v1/ca/user.pub`, checked.
pub(crate) async fn fetch_user_ca(client: &CaClient) -> anyhow::Result<String> {
    let (_, bytes) = client
        .exchange_raw("GET", "/v1/ca/user.pub", None, None)
        .await
        .context("cannot fetch the user CA keys")?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    user_ca_file(&lines)
}

/// The host CA key that signs now: the first line of `/v1/ca/host.pub`
/// (the CA lists the active key first). `None` if the CA lists none.
pub(crate) async fn fetch_active_host_ca(
    client: &CaClient,
) -> anyhow::Result<Option<ssh_key::Fingerprint>> {
    let (_, bytes) = client
        .exchange_raw("GET", "/v1/ca/host.pub", None, None)
        .await
        .context("cannot fetch the host CA keys")?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| ssh_key::PublicKey::from_openssh(l.trim()))
        .transpose()
        .context("the CA's host CA key does not parse")?
        .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256)))
}

/// Installs `bytes` as the KRL unless the installed one revokes the same.
pub(crate) fn stage_krl(
    changes: &mut Changes,
    layout: &Layout,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let path = layout.krl();
    if std::fs::read(&path).is_ok_and(|old| krl::same_revocations(&old, bytes)) {
        return Ok(());
    }
    changes.write(&path, bytes, PUBLIC_FILE_MODE)?;
    Ok(())
}

/// Keeps `changes` only if `sshd -t` (and, with `effective`, `sshd -T`)
/// accepts the result; otherwise puts every file back and says why.
pub(crate) fn apply(
    changes: Changes,
    sshd: &Sshd,
    layout: &Layout,
    effective: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let verdict = sshd
        .test()
        .map_err(|message| {
            format!(
                "`{} -t -f {}` rejects the new configuration:\n{message}",
                sshd.binary.display(),
                sshd.main_config.display()
            )
        })
        .and_then(|()| {
            if effective {
                sshd.check_effective(layout)
            } else {
                Ok(())
            }
        });
    match verdict {
        Ok(()) => Ok(changes.commit()),
        Err(message) => {
            let failures = changes.rollback();
            if failures.is_empty() {
                bail!("{message}\nEvery file was put back as it was; sshd was not reloaded.");
            }
            bail!(
                "{message}\nRolling back failed for: {}\nhint: restore these files by hand before sshd restarts",
                failures.join("; ")
            );
        }
    }
}
