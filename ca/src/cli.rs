//! The `shiftkey-ca` command line: argument definitions and what each
//! command does. Data goes to stdout, logs and progress to stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::env_vars;
use crate::secret::Secret;
use crate::store::{Access, Store};

/// Shiftkey certificate authority: short-lived SSH certificates for on-call
/// engineers, issued by policy as code, every decision audited.
#[derive(Debug, Parser)]
#[command(name = "shiftkey-ca", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: CA keys, TLS certificate, ca.toml, policy.toml, database.
    Init(InitArgs),
    /// Run the CA: HTTPS API and local socket. SIGHUP reloads the policy.
    Serve(ServeArgs),
    /// One command from a fresh checkout: a CA, an enrolled bastion and target sshd on
    /// loopback, a certificate for you and one recorded ssh session through the bastion.
    Quickstart(QuickstartArgs),
    /// Check, test and explain policy files.
    #[command(subcommand)]
    Policy(crate::policy::cli::PolicyCommand),
    /// Verify and export the hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Revoke live certificates (by serial, key ID, identity or incident); the KRL at /v1/krl lists them at once.
    Revoke(RevokeArgs),
    /// Lock an identity out: revoke its live certificates, refuse new ones and end its bastion sessions.
    Lock(LockArgs),
    /// Let a locked identity ask for certificates again.
    Unlock(LockArgs),
    /// Enroll hosts and bastions: one-time join tokens, the enrolled list.
    #[command(subcommand)]
    Hosts(HostsCommand),
    /// Legal holds on session recordings: retention keeps a held recording.
    #[command(subcommand)]
    Recordings(RecordingsCommand),
    /// Move the store: copy a single-node CA's SQLite store into PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
    /// The review UI: a one-time sign-in link for you, on this host.
    #[command(subcommand)]
    Ui(UiCommand),
    /// Rotate the user or host CA key in phases: rotate, activate, retire; status.
    #[command(subcommand)]
    Keys(crate::keys::cli::KeysCommand),
}

#[derive(Debug, Subcommand)]
enum RecordingsCommand {
    /// Keep a session's recording whatever [recordings] retention says, until released (the policy's `recording.hold` power).
    Hold(HoldArgs),
    /// Release a legal hold: retention applies to the recording again (`recording.hold`).
    Release(HoldArgs),
}

