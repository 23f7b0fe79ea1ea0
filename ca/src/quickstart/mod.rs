//! `shiftkey-ca quickstart`: from a fresh checkout to the whole loop the
//! product exists for, in one command, on loopback.
//!
//! Initializes a data directory (once) and starts the CA; then, from the
//! same directory, a throwaway target sshd enrolled with a one-time join
//! token (`target`) and an enrolled bastion run in this process
//! (`bastion`). It asks the CA over the local socket for a certificate as
//! the invoking user (real HTTP, real policy, real audit), puts it into the
//! user's ssh-agent or into 0600 files (`identity`), runs one recorded
//! `ssh -J` session through the bastion with plain OpenSSH and checks with
//! the CA that the recording was sealed and its typed line is searchable
//! (`session`). It prints what happened and what to run next, then keeps
//! everything serving until Ctrl-C (or exits at once with `--exit`).
//!
//! What cannot run is said with its fix, and the rest still runs: without
//! `sshd` or `ssh`, the CA part (a certificate issued and shown) runs alone.
//! With `--exit` the command succeeds only when the recorded session was
//! sealed and holds the typed line.
//!
//! Command code: anyhow is the error type here, as in `cli.rs`.

mod bastion;
mod identity;
mod local;
mod policy;
mod session;
mod target;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ssh_key::{Algorithm, Certificate, PrivateKey};
use zeroize::Zeroizing;

use shiftkey_wire::{CertificateRequest, CertificateResponse, RecordingInfo, RecordingMatch};

use crate::env_vars;
use identity::Placed;
use local::Local;

/// The role of the plain demonstration, when the recorded path cannot run
/// (the example policy's; older quickstart directories have only it).
const LOCAL_ROLE: &str = "local-shell";
/// Lifetime asked for; the role allows at most 10 minutes.
const TTL: &str = "10m";
/// How long a join token the quickstart makes may be used.
const TOKEN_TTL: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) data_dir: PathBuf,
    pub(crate) listen: SocketAddr,
    pub(crate) exit: bool,
    /// The OpenSSH server run as the target.
    pub(crate) sshd: PathBuf,
    /// The OpenSSH client run through the bastion.
    pub(crate) ssh: PathBuf,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    // Absolute from here on: the target's sshd reads its config's paths
    // after changing to `/`, so the README's default `shiftkey-quickstart`
    // (relative) would name files it cannot find.
    let options = Options {
        data_dir: std::path::absolute(&options.data_dir)
            .with_context(|| format!("the data directory {}", options.data_dir.display()))?,
        ..options
    };
    let uid = nix::unistd::Uid::current().as_raw();
    let user = crate::identity::local_user_name(uid)
        .context("your uid has no user name (passwd entry)")?;
    let dir = &options.data_dir;
    if crate::keys::key_path(dir, crate::keys::CaKind::User).exists() {
        eprintln!("• Using the existing data directory {}", dir.display());
    } else {
        eprintln!(
            "• Creating a data directory with fresh CA keys at {}",
            dir.display()
        );
        create(dir, &user, options.listen).await?;
    }
    let running = crate::server::start(dir, &dir.join("ca.toml"), None)
        .await
        .map_err(|e| {
            let mut message = format!("starting the CA: {e:#}");
            if message.contains("in use") {
                message.push_str(
                    "\nhint: another process listens on the CA's address (`listen` in ca.toml); stop it, or start over with another: `quickstart --data-dir NEW_DIR --listen 127.0.0.1:PORT`",
                );
            }
            anyhow::anyhow!(message)
        })?;
    let url = running.url();
    let socket = running
        .socket
        .clone()
        .context("the quickstart needs the local socket (server.socket in ca.toml)")?;
    eprintln!("• CA serving on {url} and on {}", socket.display());
    let local = Local { socket: &socket };

    let result = demonstrate(&options, local, &user, &url).await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            running.shutdown().await;
            return Err(e);
        }
    };
    next(&options, &socket, &url, &outcome);
    if options.exit {
        running.shutdown().await;
        return match outcome.recorded {
            Ok(recorded) => {
                println!("Session: {}", recorded.session.session_id);
                Ok(())
            }
            Err(e) => Err(e.context("the recorded session through the bastion did not happen")),
        };
    }
    eprintln!("\nThe CA, the bastion and the target keep running; Ctrl-C stops them.");
    running.run_until_signalled().await?;
    // Dropping `outcome` stops the target sshd; the bastion's thread ends
    // with the process.
    drop(outcome);
    Ok(())
}

