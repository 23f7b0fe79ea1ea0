//! What every command needs: the config, the CA client, the ID token.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::Utc;

use crate::ca_client::{CaClient, Trust};
use crate::cli::CaArgs;
use crate::config::Config;
use crate::login::{self, IdToken};

/// Largest token file read (a JWT is a few KiB).
const MAX_TOKEN_FILE: u64 = 64 * 1024 + 1;

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
        if let Some(ca) = &args.ca
            && config.ca.as_deref() != Some(ca.as_str())
        {
            // Another CA: nothing learned about the old one applies, not even
            // how to trust it.
            config = Config {
                ca: Some(ca.clone()),
                ..Config::default()
            };
        }
        if let Some(bundle) = &args.ca_cert {
            // Saved absolute, so later commands work from any directory.
            let bundle = std::fs::canonicalize(bundle)
                .with_context(|| format!("--ca-cert {}: cannot read it", bundle.display()))?;
            config.ca_cert = Some(bundle);
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
    /// with a pipeline's token or this CA's cached login.
    pub(crate) fn authenticated(&self, handed_in: Option<HandedIn>) -> anyhow::Result<CaClient> {
        let client = self.client()?;
        if client.is_local() {
            return Ok(client);
        }
        match handed_in {
            Some(HandedIn { token, source }) => {
                if token.is_expired_at(Utc::now()) {
                    bail!(
                        "the ID token in {source} expired at {}\nhint: have the pipeline mint a fresh one just before `shiftkey access`",
                        token.expires_at
                    );
                }
                Ok(client.with_token(token.secret()))
            }
            None => {
                let token = self.cached_token().context(
                    "you are not logged in to this CA, or your login has expired\nhint: run `shiftkey login`",
                )?;
                Ok(client.with_token(token.secret()))
            }
        }
    }

    /// This CA's cached ID token, if there is a cache and a live token in it.
    pub(crate) fn cached_token(&self) -> Option<IdToken> {
        self.token_cache().and_then(|path| login::load(&path))
    }

    /// Where this CA's token is cached (none without `$XDG_RUNTIME_DIR`).
    pub(crate) fn token_cache(&self) -> Option<PathBuf> {
        self.config.ca.as_deref().and_then(login::cache_path_for)
    }
}

/// A token handed in by a pipeline, and where it came from (for messages).
#[derive(Debug)]
pub(crate) struct HandedIn {
    pub(crate) token: IdToken,
    pub(crate) source: String,
}

/// Reads a token handed in by a pipeline (`--id-token-file`, `--id-token-env`).
pub(crate) fn token_from(
    file: Option<&PathBuf>,
    env: Option<&str>,
) -> anyhow::Result<Option<HandedIn>> {
    let (raw, source) = match (file, env) {
        (Some(path), _) => {
            let mut raw = zeroize::Zeroizing::new(String::new());
            std::fs::File::open(path)
                .and_then(|f| {
                    std::io::Read::read_to_string(
                        &mut std::io::Read::take(f, MAX_TOKEN_FILE),
                        &mut raw,
                    )
                })
                .with_context(|| format!("reading the ID token from {}", path.display()))?;
            (raw, path.display().to_string())
        }
        (None, Some(var)) => (
            zeroize::Zeroizing::new(std::env::var(var).with_context(|| {
                format!("${var} is not set; it should hold the pipeline's ID token")
            })?),
            format!("${var}"),
        ),
        (None, None) => return Ok(None),
    };
    Ok(Some(HandedIn {
        token: IdToken::parse_unverified(&raw)?,
        source,
    }))
}
