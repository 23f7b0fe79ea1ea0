//! `shiftkey host enroll`: trade a join token for a host certificate and
//! make sshd trust only the CA, or change nothing.
//!
//! Order matters: everything that can be checked without the CA (host key,
//! sshd's current configuration and its `Include`) and the KRL (public)
//! come before the token is spent, so a host that cannot be enrolled keeps
//! its token.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use shiftkey_wire::{EnrollRequest, HostCertificateResponse};
use ssh_key::PublicKey;

use super::files::Changes;
use super::install::{self, CheckedCertificate};
use super::sshd::{self, Reload, Sshd};
use super::state::{self, State};
use super::{EnrollArgs, Layout, PUBLIC_FILE_MODE, duration_words, local_time, unix_now};
use crate::ca_client::{CaClient, Error as CaError, Trust};

/// Longest join token accepted from a file (the CA's are under 100 bytes).
const MAX_TOKEN: u64 = 4096;

pub(crate) async fn run(args: EnrollArgs) -> anyhow::Result<()> {
    let layout = Layout::new(&args.ssh.ssh_dir)?;
    let token = join_token(&args)?;
    let fingerprint = args
        .ca_fingerprint
        .as_deref()
        .map(state::normalize_fingerprint);
    let bundle = match &args.ca_bundle {
        Some(path) => Some(std::fs::read(path).with_context(|| {
            format!(
                "--ca-bundle {}: cannot read it\nhint: pass the PEM file the CA's operator published (the CA's tls/cert.pem)",
                path.display()
            )
        })?),
        None => None,
    };
    let sshd = Sshd {
        binary: absolute(&args.sshd)?,
        main_config: absolute(
            &args
                .sshd_config
                .clone()
                .unwrap_or_else(|| layout.default_main_config()),
        )?,
    };
    let _lock = layout.lock()?;

    let host_key_line = std::fs::read_to_string(layout.host_key_pub()).with_context(|| {
        format!(
            "cannot read the host key {}\nhint: `ssh-keygen -A` creates missing host keys (sshd's ed25519 key is the one enrolled)",
            layout.host_key_pub().display()
        )
    })?;
    let host_key = PublicKey::from_openssh(host_key_line.trim()).with_context(|| {
        format!(
            "{} is not an OpenSSH public key",
            layout.host_key_pub().display()
        )
    })?;
    if !host_key.algorithm().is_ed25519() {
        bail!(
            "{} is not an ed25519 key\nhint: `ssh-keygen -A` creates the ed25519 host key",
            layout.host_key_pub().display()
        );
    }
    sshd.check_ready(&layout)?;
    sshd.test().map_err(|message| {
        anyhow::anyhow!(
            "sshd's configuration is already invalid, before any change (`{} -t -f {}`):\n{message}\nhint: fix it first; nothing was changed and the join token was not used",
            sshd.binary.display(),
            sshd.main_config.display()
        )
    })?;

    let client = CaClient::new(
        &args.ca,
        &Trust {
            bundle: args.ca_bundle.clone(),
            fingerprint: fingerprint.clone(),
        },
    )?;
    // Public, and it proves the CA is reachable and trusted before the
    // token is spent.
    let (krl, krl_info) = install::fetch_krl(&client)
        .await
        .context("the join token was not used")?;
    let response = enroll(&client, &token, host_key_line.trim()).await?;
    let now = unix_now();
    let checked = install::check_certificate(response, &host_key, now)
        .context("the join token is spent: ask for a new one once this is solved")?;
    let user_ca = install::user_ca_file(&checked.response.user_ca_keys)
        .context("the join token is spent: ask for a new one once this is solved")?;

    let state = State {
        ca: args.ca.trim_end_matches('/').to_owned(),
        ca_bundle: bundle.as_ref().map(|_| layout.ca_bundle()),
        ca_fingerprint: fingerprint,
        name: checked.response.name.clone(),
        kind: checked.response.kind.clone(),
        host_ca_keys: checked.response.host_ca_keys.clone(),
        sshd: sshd.binary.clone(),
        sshd_config: sshd.main_config.clone(),
        reload_pid_file: args
            .reload
            .reload_pid_file
            .as_deref()
            .map(absolute)
            .transpose()?,
        enrolled_at: now,
        krl_fetched_at: Some(now),
        renewed_at: None,
    };
    let mut changes = Changes::default();
    let staged = stage(
        &mut changes,
        &layout,
        &checked,
        &user_ca,
        &krl,
        bundle.as_deref(),
        &state,
    );
    let warnings = match staged {
        Ok(warnings) => warnings,
        Err(e) => {
            let failures = changes.rollback();
            bail!(
                "cannot install the files: {e:#}\n{}\nhint: run as root; the join token is spent, ask for a new one",
                if failures.is_empty() {
                    "Every file was put back as it was.".to_owned()
                } else {
                    format!("These could not be put back: {}", failures.join("; "))
                }
            );
        }
    };
    let written = install::apply(changes, &sshd, &layout, true).map_err(|e| {
        anyhow::anyhow!(
            "{e:#}\nThe join token is spent: ask for a new one (`shiftkey-ca hosts token`) once sshd's configuration is fixed."
        )
    })?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }

    let response = &checked.response;
    let valid_before = checked.certificate.valid_before();
    println!(
        "enrolled {} {} with {}: host certificate serial {} for {}, valid until {} ({})",
        response.kind,
        response.name,
        state.ca,
        response.serial,
        response.principals.join(", "),
        local_time(valid_before),
        duration_words(valid_before.saturating_sub(now))
    );
    for (login, principals) in &response.authorized_principals {
        println!(
            "  login {login}: certificates with principal {}",
            principals.join(" or ")
        );
    }
    println!(
        "  KRL version {} ({} section(s))",
        krl_info.version, krl_info.sections
    );
    for path in &written {
        println!("  wrote {}", path.display());
    }
    let reload = match (&args.reload.no_reload, &state.reload_pid_file) {
        (true, _) => Reload::Skip,
        (false, Some(path)) => Reload::PidFile(path.clone()),
        (false, None) => Reload::Auto,
    };
    let reloaded = reload.run();
    if let Ok(what) = &reloaded {
        println!("{what}");
    }
    println!(
        "Clients verify this host by the host CA; their known_hosts line (`shiftkey ssh-config --install` writes it):"
    );
    for key in &response.host_ca_keys {
        println!(
            "  @cert-authority {} {}",
            response.principals.join(","),
            key.trim()
        );
    }
    println!(
        "Keep the certificate and the KRL current: systemctl enable --now shiftkey-host-refresh.timer"
    );
    reloaded.map(|_| ())
}

