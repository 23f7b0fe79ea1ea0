//! `login` against real OIDC providers on loopback, started through the
//! `shiftkey-tests` helpers: `tests/oidc/provider.mjs` (oauth2-mock-server:
//! code flow, no login page) and `tests/oidc/device-provider.mjs`
//! (oidc-provider: device grant, and the code flow through its HTML login
//! and consent forms). A [`Browser`] plays the user's browser over plain
//! HTTP. Without Node.js or the npm packages (`npm ci --prefix tests/oidc`)
//! these tests fail with that hint; they never skip.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use openidconnect::url::Url;
use serde_json::json;
use shiftkey_tests::device_provider::{Answer, Browser, CLIENT_ID, DeviceProvider};
use shiftkey_tests::oidc::OidcProvider;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::device::DeviceCode;
use super::{BrowserOptions, Error, IdToken};

/// The longest a test waits for a login to end.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs `steps` with a fresh [`Browser`] on a blocking thread: the browser
/// is blocking, and this test's runtime must stay free to serve the login's
/// loopback redirect meanwhile.
async fn in_browser<T, F>(steps: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Browser) -> anyhow::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || steps(&Browser::new()?)).await?
}

fn query_param(url: &str, name: &str) -> anyhow::Result<String> {
    Url::parse(url)?
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .with_context(|| format!("{url} has no {name}"))
}

/// Starts `login_browser` on a task; returns its handle and the
/// authorization URL it produced.
async fn start_browser_login(
    issuer: &str,
    opts: BrowserOptions,
) -> anyhow::Result<(JoinHandle<Result<IdToken, Error>>, String)> {
    let (url_tx, url_rx) = oneshot::channel();
    let issuer = issuer.to_owned();
    let login = tokio::spawn(async move {
        super::login_browser(&issuer, CLIENT_ID, &opts, move |url| {
            let _ = url_tx.send(url.to_owned());
        })
        .await
    });
    let url = match url_rx.await {
        Ok(url) => url,
        Err(_) => bail!("login ended before producing a URL: {:?}", login.await?),
    };
    Ok((login, url))
}

/// Starts `login_device` on a task; returns its handle and the code shown.
async fn start_device_login(
    issuer: &str,
) -> anyhow::Result<(JoinHandle<Result<IdToken, Error>>, DeviceCode)> {
    let (code_tx, code_rx) = oneshot::channel();
    let mut code_tx = Some(code_tx);
    let issuer = issuer.to_owned();
    let login = tokio::spawn(async move {
        super::login_device(&issuer, CLIENT_ID, move |code| {
            if let Some(tx) = code_tx.take() {
                let _ = tx.send(code.clone());
            }
        })
        .await
    });
    match code_rx.await {
        Ok(code) => Ok((login, code)),
        Err(_) => Err(anyhow!(
            "login ended before showing a code: {:?}",
            login.await?
        )),
    }
}

async fn finished(
    login: JoinHandle<Result<IdToken, Error>>,
) -> anyhow::Result<Result<IdToken, Error>> {
    Ok(tokio::time::timeout(LOGIN_TIMEOUT, login).await??)
}

#[tokio::test]
async fn browser_login_with_oauth2_mock_server() -> anyhow::Result<()> {
    install_crypto();
    let provider = OidcProvider::start()?;
    provider.set_default_login(json!({"sub": "bob", "email": "bob@example.com"}))?;
    let (login, url) = start_browser_login(provider.issuer(), BrowserOptions::default()).await?;

    assert_eq!(query_param(&url, "code_challenge_method")?, "S256");
    // The test provider lists `groups` in scopes_supported (and releases
    // the claim only under it), so the CLI asks for it.
    assert_eq!(query_param(&url, "scope")?, "openid email profile groups");
    let redirect_uri = query_param(&url, "redirect_uri")?;
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:"),
        "{redirect_uri}"
    );
    assert!(redirect_uri.ends_with("/callback"), "{redirect_uri}");
    query_param(&url, "nonce")?;

    // Something else the browser asks for first is answered and ignored.
    let favicon = Url::parse(&redirect_uri)?.join("/favicon.ico")?;
    let (favicon, callback, page) = in_browser(move |browser| {
        let favicon = browser.get(favicon.as_str())?;
        let callback = browser.redirect_of(&url)?;
        let page = browser.get(&callback)?;
        Ok((favicon, callback, page))
    })
    .await?;
    assert_eq!(favicon.status, 404, "{favicon:?}");
    assert!(callback.starts_with(&redirect_uri), "{callback}");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("You can close this tab"), "{page:?}");

    let token = finished(login).await??;
    assert_eq!(token.email.as_deref(), Some("bob@example.com"));
    assert!(token.expires_at > chrono::Utc::now());
    assert!(!format!("{token:?}").contains(token.secret()));

    // Cached and read back as `shiftkey login` then `shiftkey access` would.
    let runtime = tempfile::tempdir()?;
    let path = runtime.path().join("shiftkey/token");
    super::save(&token, &path)?;
    let cached = super::load(&path).context("the fresh token was not loaded back")?;
    assert_eq!(cached.secret(), token.secret());
    assert_eq!(cached.email, token.email);
    assert_eq!(cached.expires_at, token.expires_at);
    super::remove(&path)?;
    assert!(super::load(&path).is_none());
    if let Some(default) = super::cache_path() {
        assert!(default.ends_with("shiftkey/token"), "{}", default.display());
    }

    // The same callback again finds nobody listening.
    let again = in_browser(move |browser| Ok(browser.get(&callback))).await?;
    assert!(again.is_err(), "{again:?}");
    Ok(())
}