/// A new quickstart directory: the quickstart's policy (with a free port
/// for the target), then `init`, then the CA's address.
async fn create(dir: &Path, user: &str, listen: SocketAddr) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the directory", dir.display()))?;
    let policy = dir.join("policy.toml");
    if !policy.exists() {
        crate::keys::write_new(&policy, policy::text(user, free_port()?).as_bytes(), 0o644)?;
    }
    let opts = crate::init::InitOptions {
        passphrase: None,
        tls_names: &[],
        local_user: user,
        config: None,
        user_key: None,
        host_key: None,
        algorithm: None,
    };
    crate::init::init(dir, &opts).await?;
    // The quickstart listens where --listen says.
    let mut config = std::fs::read_to_string(dir.join("ca.toml"))?.replace(
        "listen = \"127.0.0.1:8443\"",
        &format!("listen = \"{listen}\""),
    );
    if let Some(public_url) = ui_public_url(listen) {
        config.push_str(&ui_section(&public_url));
    }
    std::fs::write(dir.join("ca.toml"), config)?;
    Ok(())
}

/// Where a browser on this machine reaches the quickstart's CA: its
/// `--listen` address when that is loopback, loopback when it listens on
/// every address; none for another address (a sign-in link is used from
/// loopback only, so the review UI gets no `[ui]` there).
fn ui_public_url(listen: SocketAddr) -> Option<String> {
    let ip = listen.ip();
    let ip = if ip.is_loopback() {
        ip
    } else if ip.is_unspecified() {
        match ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        }
    } else {
        return None;
    };
    Some(format!("https://{}", SocketAddr::new(ip, listen.port())))
}

/// The quickstart's review UI: no identity provider here, so signing in is
/// by one-time link only (`shiftkey-ca ui link`, on this host).
fn ui_section(public_url: &str) -> String {
    format!(
        r#"
# The quickstart's review UI: there is no identity provider here, so
# reviewers sign in only with a one-time link printed on this host by
# `shiftkey-ca ui link` (loopback only). docs/ui.md
[ui]
public_url = "{public_url}"
local_link = true
"#
    )
}

/// Whether `shiftkey-ca ui link` works with the directory's ca.toml: the
/// review UI is configured with one-time links on (a directory made by an
/// older quickstart has no `[ui]`).
fn ui_link_works(dir: &Path) -> bool {
    crate::config::Config::load(&dir.join("ca.toml"), dir)
        .is_ok_and(|config| config.ui.is_some_and(|ui| ui.local_link))
}

/// What the quickstart did.
#[derive(Debug)]
struct Outcome {
    serial: u64,
    /// The recorded path, or why it did not run (with its fix).
    recorded: anyhow::Result<Recorded>,
}

/// The loop, running: dropping it stops the target sshd.
#[derive(Debug)]
struct Recorded {
    _target: target::Target,
    _bastion: bastion::Bastion,
    config: PathBuf,
    session: RecordingInfo,
}