/// The token from --token or --token-file.
fn join_token(args: &EnrollArgs) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => zeroize::Zeroizing::new(token.trim().to_owned()),
        (None, Some(path)) => {
            use std::io::Read;
            let mut text = zeroize::Zeroizing::new(String::new());
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_TOKEN).read_to_string(&mut text))
                .with_context(|| format!("--token-file {}: cannot read it", path.display()))?;
            zeroize::Zeroizing::new(text.trim().to_owned())
        }
        (None, None) => bail!("give the join token: --token TOKEN or --token-file FILE"),
    };
    if token.is_empty() {
        bail!(
            "the join token is empty\nhint: `shiftkey-ca hosts token --name NAME --principals NAMES` on the CA prints one"
        );
    }
    Ok(token)
}

/// `POST /v1/hosts/enroll`, with the CA's refusal worded for this command.
async fn enroll(
    client: &CaClient,
    token: &str,
    host_key: &str,
) -> anyhow::Result<HostCertificateResponse> {
    let request = EnrollRequest {
        token: token.to_owned(),
        host_key: host_key.to_owned(),
    };
    let body = zeroize::Zeroizing::new(serde_json::to_vec(&request)?);
    match client
        .exchange_raw("POST", "/v1/hosts/enroll", Some(body.to_vec()), None)
        .await
    {
        Ok((_, bytes)) => serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "the CA's answer to the enrollment is not a host certificate ({e})\nhint: is --ca a Shiftkey CA of a matching version?"
            )
        }),
        Err(CaError::Refused {
            code,
            message,
            hint,
            ..
        }) => {
            // The CA's generic hint for a 401 is about signing in, which a
            // host never does: a refused token needs a new token.
            let hint = match hint {
                Some(hint) if !code.starts_with("token-") => hint,
                _ => "ask the CA's operator for a new join token: shiftkey-ca hosts token --name NAME --principals NAMES".into(),
            };
            bail!("the CA refused to enroll this host ({code}): {message}\nhint: {hint}")
        }
        Err(e) => Err(anyhow::Error::new(e).context("the join token was not used")),
    }
}

/// Every file of an enrollment, in `changes`.
fn stage(
    changes: &mut Changes,
    layout: &Layout,
    checked: &CheckedCertificate,
    user_ca: &str,
    krl: &[u8],
    bundle: Option<&[u8]>,
    state: &State,
) -> anyhow::Result<Vec<String>> {
    changes.ensure_dir(&layout.own_dir())?;
    changes.ensure_dir(&layout.drop_in_dir())?;
    let warnings = install::stage_certificate(changes, layout, checked)?;
    changes.write(&layout.user_ca(), user_ca.as_bytes(), PUBLIC_FILE_MODE)?;
    changes.write(&layout.krl(), krl, PUBLIC_FILE_MODE)?;
    match bundle {
        Some(pem) => changes.write(&layout.ca_bundle(), pem, PUBLIC_FILE_MODE)?,
        None => changes.remove(&layout.ca_bundle())?,
    };
    changes.write(
        &layout.state(),
        state.to_toml()?.as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    changes.write(
        &layout.drop_in(),
        sshd::drop_in(layout).as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    Ok(warnings)
}

/// `path` made absolute against the working directory (saved for refresh,
/// which the timer runs from `/`).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}
