//! The quickstart's bastion: the real `shiftkey-bastion`, enrolled with a
//! join token, recording into the CA, run in this process.
//!
//! Why in-process: the bastion crate is a library with the binary's own
//! entry point (`shiftkey_bastion::{Cli, run}`), so calling it keeps
//! `cargo run -p shiftkey-ca -- quickstart` one command that needs no other
//! binary built; spawning `shiftkey-bastion` would need a prior
//! `cargo build` (or an installed package) and a path to find it by. It
//! runs exactly as `shiftkey-bastion serve --config FILE` does, on its own
//! thread and tokio runtime (its `run` blocks), and talks to the CA over
//! HTTPS like any bastion: nothing is shared but the process. Its logs go
//! to the CA's log subscriber (stderr). It stops when the quickstart does.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

use super::policy::TARGET;
use super::target::write_file;

/// The bastion's enrolled name.
pub(super) const NAME: &str = "quickstart-bastion";

/// How long the bastion may take to enroll and listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(super) struct Bastion {
    pub(super) port: u16,
    pub(super) recordings: PathBuf,
    /// Kept so the thread is named in a debugger; never joined while it serves.
    _thread: JoinHandle<std::process::ExitCode>,
}

/// Writes the bastion's configuration under `DIR/bastion/` (a join token
/// when its certificate will not do) and starts it on a free loopback port.
pub(super) async fn start(
    data_dir: &Path,
    ca_url: &str,
    target_port: u16,
) -> anyhow::Result<Bastion> {
    let dir = data_dir.join("bastion");
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("join-token");
    if needs_token(&dir.join("bastion-cert.pub")) {
        let (token, _) =
            super::join_token(data_dir, NAME, &["127.0.0.1", "localhost"], true).await?;
        write_file(
            &token_file,
            format!("{}\n", token.as_str()).as_bytes(),
            0o600,
        )?;
    }
    let port = super::free_port()?;
    let recordings = dir.join("recordings");
    let config = dir.join("bastion.toml");
    let text = format!(
        "# The quickstart's bastion (shiftkey-ca quickstart writes this file on every run).\n\
         listen = \"127.0.0.1:{port}\"\nca_url = \"{ca_url}\"\nca_bundle = \"{bundle}\"\n\
         data_dir = \"{data}\"\nrecordings_dir = \"{recordings}\"\nenroll_token_file = \"{token}\"\n\n\
         [targets]\n\"{TARGET}\" = \"127.0.0.1:{target_port}\"\n",
        bundle = toml_path(&data_dir.join("tls/cert.pem")),
        data = toml_path(&dir),
        recordings = toml_path(&recordings),
        token = toml_path(&token_file),
    );
    write_file(&config, text.as_bytes(), 0o644)?;
    let cli = shiftkey_bastion::Cli::try_parse_from([
        std::ffi::OsStr::new("shiftkey-bastion"),
        "serve".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ])?;
    let thread = std::thread::Builder::new()
        .name("bastion".into())
        .spawn(move || shiftkey_bastion::run(cli))
        .context("starting the bastion's thread")?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if thread.is_finished() {
            bail!(
                "the bastion stopped (its error is above); its configuration is {}",
                config.display()
            );
        }
        // Readiness: an SSH banner on its port that is not OpenSSH's (a
        // target sshd that took the port a moment after it was free would
        // answer with one).
        if tokio::task::spawn_blocking(move || banner(port))
            .await?
            .is_some_and(|b| b.starts_with("SSH-2.0-") && !b.starts_with("SSH-2.0-OpenSSH"))
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the bastion did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Bastion {
        port,
        recordings,
        _thread: thread,
    })
}

/// True unless `cert` is a certificate valid for five more minutes (the
/// bastion then starts without enrolling, and needs no token).
fn needs_token(cert: &Path) -> bool {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    std::fs::read_to_string(cert)
        .ok()
        .and_then(|text| ssh_key::Certificate::from_openssh(text.trim()).ok())
        .is_none_or(|c| c.valid_before() <= now + 300)
}

/// The SSH identification line on `port`, if something answers there.
fn banner(port: u16) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A path as a TOML basic string's contents.
fn toml_path(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}
