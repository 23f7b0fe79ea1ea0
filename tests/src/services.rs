//! The services a test run shares (`scripts/services`, started once by
//! `scripts/test`): a PostgreSQL cluster, an S3-protocol server and
//! HAProxy. Each test gets its own database and its own bucket prefix.
//!
//! Without them the helpers fail with how to start them: a test never
//! skips what it cannot reach.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

/// Set by `scripts/services start`: the admin URL of the shared cluster
/// (a role that may create databases), without TLS, on loopback.
pub const POSTGRES_ENV: &str = "SHIFTKEY_TEST_POSTGRES";
/// The PEM certificate authority that signed the cluster's TLS certificate.
pub const POSTGRES_CA_ENV: &str = "SHIFTKEY_TEST_POSTGRES_CA";
pub const S3_ENDPOINT_ENV: &str = "SHIFTKEY_TEST_S3_ENDPOINT";
pub const S3_BUCKET_ENV: &str = "SHIFTKEY_TEST_S3_BUCKET";
pub const S3_ACCESS_KEY_ENV: &str = "SHIFTKEY_TEST_S3_ACCESS_KEY";
pub const S3_SECRET_KEY_ENV: &str = "SHIFTKEY_TEST_S3_SECRET_KEY";
pub const HAPROXY_ENV: &str = "SHIFTKEY_TEST_HAPROXY";

const HOW_TO_START: &str = "the tests share a PostgreSQL cluster, an S3 server and HAProxy started once per run: \
     run the tests with `scripts/test`, or start the services with `eval \"$(scripts/services start)\"` (as root) \
     and run `cargo test` in that shell";

fn var(name: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => bail!("${name} is not set: {HOW_TO_START}"),
    }
}

/// A name no other test of any run uses at the same time.
fn unique(kind: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "sk_{kind}_{}_{}_{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// `psql` on the admin URL; fails with its output.
fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .arg("-X")
        .arg("-q")
        .arg("-t")
        .arg("-A")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-d")
        .arg(url)
        .arg("-c")
        .arg(sql)
        .output()
        .context("running psql (apt-get install postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A database of its own on the shared cluster, dropped with this value.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    admin: String,
}

impl TestDatabase {
    pub fn create() -> anyhow::Result<Self> {
        let admin = var(POSTGRES_ENV)?;
        let name = unique("db");
        psql(&admin, &format!("CREATE DATABASE {name}"))?;
        Ok(Self { name, admin })
    }

    /// The URL of this database, over plain TCP on loopback.
    pub fn url(&self) -> String {
        self.url_with("sslmode=disable")
    }

    /// The URL of this database with these query parameters instead.
    pub fn url_with(&self, params: &str) -> String {
        let (base, _) = self.admin.split_once('?').unwrap_or((&self.admin, ""));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        format!("{server}/{}?{params}", self.name)
    }

    /// Runs `sql` in this database, as the test role; its output.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        psql(&self.url(), sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The certificate authority of the cluster's TLS certificate.
pub fn postgres_ca() -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(var(POSTGRES_CA_ENV)?))
}

/// A prefix of its own in the shared bucket.
#[derive(Debug, Clone)]
pub struct TestBucket {
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
}

impl TestBucket {
    pub fn create() -> anyhow::Result<Self> {
        Ok(Self {
            endpoint: var(S3_ENDPOINT_ENV)?,
            bucket: var(S3_BUCKET_ENV)?,
            prefix: unique("rec"),
            access_key: var(S3_ACCESS_KEY_ENV)?,
            secret_key: var(S3_SECRET_KEY_ENV)?,
        })
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// The credentials file `[recordings] credentials_file` reads (0600).
    pub fn write_credentials(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            path,
            format!(
                "access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                self.access_key, self.secret_key
            ),
        )?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(())
    }

    /// The `[recordings]` section for a CA using this prefix, with its
    /// credentials in `credentials_file`.
    pub fn ca_toml(&self, credentials_file: &std::path::Path) -> String {
        format!(
            "\n[recordings]\nurl = \"{}\"\nendpoint = \"{}\"\ncredentials_file = \"{}\"\n",
            self.url(),
            self.endpoint,
            credentials_file.display()
        )
    }
}

/// The processes of the shared PostgreSQL cluster (the postmaster and its
/// backends), for CPU figures.
pub fn postgres_pids() -> anyhow::Result<Vec<u32>> {
    let dir = PathBuf::from(var("SHIFTKEY_TEST_SERVICES")?);
    let text = std::fs::read_to_string(dir.join("pg/data/postmaster.pid"))?;
    let postmaster: u32 = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .context("postmaster.pid holds no pid")?;
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, after)| after.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(postmaster) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// The HAProxy binary.
pub fn haproxy() -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(var(HAPROXY_ENV)?))
}
