//! The bastion's side of the CA API: enrollment, renewal of its own
//! certificate, certificates for target names, sessions, recordings, events.
//! Every request but enrollment is signed with the bastion's host key
//! (`shiftkey_wire::host_auth`).

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shiftkey_wire::{
    EnrollRequest, HostCertificateResponse, PresentRequest, RenewRequest, SessionGrant,
    SessionRequest, host_auth,
};
use ssh_key::{Certificate, PrivateKey};

use crate::config::Config;

/// A refusal by the CA, with its code (`host-not-in-role`) and message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Refused {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
}

/// The bastion's identity towards the CA and the HTTP client to reach it.
#[derive(Debug)]
pub(crate) struct CaClient {
    http: reqwest::Client,
    /// For the event stream: no total timeout (the stream lives for hours),
    /// only connect and read timeouts (the CA sends keep-alives).
    streaming: reqwest::Client,
    base: String,
    key: Arc<PrivateKey>,
    certificate: RwLock<Certificate>,
    cert_path: std::path::PathBuf,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn http_client(config: &Config, timeout: Option<Duration>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10));
    match timeout {
        Some(t) => builder = builder.timeout(t),
        None => builder = builder.read_timeout(Duration::from_secs(90)),
    }
    if let Some(bundle) = &config.ca_bundle {
        let pem = std::fs::read(bundle)
            .with_context(|| format!("{}: cannot read ca_bundle", bundle.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{}: not a PEM certificate bundle", bundle.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}

impl CaClient {
    /// Loads the bastion's identity, enrolling with the join token when there
    /// is no usable certificate yet.
    pub(crate) async fn start(config: &Config, key: Arc<PrivateKey>) -> anyhow::Result<Self> {
        let http = http_client(config, Some(Duration::from_secs(30)))?;
        let base = config.ca_url.trim_end_matches('/').to_owned();
        let cert_path = config.data_dir.join("bastion-cert.pub");
        let now = unix_now();
        let saved = std::fs::read_to_string(&cert_path)
            .ok()
            .and_then(|text| Certificate::from_openssh(text.trim()).ok())
            .filter(|c| {
                c.valid_before() > now + 60 && c.public_key() == key.public_key().key_data()
            });
        let certificate = match saved {
            Some(c) => c,
            None => {
                let Some(token_file) = &config.enroll_token_file else {
                    bail!(
                        "the bastion has no valid certificate from the CA and no enroll_token_file\nhint: run `shiftkey-ca hosts token --bastion --name NAME --principals NAME` on the CA and put the token in the file enroll_token_file names"
                    );
                };
                let token = std::fs::read_to_string(token_file).with_context(|| {
                    format!("{}: cannot read the join token", token_file.display())
                })?;
                let request = EnrollRequest {
                    token: token.trim().to_owned(),
                    host_key: key.public_key().to_openssh()?,
                };
                let answer = http
                    .post(format!("{base}/v1/hosts/enroll"))
                    .json(&request)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach the CA at {base}"))?;
                let response: HostCertificateResponse = decode(answer).await.map_err(|e| {
                    anyhow::anyhow!("enrolling with the CA failed: {e}\nhint: join tokens work once and expire; ask for a new one")
                })?;
                let cert = Certificate::from_openssh(&response.certificate)?;
                save(&cert_path, &response.certificate)?;
                tracing::info!(name = %response.name, serial = response.serial, "enrolled with the CA");
                cert
            }
        };
        Ok(Self {
            http,
            streaming: http_client(config, None)?,
            base,
            key,
            certificate: RwLock::new(certificate),
            cert_path,
        })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn certificate(&self) -> Certificate {
        match self.certificate.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The signed `Authorization` header for one request.
    pub(crate) fn authorization(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<String> {
        Ok(host_auth::authorization(
            &self.key,
            &self.certificate(),
            method,
            path,
            unix_now(),
            body,
        )?)
    }

    async fn post<T: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<R, CallError> {
        let body = serde_json::to_vec(body).map_err(|e| CallError::Other(e.into()))?;
        self.post_bytes(path, body, "application/json").await
    }

    pub(crate) async fn post_bytes<R: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<R, CallError> {
        let auth = self
            .authorization("POST", path, &body)
            .map_err(CallError::Other)?;
        let answer = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, auth)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Other(anyhow::anyhow!("cannot reach the CA: {e}")))?;
        decode(answer).await
    }

    /// Renews the bastion's own certificate when a third of it is left.
    pub(crate) async fn renew_if_due(&self) -> anyhow::Result<()> {
        let cert = self.certificate();
        let (after, before) = (cert.valid_after(), cert.valid_before());
        let left = before.saturating_sub(unix_now());
        // After a host CA rotation the CA lists its new signing key first:
        // renew under it at once rather than when the time is due, so the
        // certificate is not signed by a key about to be retired.
        let resign = match self.host_ca_keys().await {
            Ok(keys) => keys
                .first()
                .is_some_and(|active| active.key_data() != cert.signature_key()),
            Err(_) => false,
        };
        if !resign && left * 3 > before.saturating_sub(after) {
            return Ok(());
        }
        let response: HostCertificateResponse = self
            .post("/v1/hosts/renew", &RenewRequest::default())
            .await?;
        let renewed = Certificate::from_openssh(&response.certificate)?;
        save(&self.cert_path, &response.certificate)?;
        match self.certificate.write() {
            Ok(mut c) => *c = renewed,
            Err(p) => *p.into_inner() = renewed,
        }
        tracing::info!(
            serial = response.serial,
            "renewed the bastion's certificate"
        );
        Ok(())
    }

    /// A host certificate for the bastion's key under `target`.
    pub(crate) async fn present(&self, target: &str) -> Result<Certificate, CallError> {
        let response: HostCertificateResponse = self
            .post(
                "/v1/hosts/present",
                &PresentRequest {
                    target: target.to_owned(),
                },
            )
            .await?;
        Certificate::from_openssh(&response.certificate).map_err(|e| CallError::Other(e.into()))
    }

    pub(crate) async fn open_session(
        &self,
        request: &SessionRequest,
    ) -> Result<SessionGrant, CallError> {
        self.post("/v1/sessions", request).await
    }

    /// Tells the CA's audit log what the bastion refused inside a session.
    pub(crate) async fn session_event(
        &self,
        session: &str,
        event: &shiftkey_wire::SessionEvent,
    ) -> Result<(), CallError> {
        let _: serde_json::Value = self
            .post(&format!("/v1/sessions/{session}/events"), event)
            .await?;
        Ok(())
    }

    /// Asks the CA whether a session may forward a TCP connection (`ssh
    /// -L`) to `host:port`; the CA audits its answer.
    pub(crate) async fn authorize_forward(
        &self,
        session: &str,
        request: &shiftkey_wire::ForwardRequest,
    ) -> Result<shiftkey_wire::ForwardGrant, CallError> {
        self.post(&format!("/v1/sessions/{session}/forwards"), request)
            .await
    }

    /// The sessions this bastion runs now.
    pub(crate) async fn heartbeat(
        &self,
        beat: &shiftkey_wire::SessionHeartbeat,
    ) -> Result<shiftkey_wire::SessionHeartbeatAck, CallError> {
        self.post("/v1/sessions/heartbeat", beat).await
    }

    /// A GET with the signed header (the event stream).
    pub(crate) fn get(&self, path: &str) -> anyhow::Result<reqwest::RequestBuilder> {
        let auth = self.authorization("GET", path, b"")?;
        Ok(self
            .http_streaming()
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, auth))
    }

    fn http_streaming(&self) -> &reqwest::Client {
        &self.streaming
    }

    /// User CA keys, for `verify_user_cert`.
    pub(crate) async fn user_ca_keys(&self) -> anyhow::Result<Vec<ssh_key::PublicKey>> {
        self.keys("user").await
    }

    /// Host CA keys, to check targets' host certificates.
    pub(crate) async fn host_ca_keys(&self) -> anyhow::Result<Vec<ssh_key::PublicKey>> {
        self.keys("host").await
    }

    async fn keys(&self, which: &str) -> anyhow::Result<Vec<ssh_key::PublicKey>> {
        let text = self
            .http
            .get(format!("{}/v1/ca/{which}.pub", self.base))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Ok(ssh_key::PublicKey::from_openssh(l.trim())?))
            .collect()
    }
}

/// Why a call to the CA failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<ssh_key::Error> for CallError {
    fn from(e: ssh_key::Error) -> Self {
        CallError::Other(e.into())
    }
}

impl From<std::io::Error> for CallError {
    fn from(e: std::io::Error) -> Self {
        CallError::Other(e.into())
    }
}

async fn decode<R: DeserializeOwned>(answer: reqwest::Response) -> Result<R, CallError> {
    let status = answer.status();
    let bytes = answer
        .bytes()
        .await
        .map_err(|e| CallError::Other(anyhow::anyhow!("reading the CA's answer: {e}")))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| {
            CallError::Other(anyhow::anyhow!("the CA's answer is not understood: {e}"))
        });
    }
    let error: shiftkey_wire::ErrorResponse = serde_json::from_slice(&bytes)
        .map_err(|_| CallError::Other(anyhow::anyhow!("the CA answered {status}")))?;
    Err(CallError::Refused(Refused {
        status: status.as_u16(),
        code: error.error,
        message: error.message,
    }))
}

fn save(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{line}\n"))?;
    std::fs::rename(tmp, path)
}
