//! Talking to the CA: HTTPS (trusting a CA bundle, a pinned certificate, or
//! the system's web roots) or, on the CA host, its local Unix socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shiftkey_wire::{
    AccessRequest, CaConfigResponse, CertificateRequest, CertificateResponse, Decision,
    ErrorResponse, OnCallOverride, RolesResponse,
};
use zeroize::Zeroizing;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Answers larger than this are not a CA's.
const MAX_ANSWER: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("no CA configured\nhint: run `shiftkey login --ca https://CA:8443` once, or pass --ca")]
    NoCa,
    #[error(
        "--ca {0:?} is neither an https:// URL nor unix:PATH\nhint: e.g. --ca https://ca.example.com:8443 (plain http only to 127.0.0.1, ::1 or localhost)"
    )]
    BadCa(String),
    #[error(
        "{path}: cannot read the CA certificate bundle: {message}\nhint: pass the PEM file the CA operator published, e.g. the CA's tls/cert.pem"
    )]
    Bundle { path: PathBuf, message: String },
    #[error(
        "--ca-fingerprint {0:?} is not a SHA-256 in hex\nhint: openssl x509 -noout -fingerprint -sha256 -in cert.pem"
    )]
    BadFingerprint(String),
    #[error(
        "cannot reach the CA at {ca}: {cause}\nhint: check that the CA is running and that --ca (or `ca` in the config) is right"
    )]
    Unreachable { ca: String, cause: String },
    #[error("{message}{}", hint.as_deref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    Refused {
        status: u16,
        code: String,
        message: String,
        hint: Option<String>,
    },
    #[error(
        "the CA sent an answer this client does not understand ({0})\nhint: is --ca really a Shiftkey CA of a matching version?"
    )]
    BadAnswer(String),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error(
        "{0:?} is not an access request ID (letters, digits, `_` and `-` only)\nhint: `shiftkey requests` lists the pending requests you may approve"
    )]
    BadRequestId(String),
    #[error(
        "{0:?} is not an override ID (ov_ and hex digits)\nhint: `shiftkey oncall overrides` lists the overrides in force"
    )]
    BadOverrideId(String),
}

/// What `POST /v1/certificates` gave: the certificate (`200`), or an access
/// request that waits for approvals (`202 Accepted`).
#[derive(Debug)]
pub(crate) enum Issued {
    Certificate(CertificateResponse),
    Pending(Box<AccessRequest>),
}

/// Longest access request ID accepted; the CA's are far shorter.
const MAX_REQUEST_ID: usize = 128;

/// Access request IDs are plain `[A-Za-z0-9_-]` names: anything else is
/// refused before it goes into a URL path.
pub(crate) fn check_request_id(id: &str) -> Result<(), Error> {
    let plain = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        Ok(())
    } else {
        Err(Error::BadRequestId(id.to_owned()))
    }
}

