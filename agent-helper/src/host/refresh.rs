//! `shiftkey host refresh`: what the timer runs every 5 minutes.
//!
//! Renews the host certificate once less than a third of its validity is
//! left (a request signed with the host key, `shiftkey_wire::host_auth`),
//! fetches the user CA keys, the KRL and the principals files (the roles
//! whose hosts match this host under the policy in force now: a policy
//! change reaches the host without a renewal), and installs what changed,
//! checked by `sshd -t`. Fails safe: whatever could not be fetched or does not parse
//! keeps its installed file (a KRL is never emptied), and the command exits
//! non-zero saying so. sshd is reloaded only when a file changed.

use anyhow::{Context, bail};
use shiftkey_wire::{
    HostCertificateResponse, HostPrincipals, PrincipalsRequest, RenewRequest, host_auth,
};
use ssh_key::{Certificate, PrivateKey};

use super::files::{Changes, write_atomic};
use super::install::{self, CheckedCertificate};
use super::sshd::{Reload, Sshd};
use super::state::State;
use super::{Layout, PUBLIC_FILE_MODE, RefreshArgs, duration_words, local_time, unix_now};
use crate::ca_client::{CaClient, Error as CaError};

const RENEW_PATH: &str = "/v1/hosts/renew";

/// True once less than a third of the certificate's validity is left.
pub(crate) fn renewal_due(valid_after: u64, valid_before: u64, now: u64) -> bool {
    let total = valid_before.saturating_sub(valid_after);
    valid_before.saturating_sub(now).saturating_mul(3) < total
}

