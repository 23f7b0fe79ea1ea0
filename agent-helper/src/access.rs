//! `shiftkey access ROLE`: a fresh key in memory, a certificate for it, both
//! into ssh-agent for exactly as long as the certificate is valid.
//!
//! Never writes the private key anywhere, except into `--out DIR` when the
//! user asks (CI jobs without an agent); the in-memory copy is zeroized when
//! dropped (ssh-key's ed25519 private key zeroizes itself).
//!
//! A role that needs approvals answers with a pending access request; the
//! client then waits (polling the CA) with the key in memory only, and goes
//! on exactly as for an immediate certificate once the CA issues it.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Local, Utc};
use serde_json::json;
use shiftkey_ssh_agent::Agent;
use shiftkey_wire::{AccessRequest, CertificateRequest, CertificateResponse, RoleInfo};
use ssh_key::{Algorithm, Certificate, LineEnding, PrivateKey};
use tokio::time::Instant;

use crate::ca_client::{self, CaClient, Issued};

/// How often the CA is asked about a pending request.
const POLL_EVERY: Duration = Duration::from_secs(2);
/// How often the live status line is redrawn (its clock ticks in seconds).
const REDRAW_EVERY: Duration = Duration::from_secs(1);

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
    /// How long to wait for approvals when the role needs them.
    pub(crate) wait: Duration,
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
    // While an approval is awaited the key stays where it is: in this
    // process's memory, nowhere else.
    let (issued, approved) = match client.issue(&request).await? {
        Issued::Certificate(issued) => (issued, None),
        Issued::Pending(pending) => {
            let done = wait_for_approval(client, *pending, opts).await?;
            let issued = done.certificate.clone().with_context(|| {
                format!(
                    "the CA approved request {} but sent no certificate",
                    done.id
                )
            })?;
            (issued, Some(done))
        }
    };
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
            "access_request": approved.as_ref().map(|r| &r.id),
            "approved_by": approved.as_ref().map(|r| &r.approvals),
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
            approved.as_ref(),
        );
    }
    Ok(())
}

/// Waits for `pending` to be issued, denied or expired, or for `--wait` to
/// run out, with a live status line on stderr. Ctrl-C stops waiting (the key
/// goes with the process; the request stays at the CA).
async fn wait_for_approval(
    client: &CaClient,
    pending: AccessRequest,
    opts: &AccessOptions<'_>,
) -> anyhow::Result<AccessRequest> {
    let live = std::io::stderr().is_terminal();
    let id = pending.id.clone();
    eprintln!(
        "{} needs approval: request {id} is pending until {}; waiting up to {} (Ctrl-C stops).",
        opts.role,
        local_time(pending.expires_at),
        humantime::format_duration(opts.wait)
    );
    eprintln!("  approvers see it with `shiftkey requests` and run `shiftkey approve {id}`");
    let waiting = poll(client, pending, opts, live);
    tokio::select! {
        done = waiting => done,
        _ = tokio::signal::ctrl_c() => {
            if live {
                eprint!("\r\x1b[K");
            }
            bail!(
                "interrupted: request {id} stays pending at the CA, but the key it is for was only in this process's memory and is gone\nhint: `shiftkey requests {id}` shows it; run `shiftkey access {}` again when an approver is ready",
                opts.role
            )
        }
    }
}

async fn poll(
    client: &CaClient,
    mut current: AccessRequest,
    opts: &AccessOptions<'_>,
    live: bool,
) -> anyhow::Result<AccessRequest> {
    let id = current.id.clone();
    let started = Instant::now();
    let deadline = started + opts.wait;
    let mut next_poll = started + POLL_EVERY;
    let mut shown: Option<(String, usize)> = None;
    let mut trouble: Option<String> = None;
    let mut redraw = tokio::time::interval(REDRAW_EVERY);
    redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        if current.id != id {
            bail!(
                "the CA answered about request {:?} when asked about {id}",
                printable(&current.id)
            );
        }
        let state = (current.status.clone(), current.approvals.len());
        if live {
            let mut line = status_line(
                &id,
                current.approvals.len(),
                current.approvals_needed,
                started.elapsed(),
            );
            if let Some(trouble) = &trouble {
                line.push_str(&format!("  ({trouble}; retrying)"));
            }
            eprint!("\r{line}\x1b[K");
        } else if shown.as_ref() != Some(&state) {
            eprintln!(
                "{}",
                status_line(
                    &id,
                    current.approvals.len(),
                    current.approvals_needed,
                    started.elapsed()
                )
            );
        }
        shown = Some(state);
        let end_line = || {
            if live {
                eprintln!();
            }
        };
        match current.status.as_str() {
            "issued" | "approved" if current.certificate.is_some() => {
                end_line();
                eprintln!(
                    "✓ request {id} approved by {}",
                    printable(&current.approvals.join(", "))
                );
                return Ok(current);
            }
            "issued" => {
                end_line();
                bail!(
                    "the CA says request {id} is issued but sent no certificate\nhint: is this request yours? run `shiftkey access {}` again",
                    opts.role
                );
            }
            "denied" => {
                end_line();
                bail!("{}", denied_message(&current, opts.role));
            }
            "expired" => {
                end_line();
                bail!(
                    "request {id} expired with {}/{} approvals\nhint: find an approver first, then run `shiftkey access {}` again",
                    current.approvals.len(),
                    current.approvals_needed,
                    opts.role
                );
            }
            "pending" | "approved" => {}
            other => {
                end_line();
                bail!(
                    "request {id} has a status this client does not know: {:?}\nhint: is the CA of a newer version?",
                    printable(other)
                );
            }
        }
        let now = Instant::now();
        if now >= deadline {
            end_line();
            bail!(
                "gave up waiting after {} with {}/{} approvals: request {id} stays pending at the CA until {}, but the key it is for was only in this process's memory and is gone\nhint: `shiftkey requests {id}` shows it; run `shiftkey access {} --wait 30m` again to wait longer",
                humantime::format_duration(opts.wait),
                current.approvals.len(),
                current.approvals_needed,
                local_time(current.expires_at),
                opts.role
            );
        }
        redraw.tick().await;
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + POLL_EVERY;
            match client.request(&id).await {
                Ok(latest) => {
                    current = latest;
                    trouble = None;
                }
                // A network hiccup is no reason to give up on an approval;
                // a refusal (login expired, request gone) is.
                Err(ca_client::Error::Unreachable { .. }) => {
                    trouble = Some("CA unreachable".into());
                }
                Err(e) => {
                    end_line();
                    return Err(e.into());
                }
            }
        }
    }
}

