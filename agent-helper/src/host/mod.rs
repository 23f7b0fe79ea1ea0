//! `shiftkey host enroll | refresh | status`: the host side of enrollment.
//!
//! Turns a server's sshd into one that trusts only the CA: a host
//! certificate for its ed25519 host key, the user CA keys
//! (`TrustedUserCAKeys`), the CA's KRL (`RevokedKeys`), one
//! `AuthorizedPrincipalsFile` per login from the policy, and an sshd drop-in
//! that turns static keys and passwords off. Every file is written
//! atomically (temporary file + rename); a change sshd rejects (`sshd -t`) is
//! rolled back file by file before sshd is reloaded.
//!
//! Never: write or send the host's private key (it only signs renewal
//! requests, `shiftkey_wire::host_auth`); install an empty or unreadable KRL
//! or user CA file (a failed fetch keeps the last good one); reload sshd
//! with a configuration `sshd -t` refused.

mod enroll;
mod files;
mod install;
pub(crate) mod krl;
mod refresh;
mod sshd;
mod state;
mod status;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

/// Where the files live, all under one ssh directory (`/etc/ssh`).
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    ssh_dir: PathBuf,
}

/// The drop-in's name: sorted after distribution drop-ins that only set
/// unrelated options, before local ones (`90-*`) that may deliberately win.
const DROP_IN: &str = "50-shiftkey.conf";
/// Public files: the certificate, CA keys, KRL, principals, the drop-in.
const PUBLIC_FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

impl Layout {
    /// Checks that `ssh_dir` can be named in sshd_config as it is: absolute,
    /// and free of whitespace, quotes, `#` and `%` (sshd expands `%u` tokens
    /// and splits on spaces).
    pub(crate) fn new(ssh_dir: &Path) -> anyhow::Result<Self> {
        let text = ssh_dir.to_str().unwrap_or_default();
        if !ssh_dir.is_absolute() {
            bail!(
                "--ssh-dir {}: give an absolute path, e.g. /etc/ssh",
                ssh_dir.display()
            );
        }
        if text.is_empty()
            || text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"'#%\\".contains(c))
        {
            bail!(
                "--ssh-dir {:?}: sshd_config cannot name it safely (whitespace, quotes, `#`, `%` or `\\`)\nhint: use a plain path such as /etc/ssh",
                ssh_dir.display()
            );
        }
        Ok(Self {
            ssh_dir: ssh_dir.to_path_buf(),
        })
    }

    pub(crate) fn ssh_dir(&self) -> &Path {
        &self.ssh_dir
    }
    pub(crate) fn host_key(&self) -> PathBuf {
        self.ssh_dir.join("ssh_host_ed25519_key")
    }
    pub(crate) fn host_key_pub(&self) -> PathBuf {
        self.ssh_dir.join("ssh_host_ed25519_key.pub")
    }
    pub(crate) fn host_certificate(&self) -> PathBuf {
        self.ssh_dir.join("ssh_host_ed25519_key-cert.pub")
    }
    /// Our own directory: CA keys, KRL, principals, state.
    pub(crate) fn own_dir(&self) -> PathBuf {
        self.ssh_dir.join("shiftkey")
    }
    pub(crate) fn user_ca(&self) -> PathBuf {
        self.own_dir().join("user_ca.pub")
    }
    pub(crate) fn krl(&self) -> PathBuf {
        self.own_dir().join("revoked.krl")
    }
    pub(crate) fn principals_dir(&self) -> PathBuf {
        self.own_dir().join("principals")
    }
    /// What enrollment remembers for `refresh`: the CA, how to trust it,
    /// how to check and reload sshd.
    pub(crate) fn state(&self) -> PathBuf {
        self.own_dir().join("host.toml")
    }
    /// A copy of `--ca-bundle`, so refresh does not depend on where it was.
    pub(crate) fn ca_bundle(&self) -> PathBuf {
        self.own_dir().join("ca-bundle.pem")
    }
    pub(crate) fn drop_in_dir(&self) -> PathBuf {
        self.ssh_dir.join("sshd_config.d")
    }
    pub(crate) fn drop_in(&self) -> PathBuf {
        self.drop_in_dir().join(DROP_IN)
    }
    pub(crate) fn default_main_config(&self) -> PathBuf {
        self.ssh_dir.join("sshd_config")
    }

    /// Holds an exclusive lock on the ssh directory while enroll or refresh
    /// runs, so the timer and a person never write the same files at once.
    pub(crate) fn lock(&self) -> anyhow::Result<std::fs::File> {
        if !self.ssh_dir.is_dir() {
            bail!(
                "{} is not a directory
hint: pass --ssh-dir with sshd's directory (where its host keys are)",
                self.ssh_dir.display()
            );
        }
        let dir = std::fs::File::open(&self.ssh_dir)
            .with_context(|| format!("cannot open {} (are you root?)", self.ssh_dir.display()))?;
        dir.lock()
            .with_context(|| format!("cannot lock {}", self.ssh_dir.display()))?;
        Ok(dir)
    }
}

