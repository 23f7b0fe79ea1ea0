//! `shiftkey status`: the certificates from this CA that ssh-agent holds,
//! and whether the login is still good. The user CA keys that recognise
//! them are fetched from the CA when it answers (a rotation's new key is
//! known at once) and saved; offline, the saved ones serve.

use anyhow::Context;
use chrono::Utc;
use serde_json::json;
use shiftkey_ssh_agent::Agent;
use ssh_key::PublicKey;

use crate::config::Config;

/// One of our certificates in the agent.
#[derive(Debug)]
struct Held {
    role: String,
    incident: Option<String>,
    serial: u64,
    principals: Vec<String>,
    seconds_left: i64,
    key_id: String,
}

/// How long `status` and `access` wait for the CA's keys before using the
/// saved ones.
const REFRESH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the user CA keys in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeysFrom {
    /// Fetched from the CA just now (and saved).
    Ca,
    /// The CA did not answer: the keys saved earlier.
    Saved,
}

impl KeysFrom {
    fn word(self) -> &'static str {
        match self {
            Self::Ca => "ca",
            Self::Saved => "saved",
        }
    }
}

/// Asks the CA for its published user CA keys and saves them in the
/// config when they changed (after a rotation). Offline, or when the CA's
/// answer has no keys, the saved keys stay in use.
pub(crate) async fn refresh_ca_keys(session: &mut crate::session::Session) -> KeysFrom {
    let Ok(client) = session.client() else {
        return KeysFrom::Saved;
    };
    let fetched = match tokio::time::timeout(REFRESH_TIMEOUT, client.config()).await {
        Ok(Ok(answer)) => answer.user_ca_keys,
        _ => return KeysFrom::Saved,
    };
    if fetched.is_empty()
        || !fetched
            .iter()
            .all(|line| PublicKey::from_openssh(line).is_ok())
    {
        return KeysFrom::Saved;
    }
    if fetched != session.config.user_ca_keys {
        session.config.user_ca_keys = fetched.clone();
        // Saved into the file only when it is for this CA (a `--ca` naming
        // another CA is not a reason to forget the saved one).
        if let Ok(mut saved) = Config::load(&session.config_path)
            && saved.ca == session.config.ca
        {
            saved.user_ca_keys = fetched;
            if let Err(e) = saved.save(&session.config_path) {
                eprintln!(
                    "warning: cannot save the CA's keys in {}: {e}",
                    session.config_path.display()
                );
            }
        }
    }
    KeysFrom::Ca
}

pub(crate) fn run(
    session: &crate::session::Session,
    keys_from: KeysFrom,
    json: bool,
) -> anyhow::Result<()> {
    let config = &session.config;
    let ca_keys = ca_keys(config);
    let login = session.cached_token();
    let held = match Agent::from_env() {
        Ok(mut agent) => Some(ours(&mut agent, &ca_keys)?),
        Err(e) if !json => {
            eprintln!("{e}");
            None
        }
        Err(_) => None,
    };
    if json {
        let certificates: Vec<_> = held
            .iter()
            .flatten()
            .map(|h| {
                json!({ "role": h.role, "incident": h.incident, "serial": h.serial, "principals": h.principals,
                        "seconds_left": h.seconds_left, "key_id": h.key_id })
            })
            .collect();
        let answer = json!({
            "ca": config.ca,
            "agent": held.is_some(),
            "ca_keys": keys_from.word(),
            "certificates": certificates,
            "login": login.as_ref().map(|t| json!({ "email": t.email, "expires_at": t.expires_at.timestamp() })),
        });
        println!("{answer}");
        return Ok(());
    }
    println!(
        "CA      {}",
        config
            .ca
            .as_deref()
            .unwrap_or("(none; run `shiftkey login --ca URL`)")
    );
    let local = config
        .ca
        .as_deref()
        .is_some_and(|ca| ca.starts_with("unix:"));
    match &login {
        _ if local => println!("login   not needed on the CA's local socket"),
        Some(token) => println!(
            "login   {} until {}",
            token.email.as_deref().unwrap_or("(no email)"),
            token
                .expires_at
                .with_timezone(&chrono::Local)
                .format("%H:%M:%S %Z")
        ),
        None => println!("login   none or expired (run `shiftkey login`)"),
    }
    match keys_from {
        KeysFrom::Ca => println!("keys    {} user CA key(s), from the CA now", ca_keys.len()),
        KeysFrom::Saved => println!(
            "keys    {} user CA key(s) saved earlier (the CA did not answer)",
            ca_keys.len()
        ),
    }
    match held {
        None => {}
        Some(list) if list.is_empty() => println!("agent   no Shiftkey certificates"),
        Some(list) => {
            println!("agent   {} certificate(s):", list.len());
            for h in list {
                let incident = h
                    .incident
                    .map(|i| format!(" incident {i}"))
                    .unwrap_or_default();
                println!(
                    "  {:<16} {}m{:02}s left  as {}{incident}  (serial {})",
                    h.role,
                    h.seconds_left / 60,
                    h.seconds_left % 60,
                    h.principals.join(","),
                    h.serial
                );
            }
        }
    }
    if config.user_ca_keys.is_empty() {
        eprintln!(
            "hint: run `shiftkey login` so this client knows the CA's keys and can recognise its certificates"
        );
    }
    Ok(())
}

/// The agent's identities that are certificates signed by one of `ca_keys`.
pub(crate) fn signed_by(
    agent: &mut Agent,
    ca_keys: &[PublicKey],
) -> anyhow::Result<Vec<(Vec<u8>, ssh_key::Certificate)>> {
    let identities = agent.list().context("listing the agent's keys")?;
    Ok(identities
        .into_iter()
        .filter_map(|identity| identity.certificate.map(|cert| (identity.key_blob, cert)))
        .filter(|(_, cert)| {
            ca_keys
                .iter()
                .any(|ca| ca.key_data() == cert.signature_key())
        })
        .collect())
}

/// The CA keys the config remembers from login.
pub(crate) fn ca_keys(config: &Config) -> Vec<PublicKey> {
    config
        .user_ca_keys
        .iter()
        .filter_map(|line| PublicKey::from_openssh(line).ok())
        .collect()
}

fn ours(agent: &mut Agent, ca_keys: &[PublicKey]) -> anyhow::Result<Vec<Held>> {
    let now = Utc::now().timestamp();
    Ok(signed_by(agent, ca_keys)?
        .into_iter()
        .map(|(_, cert)| {
            let field = |name: &str| {
                cert.key_id()
                    .split(' ')
                    .find_map(|part| part.strip_prefix(name))
                    .map(str::to_owned)
            };
            Held {
                role: field("role=").unwrap_or_default(),
                incident: field("incident="),
                serial: cert.serial(),
                principals: cert.valid_principals().to_vec(),
                seconds_left: i64::try_from(cert.valid_before()).unwrap_or(i64::MAX) - now,
                key_id: cert.key_id().to_owned(),
            }
        })
        .filter(|h| h.seconds_left > 0)
        .collect())
}