async fn demonstrate(
    options: &Options,
    local: Local<'_>,
    user: &str,
    url: &str,
) -> anyhow::Result<Outcome> {
    let dir = &options.data_dir;
    // What the recorded path needs, checked before anything is issued.
    let mut missing = Vec::new();
    let target_port = match policy::target_port(&dir.join("policy.toml")) {
        Ok(port) => Some(port),
        Err(e) => {
            missing.push(format!("{e:#}"));
            None
        }
    };
    if let Err(e) = target::check_sshd(&options.sshd) {
        missing.push(e);
    }
    if let Err(e) = find_ssh(&options.ssh) {
        missing.push(e);
    }
    let role = if target_port.is_some() {
        policy::ROLE
    } else {
        LOCAL_ROLE
    };

    let key = PrivateKey::random(&mut crate::keys::rng(), Algorithm::Ed25519)?;
    let request = CertificateRequest {
        public_key: key.public_key().to_openssh()?,
        role: role.into(),
        incident: None,
        reason: Some("shiftkey-ca quickstart demonstration".into()),
        ttl: Some(TTL.into()),
        principals: None,
    };
    eprintln!(
        "• Asking for a {TTL} certificate for role {role} as local:{user} (in-memory ed25519 key)"
    );
    let issued: CertificateResponse = local
        .post("/v1/certificates", &request)
        .await
        .context("hint: is shiftkey-ca running with this data directory?")?;
    let cert = Certificate::from_openssh(&issued.certificate)?;
    println!("\nIssued certificate\n{}", describe(&cert));
    println!("{}\n", issued.certificate);

    let recorded = match (missing.is_empty(), target_port) {
        (true, Some(port)) => {
            let lifetime = Duration::from_secs(
                cert.valid_before()
                    .saturating_sub(unix_now())
                    .saturating_sub(5),
            );
            let auth_sock = std::env::var_os(env_vars::SSH_AUTH_SOCK);
            let placed = identity::place(auth_sock, dir, &key, &cert, lifetime);
            drop(key);
            match placed {
                Ok(placed) => record(options, local, user, url, port, &issued, placed).await,
                Err(e) => Err(e),
            }
        }
        _ => {
            drop(key);
            Err(anyhow::anyhow!("{}", missing.join("\n")))
        }
    };
    if let Err(e) = &recorded {
        eprintln!(
            "\n! The recorded path (target sshd, bastion, ssh) did not run; the CA part above did.\n{}",
            indent(&format!("{e:#}"))
        );
    }
    Ok(Outcome {
        serial: issued.serial,
        recorded,
    })
}

/// Target, bastion, one session, the CA's word on its recording.
async fn record(
    options: &Options,
    local: Local<'_>,
    user: &str,
    url: &str,
    target_port: u16,
    issued: &CertificateResponse,
    placed: Placed,
) -> anyhow::Result<Recorded> {
    let dir = &options.data_dir;
    let since = i64::try_from(unix_now()).unwrap_or(i64::MAX) - 60;
    eprintln!("• Enrolling the target sshd with a one-time join token and starting it");
    let target = target::start(dir, local, &options.sshd, user, target_port).await?;
    eprintln!("• Starting the bastion (enrolled with its own join token)");
    let bastion = bastion::start(dir, url, target_port).await?;
    let host_ca = local.bytes("GET", "/v1/ca/host.pub", None).await?;
    let config = session::write_config(
        dir,
        &String::from_utf8_lossy(&host_ca),
        bastion.port,
        target.port,
        user,
        &placed,
    )?;
    eprintln!(
        "• Running one recorded session: ssh -F {} {}",
        config.display(),
        policy::TARGET
    );
    let ran = session::run_ssh(&options.ssh, &config, target.pty)
        .await
        .map_err(|e| {
            let log = std::fs::read_to_string(target.dir.join("sshd.log")).unwrap_or_default();
            if log.contains("account is locked") {
                // sshd without PAM refuses accounts whose password field is locked ("!").
                e.context(format!(
                    "the target's sshd says your account is locked (a `!` password field)\nhint: `usermod -p '*' {user}` unlocks it for keys and certificates without setting a password"
                ))
            } else {
                e.context(format!("the target's log: {}", target.dir.join("sshd.log").display()))
            }
        })?;
    let (session, hit) = session::recorded(local, issued.serial, since).await?;
    print_loop(
        &target, &bastion, &placed, &config, issued, &ran, &session, &hit,
    );
    Ok(Recorded {
        _target: target,
        _bastion: bastion,
        config,
        session,
    })
}

