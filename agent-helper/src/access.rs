//! `shiftkey access ROLE`: a fresh key in memory, a certificate for it, both
//! into ssh-agent for exactly as long as the certificate is valid.
//!
//! Never writes the private key anywhere, except into `--out DIR` when the
//! user asks (CI jobs without an agent); the in-memory copy is zeroized when
//! dropped (ssh-key's ed25519 private key zeroizes itself).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Local, Utc};
use serde_json::json;
use shiftkey_wire::{CertificateRequest, CertificateResponse, RoleInfo};
use ssh_key::{Algorithm, Certificate, LineEnding, PrivateKey};

use crate::agent::Agent;
use crate::ca_client::CaClient;

#[derive(Debug)]
pub(crate) struct AccessOptions<'a> {
    /// The user CA keys saved at login; empty when unknown (local socket).
    pub(crate) ca_keys: &'a [ssh_key::PublicKey],
    pub(crate) role: &'a str,
    pub(crate) incident: Option<&'a str>,
    pub(crate) reason: Option<&'a str>,
    pub(crate) ttl: Option<&'a str>,
    pub(crate) principals: &'a [String],
    pub(crate) out: Option<&'a Path>,
    pub(crate) json: bool,
}

pub(crate) async fn run(client: &CaClient, opts: &AccessOptions<'_>) -> anyhow::Result<()> {
    // Connect to the agent first: no point asking for a certificate that has
    // nowhere to go.
    let mut agent = match opts.out {
        Some(_) => None,
        None => Some(Agent::from_env()?),
    };
    let key = PrivateKey::random(
        &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
        Algorithm::Ed25519,
    )
    .context("generating a key")?;
    let request = CertificateRequest {
        public_key: key.public_key().to_openssh()?,
        role: opts.role.to_owned(),
        incident: opts.incident.map(str::to_owned),
        reason: opts.reason.map(str::to_owned),
        ttl: opts.ttl.map(str::to_owned),
        principals: (!opts.principals.is_empty()).then(|| opts.principals.to_vec()),
    };
    let issued = client.issue(&request).await?;
    let certificate = Certificate::from_openssh(&issued.certificate)
        .context("reading the certificate the CA sent")?;
    check_certificate(&certificate, &key, &issued, opts.ca_keys)?;
    // The certificate's own end, which sshd enforces, sets the agent's
    // lifetime; the JSON fields are only a summary of it.
    let valid_before = DateTime::<Utc>::from_timestamp(
        i64::try_from(certificate.valid_before()).unwrap_or(i64::MAX),
        0,
    )
    .context("the certificate's end is not a valid time")?;
    let remaining = (valid_before - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    if remaining < Duration::from_secs(1) {
        bail!(
            "the certificate the CA sent has already expired\nhint: check this machine's clock (timedatectl)"
        );
    }
    let comment = format!("shiftkey {} serial={}", opts.role, issued.serial);
    let placed = match (opts.out, agent.as_mut()) {
        (Some(dir), _) => write_out(dir, &key, &issued, &comment)?,
        (None, Some(agent)) => {
            agent.add_certificate(&key, &certificate, remaining, &comment)?;
            "ssh-agent".to_owned()
        }
        (None, None) => bail!("no place for the key: neither --out nor an ssh-agent"),
    };
    drop(key);
    // Host patterns are for the summary only; a CA that cannot tell us
    // does not undo the access.
    let role = client
        .roles()
        .await
        .ok()
        .and_then(|r| r.roles.into_iter().find(|r| r.name == opts.role));
    if opts.json {
        let answer = json!({
            "role": opts.role,
            "incident": opts.incident,
            "serial": issued.serial,
            "key_id": issued.key_id,
            "principals": issued.principals,
            "hosts": role.as_ref().map(|r| r.hosts.clone()).unwrap_or_default(),
            "valid_after": issued.valid_after,
            "valid_before": issued.valid_before,
            "expires_in_seconds": remaining.as_secs(),
            "placed_in": placed,
            "certificate": issued.certificate,
        });
        println!("{answer}");
    } else {
        print_summary(
            opts,
            &issued,
            role.as_ref(),
            valid_before,
            remaining,
            &placed,
        );
    }
    Ok(())
}

/// The certificate must be what we asked for before the agent gets it: a
/// user certificate for our key, signed by the CA we trust (when we know its
/// keys), valid now, and the same as the CA's summary of it.
fn check_certificate(
    certificate: &Certificate,
    key: &PrivateKey,
    issued: &CertificateResponse,
    ca_keys: &[ssh_key::PublicKey],
) -> anyhow::Result<()> {
    if certificate.public_key() != key.public_key().key_data() {
        bail!("the CA sent a certificate for another key; refusing it");
    }
    if certificate.cert_type() != ssh_key::certificate::CertType::User {
        bail!("the CA sent a host certificate where a user certificate belongs; refusing it");
    }
    if !ca_keys.is_empty()
        && !ca_keys
            .iter()
            .any(|ca| ca.key_data() == certificate.signature_key())
    {
        bail!(
            "the certificate is not signed by the CA keys saved at login\nhint: if the CA rotated its keys, run `shiftkey login` again"
        );
    }
    if certificate.valid_before() != issued.valid_before || certificate.serial() != issued.serial {
        bail!("the CA's answer does not match the certificate it sent; refusing it");
    }
    Ok(())
}

fn print_summary(
    opts: &AccessOptions<'_>,
    issued: &CertificateResponse,
    role: Option<&RoleInfo>,
    valid_before: DateTime<Utc>,
    remaining: Duration,
    placed: &str,
) {
    let hosts = role
        .map(|r| r.hosts.join(", "))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "(ask the CA)".into());
    let minutes = remaining.as_secs() / 60;
    let seconds = remaining.as_secs() % 60;
    let until = valid_before.with_timezone(&Local).format("%H:%M:%S %Z");
    println!(
        "✓ {} access until {until} ({minutes}m{seconds:02}s), in {placed}",
        opts.role
    );
    println!("  principals  {}", issued.principals.join(", "));
    println!("  hosts       {hosts}");
    if let Some(incident) = opts.incident {
        println!("  incident    {incident}");
    }
    println!("  serial      {}", issued.serial);
    let login = issued.principals.first().map_or("USER", String::as_str);
    let host = role
        .and_then(|r| r.hosts.first())
        .map(|h| h.replace('*', "HOST").replace('?', "X"))
        .unwrap_or_else(|| "HOST".into());
    match opts.out {
        None => println!("\n  ssh {login}@{host}"),
        Some(dir) => println!(
            "\n  ssh -i {} -o CertificateFile={} {login}@{host}",
            dir.join("id_ed25519").display(),
            dir.join("id_ed25519-cert.pub").display()
        ),
    }
}

/// `--out DIR`: the one place a private key is written, for CI jobs without
/// an agent. The directory must exist and belong to the caller; files 0600.
fn write_out(
    dir: &Path,
    key: &PrivateKey,
    issued: &CertificateResponse,
    comment: &str,
) -> anyhow::Result<String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let meta = std::fs::metadata(dir).with_context(|| format!("--out {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("--out {} is not a directory", dir.display());
    }
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if meta.uid() != uid {
        bail!(
            "--out {} belongs to another user; use a directory you own",
            dir.display()
        );
    }
    let mut key = key.clone();
    key.set_comment(comment);
    let pem = key.to_openssh(LineEnding::LF)?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(bytes)?;
        Ok(())
    };
    write("id_ed25519", pem.as_bytes())?;
    write(
        "id_ed25519-cert.pub",
        format!("{}\n", issued.certificate).as_bytes(),
    )?;
    Ok(dir.display().to_string())
}
