//! The real `shiftkey-bastion`, enrolled with a join token from the test CA,
//! listening on a loopback port, plus an ssh client configuration that jumps
//! through it with a certificate and trusts hosts only by the host CA.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::ca::TestCa;
use crate::util::{binary, run_ok};

#[derive(Debug)]
pub struct TestBastion {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub metrics_port: u16,
    child: Option<Child>,
}

impl TestBastion {
    /// Enrolls and starts a bastion for `ca`, recordings under `recordings`
    /// (the data dir's `recordings/` when None).
    pub fn start(ca: &TestCa, recordings: Option<&Path>) -> anyhow::Result<Self> {
        Self::start_with(ca, recordings, "")
    }

    /// [`start`](Self::start) with `extra` lines appended to bastion.toml
    /// (tables such as `[limits]` or `[targets]` go last, so they may).
    pub fn start_with(ca: &TestCa, recordings: Option<&Path>, extra: &str) -> anyhow::Result<Self> {
        Self::start_at(ca, &ca.url(""), recordings, extra)
    }

    /// The same, reaching the CA at `ca_url` (a load balancer in front of
    /// replicas that present `ca`'s TLS certificate).
    pub fn start_at(
        ca: &TestCa,
        ca_url: &str,
        recordings: Option<&Path>,
        extra: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("shiftkey-bastion-")
            .tempdir()?;
        let token = run_ok(Command::new(binary("shiftkey-ca")?).args([
            "hosts",
            "token",
            "--bastion",
            "--name",
            "bastion-1",
            "--principals",
            "127.0.0.1,localhost",
            "--data-dir",
            &ca.data_dir().display().to_string(),
        ]))?;
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token.trim())?;
        let recordings_line = recordings
            .map(|r| format!("recordings_dir = \"{}\"\n", r.display()))
            .unwrap_or_default();
        let config = dir.path().join("bastion.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nca_url = \"{}\"\nca_bundle = \"{}\"\n\
                 data_dir = \"{}\"\nenroll_token_file = \"{}\"\n{recordings_line}{extra}\n",
                ca_url,
                ca.data_dir().join("tls/cert.pem").display(),
                dir.path().join("data").display(),
                token_file.display(),
            ),
        )?;
        let mut bastion = Self {
            dir,
            port: 0,
            metrics_port: 0,
            child: None,
        };
        bastion.spawn()?;
        Ok(bastion)
    }

    /// (Re)starts the process on the same data directory.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("bastion.log"))?;
        let child = Command::new(binary("shiftkey-bastion")?)
            .arg("serve")
            .arg("--config")
            .arg(self.dir.path().join("bastion.toml"))
            .env("RUST_LOG", "info,shiftkey_bastion=debug,russh=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting shiftkey-bastion")?;
        self.child = Some(child);
        let started = self.log().lines().count();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lines: Vec<Value> = self
                .log()
                .lines()
                .skip(started.saturating_sub(1))
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let port_of = |message: &str| {
                lines.iter().rev().find_map(|e| {
                    (e["fields"]["message"] == message)
                        .then(|| {
                            e["fields"]["address"]
                                .as_str()?
                                .rsplit(':')
                                .next()?
                                .parse()
                                .ok()
                        })
                        .flatten()
                })
            };
            if let (Some(p), Some(m)) = (port_of("bastion listening"), port_of("metrics listening"))
            {
                self.port = p;
                self.metrics_port = m;
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("shiftkey-bastion exited with {status}:\n{}", self.log());
            }
            if Instant::now() > deadline {
                bail!("shiftkey-bastion did not start listening:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bastion.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, no goodbye: what a crash looks like.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    pub fn recordings(&self) -> PathBuf {
        self.dir.path().join("data/recordings")
    }

    /// The Prometheus text at `/metrics`.
    pub fn metrics(&self) -> anyhow::Result<String> {
        Ok(
            reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))?
                .text()?,
        )
    }

    /// The value of one sample (`name{labels}` exactly as exposed), 0 when
    /// it is not there yet.
    pub fn metric(&self, sample: &str) -> anyhow::Result<f64> {
        Ok(self
            .metrics()?
            .lines()
            .find_map(|l| {
                l.strip_prefix(sample)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0))
    }

    /// A host certificate for the bastion's own key under `target`, as the
    /// CA mints it for the bastion to present (`POST /v1/hosts/present`,
    /// signed with the bastion's key), in OpenSSH text form.
    pub fn present_certificate(&self, ca: &TestCa, target: &str) -> anyhow::Result<String> {
        let data = self.dir.path().join("data");
        let key =
            ssh_key::PrivateKey::from_openssh(std::fs::read_to_string(data.join("host_key"))?)?;
        let certificate = ssh_key::Certificate::from_openssh(
            std::fs::read_to_string(data.join("bastion-cert.pub"))?.trim(),
        )?;
        let body = serde_json::json!({ "target": target }).to_string();
        let path = "/v1/hosts/present";
        let now = u64::try_from(chrono::Utc::now().timestamp())?;
        let authorization = shiftkey_wire::host_auth::authorization(
            &key,
            &certificate,
            "POST",
            path,
            now,
            body.as_bytes(),
        )?;
        let response = ca
            .client()
            .post(ca.url(path))
            .header("authorization", authorization)
            .header("content-type", "application/json")
            .body(body)
            .send()?;
        let status = response.status();
        let answer: Value = response.json()?;
        anyhow::ensure!(status.is_success(), "present: {status} {answer}");
        Ok(answer["certificate"]
            .as_str()
            .context("no certificate in the answer")?
            .to_owned())
    }

    /// An ssh_config: `Host bastion` is this bastion; every host is trusted
    /// only through `@cert-authority` with the CA's host key; the identity
    /// is `key` with its `key-cert.pub`.
    pub fn ssh_config(&self, ca: &TestCa, work: &Path, key: &Path) -> anyhow::Result<PathBuf> {
        let host_ca = std::fs::read_to_string(ca.data_dir().join("keys/host_ca.pub")).or_else(
            |_| -> anyhow::Result<String> {
                Ok(ca.client().get(ca.url("/v1/ca/host.pub")).send()?.text()?)
            },
        )?;
        let known = work.join("known_hosts");
        std::fs::write(&known, format!("@cert-authority * {}\n", host_ca.trim()))?;
        let config = work.join("ssh_config");
        std::fs::write(
            &config,
            format!(
                "Host bastion\n  HostName 127.0.0.1\n  Port {}\n\nHost *\n  IdentityFile {}\n  CertificateFile {}-cert.pub\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  \
                 ConnectTimeout 20\n  LogLevel ERROR\n",
                self.port,
                key.display(),
                key.display(),
                known.display(),
            ),
        )?;
        Ok(config)
    }
}

impl Drop for TestBastion {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The lines of a (possibly unfinished) gzip recording: everything up to the
/// last flush.
pub fn read_recording(path: &Path) -> anyhow::Result<Vec<Value>> {
    use std::io::Read;
    let mut text = String::new();
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    // An unfinished stream ends in an "unexpected EOF": what came before is kept.
    let _ = flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text);
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Every recording file under `dir` (`SESSION/N.cast.gz`), oldest session first.
pub fn recording_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut sessions: Vec<_> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    sessions.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    for s in sessions {
        let mut inner: Vec<_> = std::fs::read_dir(&s)
            .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        inner.sort();
        files.extend(inner);
    }
    files
}

/// `python3 tests/clients/hostile.py ARGS...`: an SSH client independent of
/// OpenSSH and russh (asyncssh) that sends what OpenSSH never does. Its one
/// line of JSON on stdout says what it saw.
pub fn hostile(args: &[&str]) -> anyhow::Result<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/hostile.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context(
            "running python3 (install it with `apt-get install -y python3`; scripts/test does)",
        )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "hostile.py {args:?} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
    }
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("hostile.py {args:?} printed no JSON:\n{stdout}\n{stderr}"))
}
