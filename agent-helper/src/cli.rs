//! The `shiftkey` command line. Data to stdout, messages to stderr.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use serde_json::json;

use crate::access::printable;
use crate::login;
use crate::session::{self, Session};

/// Shiftkey: short-lived SSH certificates for on-call engineers, in your
/// ssh-agent, for plain `ssh`.
#[derive(Debug, Parser)]
#[command(name = "shiftkey", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Connection flags: accepted before or after the subcommand.
    #[command(flatten)]
    ca: CaArgs,
}

/// Where the CA is and how to trust it (saved by `login`). Global: they may
/// come before the subcommand (`shiftkey --ca unix:PATH access ROLE`) or
/// after it. `host enroll` has its own `--ca`, `--ca-cert` and
/// `--ca-fingerprint` (it writes them into the host's files), which take
/// precedence there.
#[derive(Debug, Clone, Args)]
pub(crate) struct CaArgs {
    /// The CA: https://HOST:PORT, or unix:PATH for its local socket on the CA host.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) ca: Option<String>,
    /// PEM bundle to trust for the CA's TLS certificate.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,
    /// SHA-256 of the CA's TLS certificate, to trust it and only it.
    #[arg(long, global = true, value_name = "HEX")]
    pub(crate) ca_fingerprint: Option<String>,
    /// Config file [default: ~/.config/shiftkey/config.toml].
    #[arg(long, global = true, env = crate::env_vars::CONFIG, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// Use the ID token in this file (a CI pipeline's OIDC token) instead of a login.
    #[arg(long, value_name = "PATH", conflicts_with = "id_token_env")]
    id_token_file: Option<PathBuf>,
    /// Use the ID token in this environment variable.
    #[arg(long, value_name = "VAR")]
    id_token_env: Option<String>,
}

