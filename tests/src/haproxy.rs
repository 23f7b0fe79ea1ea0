//! A real HAProxy in front of CA replicas, as docs/install.md deploys it:
//! TLS ends at HAProxy (the replicas' shared certificate) and starts again
//! to each replica (verified against that certificate); health checks on
//! `/healthz`; a request that found its replica dead (refused connection,
//! connection closed before any answer, 503) is sent to another one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::services::haproxy;
use crate::util::free_port;

/// How many times HAProxy sends one request again, each time to another
/// replica (`retries` with `option redispatch 1`).
pub const RETRIES: u32 = 3;

#[derive(Debug)]
pub struct TestHaproxy {
    pub dir: tempfile::TempDir,
    /// HTTPS for clients, hosts and bastions.
    pub port: u16,
    /// The statistics page (`/stats;csv`), plain HTTP on loopback.
    pub stats_port: u16,
    child: Option<Child>,
}

/// The configuration: one frontend, one backend of `replicas` (ports).
pub fn config(port: u16, stats_port: u16, pem: &Path, ca_file: &Path, replicas: &[u16]) -> String {
    let mut servers = String::new();
    for (i, replica) in replicas.iter().enumerate() {
        servers.push_str(&format!(
            "    server r{} 127.0.0.1:{replica} ssl verify required ca-file {} sni str(localhost) check check-ssl inter 250ms fall 2 rise 2\n",
            i + 1,
            ca_file.display()
        ));
    }
    format!(
        "global
    log stderr format raw local0 info
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    # The event stream is one long answer: quiet for up to its keep-alive.
    timeout server 60s
    timeout http-request 10s
    # A dead replica: try another one, up to {RETRIES} times.
    retries {RETRIES}
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503
    option http-buffer-request

frontend shiftkey
    bind 127.0.0.1:{port} ssl crt {pem}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
{servers}
listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
",
        pem = pem.display()
    )
}

impl TestHaproxy {
    /// Starts HAProxy for `replicas` (ports on 127.0.0.1), presenting the
    /// certificate and key in `cert`/`key` (the replicas' own).
    pub fn start(cert: &Path, key: &Path, replicas: &[u16]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("shiftkey-haproxy-")
            .tempdir()?;
        let pem = dir.path().join("frontend.pem");
        std::fs::write(
            &pem,
            format!(
                "{}{}",
                std::fs::read_to_string(cert)?,
                std::fs::read_to_string(key)?
            ),
        )?;
        let port = free_port();
        let stats_port = free_port();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config(port, stats_port, &pem, cert, replicas))?;
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let child = Command::new(haproxy()?)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting haproxy")?;
        let mut proxy = Self {
            dir,
            port,
            stats_port,
            child: Some(child),
        };
        proxy.wait_for_servers(replicas.len(), Duration::from_secs(30))?;
        Ok(proxy)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Servers HAProxy's health checks hold up, by name (`r1`...).
    pub fn servers_up(&self) -> anyhow::Result<Vec<String>> {
        let csv =
            reqwest::blocking::get(format!("http://127.0.0.1:{}/stats;csv", self.stats_port))?
                .text()?;
        Ok(csv
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                (fields.first() == Some(&"replicas")
                    && fields.get(1).is_some_and(|s| s.starts_with('r'))
                    && fields.get(17).is_some_and(|s| s.starts_with("UP")))
                .then(|| fields[1].to_owned())
            })
            .collect())
    }

    /// Requests HAProxy sent again (`wretr`) and sent again to another
    /// replica (`wredis`), over the run.
    pub fn retries(&self) -> anyhow::Result<(u64, u64)> {
        let csv =
            reqwest::blocking::get(format!("http://127.0.0.1:{}/stats;csv", self.stats_port))?
                .text()?;
        let row = csv
            .lines()
            .map(|line| line.split(',').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&"replicas") && f.get(1) == Some(&"BACKEND"))
            .context("no backend row in the statistics")?;
        let number = |i: usize| row.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok((number(15), number(16)))
    }

    /// Waits until `count` servers are up.
    pub fn wait_for_servers(&mut self, count: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("haproxy exited with {status}:\n{}", self.log());
            }
            if self.servers_up().map(|up| up.len()).unwrap_or(0) >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "haproxy does not see {count} replicas up: {:?}\n{}",
                    self.servers_up(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.cfg")
    }
}

impl Drop for TestHaproxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