/// Override IDs are `ov_` and hex digits: anything else is refused before
/// it goes into a URL path.
pub(crate) fn check_override_id(id: &str) -> Result<(), Error> {
    let plain = id.strip_prefix("ov_").is_some_and(|hex| {
        (1..=32).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if plain {
        Ok(())
    } else {
        Err(Error::BadOverrideId(id.to_owned()))
    }
}

/// Text as one URL query value.
fn query_value(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The CA's refusals about access requests, with a hint where it gave none.
fn request_hint(error: Error) -> Error {
    match error {
        Error::Refused {
            status,
            code,
            message,
            hint: None,
        } => {
            let hint = match (status, code.as_str()) {
                (_, "self-approval") => Some(
                    "nobody approves their own request: ask another approver to run `shiftkey approve ID`",
                ),
                (_, "not-an-approver") => Some(
                    "the role's approvers are set in the CA's policy; `shiftkey requests` lists the requests you may approve",
                ),
                (404, _) => Some(
                    "check the ID: `shiftkey requests` lists the pending requests you may approve",
                ),
                _ => None,
            };
            Error::Refused {
                status,
                code,
                message,
                hint: hint.map(str::to_owned),
            }
        }
        other => other,
    }
}

/// How to trust the CA's TLS certificate.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trust {
    pub(crate) bundle: Option<PathBuf>,
    pub(crate) fingerprint: Option<String>,
}

#[derive(Debug)]
enum Endpoint {
    Https {
        base: String,
        client: reqwest::Client,
    },
    Unix(PathBuf),
}

/// A connection to one CA, with the caller's ID token when there is one.
pub(crate) struct CaClient {
    endpoint: Endpoint,
    token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for CaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaClient")
            .field("endpoint", &self.describe())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Whether `ca` may be spoken to over plain HTTP: only on this machine
/// (a CA run with `danger_plain_http`), judged on the parsed host, never on
/// a prefix of the text.
fn is_loopback_http(ca: &str) -> bool {
    let Ok(url) = url::Url::parse(ca) else {
        return false;
    };
    url.scheme() == "http"
        && url.username().is_empty()
        && url.password().is_none()
        && match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        }
}

impl CaClient {
    pub(crate) fn new(ca: &str, trust: &Trust) -> Result<Self, Error> {
        let endpoint = if let Some(path) = ca.strip_prefix("unix:") {
            Endpoint::Unix(PathBuf::from(path))
        } else if url::Url::parse(ca).is_ok_and(|u| u.scheme() == "https" && u.host().is_some())
            || is_loopback_http(ca)
        {
            Endpoint::Https {
                base: ca.trim_end_matches('/').to_owned(),
                client: http_client(trust)?,
            }
        } else {
            return Err(Error::BadCa(ca.to_owned()));
        };
        Ok(Self {
            endpoint,
            token: None,
        })
    }

    /// Sends `token` as `Authorization: Bearer` (not on the local socket,
    /// where the kernel says who the caller is).
    pub(crate) fn with_token(mut self, token: &str) -> Self {
        self.token = Some(Zeroizing::new(token.to_owned()));
        self
    }

    /// True when talking to the CA's local socket (identity `local:USER`).
    pub(crate) fn is_local(&self) -> bool {
        matches!(self.endpoint, Endpoint::Unix(_))
    }

    pub(crate) fn describe(&self) -> String {
        match &self.endpoint {
            Endpoint::Https { base, .. } => base.clone(),
            Endpoint::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    pub(crate) async fn config(&self) -> Result<CaConfigResponse, Error> {
        self.call("GET", "/v1/config", None::<&()>).await
    }

    /// Every user CA key the CA has signed with, retired ones too.
    pub(crate) async fn seal_keys(&self) -> Result<shiftkey_wire::SealKeys, Error> {
        self.call("GET", "/v1/ca/seal-keys", None::<&()>).await
    }

    pub(crate) async fn roles(&self) -> Result<RolesResponse, Error> {
        self.call("GET", "/v1/roles", None::<&()>).await
    }

    pub(crate) async fn whoami(&self) -> Result<serde_json::Value, Error> {
        self.call("GET", "/v1/whoami", None::<&()>).await
    }

    pub(crate) async fn on_call(
        &self,
        schedule: Option<&str>,
    ) -> Result<Vec<shiftkey_wire::OnCallSchedule>, Error> {
        let path = match schedule {
            Some(name)
                if name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
            {
                format!("/v1/oncall?schedule={name}")
            }
            Some(name) => return Err(Error::BadAnswer(format!("{name:?} is not a schedule name"))),
            None => "/v1/oncall".to_owned(),
        };
        self.call("GET", &path, None::<&()>).await
    }

    /// `POST /v1/oncall/overrides`.
    pub(crate) async fn add_override(
        &self,
        request: &shiftkey_wire::OverrideRequest,
    ) -> Result<OnCallOverride, Error> {
        self.call("POST", "/v1/oncall/overrides", Some(request))
            .await
    }

    /// `GET /v1/oncall/overrides[?schedule=NAME]`.
    pub(crate) async fn overrides(
        &self,
        schedule: Option<&str>,
    ) -> Result<Vec<OnCallOverride>, Error> {
        let path = match schedule {
            Some(name) => format!("/v1/oncall/overrides?schedule={}", query_value(name)),
            None => "/v1/oncall/overrides".to_owned(),
        };
        self.call("GET", &path, None::<&()>).await
    }

    /// `PATCH /v1/oncall/overrides/ID`: end it at `end` (unix seconds).
    pub(crate) async fn shorten_override(
        &self,
        id: &str,
        end: i64,
        reason: &str,
    ) -> Result<OnCallOverride, Error> {
        check_override_id(id)?;
        let body = shiftkey_wire::ShortenOverride {
            end,
            reason: reason.to_owned(),
        };
        self.call("PATCH", &format!("/v1/oncall/overrides/{id}"), Some(&body))
            .await
    }

    /// `DELETE /v1/oncall/overrides/ID?reason=TEXT`.
    pub(crate) async fn delete_override(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<OnCallOverride, Error> {
        check_override_id(id)?;
        let path = format!("/v1/oncall/overrides/{id}?reason={}", query_value(reason));
        self.call("DELETE", &path, None::<&()>).await
    }

    pub(crate) async fn incidents(
        &self,
        open_only: bool,
    ) -> Result<Vec<shiftkey_wire::Incident>, Error> {
        let path = if open_only {
            "/v1/incidents?status=open"
        } else {
            "/v1/incidents"
        };
        self.call("GET", path, None::<&()>).await
    }

    pub(crate) async fn open_incident(
        &self,
        request: &shiftkey_wire::OpenIncidentRequest,
    ) -> Result<shiftkey_wire::Incident, Error> {
        self.call("POST", "/v1/incidents", Some(request)).await
    }

    pub(crate) async fn resolve_incident(
        &self,
        id: &str,
    ) -> Result<shiftkey_wire::ResolveIncidentResponse, Error> {
        // IDs are plain names (the CA refuses others); keep the path plain too.
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@+-".contains(c))
        {
            return Err(Error::BadAnswer(format!("{id:?} is not an incident ID")));
        }
        self.call("POST", &format!("/v1/incidents/{id}/resolve"), None::<&()>)
            .await
    }

    /// Asks for a certificate; a role that needs approvals answers with a
    /// pending access request instead (`202 Accepted`).
    pub(crate) async fn issue(&self, request: &CertificateRequest) -> Result<Issued, Error> {
        let (status, bytes) = self
            .exchange("POST", "/v1/certificates", Some(request))
            .await?;
        if status == 202 {
            let pending: AccessRequest = decode(&bytes)?;
            check_request_id(&pending.id)
                .map_err(|_| Error::BadAnswer(format!("access request ID {:?}", pending.id)))?;
            Ok(Issued::Pending(Box::new(pending)))
        } else {
            Ok(Issued::Certificate(decode(&bytes)?))
        }
    }

    /// `GET /v1/requests/{id}`: one access request (with the certificate, for
    /// its requester, once issued).
    pub(crate) async fn request(&self, id: &str) -> Result<AccessRequest, Error> {
        check_request_id(id)?;
        self.call("GET", &format!("/v1/requests/{id}"), None::<&()>)
            .await
            .map_err(request_hint)
    }

    /// `GET /v1/requests`: the pending requests the caller may approve.
    pub(crate) async fn requests(&self) -> Result<Vec<AccessRequest>, Error> {
        self.call("GET", "/v1/requests", None::<&()>)
            .await
            .map_err(request_hint)
    }

    pub(crate) async fn approve(
        &self,
        id: &str,
        reason: Option<&str>,
    ) -> Result<AccessRequest, Error> {
        self.decide(id, "approve", reason).await
    }

    pub(crate) async fn deny(&self, id: &str, reason: &str) -> Result<AccessRequest, Error> {
        self.decide(id, "deny", Some(reason)).await
    }

    async fn decide(
        &self,
        id: &str,
        verb: &str,
        reason: Option<&str>,
    ) -> Result<AccessRequest, Error> {
        check_request_id(id)?;
        let decision = Decision {
            reason: reason.map(str::to_owned),
        };
        self.call(
            "POST",
            &format!("/v1/requests/{id}/{verb}"),
            Some(&decision),
        )
        .await
        .map_err(request_hint)
    }

    /// One exchange whose 2xx answer is a `T`.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let (_, bytes) = self.exchange(method, path, body).await?;
        decode(&bytes)
    }

    /// One exchange: the 2xx status and body, or the CA's refusal.
    async fn exchange<B: Serialize>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<(u16, Bytes), Error> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::BadAnswer(format!("cannot encode the request: {e}")))?;
        self.exchange_raw(method, path, body, None).await
    }

    /// One exchange of a body already encoded, with `authorization` (when
    /// given) as the `Authorization` header instead of the Bearer token: an
    /// enrolled host signs the exact bytes it sends (`shiftkey host`). The
    /// 2xx status and body, or the CA's refusal.
    pub(crate) async fn exchange_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        authorization: Option<&str>,
    ) -> Result<(u16, Bytes), Error> {
        let (status, bytes) = match &self.endpoint {
            Endpoint::Https { base, client } => {
                self.send_https(client, base, method, path, body, authorization)
                    .await?
            }
            Endpoint::Unix(socket) => send_unix(socket, method, path, body, authorization).await?,
        };
        if !(200..300).contains(&status) {
            return Err(match serde_json::from_slice::<ErrorResponse>(&bytes) {
                Ok(e) => Error::Refused {
                    status,
                    code: e.error,
                    message: e.message,
                    hint: e.hint,
                },
                Err(_) => Error::BadAnswer(format!("HTTP {status}")),
            });
        }
        Ok((status, bytes))
    }

    async fn send_https(
        &self,
        client: &reqwest::Client,
        base: &str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        authorization: Option<&str>,
    ) -> Result<(u16, Bytes), Error> {
        let unreachable = |e: reqwest::Error| Error::Unreachable {
            ca: base.to_owned(),
            cause: crate::error_chain(&e),
        };
        let url = format!("{base}{path}");
        let mut request = match method {
            "POST" => client.post(url),
            "PATCH" => client.patch(url),
            "DELETE" => client.delete(url),
            _ => client.get(url),
        };
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        } else if let Some(token) = &self.token {
            request = request.bearer_auth(token.as_str());
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if bytes.len() > MAX_ANSWER {
            return Err(Error::BadAnswer("answer too large".into()));
        }
        Ok((status, bytes))
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadAnswer(e.to_string()))
}

/// One HTTP/1.1 exchange over the CA's Unix socket.
async fn send_unix(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    authorization: Option<&str>,
) -> Result<(u16, Bytes), Error> {
    let request = shiftkey_unix_http::Request {
        method,
        path,
        authorization,
        body: body.as_deref(),
    };
    let answer = tokio::time::timeout(
        TIMEOUT,
        shiftkey_unix_http::send(socket, request, MAX_ANSWER),
    )
    .await
    .map_err(|_| "timed out".to_owned())
    .and_then(|sent| sent.map_err(|e| e.to_string()))
    .map_err(|cause| Error::Unreachable {
        ca: format!("unix:{}", socket.display()),
        cause,
    })?;
    Ok((answer.status, answer.body))
}

fn http_client(trust: &Trust) -> Result<reqwest::Client, Error> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(10));
    let builder = if let Some(fingerprint) = &trust.fingerprint {
        builder.use_preconfigured_tls(pinned_tls(fingerprint)?)
    } else if let Some(path) = &trust.bundle {
        let bundle = |message: String| Error::Bundle {
            path: path.clone(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| bundle(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bundle(e.to_string()))?;
        if certs.is_empty() {
            return Err(bundle("no certificate in it".into()));
        }
        certs.into_iter().fold(
            builder.tls_built_in_root_certs(false),
            reqwest::ClientBuilder::add_root_certificate,
        )
    } else {
        builder
    };
    builder
        .build()
        .map_err(|e| Error::Tls(crate::error_chain(&e)))
}

/// TLS that trusts exactly one server certificate, by its SHA-256: for a CA
/// whose certificate is self-signed and whose fingerprint the operator
/// published. rustls has no such verifier built in; the signature checks are
/// still rustls's own.
fn pinned_tls(fingerprint: &str) -> Result<rustls::ClientConfig, Error> {
    let hex_digits: String = fingerprint
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let pin: [u8; 32] = hex::decode(&hex_digits)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| Error::BadFingerprint(fingerprint.to_owned()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCertificate { pin, provider }))
        .with_no_client_auth();
    Ok(config)
}