impl TokenArgs {
    /// A CA client for `ca`, authenticated with these flags' token or the
    /// cached login. Where there is no cache (`$XDG_RUNTIME_DIR` unset) and a
    /// person at a terminal, they sign in now and the token lives in memory
    /// for this command only.
    async fn client(&self, ca: &CaArgs) -> anyhow::Result<crate::ca_client::CaClient> {
        let handed_in =
            session::token_from(self.id_token_file.as_ref(), self.id_token_env.as_deref())?;
        let session = Session::open(ca)?;
        let client = session.client()?;
        if handed_in.is_none()
            && !client.is_local()
            && session.token_cache().is_none()
            && std::io::stdin().is_terminal()
            && let (Some(issuer), Some(client_id)) =
                (&session.config.issuer, &session.config.client_id)
        {
            eprintln!(
                "No login cache (${} is not set): signing in for this command.",
                crate::env_vars::XDG_RUNTIME_DIR
            );
            let token = sign_in(issuer, client_id, false, false).await?;
            return Ok(client.with_token(token.secret()));
        }
        session.authenticated(handed_in)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign in with your identity provider (browser, or --device on headless machines).
    Login {
        /// Device authorization grant: shows a code to enter on another device.
        #[arg(long)]
        device: bool,
        /// Do not try to open a browser; just print the URL.
        #[arg(long)]
        no_browser: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Forget the cached login and remove this CA's certificates from ssh-agent.
    Logout,
    /// Get a certificate for ROLE into ssh-agent; then use plain ssh.
    Access {
        /// The role, as `shiftkey roles` lists them.
        role: String,
        /// The incident this access is for, e.g. INC-42.
        #[arg(long)]
        incident: Option<String>,
        /// Why you need access; recorded in the audit log.
        #[arg(long)]
        reason: Option<String>,
        /// How long, e.g. 15m (the role's maximum applies).
        #[arg(long)]
        ttl: Option<String>,
        /// Only these of the role's principals (repeatable).
        #[arg(long = "principal", value_name = "LOGIN")]
        principals: Vec<String>,
        /// CI jobs without an agent: write id_ed25519 and id_ed25519-cert.pub (0600) to this directory you own.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// When the role needs approvals: how long to wait for them, e.g. 30m.
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Roles you may ask for, with their hosts and conditions.
    Roles {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Certificates from this CA in your agent, and your login.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// ssh configuration for your roles and the host CA (--install writes it under ~/.ssh).
    ///
    /// Without options, prints the ssh config (what --install writes to
    /// ~/.ssh/shiftkey.conf) to stdout; with --known-hosts, prints only the
    /// known_hosts lines (what --install writes to
    /// ~/.ssh/shiftkey_known_hosts, the file the config points ssh at), so
    /// `shiftkey ssh-config > ~/.ssh/shiftkey.conf` and `shiftkey ssh-config
    /// --known-hosts > ~/.ssh/shiftkey_known_hosts` do what --install does
    /// (bar the Include line in ~/.ssh/config). Roles, hosts or keys from the
    /// CA that cannot be written safely, and host patterns that match any
    /// host (`*`), are left out with a warning on stderr.
    SshConfig {
        /// Write ~/.ssh/shiftkey.conf and ~/.ssh/shiftkey_known_hosts and include them from ~/.ssh/config.
        #[arg(long)]
        install: bool,
        /// Print the known_hosts lines (`@cert-authority` for the host CA) instead of the ssh config.
        #[arg(long, conflicts_with = "install")]
        known_hosts: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Open, resolve and list incidents (access under an incident ends when it is resolved).
    Incident {
        #[command(subcommand)]
        action: IncidentAction,
        /// Print the result as JSON.
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Pending access requests you may approve (or one request, by ID).
    ///
    /// Roles that need approvals make `shiftkey access` wait until enough
    /// approvers (as the CA's policy names them) run `shiftkey approve ID`.
    /// Lists ID, requester, role, incident, reason, approvals so far and
    /// needed, and age. With ID, shows that request whoever it is for
    /// (e.g. your own).
    Requests {
        /// Show this request only.
        id: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Approve someone else's access request (see `shiftkey requests`).
    ///
    /// When it has the approvals it needs, the CA issues the certificate to
    /// the waiting requester. Nobody approves their own request.
    Approve {
        /// The request's ID, e.g. r_abc123.
        id: String,
        /// Why; recorded in the audit log.
        #[arg(long)]
        reason: Option<String>,
        /// Print the updated request as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Deny an access request; the requester sees who denied it and why.
    Deny {
        /// The request's ID, e.g. r_abc123.
        id: String,
        /// Why (required); shown to the requester and recorded in the audit log.
        #[arg(long)]
        reason: String,
        /// Print the updated request as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Who is on call now and next (for one SCHEDULE, or all).
    #[command(args_conflicts_with_subcommands = true)]
    Oncall {
        #[command(subcommand)]
        action: Option<crate::oncall::Action>,
        schedule: Option<String>,
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Who the CA thinks you are.
    Whoami {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Enroll this server's sshd with the CA and keep it current (run as root).
    #[command(subcommand)]
    Host(crate::host::HostCommand),
    /// Session recordings for security reviewers: list, search, play, watch, export, verify.
    Recordings {
        #[command(subcommand)]
        action: crate::recordings::Action,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum IncidentAction {
    /// Open an incident; roles that require one can then be asked for under it.
    Open {
        #[arg(long)]
        title: String,
        /// sev1 (the worst) to sev4.
        #[arg(long, value_parser = ["sev1", "sev2", "sev3", "sev4"])]
        severity: String,
        /// Use this ID (e.g. the pager's) instead of one the CA makes up.
        #[arg(long)]
        id: Option<String>,
    },
    /// Resolve an incident: every live certificate issued under it is revoked.
    Resolve { id: String },
    /// Open incidents (all of them with --all).
    List {
        #[arg(long)]
        all: bool,
    },
}

/// Runs the parsed command line; the exit code says how it went.
pub fn run(cli: Cli) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let ca = cli.ca;
    match cli.command {
        Command::Login {
            device,
            no_browser,
            token,
        } => login_command(&ca, device, no_browser, &token).await,
        Command::Logout => {
            let session = Session::open(&ca)?;
            if let Some(path) = session.token_cache() {
                login::remove(&path)?;
            }
            let config = session.config;
            let mut removed = 0;
            if let Ok(mut agent) = shiftkey_ssh_agent::Agent::from_env() {
                for (blob, _) in
                    crate::status::signed_by(&mut agent, &crate::status::ca_keys(&config))?
                {
                    agent.remove(&blob)?;
                    removed += 1;
                }
            }
            eprintln!("Logged out; removed {removed} certificate(s) from ssh-agent.");
            Ok(())
        }
        Command::Access {
            role,
            incident,
            reason,
            ttl,
            principals,
            out,
            wait,
            json,
            token,
        } => {
            let client = token.client(&ca).await?;
            let mut session = Session::open(&ca)?;
            crate::status::refresh_ca_keys(&mut session).await;
            let ca_keys = crate::status::ca_keys(&session.config);
            let opts = crate::access::AccessOptions {
                ca_keys: &ca_keys,
                role: &role,
                incident: incident.as_deref(),
                reason: reason.as_deref(),
                ttl: ttl.as_deref(),
                principals: &principals,
                out: out.as_deref(),
                json,
                wait,
            };
            crate::access::run(&client, &opts).await
        }
        Command::Roles { json, token } => {
            let client = token.client(&ca).await?;
            let roles = client.roles().await?;
            if json {
                println!("{}", serde_json::to_string(&roles)?);
            } else if roles.roles.is_empty() {
                println!("{} holds no roles", printable(&roles.identity));
            } else {
                for role in &roles.roles {
                    let mut needs = Vec::new();
                    if !role.require_on_call.is_empty() {
                        needs.push(format!("on call for {}", role.require_on_call.join(" or ")));
                    }
                    if role.require_incident {
                        needs.push("--incident".into());
                    }
                    if role.require_reason {
                        needs.push("--reason".into());
                    }
                    println!(
                        "{:<16} {} on {}  (up to {}m{})",
                        role.name,
                        role.principals.join(","),
                        role.hosts.join(" "),
                        role.max_ttl_seconds / 60,
                        if needs.is_empty() {
                            String::new()
                        } else {
                            format!("; needs {}", needs.join(", "))
                        }
                    );
                }
            }
            Ok(())
        }
        Command::Status { json } => {
            let mut session = Session::open(&ca)?;
            let from = crate::status::refresh_ca_keys(&mut session).await;
            crate::status::run(&session, from, json)
        }
        Command::SshConfig {
            install,
            known_hosts,
            token,
        } => {
            let client = token.client(&ca).await?;
            let ca_config = client.config().await?;
            let roles = client.roles().await?;
            let ssh_dir = crate::ssh_config::ssh_dir()?;
            let generated = crate::ssh_config::generate(
                &ca_config,
                &roles,
                &crate::ssh_config::known_hosts_path(&ssh_dir),
            )?;
            for warning in &generated.warnings {
                eprintln!("warning: {warning}");
            }
            if install {
                for path in crate::ssh_config::install(&ssh_dir, &generated)? {
                    eprintln!("wrote {}", path.display());
                }
            } else if known_hosts {
                print!("{}", generated.known_hosts);
            } else {
                print!("{}", generated.config);
            }
            Ok(())
        }
        Command::Whoami { json, token } => {
            let client = token.client(&ca).await?;
            let who = client.whoami().await?;
            let login = Session::open(&ca)?.cached_token();
            if json {
                let expires = login.as_ref().map(|t| t.expires_at.timestamp());
                println!(
                    "{}",
                    json!({ "identity": who["identity"], "groups": who["groups"], "ca": client.describe(), "login_expires_at": expires })
                );
            } else {
                println!(
                    "{} at {}",
                    printable(who["identity"].as_str().unwrap_or("?")),
                    client.describe()
                );
                if let Some(groups) = who["groups"].as_array().filter(|g| !g.is_empty()) {
                    let names: Vec<String> = groups
                        .iter()
                        .filter_map(|g| g.as_str())
                        .map(printable)
                        .collect();
                    println!("groups: {}", names.join(", "));
                }
                if let Some(token) = login.filter(|_| !client.is_local()) {
                    println!(
                        "login valid until {}",
                        token
                            .expires_at
                            .with_timezone(&chrono::Local)
                            .format("%H:%M:%S %Z")
                    );
                }
            }
            Ok(())
        }
        Command::Incident {
            action,
            json,
            token,
        } => {
            let client = token.client(&ca).await?;
            match action {
                IncidentAction::Open {
                    title,
                    severity,
                    id,
                } => {
                    let request = shiftkey_wire::OpenIncidentRequest {
                        id,
                        title,
                        severity,
                    };
                    let incident = client.open_incident(&request).await?;
                    if json {
                        println!("{}", serde_json::to_string(&incident)?);
                    } else {
                        println!(
                            "opened {} (sev{}): {}",
                            printable(&incident.id),
                            incident.severity,
                            printable(&incident.title)
                        );
                        println!(
                            "  shiftkey access ROLE --incident {}",
                            printable(&incident.id)
                        );
                    }
                }
                IncidentAction::Resolve { id } => {
                    let resolved = client.resolve_incident(&id).await?;
                    if json {
                        println!("{}", serde_json::to_string(&resolved)?);
                    } else {
                        println!(
                            "resolved {}; revoked {} certificate(s) issued under it",
                            resolved.incident.id,
                            resolved.revoked_serials.len()
                        );
                    }
                }
                IncidentAction::List { all } => {
                    let incidents = client.incidents(!all).await?;
                    if json {
                        println!("{}", serde_json::to_string(&incidents)?);
                    } else if incidents.is_empty() {
                        println!("no {}incidents", if all { "" } else { "open " });
                    } else {
                        for i in incidents {
                            println!(
                                "{:<20} sev{}  {:<8} {}  (opened by {} at {})",
                                printable(&i.id),
                                i.severity,
                                printable(&i.status),
                                printable(&i.title),
                                printable(&i.opened_by),
                                printable(&i.opened_at)
                            );
                        }
                    }
                }
            }
            Ok(())
        }
        Command::Requests { id, json, token } => {
            if let Some(id) = &id {
                crate::ca_client::check_request_id(id)?;
            }
            let client = token.client(&ca).await?;
            let requests = match &id {
                Some(id) => vec![client.request(id).await?],
                None => client.requests().await?,
            };
            if json {
                match id {
                    Some(_) => println!("{}", serde_json::to_string(&requests[0])?),
                    None => println!("{}", serde_json::to_string(&requests)?),
                }
            } else if requests.is_empty() {
                println!("no pending requests you may approve");
            } else {
                print!(
                    "{}",
                    crate::requests::requests_table(&requests, chrono::Utc::now().timestamp())
                );
                if id.is_none() {
                    eprintln!(
                        "\n  shiftkey approve ID [--reason TEXT]    shiftkey deny ID --reason TEXT"
                    );
                }
            }
            Ok(())
        }
        Command::Approve {
            id,
            reason,
            json,
            token,
        } => {
            crate::ca_client::check_request_id(&id)?;
            let client = token.client(&ca).await?;
            let request = client.approve(&id, reason.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&request)?);
            } else {
                let outcome = match request.status.as_str() {
                    "pending" => format!(
                        "waiting for {} more",
                        usize::from(request.approvals_needed)
                            .saturating_sub(request.approvals.len())
                    ),
                    "issued" => "certificate issued to the requester".to_owned(),
                    other => printable(other),
                };
                println!(
                    "✓ approved {} ({} as {}): {}/{} approvals, {outcome}",
                    request.id,
                    printable(&request.requester),
                    printable(&request.role),
                    request.approvals.len(),
                    request.approvals_needed
                );
            }
            Ok(())
        }
        Command::Deny {
            id,
            reason,
            json,
            token,
        } => {
            crate::ca_client::check_request_id(&id)?;
            if reason.trim().is_empty() {
                anyhow::bail!(
                    "a denial needs a reason: the requester sees it\nhint: shiftkey deny {id} --reason \"use the read replica\""
                );
            }
            let client = token.client(&ca).await?;
            let request = client.deny(&id, &reason).await?;
            if json {
                println!("{}", serde_json::to_string(&request)?);
            } else {
                println!(
                    "✗ denied {} ({} as {}): {}",
                    request.id,
                    printable(&request.requester),
                    printable(&request.role),
                    printable(request.decision_reason.as_deref().unwrap_or(&reason))
                );
            }
            Ok(())
        }
        Command::Oncall {
            action,
            schedule,
            json,
            token,
        } => crate::oncall::run(&token.client(&ca).await?, action, schedule, json).await,
        Command::Host(command) => crate::host::run(command).await,
        Command::Recordings { action, token } => match action {
            crate::recordings::Action::Verify { dir, ca_key } => {
                let saved = match ca_key {
                    Some(_) => Vec::new(),
                    None => crate::recordings::seal_keys_or_saved(&Session::open(&ca)?).await,
                };
                let keys = crate::recordings::trusted_keys(ca_key.as_deref(), &saved)?;
                crate::recordings::verify(&dir, &keys)
            }
            action => crate::recordings::run(&token.client(&ca).await?, action).await,
        },
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "shiftkey",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// `shiftkey requests`: one line per request, columns aligned.
async fn login_command(
    ca: &CaArgs,
    device: bool,
    no_browser: bool,
    token: &TokenArgs,
) -> anyhow::Result<()> {
    let mut session = Session::open(ca)?;
    let client = session.client()?;
    // Discovery: the CA says which provider and client ID to use, and which
    // keys sign its certificates.
    let discovered = client
        .config()
        .await
        .with_context(|| format!("asking {} for its configuration", client.describe()))?;
    session.config.user_ca_keys = discovered.user_ca_keys.clone();
    session.config.issuer = discovered.oidc_issuer.clone();
    session.config.client_id = discovered.oidc_client_id.clone();
    session.config.save(&session.config_path)?;
    if client.is_local() {
        eprintln!(
            "{} is the CA's local socket: you are your local user there, no login needed.",
            client.describe()
        );
        return Ok(());
    }
    let id_token = match session::token_from(
        token.id_token_file.as_ref(),
        token.id_token_env.as_deref(),
    )? {
        Some(handed_in) => handed_in.token,
        None => {
            let (Some(issuer), Some(client_id)) =
                (&discovered.oidc_issuer, &discovered.oidc_client_id)
            else {
                anyhow::bail!(
                    "{} has no OIDC sign-in configured\nhint: use its local socket on the CA host (--ca unix:PATH), or ask the operator to set [oidc] in ca.toml",
                    client.describe()
                );
            };
            sign_in(issuer, client_id, device, no_browser).await?
        }
    };
    // Check it with the CA before keeping it.
    let who = client.with_token(id_token.secret()).whoami().await?;
    match session.token_cache() {
        Some(path) => {
            login::save(&id_token, &path)?;
            eprintln!(
                "Signed in as {} until {}.",
                who["identity"].as_str().unwrap_or("?"),
                id_token
                    .expires_at
                    .with_timezone(&chrono::Local)
                    .format("%H:%M:%S %Z")
            );
        }
        None => eprintln!(
            "Signed in as {}; ${} is not set, so the login is not kept: later commands sign you in again.",
            who["identity"].as_str().unwrap_or("?"),
            crate::env_vars::XDG_RUNTIME_DIR
        ),
    }
    Ok(())
}

/// A person's sign-in: the device grant, or the browser on a loopback
/// redirect (the URL is always printed).
async fn sign_in(
    issuer: &str,
    client_id: &str,
    device: bool,
    no_browser: bool,
) -> anyhow::Result<login::IdToken> {
    if device {
        Ok(login::login_device(issuer, client_id, |code| {
            let url = code
                .verification_uri_complete
                .as_deref()
                .unwrap_or(&code.verification_uri);
            eprintln!("To sign in, open {url}");
            eprintln!(
                "and enter the code {}  (valid for {} minutes)",
                code.user_code,
                code.expires_in.as_secs() / 60
            );
            eprintln!("Waiting for you to approve…");
        })
        .await?)
    } else {
        let opts = login::BrowserOptions::default();
        Ok(login::login_browser(issuer, client_id, &opts, |url| {
            eprintln!("Sign in at:\n  {url}");
            if !no_browser {
                open_browser(url);
            }
            eprintln!("Waiting for the browser…");
        })
        .await?)
    }
}

/// Best effort: `$BROWSER`, else xdg-open, only with a display. Never fails
/// the login: the URL is printed either way.
fn open_browser(url: &str) {
    let browser = std::env::var(crate::env_vars::BROWSER).ok();
    if browser.as_deref() == Some("none") || !std::io::stderr().is_terminal() {
        return;
    }
    let has_display = std::env::var_os(crate::env_vars::DISPLAY).is_some()
        || std::env::var_os(crate::env_vars::WAYLAND_DISPLAY).is_some();
    let program = match browser {
        Some(b) if !b.is_empty() => b,
        _ if has_display => "xdg-open".to_owned(),
        _ => return,
    };
    let _ = std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_takes_a_duration() {
        let cli = Cli::try_parse_from(["shiftkey", "access", "db-debug", "--wait", "30m"]).unwrap();
        let Command::Access { wait, .. } = cli.command else {
            panic!("not access");
        };
        assert_eq!(wait, std::time::Duration::from_secs(1800));
        let cli = Cli::try_parse_from(["shiftkey", "access", "db-debug"]).unwrap();
        let Command::Access { wait, .. } = cli.command else {
            panic!("not access");
        };
        assert_eq!(wait, std::time::Duration::from_secs(600));
        assert!(Cli::try_parse_from(["shiftkey", "deny", "r_1"]).is_err());
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Regression: `shiftkey --ca unix:PATH access ROLE` failed because the
    /// connection flags were accepted only after the subcommand.
    #[test]
    fn connection_flags_go_before_or_after_the_subcommand() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) => panic!("{args:?}: {e}"),
        };
        for args in [
            &[
                "shiftkey",
                "--ca",
                "unix:/run/ca.sock",
                "access",
                "db-debug",
            ][..],
            &[
                "shiftkey",
                "access",
                "db-debug",
                "--ca",
                "unix:/run/ca.sock",
            ],
            &["shiftkey", "incident", "--ca", "unix:/run/ca.sock", "list"],
            &["shiftkey", "incident", "list", "--ca", "unix:/run/ca.sock"],
        ] {
            let cli = parse(args);
            assert_eq!(cli.ca.ca.as_deref(), Some("unix:/run/ca.sock"), "{args:?}");
        }
        let cli = parse(&[
            "shiftkey",
            "--ca-fingerprint",
            "ab:cd",
            "--config",
            "/tmp/c.toml",
            "whoami",
        ]);
        assert_eq!(cli.ca.ca_fingerprint.as_deref(), Some("ab:cd"));
        assert_eq!(
            cli.ca.config.as_deref(),
            Some(std::path::Path::new("/tmp/c.toml"))
        );
        assert!(matches!(cli.command, Command::Whoami { .. }));
        let cli = parse(&["shiftkey", "--ca-cert", "/tmp/b.pem", "logout"]);
        assert_eq!(
            cli.ca.ca_cert.as_deref(),
            Some(std::path::Path::new("/tmp/b.pem"))
        );
        // `host enroll` keeps its own --ca.
        let cli = parse(&[
            "shiftkey",
            "host",
            "enroll",
            "--ca",
            "https://ca.example.com:8443",
            "--token",
            "t",
        ]);
        assert!(matches!(cli.command, Command::Host(_)));
    }
}