fn denied_message(request: &AccessRequest, role: &str) -> String {
    format!(
        "request {} was denied by {}: {}\nhint: talk to them; `shiftkey access {role}` asks again",
        request.id,
        printable(request.denied_by.as_deref().unwrap_or("an approver")),
        printable(
            request
                .decision_reason
                .as_deref()
                .unwrap_or("no reason given")
        ),
    )
}

/// The live status line: `⧗ waiting for approval of r_abc (0/1 approvals) 0:12`.
pub(crate) fn status_line(id: &str, approvals: usize, needed: u8, elapsed: Duration) -> String {
    format!(
        "⧗ waiting for approval of {} ({approvals}/{needed} approvals) {}",
        printable(id),
        clock(elapsed)
    )
}

/// `m:ss`, or `h:mm:ss` from an hour on.
fn clock(elapsed: Duration) -> String {
    let total = elapsed.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// Text from the CA (a requester's reason, an approver's words, a
/// recorded line or command) for a terminal: every character that could be
/// obeyed or could hide or reorder the text (control, bidi and zero-width
/// characters, `shiftkey_safe_text`) is shown as a visible marker instead
/// (`␛`, `⟨CSI⟩`, `⟨RLO⟩`), as the review UI shows it.
pub(crate) fn printable(text: &str) -> String {
    shiftkey_safe_text::marked(text).into_owned()
}

/// Unix seconds as local `HH:MM:SS TZ` (with the date when not today).
pub(crate) fn local_time(unix: i64) -> String {
    let Some(time) = DateTime::<Utc>::from_timestamp(unix, 0) else {
        return format!("{unix}");
    };
    let time = time.with_timezone(&Local);
    if time.date_naive() == Local::now().date_naive() {
        time.format("%H:%M:%S %Z").to_string()
    } else {
        time.format("%Y-%m-%d %H:%M:%S %Z").to_string()
    }
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
    approved: Option<&AccessRequest>,
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
    if let Some(request) = approved {
        println!(
            "  approved    by {} (request {})",
            printable(&request.approvals.join(", ")),
            request.id
        );
    }
    // The certificate names the login for its role (`LOGIN@ROLE`); ssh
    // takes the login.
    let scoped_suffix = format!("@{}", opts.role);
    let login = role
        .and_then(|r| r.principals.first())
        .map(String::as_str)
        .or_else(|| {
            issued
                .principals
                .first()
                .map(|p| p.strip_suffix(&scoped_suffix).unwrap_or(p))
        })
        .unwrap_or("USER");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_counts_approvals_and_time() {
        assert_eq!(
            status_line("r_abc", 0, 1, Duration::from_secs(12)),
            "⧗ waiting for approval of r_abc (0/1 approvals) 0:12"
        );
        assert_eq!(
            status_line("r_abc", 1, 2, Duration::from_millis(605_900)),
            "⧗ waiting for approval of r_abc (1/2 approvals) 10:05"
        );
        assert_eq!(
            status_line("r_abc", 2, 3, Duration::from_secs(3725)),
            "⧗ waiting for approval of r_abc (2/3 approvals) 1:02:05"
        );
        assert_eq!(
            status_line("r_abc", 0, 1, Duration::ZERO),
            "⧗ waiting for approval of r_abc (0/1 approvals) 0:00"
        );
    }

    #[test]
    fn status_line_never_carries_control_characters() {
        let line = status_line("r\r\x1b[2Jx", 0, 1, Duration::ZERO);
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }

    #[test]
    fn text_from_the_ca_is_escaped() {
        assert_eq!(printable("replica lag on db-1"), "replica lag on db-1");
        assert_eq!(printable("naïve ⧗"), "naïve ⧗");
        assert_eq!(printable("a\x1b[31mred\nb"), "a\u{241b}[31mred\u{240a}b");
        // Issue 16: a spoofed approval reads as what it is; a C1 CSI is
        // not shown as ESC.
        assert_eq!(
            printable("LGTM \u{202e}devorppa\u{202c} \u{9b}2J"),
            "LGTM \u{27e8}RLO\u{27e9}devorppa\u{27e8}PDF\u{27e9} \u{27e8}CSI\u{27e9}2J"
        );
    }

    #[test]
    fn a_denial_says_who_and_why() {
        let request = AccessRequest {
            id: "r_1".into(),
            status: "denied".into(),
            requester: "user:alice@example.com".into(),
            role: "db-debug".into(),
            incident: None,
            reason: None,
            approvals: vec![],
            approvals_needed: 1,
            denied_by: Some("user:bob@example.com".into()),
            decision_reason: Some("use the replica".into()),
            created_at: 0,
            expires_at: 0,
            certificate: None,
        };
        let message = denied_message(&request, "db-debug");
        assert!(
            message.starts_with("request r_1 was denied by user:bob@example.com: use the replica"),
            "{message}"
        );
    }
}