pub(crate) async fn run(args: RefreshArgs) -> anyhow::Result<()> {
    let layout = Layout::new(&args.ssh.ssh_dir)?;
    let _lock = layout.lock()?;
    let mut state = State::load(&layout)?;
    let client = state.client()?;
    let sshd = Sshd {
        binary: state.sshd.clone(),
        main_config: state.sshd_config.clone(),
    };
    let now = unix_now();
    // What could not be done; each keeps the installed file.
    let mut problems: Vec<String> = Vec::new();
    let mut renew_problem = None;

    // The renewal or principals request reports which user CA keys this
    // host trusts: the ones installed now, never the ones just fetched (an
    // install can still fail). `keys status` on the CA lists hosts that
    // lack a published key; once a new set is installed it is reported
    // again below.
    let user_ca = install::fetch_user_ca(&client).await;
    let trusted = installed_user_ca(&layout);
    // After a host CA rotation, renew under the key that signs now (the
    // first published host CA key) rather than waiting for the timer.
    let active_host_ca = install::fetch_active_host_ca(&client).await.ok().flatten();

    let mut principals = None;
    let renewed = match current_certificate(&layout) {
        Err(e) => {
            renew_problem = Some(one_line(&e));
            None
        }
        Ok(current) => {
            let resign = active_host_ca.as_ref().is_some_and(|active| {
                current
                    .signature_key()
                    .fingerprint(ssh_key::HashAlg::Sha256)
                    != *active
            });
            let due = args.renew
                || resign
                || renewal_due(current.valid_after(), current.valid_before(), now);
            if !due {
                principals =
                    Some(fetch_principals(&client, &layout, &current, now, &trusted).await);
            }
            let left = current.valid_before().saturating_sub(now);
            if due {
                match renew(&client, &layout, &current, now, &trusted).await {
                    Ok(checked) => Some(checked),
                    Err(e) => {
                        renew_problem = Some(format!(
                            "cannot renew the host certificate ({} left): {}",
                            if left == 0 {
                                "it has EXPIRED".to_owned()
                            } else {
                                duration_words(left)
                            },
                            one_line(&e)
                        ));
                        None
                    }
                }
            } else {
                None
            }
        }
    };
    let krl = install::fetch_krl(&client).await;

    let mut changes = Changes::default();
    let staged = (|| -> anyhow::Result<Vec<String>> {
        let mut warnings = Vec::new();
        if let Some(checked) = &renewed {
            warnings = install::stage_certificate(&mut changes, &layout, checked)?;
        } else if let Some(Ok(map)) = &principals {
            warnings = install::stage_principals(&mut changes, &layout, map)?;
        }
        if let Ok(text) = &user_ca {
            changes.write(&layout.user_ca(), text.as_bytes(), PUBLIC_FILE_MODE)?;
        }
        if let Ok((bytes, _)) = &krl {
            install::stage_krl(&mut changes, &layout, bytes)?;
        }
        Ok(warnings)
    })();
    let warnings = match staged {
        Ok(warnings) => warnings,
        Err(e) => {
            let failures = changes.rollback();
            bail!(
                "cannot write sshd's files under {}: {e:#}{}\nhint: run as root (the timer does)",
                layout.ssh_dir().display(),
                if failures.is_empty() {
                    String::new()
                } else {
                    format!("; these could not be put back: {}", failures.join("; "))
                }
            );
        }
    };
    let written = install::apply(changes, &sshd, &layout, false)?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let installed = installed_user_ca(&layout);
    if !installed.is_empty()
        && installed != trusted
        && let Err(e) = report_installed(&client, &layout, &installed, now).await
    {
        problems.push(format!(
            "{}; `shiftkey-ca keys status` shows this host as not yet trusting the new keys",
            one_line(&e)
        ));
    }

    if let Some(checked) = &renewed {
        state.renewed_at = Some(now);
        eprintln!(
            "renewed the host certificate: serial {}, valid until {}",
            checked.response.serial,
            local_time(checked.certificate.valid_before())
        );
    }
    match &krl {
        Ok((_, info)) => {
            state.krl_fetched_at = Some(now);
            if written.contains(&layout.krl()) {
                eprintln!("installed KRL version {}", info.version);
            }
        }
        Err(e) => problems.push(format!(
            "{}; the installed KRL {} is kept, never emptied",
            one_line(e),
            match state.krl_fetched_at {
                Some(at) => format!("(fetched {} ago)", duration_words(now.saturating_sub(at))),
                None => "(never fetched)".to_owned(),
            }
        )),
    }
    if let Err(e) = &user_ca {
        problems.push(format!(
            "{}; the installed user CA keys are kept",
            one_line(e)
        ));
    }
    if let Some(Err(e)) = &principals {
        problems.push(format!(
            "{}; the installed principals files are kept",
            one_line(e)
        ));
    }
    problems.extend(renew_problem);
    for path in &written {
        eprintln!("wrote {}", path.display());
    }
    let reloaded = if written.is_empty() {
        Ok(())
    } else {
        let reload = if args.reload.no_reload {
            Reload::Skip
        } else {
            match args
                .reload
                .reload_pid_file
                .clone()
                .or(state.reload_pid_file.clone())
            {
                Some(path) => Reload::PidFile(path),
                None => Reload::Auto,
            }
        };
        reload.run().map(|what| eprintln!("{what}"))
    };
    // Remembered even when something failed: when the KRL was last good.
    let saved = state.to_toml().and_then(|text| {
        Ok(write_atomic(
            &layout.state(),
            text.as_bytes(),
            PUBLIC_FILE_MODE,
        )?)
    });
    if let Err(e) = saved {
        problems.push(format!(
            "cannot save {}: {}",
            layout.state().display(),
            one_line(&e)
        ));
    }
    if let Err(e) = reloaded {
        problems.push(one_line(&e));
    }
    if !problems.is_empty() {
        bail!(
            "refresh incomplete:\n  {}\nhint: check that the CA at {} is up and reachable from this host; the timer tries again in 5 minutes",
            problems.join("\n  "),
            state.ca
        );
    }
    if written.is_empty() {
        eprintln!("up to date: nothing changed");
    }
    Ok(())
}

/// SHA256 fingerprints of the user CA keys installed for sshd now (none
/// when the file is missing or unreadable).
fn installed_user_ca(layout: &Layout) -> Vec<String> {
    std::fs::read_to_string(layout.user_ca())
        .map(|text| fingerprints(&text))
        .unwrap_or_default()
}

/// Reports the user CA keys installed by this refresh, once the write
/// succeeded (a principals request carries the report; its answer was
/// already handled).
async fn report_installed(
    client: &CaClient,
    layout: &Layout,
    installed: &[String],
    now: u64,
) -> anyhow::Result<()> {
    let current = current_certificate(layout)?;
    fetch_principals(client, layout, &current, now, installed)
        .await
        .context("cannot report the installed user CA keys to the CA")?;
    Ok(())
}

/// One line for a problem: the CA being unreachable said plainly, without
/// the `--ca` hint meant for people who typed a URL.
fn one_line(error: &anyhow::Error) -> String {
    match error.downcast_ref::<CaError>() {
        Some(CaError::Unreachable { cause, .. }) if error.chain().count() > 1 => {
            format!("{error}: cannot reach the CA ({cause})")
        }
        Some(CaError::Unreachable { cause, .. }) => format!("cannot reach the CA ({cause})"),
        _ => format!("{error:#}").replace("\nhint: ", "; hint: "),
    }
}

