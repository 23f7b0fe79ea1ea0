//! A real `ssh-agent` on a private socket, killed when dropped.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::util::{require_tool, run};

#[derive(Debug)]
pub struct SshAgent {
    child: Child,
    pub socket: PathBuf,
}

impl SshAgent {
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        require_tool("ssh-agent", "openssh-client")?;
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ssh-agent")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        // The socket file appears at bind(), before listen(): wait until a
        // connection is accepted, not until the file exists.
        while UnixStream::connect(&socket).is_err() {
            if Instant::now() > deadline {
                bail!("ssh-agent did not listen on {}", socket.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, socket })
    }

    /// `ssh-add -l` as text (empty when the agent holds nothing).
    pub fn list(&self) -> anyhow::Result<String> {
        let out = run(Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", &self.socket))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
