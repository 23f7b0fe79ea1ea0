//! `shiftkey-ca init`: a new data directory with everything the CA needs,
//! working as it is.
//!
//! Creates, never overwrites: CA keys, TLS certificate, `ca.toml`,
//! `policy.toml` and the store. Existing key files stop it with an error.
//! Keys named by a `pkcs11:` URI are generated on their token when it has
//! no such key, and used as they are when it has one; nothing of theirs is
//! written to the data directory.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::audit::{Audit, Event, Outcome};
use crate::keys::{self, CaKind, KeySettings};
use crate::secret::Secret;
use crate::signer::{self, KeyAlgorithm, KeyLocation, Provenance};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{path}: cannot create the data directory: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Keys(#[from] keys::Error),
    #[error(transparent)]
    Signer(#[from] signer::Error),
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error(
        "{path} already says keys.{kind} = {configured:?}, but `--{kind}-key {given}` was given; edit [keys] in it or leave the option out"
    )]
    KeysConflict {
        path: PathBuf,
        kind: &'static str,
        configured: String,
        given: String,
    },
    #[error("the key-generating thread stopped: {0}")]
    Join(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::Error),
    #[error(transparent)]
    Store(#[from] crate::config::OpenStoreError),
    #[error(transparent)]
    Audit(#[from] crate::audit::Error),
}

#[derive(Debug)]
pub(crate) struct InitOptions<'a> {
    pub(crate) passphrase: Option<&'a Secret>,
    /// Extra DNS names / IPs for the self-signed TLS certificate.
    pub(crate) tls_names: &'a [String],
    /// The local user the example policy grants a short-lived shell role to.
    pub(crate) local_user: &'a str,
    /// The configuration naming the store [default: DIR/ca.toml].
    pub(crate) config: Option<&'a Path>,
    /// `--user-key`: where the user CA key goes [default: what ca.toml
    /// says, else a key file].
    pub(crate) user_key: Option<KeyLocation>,
    /// `--host-key`, as `user_key`.
    pub(crate) host_key: Option<KeyLocation>,
    /// `--key-algorithm`: for keys generated on a token.
    pub(crate) algorithm: Option<KeyAlgorithm>,
}

#[derive(Debug)]
pub(crate) struct Initialized {
    pub(crate) user_ca: String,
    pub(crate) host_ca: String,
    pub(crate) config: PathBuf,
    pub(crate) policy: PathBuf,
}

pub(crate) async fn init(data_dir: &Path, options: &InitOptions<'_>) -> Result<Initialized, Error> {
    std::fs::create_dir_all(data_dir).map_err(|source| Error::Dir {
        path: data_dir.to_owned(),
        source,
    })?;
    std::fs::set_permissions(
        data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(|source| Error::Dir {
        path: data_dir.to_owned(),
        source,
    })?;
    let settings = key_settings(data_dir, options)?;
    // Check both before writing either, so a half-initialized directory
    // cannot come from a refused init.
    for kind in [CaKind::User, CaKind::Host] {
        let path = keys::key_path(data_dir, kind);
        if *settings.location(kind) == KeyLocation::File && path.exists() {
            return Err(keys::Error::Exists { path }.into());
        }
    }
    let (user, host) = {
        let data_dir = data_dir.to_owned();
        let settings = settings.clone();
        let passphrase = options
            .passphrase
            .map(|p| Secret::new(p.expose().to_owned()));
        // Token calls block: off the async workers.
        tokio::task::spawn_blocking(move || {
            let pkcs11 = settings.pkcs11_options();
            let ensure = |kind| {
                signer::ensure(
                    &data_dir,
                    kind,
                    settings.location(kind),
                    match settings.location(kind) {
                        KeyLocation::File | KeyLocation::NamedFile(_) => KeyAlgorithm::Ed25519,
                        KeyLocation::Pkcs11(_) => settings.algorithm,
                    },
                    passphrase.as_ref(),
                    &pkcs11,
                )
            };
            Ok::<_, signer::Error>((ensure(CaKind::User)?, ensure(CaKind::Host)?))
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))??
    };
    if !data_dir.join("tls/cert.pem").exists() {
        crate::tls::create_self_signed(data_dir, options.tls_names)?;
    }
    let config = data_dir.join("ca.toml");
    if !config.exists() {
        let mut text = crate::config::EXAMPLE.to_owned();
        if settings != KeySettings::default() {
            text.push_str(&crate::config::keys_section(&settings));
        }
        keys::write_new(&config, text.as_bytes(), 0o644)?;
    }
    let policy = data_dir.join("policy.toml");
    if !policy.exists() {
        keys::write_new(
            &policy,
            example_policy(options.local_user).as_bytes(),
            0o644,
        )?;
    }
    let store =
        crate::config::open_store(data_dir, options.config, crate::store::Access::ReadWrite)
            .await?;
    Audit::start(store)
        .record(Event::new(
            "keys.created",
            format!("local:{}", options.local_user),
            Outcome::Info,
            json!({
                "user_ca": user.0.public_line(),
                "host_ca": host.0.public_line(),
                "user_ca_fingerprint": user.0.fingerprint(),
                "host_ca_fingerprint": host.0.fingerprint(),
                "user_ca_location": user.0.location().to_string(),
                "host_ca_location": host.0.location().to_string(),
                "user_ca_generated": user.1 == Provenance::Created,
                "host_ca_generated": host.1 == Provenance::Created,
                "encrypted": options.passphrase.is_some(),
            }),
        ))
        .await?;
    Ok(Initialized {
        user_ca: user.0.public_line().to_owned(),
        host_ca: host.0.public_line().to_owned(),
        config,
        policy,
    })
}

/// Where the keys go: `--user-key`/`--host-key` over what an existing
/// configuration says, which must not contradict them.
fn key_settings(data_dir: &Path, options: &InitOptions<'_>) -> Result<KeySettings, Error> {
    let path = options
        .config
        .map_or_else(|| data_dir.join("ca.toml"), Path::to_owned);
    let mut settings = if path.exists() {
        crate::config::key_settings(data_dir, Some(&path))?
    } else {
        KeySettings::default()
    };
    let configured = path.exists();
    for (kind, name, given) in [
        (CaKind::User, "user", &options.user_key),
        (CaKind::Host, "host", &options.host_key),
    ] {
        let Some(given) = given else { continue };
        let current = settings.location(kind);
        if configured && current != given {
            return Err(Error::KeysConflict {
                path,
                kind: name,
                configured: current.to_string(),
                given: given.to_string(),
            });
        }
        match kind {
            CaKind::User => settings.user = given.clone(),
            CaKind::Host => settings.host = given.clone(),
        }
    }
    if let Some(algorithm) = options.algorithm {
        settings.algorithm = algorithm;
    }
    Ok(settings)
}

/// The policy `init` writes: valid as it is, with tests that pass, granting
/// `local_user` a short-lived shell as themselves on this machine.
pub(crate) fn example_policy(local_user: &str) -> String {
    EXAMPLE_POLICY.replace("@LOCAL_USER@", local_user)
}

const EXAMPLE_POLICY: &str = r#"# Shiftkey access policy. Reference: docs/policy.md
# Check it with `shiftkey-ca policy check policy.toml`,
# run its tests with `shiftkey-ca policy test policy.toml`.

# Powers (opening incidents, changing who is on call, approving, reviewing
# recordings, locking, revoking, enrolling hosts) are the admins' unless an
# [[authority]] entry gives them to someone (docs/policy.md, "Authority").
# The user who created this CA owns its store, so is one; so is root here.
admins = ["local:@LOCAL_USER@"]

[settings]
default_ttl = "15m"
max_ttl = "1h"

[[schedule]]
name = "sre-primary"
timezone = "Europe/Berlin"
rotation = { members = ["alice@example.com", "bob@example.com"], start = "2026-11-02T09:00", shift = "7d" }

# A short-lived shell as yourself on this machine, for the local user who
# ran `shiftkey-ca init`. Asked for over the CA's local socket.
[[role]]
name = "local-shell"
description = "Shell as @LOCAL_USER@ on the CA host"
principals = ["@LOCAL_USER@"]
hosts = ["localhost", "127.0.0.1"]
max_ttl = "10m"
extensions = ["permit-pty"]

[[role]]
name = "db-debug"
description = "Debug production databases during an incident"
principals = ["postgres"]
hosts = ["db-*.prod.example.com"]
max_ttl = "30m"
require_on_call = ["sre-primary"]
require_incident = true
extensions = ["permit-pty"]

[[grant]]
identities = ["local:@LOCAL_USER@"]
roles = ["local-shell"]

[[grant]]
identities = ["group:sre"]
roles = ["db-debug"]

[[test]]
name = "the local user gets a local shell"
identity = "local:@LOCAL_USER@"
at = "2026-11-05T03:00:00+01:00"
role = "local-shell"
expect = "allow"

[[test]]
name = "on-call SRE may debug the database during an incident"
identity = "user:alice@example.com"
groups = ["sre"]
at = "2026-11-05T03:00:00+01:00"
role = "db-debug"
incident = "INC-1"
expect = "allow"

[[test]]
name = "an SRE who is not on call may not"
identity = "user:bob@example.com"
groups = ["sre"]
at = "2026-11-05T03:00:00+01:00"
role = "db-debug"
incident = "INC-1"
expect = "deny"
deny = "not-on-call"

[[test]]
name = "no incident, no database"
identity = "user:alice@example.com"
groups = ["sre"]
at = "2026-11-05T03:00:00+01:00"
role = "db-debug"
expect = "deny"
deny = "incident-required"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn options<'a>(user_key: Option<KeyLocation>) -> InitOptions<'a> {
        InitOptions {
            passphrase: None,
            tls_names: &[],
            local_user: "alice",
            config: None,
            user_key,
            host_key: None,
            algorithm: None,
        }
    }

    const TOKEN_KEY: &str =
        "pkcs11:token=shiftkey;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so";

    #[tokio::test]
    async fn key_files_by_default_and_no_keys_section() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("ca");
        let done = init(&data, &options(None)).await.unwrap();
        assert!(keys::key_path(&data, CaKind::User).is_file());
        assert!(keys::key_path(&data, CaKind::Host).is_file());
        let config = std::fs::read_to_string(&done.config).unwrap();
        assert!(!config.contains("\n[keys]"), "{config}");
        assert_eq!(
            crate::config::key_settings(&data, None).unwrap(),
            KeySettings::default()
        );
    }

    /// An existing ca.toml that names other keys than `--user-key`: refused
    /// before anything is created, so `serve` never starts on keys `init`
    /// did not make (and no token is touched).
    #[tokio::test]
    async fn a_key_option_that_contradicts_ca_toml_is_refused_before_anything_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("ca");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("ca.toml"), "[keys]\nuser = \"file\"\n").unwrap();
        let uri: KeyLocation = TOKEN_KEY.parse().unwrap();
        let e = init(&data, &options(Some(uri))).await.unwrap_err();
        assert!(matches!(e, Error::KeysConflict { kind: "user", .. }), "{e}");
        assert!(e.to_string().contains("edit [keys]"), "{e}");
        assert!(!data.join("keys").exists());
        assert!(!data.join("shiftkey.db").exists());
    }
}
