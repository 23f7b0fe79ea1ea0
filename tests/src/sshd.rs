//! A real OpenSSH server on a loopback port that trusts only a CA key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::util::{free_port, require_tool, run, ssh_keygen};

/// sshd_config lines that make sshd accept, for `login`, only these
/// certificate principals, and for other logins none — what an enrolled
/// host's AuthorizedPrincipalsFile for `login` lists: `LOGIN@ROLE` for the
/// roles whose hosts match it. Writes `dir/principals/LOGIN`; sshd reads it
/// as the login, so `dir` must be where that user can read.
pub fn principals_config(dir: &Path, login: &str, principals: &[&str]) -> anyhow::Result<String> {
    let files = dir.join("principals");
    std::fs::create_dir_all(&files)?;
    let mut text = principals.join("\n");
    text.push('\n');
    std::fs::write(files.join(login), text)?;
    Ok(format!("AuthorizedPrincipalsFile {}/%u\n", files.display()))
}

#[derive(Debug)]
pub struct Sshd {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Sshd {
    /// Starts `sshd -D -e -f CONFIG` trusting `user_ca_pub` (TrustedUserCAKeys)
    /// with `AuthorizedKeysFile none`: certificates are the only way in.
    pub fn start(dir: &Path, user_ca_pub: &str) -> anyhow::Result<Self> {
        Self::start_with_host_ca(dir, user_ca_pub, None)
    }

    /// Like [`start`](Self::start); with `host_ca_key` (a host CA private key
    /// file), the host key is certified for `127.0.0.1` by it and served as
    /// `HostCertificate`, so clients with an `@cert-authority` line trust the
    /// host without a prompt.
    /// Like [`start`](Self::start), with `extra` lines appended to sshd_config
    /// (e.g. `RevokedKeys FILE`).
    pub fn start_with_extra(dir: &Path, user_ca_pub: &str, extra: &str) -> anyhow::Result<Self> {
        Self::start_inner(dir, user_ca_pub, None, extra)
    }

    pub fn start_with_host_ca(
        dir: &Path,
        user_ca_pub: &str,
        host_ca_key: Option<&Path>,
    ) -> anyhow::Result<Self> {
        Self::start_inner(dir, user_ca_pub, host_ca_key, "")
    }

    /// [`start_with_host_ca`](Self::start_with_host_ca) and
    /// [`start_with_extra`](Self::start_with_extra) at once: a host
    /// certificate from `host_ca_key` and `extra` sshd_config lines (the
    /// bastion benchmark raises `MaxStartups` for its many sessions).
    pub fn start_with_host_ca_and_extra(
        dir: &Path,
        user_ca_pub: &str,
        host_ca_key: Option<&Path>,
        extra: &str,
    ) -> anyhow::Result<Self> {
        Self::start_inner(dir, user_ca_pub, host_ca_key, extra)
    }