#[derive(Debug)]
struct PinnedCertificate {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        let seen: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
        if seen == self.pin {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the CA's certificate has SHA-256 {}, not the pinned one",
                hex::encode(seen)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "http://127.0.0.1:8443",
            "http://[::1]:8443",
            "http://localhost:8443/",
        ] {
            assert!(is_loopback_http(ok), "{ok}");
        }
        for bad in [
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "http://localhost@evil.example",
            "http://user@127.0.0.1",
            "http://10.0.0.1",
            "https://127.0.0.1",
        ] {
            assert!(!is_loopback_http(bad), "{bad}");
        }
        assert!(matches!(
            CaClient::new("http://localhost.evil.example", &Trust::default()),
            Err(Error::BadCa(_))
        ));
        assert!(CaClient::new("https://ca.example.com:8443", &Trust::default()).is_ok());
    }

    #[test]
    fn request_ids_are_plain() {
        for ok in ["r_abc123", "r-XYZ_09", "a", &"x".repeat(MAX_REQUEST_ID)] {
            assert!(check_request_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../certificates",
            "r_abc/approve",
            "r abc",
            "r_abc?x=1",
            "r_abc#",
            "r.abc",
            "r%2fabc",
            "r_\u{e9}",
            "r_abc\n",
            &"x".repeat(MAX_REQUEST_ID + 1),
        ] {
            assert!(
                matches!(check_request_id(bad), Err(Error::BadRequestId(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn bad_request_ids_never_reach_the_ca() {
        // No CA listens on this socket: a refusal proves no exchange was tried.
        let client = CaClient::new("unix:/nonexistent/ca.sock", &Trust::default()).unwrap();
        assert!(matches!(
            client.request("../roles").await,
            Err(Error::BadRequestId(_))
        ));
        assert!(matches!(
            client.approve("r_1/deny", None).await,
            Err(Error::BadRequestId(_))
        ));
        assert!(matches!(
            client.deny("", "no").await,
            Err(Error::BadRequestId(_))
        ));
    }

    #[test]
    fn refusals_about_requests_get_a_hint() {
        let refused = |status, code: &str, hint: Option<&str>| Error::Refused {
            status,
            code: code.into(),
            message: "no".into(),
            hint: hint.map(str::to_owned),
        };
        let shown = request_hint(refused(403, "self-approval", None)).to_string();
        assert!(shown.contains("hint: nobody approves their own"), "{shown}");
        let shown = request_hint(refused(404, "not-found", None)).to_string();
        assert!(shown.contains("shiftkey requests"), "{shown}");
        let shown = request_hint(refused(403, "not-an-approver", Some("ask ops"))).to_string();
        assert!(shown.ends_with("hint: ask ops"), "{shown}");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let client = CaClient::new("unix:/tmp/ca.sock", &Trust::default())
            .unwrap()
            .with_token("eyJ.secret.sig");
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("secret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