#[allow(clippy::too_many_arguments)]
fn print_loop(
    target: &target::Target,
    bastion: &bastion::Bastion,
    placed: &Placed,
    config: &Path,
    issued: &CertificateResponse,
    ran: &session::Ran,
    session: &RecordingInfo,
    hit: &RecordingMatch,
) {
    let e = &target.enrolled;
    let logins: Vec<String> = e
        .authorized_principals
        .iter()
        .map(|(login, p)| format!("{login} takes {}", p.join(", ")))
        .collect();
    println!("What happened");
    println!(
        "  target    {} = sshd on 127.0.0.1:{}, enrolled with join token {}: host certificate serial {}; trusts only the user CA, its KRL, login {} ({})",
        policy::TARGET,
        target.port,
        target.token_id,
        e.serial,
        logins.join("; "),
        target.dir.display()
    );
    println!(
        "  bastion   {} on 127.0.0.1:{}, in this process, enrolled with the CA; recordings shipped to the CA (local copy {})",
        bastion::NAME,
        bastion.port,
        bastion.recordings.display()
    );
    match placed {
        Placed::Agent(sock) => println!(
            "  identity  certificate serial {} and its key in your ssh-agent ({}) until the certificate expires",
            issued.serial,
            sock.display()
        ),
        Placed::Files {
            key,
            certificate,
            why,
        } => println!(
            "  identity  certificate serial {} in {} with its key {} (0600; {why})",
            issued.serial,
            certificate.display(),
            key.display()
        ),
    }
    println!(
        "  ssh       ssh -F {} {} -- typed: {}",
        config.display(),
        policy::TARGET,
        session::TYPED
    );
    println!("  output    {}", ran.line);
    println!(
        "  recorded  session {} {} by the CA ({} file(s), signed manifest); search finds the typed line at {:.1}s",
        session.session_id,
        session.status,
        session.files.len(),
        hit.offset_seconds
    );
    println!();
}

/// The commands to try next.
fn next(options: &Options, socket: &Path, url: &str, outcome: &Outcome) {
    let d = options.data_dir.display();
    let checkout = from_checkout();
    let ca_cmd = if checkout {
        "cargo run -p shiftkey-ca --"
    } else {
        "shiftkey-ca"
    };
    let client = if checkout {
        "cargo run -p shiftkey --"
    } else {
        "shiftkey"
    };
    let on_ca = format!("--ca unix:{}", socket.display());
    println!("Next:");
    if let Ok(recorded) = &outcome.recorded {
        let id = &recorded.session.session_id;
        println!(
            "  ssh -F {} {}   # a recorded shell of your own, through the bastion",
            recorded.config.display(),
            policy::TARGET
        );
        println!("  {client} recordings list {on_ca}");
        println!("  {client} recordings play {id} {on_ca}");
        println!("  {client} recordings search 'shiftkey-quickstart' {on_ca}");
        println!("  {client} recordings cat {id} {on_ca}");
        println!(
            "  {ca_cmd} revoke --data-dir {d} --serial {} --reason 'quickstart: cut the session'   # while that shell runs: the bastion ends it at once",
            outcome.serial
        );
    }
    if ui_link_works(&options.data_dir) {
        println!(
            "  {ca_cmd} ui link --data-dir {d}   # a one-time sign-in link to the review UI at {url}/ui/, for you, on this machine"
        );
    } else {
        println!(
            "  {url}/ui/   # the review UI's address; signing in needs [ui] in {d}/ca.toml, with [oidc] or local_link (docs/ui.md)"
        );
    }
    println!(
        "  curl --cacert {d}/tls/cert.pem {url}/v1/ca/user.pub      # the key hosts trust (TrustedUserCAKeys)"
    );
    println!(
        "  {ca_cmd} audit verify --data-dir {d}   # every issuance, enrollment and session is in the hash-chained audit log"
    );
    println!("  {ca_cmd} audit export --data-dir {d}");
    println!("  {ca_cmd} policy test {d}/policy.toml   # the policy's own tests");
    println!("  {ca_cmd} serve --data-dir {d}          # run the CA again later");
}

