//! Device login (RFC 8628) for machines without a browser: show a code and
//! a URL, let the user approve on another device, poll the token endpoint.

use std::time::Duration;

use openidconnect::core::CoreDeviceAuthorizationResponse;
use openidconnect::{DeviceCodeErrorResponseType, Nonce, RequestTokenError, TokenResponse};

use super::provider::{Provider, accept_id_token, chain};
use super::{Error, IdToken};

/// The longest the client polls, whatever `expires_in` the provider sends.
const MAX_WAIT: Duration = Duration::from_secs(30 * 60);

/// What the user needs to approve the login elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeviceCode {
    /// The code to type in at `verification_uri`.
    pub(crate) user_code: String,
    pub(crate) verification_uri: String,
    /// The URL with the code filled in, where the provider offers one.
    pub(crate) verification_uri_complete: Option<String>,
    /// How long the code is good for.
    pub(crate) expires_in: Duration,
}

/// Logs in with the device authorization grant and returns the verified ID
/// token.
///
/// Requests a device code (scopes `openid email profile`, plus `groups`
/// where advertised), hands it to `on_code` (show it to the user), then
/// polls the token endpoint at the provider's interval (5 s if it names
/// none; 5 s more after each `slow_down`) until the user approves, denies,
/// or the code expires. The ID token is verified (signature against the
/// provider's JWKS, issuer, audience, expiry); the grant has no nonce.
pub(crate) async fn login_device(
    issuer: &str,
    client_id: &str,
    mut on_code: impl FnMut(&DeviceCode),
) -> Result<IdToken, Error> {
    let provider = Provider::discover(issuer).await?;
    let endpoint = provider
        .metadata
        .additional_metadata()
        .device_authorization_endpoint
        .clone()
        .ok_or_else(|| Error::DeviceGrantUnsupported {
            issuer: provider.issuer.to_string(),
        })?;
    let client = provider
        .client(client_id)
        .set_device_authorization_url(endpoint);

    let details: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scopes(provider.scopes())
        .request_async(&provider.http)
        .await
        .map_err(|err| provider.token_request_error(err))?;
    on_code(&DeviceCode {
        user_code: details.user_code().secret().clone(),
        verification_uri: details.verification_uri().to_string(),
        verification_uri_complete: details
            .verification_uri_complete()
            .map(|uri| uri.secret().clone()),
        expires_in: details.expires_in(),
    });

    let response = client
        .exchange_device_access_token(&details)
        .map_err(|err| Error::ProviderMetadata {
            issuer: provider.issuer.to_string(),
            reason: chain(&err),
        })?
        .request_async(
            &provider.http,
            tokio::time::sleep,
            Some(details.expires_in().min(MAX_WAIT)),
        )
        .await
        .map_err(|err| match err {
            RequestTokenError::ServerResponse(response) => match response.error() {
                DeviceCodeErrorResponseType::AccessDenied => Error::Denied {
                    error: response.error().to_string(),
                },
                DeviceCodeErrorResponseType::ExpiredToken => Error::DeviceCodeExpired,
                other => Error::ProviderRefused {
                    error: other.to_string(),
                    description: response.error_description().cloned(),
                },
            },
            RequestTokenError::Request(err) => provider.unreachable(&err),
            other => Error::BadTokenResponse {
                reason: chain(&other),
            },
        })?;
    let id_token = response.id_token().ok_or(Error::NoIdToken)?;
    // No nonce in this grant; one in the token is not ours to check.
    accept_id_token(client.id_token_verifier(), id_token, |_: Option<&Nonce>| {
        Ok(())
    })
}