    fn start_inner(
        dir: &Path,
        user_ca_pub: &str,
        host_ca_key: Option<&Path>,
        extra: &str,
    ) -> anyhow::Result<Self> {
        require_tool("/usr/sbin/sshd", "openssh-server")?;
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        std::fs::create_dir_all(dir)?;
        let host_key = ssh_keygen(dir, "ssh_host_ed25519_key", &["-t", "ed25519"])?;
        let host_certificate = match host_ca_key {
            Some(ca) => {
                crate::util::run_ok(
                    Command::new("ssh-keygen")
                        .args([
                            "-q",
                            "-h",
                            "-I",
                            "e2e-host",
                            "-n",
                            "127.0.0.1",
                            "-V",
                            "-5m:+1h",
                            "-s",
                        ])
                        .arg(ca)
                        .arg(host_key.with_extension("pub")),
                )?;
                format!(
                    "HostCertificate {}\n",
                    dir.join("ssh_host_ed25519_key-cert.pub").display()
                )
            }
            None => String::new(),
        };
        let ca_file = dir.join("trusted_user_ca.pub");
        std::fs::write(&ca_file, user_ca_pub)?;
        // A port free a moment ago may be taken by a parallel test before
        // sshd binds it: sshd then exits, and we try another. Readiness is
        // sshd's own "Server listening" line, never a connect that another
        // process could answer.
        for _attempt in 0..5 {
            let port = free_port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nUsePAM no\n\
                     AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PubkeyAuthentication yes\nTrustedUserCAKeys {}\nStrictModes no\nLogLevel VERBOSE\nSubsystem sftp internal-sftp\n{host_certificate}{extra}",
                    host_key.display(),
                    ca_file.display()
                ),
            )?;
            let log = std::fs::File::create(dir.join("sshd.log"))?;
            let child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting sshd")?;
            let mut sshd = Sshd {
                child,
                port,
                dir: dir.to_owned(),
            };
            let listening = format!("Server listening on 127.0.0.1 port {port}");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if sshd.log().contains(&listening) {
                    return Ok(sshd);
                }
                if let Some(status) = sshd.child.try_wait()? {
                    if sshd.log().contains("Address already in use") {
                        break;
                    }
                    bail!("sshd exited with {status}: {}", sshd.log());
                }
                if Instant::now() > deadline {
                    bail!("sshd did not start listening: {}", sshd.log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        bail!("sshd found no free port in 5 tries")
    }

    /// Starts `sshd -D -e -f DIR/sshd_config` with the main config the
    /// caller writes (`config(port)`: e.g. one that `Include`s a drop-in
    /// directory, as Debian's does), on a loopback port that was free;
    /// logs to DIR/sshd.log. Host keys and everything else are the caller's.
    pub fn start_with_config(dir: &Path, config: impl Fn(u16) -> String) -> anyhow::Result<Self> {
        require_tool("/usr/sbin/sshd", "openssh-server")?;
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        let path = dir.join("sshd_config");
        for _attempt in 0..5 {
            let port = free_port();
            std::fs::write(&path, config(port))?;
            let log = std::fs::File::create(dir.join("sshd.log"))?;
            let child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting sshd")?;
            let mut sshd = Sshd {
                child,
                port,
                dir: dir.to_owned(),
            };
            if sshd.wait_listening(1)? {
                return Ok(sshd);
            }
        }
        bail!("sshd found no free port in 5 tries")
    }

    /// Waits until sshd.log has `times` "Server listening" lines for this
    /// port (one per start; a SIGHUP restarts sshd, which listens again).
    /// False when sshd exited because the port was taken.
    pub fn wait_listening(&mut self, times: usize) -> anyhow::Result<bool> {
        let listening = format!("Server listening on 127.0.0.1 port {}", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.log().matches(&listening).count() >= times {
                return Ok(true);
            }
            if let Some(status) = self.child.try_wait()? {
                if self.log().contains("Address already in use") {
                    return Ok(false);
                }
                bail!("sshd exited with {status}: {}", self.log());
            }
            if Instant::now() > deadline {
                bail!("sshd did not start listening: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the sshd process (the listener).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// `ssh -i KEY -o CertificateFile=CERT LOGIN@127.0.0.1 COMMAND`, with no
    /// agent, no config and no other identity: the certificate alone decides.
    pub fn ssh(
        &self,
        key: &Path,
        cert: &Path,
        login: &str,
        command: &str,
    ) -> anyhow::Result<std::process::Output> {
        let identity = [
            "-o".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "-o".to_owned(),
            "IdentityAgent=none".to_owned(),
            "-i".to_owned(),
            key.display().to_string(),
            "-o".to_owned(),
            format!("CertificateFile={}", cert.display()),
        ];
        self.run_ssh(&identity, login, command)
    }

    /// Plain `ssh LOGIN@127.0.0.1 COMMAND` with the keys of the agent at
    /// `agent_socket`: as a user runs it after `shiftkey access`.
    pub fn ssh_with_agent(
        &self,
        agent_socket: &Path,
        login: &str,
        command: &str,
    ) -> anyhow::Result<std::process::Output> {
        let identity = [
            "-o".to_owned(),
            format!("IdentityAgent={}", agent_socket.display()),
        ];
        self.run_ssh(&identity, login, command)
    }

    /// `ssh -F CONFIG -p PORT 127.0.0.1 COMMAND` with the agent at
    /// `agent_socket`: nothing but the given config file decides the user,
    /// the keys and whether the host is trusted (no prompt: BatchMode).
    pub fn ssh_with_config(
        &self,
        config: &Path,
        agent_socket: &Path,
        command: &str,
    ) -> anyhow::Result<std::process::Output> {
        require_tool("ssh", "openssh-client")?;
        run(Command::new("ssh")
            .arg("-F")
            .arg(config)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=no",
                "-o",
                "ConnectTimeout=10",
            ])
            .arg("-o")
            .arg(format!("IdentityAgent={}", agent_socket.display()))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("127.0.0.1")
            .arg(command)
            .stdin(Stdio::null()))
    }

    fn run_ssh(
        &self,
        identity: &[String],
        login: &str,
        command: &str,
    ) -> anyhow::Result<std::process::Output> {
        require_tool("ssh", "openssh-client")?;
        run(Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(identity)
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{login}@127.0.0.1"))
            .arg(command)
            .stdin(Stdio::null()))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
