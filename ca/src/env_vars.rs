//! Every environment variable Shiftkey's CA reads, in one place.
//! `docs/configuration.md` lists them; keep the two in step.

/// Passphrase that decrypts (and, at `init --encrypt`, encrypts) the CA key files.
pub(crate) const CA_PASSPHRASE: &str = "SHIFTKEY_CA_PASSPHRASE";
/// Default for `--data-dir`.
pub(crate) const DATA_DIR: &str = "SHIFTKEY_DATA_DIR";
/// Log filter in `tracing_subscriber::EnvFilter` syntax, e.g. `info,shiftkey_ca=debug`.
pub(crate) const LOG: &str = "SHIFTKEY_LOG";
/// `json` for JSON log lines (the default on services is human-readable text).
pub(crate) const LOG_FORMAT: &str = "SHIFTKEY_LOG_FORMAT";
/// The review UI's client secret at the identity provider, for a
/// confidential web client (`[ui] client_id`), when `[ui]
/// client_secret_file` is not set. Read once at start.
pub(crate) const UI_CLIENT_SECRET: &str = "SHIFTKEY_UI_CLIENT_SECRET";
/// PIN of the PKCS#11 token holding a CA key, when its URI has no `pin-source`.
pub(crate) const PKCS11_PIN: &str = "SHIFTKEY_PKCS11_PIN";
/// Set (to anything) to turn off colour in log lines (<https://no-color.org>).
pub(crate) const NO_COLOR: &str = "NO_COLOR";
/// S3 access key ID for `[recordings] url = "s3://…"` when no `credentials_file` is set.
pub(crate) const S3_ACCESS_KEY_ID: &str = "SHIFTKEY_S3_ACCESS_KEY_ID";
/// S3 secret access key, with `SHIFTKEY_S3_ACCESS_KEY_ID`.
pub(crate) const S3_SECRET_ACCESS_KEY: &str = "SHIFTKEY_S3_SECRET_ACCESS_KEY";
/// S3 session token for temporary credentials (optional).
pub(crate) const S3_SESSION_TOKEN: &str = "SHIFTKEY_S3_SESSION_TOKEN";
/// `quickstart`: the ssh-agent its certificate goes into (files when unset or refused).
pub(crate) const SSH_AUTH_SOCK: &str = shiftkey_ssh_agent::SSH_AUTH_SOCK;
/// `quickstart`: where a bare `--ssh` name is looked up.
pub(crate) const PATH: &str = "PATH";
