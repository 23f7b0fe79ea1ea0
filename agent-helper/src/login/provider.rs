//! What both login flows share: the HTTP client, discovery, the scopes to
//! ask for, and the one place an ID token from a provider is verified.

use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod, CoreGrantType,
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, ClientId, DeviceAuthorizationUrl, DiscoveryError, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, NonceVerifier, ProviderMetadata, Scope,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Error, IdToken};

/// Per HTTP request to the provider (discovery, JWKS, token, device).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Asked for on top of `openid`, which the client always adds.
const BASE_SCOPES: [&str; 2] = ["email", "profile"];
/// Asked for only where the provider lists it in `scopes_supported`.
const GROUPS_SCOPE: &str = "groups";
/// ID token signatures accepted: public-key algorithms only. `none` and the
/// HMAC algorithms (keyed with a client secret a public client does not
/// have) are never accepted. The key must still be in the provider's JWKS.
/// The provider's `id_token_signing_alg_values_supported` is not used to
/// narrow this: some providers list fewer algorithms than they sign with.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Discovery fields beyond OpenID Connect Discovery 1.0.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(super) struct ExtraMetadata {
    /// RFC 8628; absent where the provider has no device grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
    /// RFC 9207: where true, every authorization response carries `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

pub(super) type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A client built from discovery: authorization endpoint set, token and
/// userinfo endpoints maybe.
pub(super) type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A discovered provider and the client's view of it.
#[derive(Debug)]
pub(super) struct Provider {
    pub(super) issuer: IssuerUrl,
    pub(super) metadata: Metadata,
    pub(super) http: reqwest::Client,
}

impl Provider {
    /// Checks the issuer URL, then fetches its discovery document and JWKS.
    pub(super) async fn discover(issuer: &str) -> Result<Self, Error> {
        let issuer = issuer_url(issuer)?;
        let http = http_client()?;
        let metadata = Metadata::discover_async(issuer.clone(), &http)
            .await
            .map_err(|err| discovery_error(&issuer, &err))?;
        Ok(Self {
            issuer,
            metadata,
            http,
        })
    }

    /// `email profile`, plus `groups` where the provider advertises it.
    pub(super) fn scopes(&self) -> Vec<Scope> {
        let groups = self
            .metadata
            .scopes_supported()
            .is_some_and(|supported| supported.iter().any(|s| s.as_str() == GROUPS_SCOPE));
        BASE_SCOPES
            .into_iter()
            .chain(groups.then_some(GROUPS_SCOPE))
            .map(|scope| Scope::new(scope.to_owned()))
            .collect()
    }

    /// Whether the authorization response must carry `iss` (RFC 9207
    /// section 2.4: the provider says it always sends it).
    pub(super) fn requires_iss(&self) -> bool {
        self.metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            == Some(true)
    }

    /// A public client (no secret) for `client_id`.
    pub(super) fn client(&self, client_id: &str) -> DiscoveredClient {
        CoreClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(client_id.to_owned()),
            None,
        )
    }

    pub(super) fn unreachable(&self, err: &dyn std::error::Error) -> Error {
        Error::ProviderUnreachable {
            issuer: self.issuer.to_string(),
            reason: chain(err),
        }
    }

    /// A failed token-endpoint request (code exchange or device
    /// authorization), as the user should hear of it.
    pub(super) fn token_request_error<RE, E>(
        &self,
        err: openidconnect::RequestTokenError<RE, openidconnect::StandardErrorResponse<E>>,
    ) -> Error
    where
        RE: std::error::Error + 'static,
        E: openidconnect::ErrorResponseType + std::fmt::Display + 'static,
    {
        match err {
            openidconnect::RequestTokenError::ServerResponse(response) => Error::ProviderRefused {
                error: response.error().to_string(),
                description: response.error_description().cloned(),
            },
            openidconnect::RequestTokenError::Request(err) => self.unreachable(&err),
            other => Error::BadTokenResponse {
                reason: chain(&other),
            },
        }
    }
}

/// Verifies `id_token` (signature against the provider's JWKS, issuer,
/// audience = our client ID, expiry, and the nonce where the flow has one)
/// and keeps what the client needs.
/// `verifier` is the client's own (`client.id_token_verifier()`).
pub(super) fn accept_id_token(
    verifier: CoreIdTokenVerifier<'_>,
    id_token: &CoreIdToken,
    nonce: impl NonceVerifier,
) -> Result<IdToken, Error> {
    let verifier = verifier.set_allowed_algs(ALLOWED_ALGS);
    let claims = id_token
        .claims(&verifier, nonce)
        .map_err(|err| Error::InvalidIdToken {
            reason: chain(&err),
        })?;
    Ok(IdToken {
        raw: Zeroizing::new(id_token.to_string()),
        email: claims.email().map(|email| email.as_str().to_owned()),
        expires_at: claims.expiration(),
    })
}

/// `https://` anywhere; `http://` only on loopback (a local test or
/// development provider).
pub(super) fn issuer_url(issuer: &str) -> Result<IssuerUrl, Error> {
    let insecure = || Error::InsecureIssuer {
        issuer: issuer.to_owned(),
    };
    let url = IssuerUrl::new(issuer.to_owned()).map_err(|_| insecure())?;
    let parsed = url.url();
    let loopback = match parsed.host() {
        Some(openidconnect::url::Host::Domain(name)) => name == "localhost",
        Some(openidconnect::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(openidconnect::url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(insecure()),
    }
}

/// Redirects are never followed: a provider that could redirect discovery
/// or token requests elsewhere could make the client fetch arbitrary URLs.
fn http_client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|err| Error::ProviderUnreachable {
            issuer: String::new(),
            reason: format!("cannot set up HTTPS: {}", chain(&err)),
        })
}

fn discovery_error<RE: std::error::Error + 'static>(
    issuer: &IssuerUrl,
    err: &DiscoveryError<RE>,
) -> Error {
    let issuer = issuer.to_string();
    match err {
        DiscoveryError::Request(_) => Error::ProviderUnreachable {
            issuer,
            reason: chain(err),
        },
        DiscoveryError::Response(status, _, _) => Error::ProviderUnreachable {
            issuer,
            reason: format!("discovery answered HTTP {status}"),
        },
        _ => Error::ProviderMetadata {
            issuer,
            reason: chain(err),
        },
    }
}

pub(super) use crate::error_chain as chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_must_be_https_unless_loopback() {
        for ok in [
            "https://login.example.com",
            "https://login.example.com/realms/ops",
            "http://127.0.0.1:8080",
            "http://localhost:4000",
            "http://[::1]:4000",
        ] {
            assert!(issuer_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "not a url",
            "",
        ] {
            assert!(
                matches!(issuer_url(bad), Err(Error::InsecureIssuer { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn never_accepts_unsigned_or_shared_secret_tokens() {
        for alg in [
            CoreJwsSigningAlgorithm::None,
            CoreJwsSigningAlgorithm::HmacSha256,
            CoreJwsSigningAlgorithm::HmacSha384,
            CoreJwsSigningAlgorithm::HmacSha512,
        ] {
            assert!(!ALLOWED_ALGS.contains(&alg), "{alg:?}");
        }
    }
}