fn current_certificate(layout: &Layout) -> anyhow::Result<Certificate> {
    let path = layout.host_certificate();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the host certificate {}\nhint: enroll again (shiftkey host enroll) with a new join token",
            path.display()
        )
    })?;
    Certificate::from_openssh(text.trim()).with_context(|| {
        format!(
            "{} is not an OpenSSH certificate\nhint: enroll again with a new join token",
            path.display()
        )
    })
}

/// `POST /v1/hosts/principals`, signed with the host key: the principals
/// files under the policy in force now.
async fn fetch_principals(
    client: &CaClient,
    layout: &Layout,
    current: &Certificate,
    now: u64,
    trusted: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<String>>> {
    let key = host_key(layout, current)?;
    let path = "/v1/hosts/principals";
    let body = serde_json::to_vec(&PrincipalsRequest {
        ca_keys: trusted.to_vec(),
    })?;
    let authorization = host_auth::authorization(&key, current, "POST", path, now, &body)
        .context("cannot sign the principals request with the host key")?;
    let (_, bytes) = client
        .exchange_raw("POST", path, Some(body), Some(&authorization))
        .await
        .map_err(renewal_refused)
        .context("cannot fetch the principals files")?;
    let answer: HostPrincipals = serde_json::from_slice(&bytes)
        .context("the CA's answer is not the host's principals files")?;
    Ok(answer.authorized_principals)
}

/// SHA256 fingerprints of the keys in a `TrustedUserCAKeys` text.
fn fingerprints(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| ssh_key::PublicKey::from_openssh(l.trim()).ok())
        .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256).to_string())
        .collect()
}

/// The host key, checked to be the one the current certificate is for.
fn host_key(layout: &Layout, current: &Certificate) -> anyhow::Result<PrivateKey> {
    // INVARIANT: ssh-key's private key zeroizes on drop; it only signs.
    let key = PrivateKey::read_openssh_file(layout.host_key()).with_context(|| {
        format!(
            "cannot read the host key {} (run as root)",
            layout.host_key().display()
        )
    })?;
    if key.public_key().key_data() != current.public_key() {
        bail!(
            "the host key {} is not the key the certificate is for (was it replaced?)\nhint: enroll again with a new join token",
            layout.host_key().display()
        );
    }
    Ok(key)
}

/// `POST /v1/hosts/renew`, signed with the host key and presenting the
/// current certificate.
async fn renew(
    client: &CaClient,
    layout: &Layout,
    current: &Certificate,
    now: u64,
    trusted: &[String],
) -> anyhow::Result<CheckedCertificate> {
    if current.valid_before() <= now {
        bail!(
            "it expired at {}, and only a valid certificate can renew itself\nhint: enroll again with a new join token (`shiftkey-ca hosts token` on the CA)",
            local_time(current.valid_before())
        );
    }
    let key = host_key(layout, current)?;
    let body = serde_json::to_vec(&RenewRequest {
        host_key: None,
        ca_keys: trusted.to_vec(),
    })?;
    let authorization = host_auth::authorization(&key, current, "POST", RENEW_PATH, now, &body)
        .context("cannot sign the renewal request with the host key")?;
    let (_, bytes) = client
        .exchange_raw("POST", RENEW_PATH, Some(body), Some(&authorization))
        .await
        .map_err(renewal_refused)?;
    let response: HostCertificateResponse = serde_json::from_slice(&bytes)
        .context("the CA's answer to the renewal is not a host certificate")?;
    install::check_certificate(response, key.public_key(), unix_now())
}

/// The CA's refusal of a renewal, with what a host can do about it (the
/// CA's generic hint for a 401 is about signing in, which hosts never do).
fn renewal_refused(error: CaError) -> anyhow::Error {
    match error {
        CaError::Refused {
            code,
            message,
            hint,
            ..
        } => {
            let hint = match code.as_str() {
                "host-auth-stale" => {
                    "the host's clock is off: check it (timedatectl, chrony)".to_owned()
                }
                "host-unknown" | "host-cert-invalid" | "host-signature-invalid" => {
                    "enroll again with a new join token (`shiftkey-ca hosts token` on the CA)"
                        .to_owned()
                }
                _ => hint.unwrap_or_else(|| "tell the CA's operator".to_owned()),
            };
            anyhow::anyhow!("the CA refused ({code}): {message}\nhint: {hint}")
        }
        other => other.into(),
    }
}