/// Enroll this server's sshd with the CA, keep it current, show its state.
#[derive(Debug, Subcommand)]
pub(crate) enum HostCommand {
    /// Enroll this host with a join token: host certificate, user CA, KRL,
    /// principals and an sshd drop-in, checked with `sshd -t` (run as root).
    ///
    /// Reads SSH_DIR/ssh_host_ed25519_key.pub, trades the token (from
    /// `shiftkey-ca hosts token`) for a host certificate, then installs,
    /// each file atomically:
    /// SSH_DIR/ssh_host_ed25519_key-cert.pub (HostCertificate),
    /// SSH_DIR/shiftkey/user_ca.pub (TrustedUserCAKeys),
    /// SSH_DIR/shiftkey/revoked.krl (RevokedKeys),
    /// SSH_DIR/shiftkey/principals/LOGIN (AuthorizedPrincipalsFile),
    /// SSH_DIR/shiftkey/host.toml (what `refresh` needs) and
    /// SSH_DIR/sshd_config.d/50-shiftkey.conf, which also sets
    /// `AuthorizedKeysFile none`, `PasswordAuthentication no` and
    /// `KbdInteractiveAuthentication no`. The main sshd_config must
    /// `Include` that directory (Debian's does). If `sshd -t` rejects the
    /// result, every file is put back as it was and nothing is reloaded.
    Enroll(EnrollArgs),
    /// Renew the host certificate when a third of its validity is left,
    /// fetch the user CA keys and the KRL; reload sshd if anything changed.
    ///
    /// What the systemd timer runs every 5 minutes; it needs no flags: the
    /// CA and how to trust it were saved at enrollment. Fails safe: when the
    /// CA cannot be reached or its KRL does not parse, the installed KRL is
    /// kept (never emptied) and the command exits non-zero.
    Refresh(RefreshArgs),
    /// This host's certificate (serial, principals, time left) and the age
    /// of its KRL. Works without the CA.
    Status(StatusArgs),
}

/// Where sshd's files are and how to check sshd's configuration.
#[derive(Debug, Args)]
pub(crate) struct SshArgs {
    /// sshd's directory: host keys, sshd_config, sshd_config.d.
    #[arg(long, value_name = "DIR", default_value = "/etc/ssh")]
    pub(crate) ssh_dir: PathBuf,
}

/// How to tell sshd to load the new files.
#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    /// Change the files, but do not reload sshd (do it yourself).
    #[arg(long)]
    pub(crate) no_reload: bool,
    /// Reload by sending SIGHUP to the pid in FILE, instead of `systemctl
    /// reload ssh` (with systemd) or /run/sshd.pid (without). Saved at
    /// enrollment for later refreshes.
    #[arg(long, value_name = "FILE")]
    pub(crate) reload_pid_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct EnrollArgs {
    /// The CA's API, e.g. https://ca.example.com:8443.
    #[arg(long, value_name = "URL")]
    pub(crate) ca: String,
    /// The one-time join token `shiftkey-ca hosts token` printed.
    #[arg(
        long,
        value_name = "TOKEN",
        required_unless_present = "token_file",
        conflicts_with = "token_file"
    )]
    pub(crate) token: Option<String>,
    /// Read the join token from FILE instead (it then stays out of `ps`).
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// Trust exactly the CA TLS certificate with this SHA-256 (hex; a
    /// `SHA256:` prefix and colons are fine), e.g. for a self-signed CA.
    #[arg(long, value_name = "SHA256", conflicts_with = "ca_cert")]
    pub(crate) ca_fingerprint: Option<String>,
    /// Trust the CA's TLS certificate by this PEM bundle (copied to
    /// SSH_DIR/shiftkey/ca-bundle.pem for refresh). Neither flag: the
    /// system's web roots.
    // Its id is the global connection flag's (`ca_cert`): clap then keeps
    // this one for `host enroll` instead of adding the global `--ca-cert`.
    #[arg(
        id = "ca_cert",
        long = "ca-bundle",
        value_name = "FILE",
        visible_alias = "ca-cert"
    )]
    pub(crate) ca_bundle: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    /// The sshd binary, for `sshd -t` and `sshd -T`.
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/sshd")]
    pub(crate) sshd: PathBuf,
    /// The main sshd configuration, which must Include SSH_DIR/sshd_config.d
    /// [default: SSH_DIR/sshd_config].
    #[arg(long, value_name = "FILE")]
    pub(crate) sshd_config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) reload: ReloadArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RefreshArgs {
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    /// Renew the host certificate now, even when it is not due (also
    /// brings the principals up to date with the CA's policy).
    #[arg(long)]
    pub(crate) renew: bool,
    #[command(flatten)]
    pub(crate) reload: ReloadArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    /// Print the status as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) async fn run(command: HostCommand) -> anyhow::Result<()> {
    match command {
        HostCommand::Enroll(args) => enroll::run(args).await,
        HostCommand::Refresh(args) => refresh::run(args).await,
        HostCommand::Status(args) => status::run(&args),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `3d04h`, `5h12m`, `7m`, `42s`: how long, roughly.
pub(crate) fn duration_words(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86400 => format!("{}h{:02}m", seconds / 3600, seconds / 60 % 60),
        _ => format!("{}d{:02}h", seconds / 86400, seconds / 3600 % 24),
    }
}

/// A unix time as local time, for people.
pub(crate) fn local_time(unix: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(unix).unwrap_or(i64::MAX), 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_else(|| unix.to_string())
}
