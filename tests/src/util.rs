//! Small helpers shared by the end-to-end tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};

/// The workspace's `target/<profile>` directory, where `cargo build` put the
/// binaries (the test executable lives in its `deps/`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Path of one of the workspace's binaries; fails with a hint if it was not built.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = target_dir().join(name);
    if !path.exists() {
        bail!(
            "{} not found; run `cargo build --workspace --bins` before the tests (scripts/test does)",
            path.display()
        );
    }
    Ok(path)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Fails with an install hint when `tool` is not on PATH.
pub fn require_tool(tool: &str, package: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false);
    if !found && !Path::new(tool).is_file() {
        bail!(
            "`{tool}` is missing: install it with `apt-get install -y {package}` (scripts/test does)"
        );
    }
    Ok(())
}

/// Runs a command to completion and returns its output, whatever the status.
pub fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.output().with_context(|| format!("running {cmd:?}"))
}

/// Runs a command that must succeed; returns stdout.
pub fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let out = run(cmd)?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A fresh ssh key pair made by `ssh-keygen` in `dir`; returns the private key path.
pub fn ssh_keygen(dir: &Path, name: &str, args: &[&str]) -> anyhow::Result<PathBuf> {
    require_tool("ssh-keygen", "openssh-client")?;
    let path = dir.join(name);
    run_ok(
        Command::new("ssh-keygen")
            .args(args)
            .arg("-q")
            .arg("-N")
            .arg("")
            .arg("-C")
            .arg(name)
            .arg("-f")
            .arg(&path),
    )?;
    Ok(path)
}

/// Ensures a local account exists that sshd will let in with a certificate.
pub fn ensure_login_user(name: &str) -> anyhow::Result<()> {
    if run(Command::new("id").arg(name))?.status.success() {
        return Ok(());
    }
    run_ok(Command::new("useradd").args(["-m", "-s", "/bin/sh", name]))?;
    // sshd refuses accounts whose password field is locked ("!"), even for keys.
    run_ok(Command::new("usermod").args(["-p", "*", name]))?;
    Ok(())
}

/// `ssh-keygen -Q -f KRL CERT`: `Ok(true)` when the KRL revokes the
/// certificate, `Ok(false)` when ssh-keygen says it is fine, and an error
/// for anything else (an unreadable KRL must fail a test, not pass it).
pub fn krl_revokes(krl: &Path, cert: &Path) -> anyhow::Result<bool> {
    let out = run(Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(krl)
        .arg(cert))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.code() {
        Some(0) if text.trim_end().ends_with(": ok") => Ok(false),
        Some(1) if text.contains("REVOKED") => Ok(true),
        _ => bail!(
            "ssh-keygen -Q could not check {}: {}{}",
            cert.display(),
            text,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// `policy` with role `role` allowed on `ports` (the bastion connects only
/// to a role's ports; test sshds listen on whatever port was free).
pub fn with_ports(policy: &str, role: &str, ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    policy.replacen(
        &format!("name = \"{role}\"\n"),
        &format!("name = \"{role}\"\nports = [{}]\n", list.join(", ")),
        1,
    )
}
