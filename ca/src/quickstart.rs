//! `shiftkey-ca quickstart`: from a fresh checkout to a running CA that has
//! issued a certificate, in one command.
//!
//! Initializes a data directory (once), starts the CA, asks it over the local
//! socket for a certificate as the invoking user (real HTTP, real policy,
//! real audit), prints the certificate decoded and what to run next, then
//! keeps serving until Ctrl-C (or exits at once with `--exit`).
//! The demonstration private key lives only in memory and is dropped
//! (zeroized) as soon as the certificate is shown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ssh_key::{Algorithm, Certificate, PrivateKey};

use shiftkey_wire::{CertificateRequest, CertificateResponse, ErrorResponse};

/// Largest answer read from the CA (a certificate is a few KiB).
const MAX_ANSWER: usize = 1024 * 1024;

#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) data_dir: PathBuf,
    pub(crate) listen: SocketAddr,
    pub(crate) exit: bool,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
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
        let opts = crate::init::InitOptions {
            passphrase: None,
            tls_names: &[],
            local_user: &user,
            config: None,
            user_key: None,
            host_key: None,
            algorithm: None,
        };
        crate::init::init(dir, &opts).await?;
        // The quickstart listens where --listen says.
        let config = std::fs::read_to_string(dir.join("ca.toml"))?.replace(
            "listen = \"127.0.0.1:8443\"",
            &format!("listen = \"{}\"", options.listen),
        );
        std::fs::write(dir.join("ca.toml"), config)?;
    }
    let running = crate::server::start(dir, &dir.join("ca.toml"), None)
        .await
        .context("starting the CA")?;
    let url = running.url();
    let socket = running
        .socket
        .clone()
        .context("the quickstart needs the local socket (server.socket in ca.toml)")?;
    eprintln!("• CA serving on {url} and on {}", socket.display());

    let result = demonstrate(&socket, &user, dir, &url).await;
    if options.exit || result.is_err() {
        running.shutdown().await;
        return result;
    }
    eprintln!("\nThe CA keeps running; Ctrl-C stops it.");
    running.run_until_signalled().await?;
    Ok(())
}

async fn demonstrate(socket: &Path, user: &str, dir: &Path, url: &str) -> anyhow::Result<()> {
    let key = PrivateKey::random(&mut crate::keys::rng(), Algorithm::Ed25519)?;
    let request = CertificateRequest {
        public_key: key.public_key().to_openssh()?,
        role: "local-shell".into(),
        incident: None,
        reason: Some("shiftkey-ca quickstart demonstration".into()),
        ttl: Some("5m".into()),
        principals: None,
    };
    eprintln!(
        "• Asking for a 5-minute certificate for role local-shell as local:{user} (in-memory ed25519 key)"
    );
    let body = serde_json::to_vec(&request)?;
    let answer = shiftkey_unix_http::send(
        socket,
        shiftkey_unix_http::Request {
            method: "POST",
            path: "/v1/certificates",
            authorization: None,
            body: Some(&body),
        },
        MAX_ANSWER,
    )
    .await
    .context("hint: is shiftkey-ca running with this data directory?")?;
    drop(key);
    let body = answer.body;
    if !(200..300).contains(&answer.status) {
        let err: ErrorResponse = serde_json::from_slice(&body).context("reading the CA's error")?;
        bail!(
            "the CA refused: {} ({})\nhint: {}",
            err.message,
            err.error,
            err.hint.unwrap_or_default()
        );
    }
    let issued: CertificateResponse = serde_json::from_slice(&body)?;
    let cert = Certificate::from_openssh(&issued.certificate)?;
    println!("\nIssued certificate\n{}", describe(&cert));
    println!("{}\n", issued.certificate);
    let d = dir.display();
    println!("Next:");
    println!(
        "  curl --cacert {d}/tls/cert.pem {url}/v1/ca/user.pub      # the key hosts trust (TrustedUserCAKeys)"
    );
    println!("  curl --cacert {d}/tls/cert.pem {url}/metrics");
    println!(
        "  cargo run -p shiftkey-ca -- audit verify --data-dir {d}   # the issuance is in the hash-chained audit log"
    );
    println!("  cargo run -p shiftkey-ca -- audit export --data-dir {d}");
    println!(
        "  cargo run -p shiftkey-ca -- policy test {d}/policy.toml   # the policy's own tests"
    );
    println!(
        "  cargo run -p shiftkey-ca -- serve --data-dir {d}          # run the CA again later"
    );
    Ok(())
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
