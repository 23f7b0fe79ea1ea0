//! A real OpenSSH server on a loopback port that trusts only a CA key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::util::{free_port, require_tool, run, ssh_keygen};

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
        require_tool("/usr/sbin/sshd", "openssh-server")?;
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        std::fs::create_dir_all(dir)?;
        let host_key = ssh_keygen(dir, "ssh_host_ed25519_key", &["-t", "ed25519"])?;
        let ca_file = dir.join("trusted_user_ca.pub");
        std::fs::write(&ca_file, user_ca_pub)?;
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nUsePAM no\n\
                 AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nTrustedUserCAKeys {}\nStrictModes no\nLogLevel VERBOSE\n",
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = sshd.child.try_wait()? {
                bail!("sshd exited with {status}: {}", sshd.log());
            }
            if Instant::now() > deadline {
                bail!("sshd did not start listening: {}", sshd.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(sshd)
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
        require_tool("ssh", "openssh-client")?;
        run(Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(["-o", "ConnectTimeout=10"])
            .arg("-i")
            .arg(key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{login}@127.0.0.1"))
            .arg(command)
            .stdin(Stdio::null()))
    }
}

impl Sshd {
    /// Plain `ssh LOGIN@127.0.0.1 COMMAND` with the keys of the agent at
    /// `agent_socket` and nothing else: as a user runs it after `shiftkey access`.
    pub fn ssh_with_agent(
        &self,
        agent_socket: &Path,
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
                "IdentitiesOnly=no",
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(["-o", "ConnectTimeout=10"])
            .arg("-o")
            .arg(format!("IdentityAgent={}", agent_socket.display()))
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