#[derive(Debug, Args)]
struct HoldArgs {
    #[command(flatten)]
    dir: DataDir,
    /// The session, as `shiftkey recordings list` shows it (s_ and 16 hex digits).
    session: String,
    /// Why (a case, a request); recorded in the audit log.
    #[arg(long)]
    reason: String,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy a SQLite store into an empty PostgreSQL database (one transaction, the
    /// audit chain as it is), then verify the chain on both sides and compare them.
    /// Stop the CA that uses the SQLite file first.
    Migrate(crate::store_migrate::MigrateArgs),
}

#[derive(Debug, Subcommand)]
enum UiCommand {
    /// Print a one-time sign-in link to the review UI for the user running this
    /// (local:USER): valid for minutes, for one use, from this machine only.
    Link(LinkArgs),
}

#[derive(Debug, Args)]
struct LinkArgs {
    #[command(flatten)]
    dir: DataDir,
    /// How long the link may be used (1s to 15m).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    ttl: std::time::Duration,
    /// Print {"url": .., "identity": .., "expires_at": ..} instead of the bare link.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct LockArgs {
    #[command(flatten)]
    dir: DataDir,
    /// The identity, as grants name it: user:alice@example.com or local:USER.
    #[arg(long)]
    identity: String,
    /// Why; recorded in the audit log and shown to the user.
    #[arg(long)]
    reason: String,
}

#[derive(Debug, Subcommand)]
enum HostsCommand {
    /// Print a one-time join token for `shiftkey host enroll` (or a bastion's first start).
    Token(TokenArgs),
    /// List enrolled hosts and bastions.
    List {
        #[command(flatten)]
        dir: DataDir,
        /// JSON lines, one host each.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct TokenArgs {
    #[command(flatten)]
    dir: DataDir,
    /// The host's name in the CA (db-1); enrolling again under it replaces the old enrollment.
    #[arg(long)]
    name: String,
    /// Names clients use for the host, comma-separated: its host certificate is valid for these.
    #[arg(long, value_delimiter = ',', required = true)]
    principals: Vec<String>,
    /// How long the token may be used (at most 7d).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: std::time::Duration,
    /// The token enrolls a bastion (which may then ask the CA for sessions).
    #[arg(long)]
    bastion: bool,
    /// Print {"token": .., "id": .., "expires_at": ..} instead of the bare token.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["serial", "key_id", "identity", "incident", "request"])))]
struct RevokeArgs {
    #[command(flatten)]
    dir: DataDir,
    /// The certificate with this serial.
    #[arg(long)]
    serial: Option<u64>,
    /// The certificate with this exact key ID.
    #[arg(long)]
    key_id: Option<String>,
    /// Every live certificate of this identity, e.g. user:alice@example.com.
    #[arg(long)]
    identity: Option<String>,
    /// Every live certificate issued under this incident.
    #[arg(long)]
    incident: Option<String>,
    /// The certificate issued for this access request (req=… in its key ID).
    #[arg(long)]
    request: Option<String>,
    /// Why; recorded in the audit log.
    #[arg(long)]
    reason: String,
    /// Print the revoked serials as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DataDir {
    /// The CA's data directory.
    #[arg(long, env = env_vars::DATA_DIR, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
    /// The CA's configuration; its [store] says where the rows live [default: DIR/ca.toml].
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

impl DataDir {
    /// The store this data directory's configuration names.
    async fn open_store(&self, access: Access) -> anyhow::Result<Arc<dyn Store>> {
        Ok(crate::config::open_store(&self.data_dir, self.config.as_deref(), access).await?)
    }

    /// The store, its audit writer and the policy, for a command that
    /// uses a power.
    async fn operator(&self) -> anyhow::Result<crate::operator::Operator> {
        crate::operator::Operator::open(&self.data_dir, self.config.as_deref()).await
    }
}

#[derive(Debug, Args)]
struct InitArgs {
    #[command(flatten)]
    dir: DataDir,
    /// Encrypt the CA key files with the passphrase in $SHIFTKEY_CA_PASSPHRASE.
    #[arg(long)]
    encrypt: bool,
    /// Extra DNS name or IP address for the self-signed TLS certificate (repeatable).
    #[arg(long = "tls-name", value_name = "NAME")]
    tls_names: Vec<String>,
    /// Where the user CA key lives: `file` (DATA_DIR/keys/user_ca) or an RFC 7512
    /// `pkcs11:` URI; a token key that does not exist is generated on the token.
    /// Written to [keys] in ca.toml [default: file].
    #[arg(long, value_name = "URI")]
    user_key: Option<crate::signer::KeyLocation>,
    /// Where the host CA key lives, as --user-key [default: file].
    #[arg(long, value_name = "URI")]
    host_key: Option<crate::signer::KeyLocation>,
    /// Algorithm of keys generated on a token: ed25519 or ecdsa-p256
    /// [default: ed25519]. Key files are always ed25519.
    #[arg(long, value_name = "ALG")]
    key_algorithm: Option<crate::signer::KeyAlgorithm>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    dir: DataDir,
}

#[derive(Debug, Args)]
struct QuickstartArgs {
    /// Where to keep the quickstart CA's keys, policy and database.
    #[arg(long, value_name = "DIR", default_value = "shiftkey-quickstart")]
    data_dir: PathBuf,
    /// Address for the HTTPS API (used when the data directory is created).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Run the loop once, print the recorded session's ID and stop; exit 0
    /// only if the session through the bastion was recorded and sealed.
    #[arg(long)]
    exit: bool,
    /// The OpenSSH server run as the quickstart's target (absolute path).
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/sshd")]
    sshd: PathBuf,
    /// The OpenSSH client that runs the session through the bastion.
    #[arg(long, value_name = "PATH", default_value = "ssh")]
    ssh: PathBuf,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit 1 and name the row if anything was edited, deleted or reordered.
    Verify {
        #[command(flatten)]
        dir: DataDir,
        /// A head printed by an earlier verify (SEQ:HASH), kept elsewhere:
        /// the log must still hold it, so a truncated tail is caught too.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write the audit log as JSON lines.
    Export {
        #[command(flatten)]
        dir: DataDir,
        /// Only rows after this sequence number.
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
}

/// Runs the parsed command line; the exit code says how it went.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn revoke(args: RevokeArgs) -> anyhow::Result<ExitCode> {
    use crate::operator::Revoke;
    let which = if let Some(serial) = args.serial {
        Revoke::Serial(serial)
    } else if let Some(key_id) = &args.key_id {
        Revoke::KeyId(key_id.clone())
    } else if let Some(identity) = &args.identity {
        Revoke::Identity(identity.clone())
    } else if let Some(incident) = &args.incident {
        Revoke::Incident(incident.clone())
    } else if let Some(request) = &args.request {
        Revoke::Request(request.clone())
    } else {
        bail!("say which certificates: --serial, --key-id, --identity, --incident or --request")
    };
    if args.reason.trim().len() < 3 {
        bail!("--reason must say why (it is recorded in the audit log)");
    }
    let operator = args.dir.operator().await?;
    let serials = operator.revoke(which, args.reason.trim()).await?;
    if args.json {
        println!("{}", serde_json::json!({ "revoked_serials": serials }));
    } else if serials.is_empty() {
        println!("nothing to revoke: no live certificate matches");
    } else {
        let list: Vec<String> = serials.iter().map(u64::to_string).collect();
        println!(
            "revoked serial(s) {}; hosts refuse them once they fetch /v1/krl",
            list.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn lock(args: LockArgs, lock: bool) -> anyhow::Result<ExitCode> {
    let reason = args.reason.trim();
    // Characters that could hide or reorder it are refused (and audited)
    // by the operator.
    if reason.len() < 3 || reason.len() > 500 {
        bail!(
            "--reason must say why in 3 to 500 characters (it is recorded and shown to the user)"
        );
    }
    let operator = args.dir.operator().await?;
    if lock {
        let (person, serials) = operator.lock(&args.identity, reason).await?;
        println!(
            "locked {}: no new certificates, bastion sessions or powers; revoked {} live certificate(s); running bastion sessions end now",
            person.join(", "),
            serials.len()
        );
    } else {
        let person = operator.unlock(&args.identity, reason).await?;
        println!("unlocked {}", person.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

async fn hold(args: HoldArgs, hold: bool) -> anyhow::Result<ExitCode> {
    let operator = args.dir.operator().await?;
    let session = args.session.trim();
    operator.hold_recording(session, &args.reason, hold).await?;
    if hold {
        println!(
            "held the recording of {session}: retention keeps it until `shiftkey-ca recordings release {session}`"
        );
    } else {
        println!("released the hold on {session}: retention applies to it again");
    }
    Ok(ExitCode::SUCCESS)
}

async fn ui_link(args: LinkArgs) -> anyhow::Result<ExitCode> {
    let config_path = args
        .dir
        .config
        .clone()
        .unwrap_or_else(|| args.dir.data_dir.join("ca.toml"));
    let config = crate::config::Config::load(&config_path, &args.dir.data_dir)?;
    let operator = args.dir.operator().await?;
    let link = operator.ui_link(config.ui.as_ref(), args.ttl).await?;
    let expires = chrono::DateTime::from_timestamp(link.expires_at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "url": link.url,
                "identity": format!("local:{}", link.local_user),
                "expires_at": link.expires_at,
            })
        );
    } else {
        println!("{}", link.url);
        eprintln!(
            "Open it in a browser on this machine before {expires}: it signs local:{} in to the review UI, once.",
            link.local_user
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn hosts(cmd: HostsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        HostsCommand::Token(args) => {
            let kind = if args.bastion {
                crate::hosts::HostKind::Bastion
            } else {
                crate::hosts::HostKind::Host
            };
            let operator = args.dir.operator().await?;
            let token = crate::hosts::new_token(
                &args.name,
                args.principals,
                kind,
                args.ttl,
                operator.actor(),
            )
            .map_err(anyhow::Error::msg)?;
            operator.record_token(&token).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "token": token.token.as_str(), "id": token.stored.id,
                                        "name": token.stored.name, "kind": token.stored.kind,
                                        "expires_at": token.stored.expires_at })
                );
            } else {
                println!("{}", token.token.as_str());
                eprintln!(
                    "one-time join token {} for {} {} ({}), valid until {}; on the host run:\n  shiftkey host enroll --ca https://CA:8443 --token TOKEN",
                    token.stored.id,
                    token.stored.kind,
                    token.stored.name,
                    token.stored.principals.join(", "),
                    chrono::DateTime::from_timestamp(token.stored.expires_at, 0)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        HostsCommand::List { dir, json } => {
            for h in dir.open_store(Access::ReadOnly).await?.hosts().await? {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "name": h.name, "kind": h.kind, "principals": h.principals,
                                            "key_fingerprint": h.key_fingerprint, "enrolled_at": h.enrolled_at,
                                            "renewed_at": h.renewed_at })
                    );
                } else {
                    println!(
                        "{:<20} {:<8} {:<40} enrolled {}",
                        h.name,
                        h.kind,
                        h.principals.join(","),
                        h.enrolled_at
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn passphrase() -> Option<Secret> {
    std::env::var(env_vars::CA_PASSPHRASE)
        .ok()
        .filter(|p| !p.is_empty())
        .map(Secret::new)
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init(args) => init(args).await,
        Command::Serve(args) => {
            let config = args
                .dir
                .config
                .unwrap_or_else(|| args.dir.data_dir.join("ca.toml"));
            let running =
                crate::server::start(&args.dir.data_dir, &config, passphrase().as_ref()).await?;
            running.run_until_signalled().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Quickstart(args) => {
            crate::quickstart::run(crate::quickstart::Options {
                data_dir: args.data_dir,
                listen: args.listen,
                exit: args.exit,
                sshd: args.sshd,
                ssh: args.ssh,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke(args) => revoke(args).await,
        Command::Hosts(cmd) => hosts(cmd).await,
        Command::Recordings(RecordingsCommand::Hold(args)) => hold(args, true).await,
        Command::Recordings(RecordingsCommand::Release(args)) => hold(args, false).await,
        Command::Ui(UiCommand::Link(args)) => ui_link(args).await,
        Command::Keys(cmd) => crate::keys::cli::run(cmd, passphrase()).await,
        Command::Lock(args) => lock(args, true).await,
        Command::Unlock(args) => lock(args, false).await,
        Command::Policy(cmd) => crate::policy::cli::run(cmd),
        Command::Audit(cmd) => audit(cmd).await,
        Command::Store(StoreCommand::Migrate(args)) => crate::store_migrate::run(args).await,
    }
}

async fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let pass = passphrase();
    if args.encrypt && pass.is_none() {
        bail!(
            "--encrypt needs the passphrase in ${}",
            env_vars::CA_PASSPHRASE
        );
    }
    let uid = nix::unistd::Uid::current().as_raw();
    let user = crate::identity::local_user_name(uid).context("your uid has no user name")?;
    let opts = crate::init::InitOptions {
        passphrase: if args.encrypt { pass.as_ref() } else { None },
        tls_names: &args.tls_names,
        local_user: &user,
        config: args.dir.config.as_deref(),
        user_key: args.user_key,
        host_key: args.host_key,
        algorithm: args.key_algorithm,
    };
    let done = crate::init::init(&args.dir.data_dir, &opts).await?;
    println!("user CA: {}", done.user_ca);
    println!("host CA: {}", done.host_ca);
    eprintln!("Created {}.", args.dir.data_dir.display());
    eprintln!(
        "Next: review {} and {},",
        done.config.display(),
        done.policy.display()
    );
    eprintln!(
        "      then run `shiftkey-ca serve --data-dir {}`.",
        args.dir.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn audit(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            dir,
            expect_head,
            json,
        } => {
            let anchor = match &expect_head {
                Some(text) => {
                    let (seq, hash) = text
                        .split_once(':')
                        .and_then(|(seq, hash)| Some((seq.parse::<u64>().ok()?, hash)))
                        .with_context(|| {
                            format!(
                                "--expect-head {text:?} is not SEQ:HASH as `audit verify` prints it"
                            )
                        })?;
                    Some((seq, hash))
                }
                None => None,
            };
            let store = dir.open_store(Access::ReadOnly).await?;
            let v = crate::audit::verify(store.as_ref(), anchor).await?;
            if json {
                println!("{}", serde_json::to_string(&v)?);
            } else if v.problems.is_empty() {
                println!(
                    "audit log OK: {} rows, head {} {}",
                    v.rows, v.head_seq, v.head_hash
                );
                eprintln!(
                    "Keep the head hash elsewhere: a later verify can then also detect a truncated tail."
                );
            } else {
                for p in &v.problems {
                    println!("{p}");
                }
                println!(
                    "audit log BROKEN: {} problem(s) in {} rows",
                    v.problems.len(),
                    v.rows
                );
            }
            Ok(if v.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Export { dir, since } => {
            let store = dir.open_store(Access::ReadOnly).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut failed = None;
            crate::audit::export(store.as_ref(), since, |row| -> Result<(), crate::store::Error> {
                let detail: serde_json::Value = serde_json::from_str(&row.detail)
                    .unwrap_or(serde_json::Value::String(row.detail.clone()));
                let line = serde_json::json!({
                    "seq": row.seq, "ts": row.ts, "kind": row.kind, "actor": row.actor, "outcome": row.outcome,
                    "detail": detail, "prev_hash": row.prev_hash, "hash": row.hash,
                });
                if let Err(e) = writeln!(out, "{line}") {
                    failed.get_or_insert(e);
                }
                Ok(())
            })
            .await?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
