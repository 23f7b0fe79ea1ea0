//! What every command needs: the config, the CA client, the ID token.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::Utc;

use crate::ca_client::{CaClient, Trust};
use crate::cli::CaArgs;
use crate::config::Config;
use crate::login::{self, IdToken};

/// The config file and the CA it names, with flags applied.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) config_path: PathBuf,
    pub(crate) config: Config,
}

impl Session {
    pub(crate) fn open(args: &CaArgs) -> anyhow::Result<Self> {
        let config_path = match &args.config {
            Some(path) => path.clone(),
            None => crate::config::default_path()?,
        };
        let mut config = Config::load(&config_path)?;
        if let Some(ca) = &args.ca {
            if config.ca.as_deref() != Some(ca.as_str()) {
                // Another CA: what we learned about the old one does not apply.
                config.issuer = None;
                config.client_id = None;
                config.user_ca_keys.clear();
            }
            config.ca = Some(ca.clone());
        }
        if let Some(bundle) = &args.ca_cert {
            config.ca_cert = Some(bundle.clone());
            config.ca_fingerprint = None;
        }
        if let Some(fingerprint) = &args.ca_fingerprint {
            config.ca_fingerprint = Some(fingerprint.clone());
            config.ca_cert = None;
        }
        Ok(Self {
            config_path,
            config,
        })
    }

    /// A client for the configured CA, without credentials.
    pub(crate) fn client(&self) -> anyhow::Result<CaClient> {
        let ca = self
            .config
            .ca
            .as_deref()
            .ok_or(crate::ca_client::Error::NoCa)?;
        let trust = Trust {
            bundle: self.config.ca_cert.clone(),
            fingerprint: self.config.ca_fingerprint.clone(),
        };
        Ok(CaClient::new(ca, &trust)?)
    }

    /// A client that authenticates: as `local:USER` on the CA's socket, else
    /// with the cached ID token (or one handed in by CI).
    pub(crate) fn authenticated(&self, token: Option<IdToken>) -> anyhow::Result<CaClient> {
        let client = self.client()?;
        if client.is_local() {
            return Ok(client);
        }
        let token = match token {
            Some(token) => token,
            None => cached_token().context(
                "you are not logged in, or your login has expired\nhint: run `shiftkey login`",
            )?,
        };
        if token.is_expired_at(Utc::now()) {
            bail!(
                "your login expired at {}\nhint: run `shiftkey login`",
                token.expires_at
            );
        }
        Ok(client.with_token(token.secret()))
    }
}

/// The cached ID token, if there is a cache and a live token in it.
pub(crate) fn cached_token() -> Option<IdToken> {
    login::cache_path().and_then(|path| login::load(&path))
}

/// Reads a token handed in by a pipeline (`--id-token-file`, `--id-token-env`).
pub(crate) fn token_from(
    file: Option<&PathBuf>,
    env: Option<&str>,
) -> anyhow::Result<Option<IdToken>> {
    let raw = match (file, env) {
        (Some(path), _) => zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the ID token from {}", path.display()))?,
        ),
        (None, Some(var)) => zeroize::Zeroizing::new(std::env::var(var).with_context(|| {
            format!("${var} is not set; it should hold the pipeline's ID token")
        })?),
        (None, None) => return Ok(None),
    };
    Ok(Some(IdToken::parse_unverified(&raw)?))
}