#[tokio::test]
async fn browser_login_refuses_a_forged_state() -> anyhow::Result<()> {
    install_crypto();
    let provider = OidcProvider::start()?;
    let opts = BrowserOptions {
        timeout: Duration::from_secs(3),
    };
    let (login, url) = start_browser_login(provider.issuer(), opts).await?;
    let redirect_uri = query_param(&url, "redirect_uri")?;
    // A real code, but delivered with another state (login CSRF): refused,
    // and the login waits on for its own callback, which never comes here.
    let page = in_browser(move |browser| {
        let callback = browser.redirect_of(&url)?;
        let code = query_param(&callback, "code")?;
        browser.get(&format!("{redirect_uri}?code={code}&state=forged"))
    })
    .await?;
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.body.contains("still waiting"), "{page:?}");
    assert!(!login.is_finished(), "a forged callback ended the login");
    let outcome = finished(login).await?;
    assert!(matches!(outcome, Err(Error::StateMismatch)), "{outcome:?}");
    Ok(())
}

#[tokio::test]
async fn browser_login_survives_a_forged_callback() -> anyhow::Result<()> {
    install_crypto();
    let provider = OidcProvider::start()?;
    provider.set_default_login(json!({"sub": "carol", "email": "carol@example.com"}))?;
    let (login, url) = start_browser_login(provider.issuer(), BrowserOptions::default()).await?;
    let redirect_uri = query_param(&url, "redirect_uri")?;
    // Something probing the port gets there first, with a wrong state and
    // an error; then the browser brings the real callback.
    let (forged, denied, page) = in_browser(move |browser| {
        let forged = browser.get(&format!("{redirect_uri}?code=stolen&state=forged"))?;
        let denied = browser.get(&format!("{redirect_uri}?error=access_denied"))?;
        let callback = browser.redirect_of(&url)?;
        let page = browser.get(&callback)?;
        Ok((forged, denied, page))
    })
    .await?;
    assert_eq!(forged.status, 400, "{forged:?}");
    assert_eq!(denied.status, 400, "{denied:?}");
    assert_eq!(page.status, 200, "{page:?}");
    let token = finished(login).await??;
    assert_eq!(token.email.as_deref(), Some("carol@example.com"));
    Ok(())
}

#[tokio::test]
async fn browser_login_reports_access_denied() -> anyhow::Result<()> {
    install_crypto();
    let provider = OidcProvider::start()?;
    let (login, url) = start_browser_login(provider.issuer(), BrowserOptions::default()).await?;
    let redirect_uri = query_param(&url, "redirect_uri")?;
    let state = query_param(&url, "state")?;
    let denied = Url::parse_with_params(
        &redirect_uri,
        [("error", "access_denied"), ("state", state.as_str())],
    )?;
    let page = in_browser(move |browser| browser.get(denied.as_str())).await?;
    assert_eq!(page.status, 403, "{page:?}");
    let outcome = finished(login).await?;
    assert!(matches!(outcome, Err(Error::Denied { .. })), "{outcome:?}");
    let message = outcome.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("access_denied"), "{message}");
    Ok(())
}

#[tokio::test]
async fn browser_login_times_out() -> anyhow::Result<()> {
    install_crypto();
    let provider = OidcProvider::start()?;
    let opts = BrowserOptions {
        timeout: Duration::from_millis(500),
    };
    let (login, _url) = start_browser_login(provider.issuer(), opts).await?;
    let outcome = finished(login).await?;
    assert!(
        matches!(outcome, Err(Error::TimedOut { .. })),
        "{outcome:?}"
    );
    Ok(())
}