/// A one-time join token for `name` (valid for `principals`), made with
/// the `hosts token` power as the invoking user, audited.
async fn join_token(
    data_dir: &Path,
    name: &str,
    principals: &[&str],
    bastion: bool,
) -> anyhow::Result<(Zeroizing<String>, String)> {
    let kind = if bastion {
        crate::hosts::HostKind::Bastion
    } else {
        crate::hosts::HostKind::Host
    };
    let operator = crate::operator::Operator::open(data_dir, None).await?;
    let token = crate::hosts::new_token(
        name,
        principals.iter().map(|p| (*p).to_owned()).collect(),
        kind,
        TOKEN_TTL,
        operator.actor(),
    )
    .map_err(anyhow::Error::msg)?;
    operator.record_token(&token).await?;
    Ok((token.token, token.stored.id))
}

/// `ssh` as given, or found on PATH.
fn find_ssh(ssh: &Path) -> Result<PathBuf, String> {
    let found = if ssh.components().count() > 1 {
        ssh.is_file().then(|| ssh.to_owned())
    } else {
        std::env::var_os(env_vars::PATH).and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(ssh))
                .find(|p| p.is_file())
        })
    };
    found.ok_or_else(|| {
        format!(
            "there is no OpenSSH client {} (on PATH), so the quickstart cannot run a session through the bastion\nhint: apt-get install openssh-client, or pass --ssh PATH",
            ssh.display()
        )
    })
}

/// A loopback port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot bind a loopback port to find a free one")?;
    Ok(listener.local_addr()?.port())
}

/// Run from a cargo build (`target/debug`, `target/release`): the next
/// commands are shown as `cargo run -p …`.
fn from_checkout() -> bool {
    std::env::current_exe().is_ok_and(|exe| {
        exe.parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .is_some_and(|n| n == "target")
    })
}

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A certificate as `ssh-keygen -L` would summarize it.
pub(crate) fn describe(cert: &Certificate) -> String {
    let time = |t: u64| {
        chrono::DateTime::from_timestamp(i64::try_from(t).unwrap_or(i64::MAX), 0).map_or_else(
            || t.to_string(),
            |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
    };
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<18}{v}\n"));
    line("Type:", format!("{} user certificate", cert.algorithm()));
    line("Key ID:", format!("\"{}\"", cert.key_id()));
    line("Serial:", cert.serial().to_string());
    line("Principals:", cert.valid_principals().join(", "));
    line(
        "Valid:",
        format!(
            "from {} to {}",
            time(cert.valid_after()),
            time(cert.valid_before())
        ),
    );
    let lifetime = cert.valid_before().saturating_sub(cert.valid_after());
    line(
        "Lifetime:",
        format!("{}m{:02}s", lifetime / 60, lifetime % 60),
    );
    let opts: Vec<String> = cert
        .critical_options()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    line(
        "Critical options:",
        if opts.is_empty() {
            "(none)".into()
        } else {
            opts.join(", ")
        },
    );
    let exts: Vec<String> = cert.extensions().keys().cloned().collect();
    line("Extensions:", exts.join(", "));
    line(
        "Signing CA:",
        cert.signature_key()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_ui_is_reached_over_loopback_or_not_configured() {
        let url = |listen: &str| ui_public_url(listen.parse().unwrap());
        assert_eq!(
            url("127.0.0.1:8443").as_deref(),
            Some("https://127.0.0.1:8443")
        );
        assert_eq!(
            url("0.0.0.0:9000").as_deref(),
            Some("https://127.0.0.1:9000")
        );
        assert_eq!(url("[::]:9000").as_deref(), Some("https://[::1]:9000"));
        assert_eq!(url("[::1]:9000").as_deref(), Some("https://[::1]:9000"));
        // A link is used from loopback only: another address gets no [ui].
        assert_eq!(url("192.0.2.7:8443"), None);
        // What the quickstart appends parses, with link-only sign-in.
        let text = format!(
            "{}{}",
            crate::config::EXAMPLE,
            ui_section("https://127.0.0.1:8443")
        );
        let config =
            crate::config::Config::parse(&text, Path::new("/q/ca.toml"), Path::new("/q")).unwrap();
        let ui = config.ui.unwrap();
        assert!(ui.local_link && ui.oidc.is_none());
        assert_eq!(ui.public_url, "https://127.0.0.1:8443");
    }
}