#[tokio::test]
async fn login_reports_an_unreachable_provider() -> anyhow::Result<()> {
    install_crypto();
    // Bound and dropped: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let issuer = format!("http://127.0.0.1:{port}");
    let outcome =
        super::login_browser(&issuer, CLIENT_ID, &BrowserOptions::default(), |_| {}).await;
    assert!(
        matches!(outcome, Err(Error::ProviderUnreachable { .. })),
        "{outcome:?}"
    );
    let outcome = super::login_device(&issuer, CLIENT_ID, |_| {}).await;
    assert!(
        matches!(outcome, Err(Error::ProviderUnreachable { .. })),
        "{outcome:?}"
    );
    Ok(())
}

#[tokio::test]
async fn browser_login_with_oidc_provider_login_pages() -> anyhow::Result<()> {
    install_crypto();
    let provider = DeviceProvider::start()?;
    let (login, url) = start_browser_login(provider.issuer(), BrowserOptions::default()).await?;
    let page =
        in_browser(move |browser| browser.sign_in(&url, "erin@example.com", Answer::Approve))
            .await
            .with_context(|| format!("provider log:\n{}", provider.log()))?;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("You can close this tab"), "{page:?}");
    let token = finished(login).await??;
    assert_eq!(token.email.as_deref(), Some("erin@example.com"));
    Ok(())
}

#[tokio::test]
async fn device_login_with_oidc_provider() -> anyhow::Result<()> {
    install_crypto();
    let provider = DeviceProvider::start()?;
    // Poll every second, and once be told to slow down (+5 s).
    provider.set_device(&json!({"interval": 1, "slow_down": 1}))?;
    let (login, code) = start_device_login(provider.issuer()).await?;
    assert_eq!(
        code.verification_uri,
        format!("{}/device", provider.issuer())
    );
    assert!(code.expires_in > Duration::from_secs(60), "{code:?}");
    let complete = code
        .verification_uri_complete
        .clone()
        .context("no verification_uri_complete")?;
    assert!(complete.contains(&code.user_code), "{complete}");

    // Let the client poll (pending, then slow_down) before approving.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let page =
        in_browser(move |browser| browser.sign_in(&complete, "dave@example.com", Answer::Approve))
            .await
            .with_context(|| format!("provider log:\n{}", provider.log()))?;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("Sign-in Success"), "{page:?}");

    let token = finished(login).await??;
    assert_eq!(token.email.as_deref(), Some("dave@example.com"));
    assert!(token.expires_at > chrono::Utc::now());
    let stats = provider.stats()?;
    assert_eq!(stats["slow_downs"], 1, "{stats}");
    assert!(stats["device_token_polls"].as_u64() >= Some(2), "{stats}");
    Ok(())
}

#[tokio::test]
async fn device_login_reports_a_denial() -> anyhow::Result<()> {
    install_crypto();
    let provider = DeviceProvider::start()?;
    provider.set_device(&json!({"interval": 1}))?;
    let (login, code) = start_device_login(provider.issuer()).await?;
    let complete = code
        .verification_uri_complete
        .context("no verification_uri_complete")?;
    let page =
        in_browser(move |browser| browser.sign_in(&complete, "mallory@example.com", Answer::Abort))
            .await
            .with_context(|| format!("provider log:\n{}", provider.log()))?;
    assert!(page.body.contains("interrupted"), "{page:?}");
    let outcome = finished(login).await?;
    assert!(matches!(outcome, Err(Error::Denied { .. })), "{outcome:?}");
    Ok(())
}

#[tokio::test]
async fn device_login_reports_an_expired_code() -> anyhow::Result<()> {
    install_crypto();
    let provider = DeviceProvider::start()?;
    provider.set_device(&json!({"interval": 1, "ttl": 2}))?;
    let (login, code) = start_device_login(provider.issuer()).await?;
    assert_eq!(code.expires_in, Duration::from_secs(2));
    let outcome = finished(login).await?;
    assert!(
        matches!(outcome, Err(Error::DeviceCodeExpired)),
        "{outcome:?}"
    );
    Ok(())
}

#[tokio::test]
async fn device_login_needs_a_device_endpoint() -> anyhow::Result<()> {
    install_crypto();
    // oauth2-mock-server has no device grant.
    let provider = OidcProvider::start()?;
    let outcome = super::login_device(provider.issuer(), CLIENT_ID, |_| {}).await;
    assert!(
        matches!(outcome, Err(Error::DeviceGrantUnsupported { .. })),
        "{outcome:?}"
    );
    Ok(())
}
