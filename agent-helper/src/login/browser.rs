//! Browser login: authorization code + PKCE (S256) with the redirect to a
//! one-shot HTTP listener on `127.0.0.1` (RFC 8252 section 7.3).
//!
//! The listener answers exactly one `GET /callback` that carries this
//! login's `state`; other paths and methods get 404/405 and the wait goes
//! on (a browser may ask for `/favicon.ico`). A callback without this
//! login's `state` (a stale tab, another login, or any local process or web
//! page probing the port) gets 400 and the wait goes on too, so it cannot
//! end the login; if the wait then times out, the error says a `state` was
//! refused. A callback with our `state` ends the login: with the code, or
//! with an error for `error=`, a foreign `iss`, or a missing `iss` where
//! the provider advertises `authorization_response_iss_parameter_supported`
//! (RFC 9207).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{
    AuthorizationCode, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, RedirectUrl, TokenResponse,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::provider::{Provider, accept_id_token, chain};
use super::{Error, IdToken};

/// The path the provider redirects the browser to.
const CALLBACK_PATH: &str = "/callback";
/// How long one browser connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings for [`login_browser`].
#[derive(Clone, Debug)]
pub(crate) struct BrowserOptions {
    /// How long to wait for the browser to come back.
    pub(crate) timeout: Duration,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5 * 60),
        }
    }
}

/// Logs in through the user's browser and returns the verified ID token.
///
/// Binds `127.0.0.1:0`, builds the authorization URL (scopes `openid email
/// profile`, plus `groups` where advertised; PKCE S256; fresh `state` and
/// `nonce`) with `http://127.0.0.1:PORT/callback` as the redirect, hands it
/// to `on_url` (print it, try to open a browser), waits up to
/// `opts.timeout` for the callback, redeems the code and verifies the ID
/// token (signature against the provider's JWKS, issuer, audience, expiry,
/// nonce).
pub(crate) async fn login_browser(
    issuer: &str,
    client_id: &str,
    opts: &BrowserOptions,
    on_url: impl FnOnce(&str),
) -> Result<IdToken, Error> {
    let provider = Provider::discover(issuer).await?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .map_err(|source| Error::Loopback { source })?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Loopback { source })?
        .port();
    let redirect =
        RedirectUrl::new(format!("http://127.0.0.1:{port}{CALLBACK_PATH}")).map_err(|err| {
            Error::Loopback {
                source: std::io::Error::other(err),
            }
        })?;

    let client = provider.client(client_id).set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scopes(provider.scopes())
        .set_pkce_challenge(challenge)
        .url();
    on_url(url.as_str());

    let expected = Expected {
        state,
        issuer: provider.issuer.clone(),
        require_iss: provider.requires_iss(),
    };
    let code = wait_for_callback(listener, expected, opts.timeout).await?;

    let response = client
        .exchange_code(code)
        .map_err(|err| Error::ProviderMetadata {
            issuer: provider.issuer.to_string(),
            reason: chain(&err),
        })?
        .set_pkce_verifier(verifier)
        .request_async(&provider.http)
        .await
        .map_err(|err| provider.token_request_error(err))?;
    // Only the ID token is kept: the CA takes it; the access token (and
    // any refresh token) is dropped here.
    let id_token = response.id_token().ok_or(Error::NoIdToken)?;
    accept_id_token(client.id_token_verifier(), id_token, &nonce)
}

/// What the callback must carry.
#[derive(Clone, Debug)]
struct Expected {
    state: CsrfToken,
    issuer: IssuerUrl,
    /// RFC 9207: the provider promises `iss` in every response.
    require_iss: bool,
}

/// What one request to the loopback listener amounts to.
#[derive(Debug)]
enum Callback {
    /// Not the callback (wrong path or method): answered, wait goes on.
    Ignored(StatusCode),
    /// The callback path without this login's `state`: answered 400, wait
    /// goes on. Nothing else in it is looked at.
    Forged,
    /// The callback: the login ends here, one way or the other.
    Done(Result<AuthorizationCode, Error>),
}

/// Accepts connections until one brings the callback, for at most
/// `timeout`. Each connection is served on its own task, so a browser's
/// idle pre-connection cannot hold up the real one; all are dropped when
/// this returns.
async fn wait_for_callback(
    listener: TcpListener,
    expected: Expected,
    timeout: Duration,
) -> Result<AuthorizationCode, Error> {
    let (done_tx, mut done_rx) = mpsc::channel(1);
    let mut connections = JoinSet::new();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut forged = false;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A failed accept (e.g. out of file descriptors) ends the
                // login rather than spinning.
                let (stream, _) = accepted.map_err(|source| Error::Loopback { source })?;
                connections.spawn(serve(stream, expected.clone(), done_tx.clone()));
            }
            Some(callback) = done_rx.recv() => match callback {
                Callback::Done(result) => return result,
                Callback::Forged => forged = true,
                Callback::Ignored(_) => {}
            },
            // Reap finished connection tasks.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut deadline => {
                // Only a refused `state` came (likely a stale tab): say so.
                return Err(if forged {
                    Error::StateMismatch
                } else {
                    Error::TimedOut { waited: timeout }
                });
            }
        }
    }
}

/// Serves one connection (one request: no keep-alive), then reports a
/// callback (done or forged), if any, once the page has been sent to the
/// browser.
async fn serve(stream: TcpStream, expected: Expected, done: mpsc::Sender<Callback>) {
    let (outcome_tx, mut outcome_rx) = mpsc::unbounded_channel();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let callback = check_request(
            request.method(),
            request.uri().path(),
            request.uri().query(),
            &expected,
        );
        let response = page(&callback);
        if !matches!(callback, Callback::Ignored(_)) {
            let _ = outcome_tx.send(callback);
        }
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, connection).await;
    if let Ok(result) = outcome_rx.try_recv() {
        let _ = done.send(result).await;
    }
}

/// Decides what a request to the listener is. Order matters: the `state`
/// is checked before anything else in the query is believed.
fn check_request(
    method: &Method,
    path: &str,
    query: Option<&str>,
    expected: &Expected,
) -> Callback {
    if path != CALLBACK_PATH {
        return Callback::Ignored(StatusCode::NOT_FOUND);
    }
    if method != Method::GET {
        return Callback::Ignored(StatusCode::METHOD_NOT_ALLOWED);
    }
    let params: Vec<(String, String)> =
        openidconnect::url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        let mut values = params.iter().filter(|(key, _)| key == name);
        // A repeated parameter is as good as a forged one.
        match (values.next(), values.next()) {
            (Some((_, value)), None) => Some(value.as_str()),
            _ => None,
        }
    };
    // CsrfToken's comparison is timing-resistant.
    let state_ok =
        param("state").is_some_and(|got| CsrfToken::new(got.to_owned()) == expected.state);
    if !state_ok {
        return Callback::Forged;
    }
    // RFC 9207: where the provider names itself, it must be our issuer; a
    // provider that promises to always name itself must have done so.
    match param("iss") {
        Some(got) if got == expected.issuer.as_str() => {}
        None if !expected.require_iss => {}
        got => {
            return Callback::Done(Err(Error::IssuerMismatch {
                expected: expected.issuer.to_string(),
                got: got.unwrap_or_default().to_owned(),
            }));
        }
    }
    if let Some(error) = param("error") {
        let error = error.to_owned();
        return Callback::Done(Err(if error == "access_denied" {
            Error::Denied { error }
        } else {
            Error::ProviderRefused {
                error,
                description: param("error_description").map(str::to_owned),
            }
        }));
    }
    match param("code") {
        Some(code) if !code.is_empty() => {
            Callback::Done(Ok(AuthorizationCode::new(code.to_owned())))
        }
        _ => Callback::Done(Err(Error::ProviderRefused {
            error: "no authorization code in the redirect".to_owned(),
            description: None,
        })),
    }
}

/// The page the browser shows. Fixed texts only: nothing from the request
/// is reflected into it.
fn page(callback: &Callback) -> Response<Full<Bytes>> {
    let (status, title, text) = match callback {
        Callback::Ignored(status) => (*status, "Not found", "Nothing here."),
        Callback::Forged => (
            StatusCode::BAD_REQUEST,
            "Not this sign-in",
            "This page does not belong to the sign-in the terminal is waiting for (an old tab?). \
             Use the link the terminal shows; it is still waiting.",
        ),
        Callback::Done(Ok(_)) => (
            StatusCode::OK,
            "Signed in",
            "You are signed in to Shiftkey. You can close this tab and return to the terminal.",
        ),
        Callback::Done(Err(Error::Denied { .. })) => (
            StatusCode::FORBIDDEN,
            "Sign-in denied",
            "The sign-in was denied. You can close this tab; the terminal says what to do next.",
        ),
        Callback::Done(Err(_)) => (
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "This sign-in could not be completed. You can close this tab; the terminal says what to do next.",
        ),
    };
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Shiftkey: {title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>\n"
    );
    let mut response = Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    // The callback URL holds the code: never pass it on as a Referer.
    headers.insert(
        hyper::header::REFERRER_POLICY,
        hyper::header::HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> IssuerUrl {
        IssuerUrl::new("https://login.example.com".to_owned()).unwrap_or_else(|_| unreachable!())
    }

    fn expected(require_iss: bool) -> Expected {
        Expected {
            state: CsrfToken::new("s1".to_owned()),
            issuer: issuer(),
            require_iss,
        }
    }

    fn check(method: Method, path: &str, query: &str) -> Callback {
        check_request(&method, path, Some(query), &expected(false))
    }

    #[test]
    fn accepts_the_callback_with_our_state() {
        let outcome = check(Method::GET, "/callback", "code=c0de&state=s1");
        assert!(
            matches!(&outcome, Callback::Done(Ok(code)) if code.secret() == "c0de"),
            "{outcome:?}"
        );
        let outcome = check(
            Method::GET,
            "/callback",
            "code=c0de&state=s1&iss=https%3A%2F%2Flogin.example.com",
        );
        assert!(matches!(outcome, Callback::Done(Ok(_))), "{outcome:?}");
    }

    #[test]
    fn refuses_a_wrong_missing_or_repeated_state_without_ending_the_login() {
        for query in [
            "code=c&state=s2",
            "code=c",
            "code=c&state=s1&state=s2",
            "code=c&state=",
            "code=c&state=s2&iss=https%3A%2F%2Fevil.example",
        ] {
            let outcome = check(Method::GET, "/callback", query);
            assert!(matches!(outcome, Callback::Forged), "{query}: {outcome:?}");
            assert_eq!(page(&outcome).status(), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn an_error_callback_ends_the_login() {
        let outcome = check(Method::GET, "/callback", "error=access_denied&state=s1");
        assert!(
            matches!(outcome, Callback::Done(Err(Error::Denied { .. }))),
            "{outcome:?}"
        );
        let outcome = check(
            Method::GET,
            "/callback",
            "error=invalid_scope&error_description=nope&state=s1",
        );
        assert!(
            matches!(&outcome, Callback::Done(Err(Error::ProviderRefused { error, description }))
                if error == "invalid_scope" && description.as_deref() == Some("nope")),
            "{outcome:?}"
        );
        // An error without our state is refused as forged: the login goes on.
        let outcome = check(Method::GET, "/callback", "error=access_denied&state=zz");
        assert!(matches!(outcome, Callback::Forged), "{outcome:?}");
    }

    #[test]
    fn refuses_another_issuer() {
        let outcome = check(
            Method::GET,
            "/callback",
            "code=c&state=s1&iss=https%3A%2F%2Fevil.example",
        );
        assert!(
            matches!(outcome, Callback::Done(Err(Error::IssuerMismatch { .. }))),
            "{outcome:?}"
        );
    }

    #[test]
    fn requires_iss_where_the_provider_promises_it() {
        let with =
            |query: &str| check_request(&Method::GET, "/callback", Some(query), &expected(true));
        let outcome = with("code=c&state=s1");
        assert!(
            matches!(&outcome, Callback::Done(Err(Error::IssuerMismatch { got, .. })) if got.is_empty()),
            "{outcome:?}"
        );
        let outcome = with("code=c&state=s1&iss=https%3A%2F%2Flogin.example.com");
        assert!(matches!(outcome, Callback::Done(Ok(_))), "{outcome:?}");
        let outcome = with("code=c&state=s1&iss=https%3A%2F%2Fevil.example");
        assert!(
            matches!(outcome, Callback::Done(Err(Error::IssuerMismatch { .. }))),
            "{outcome:?}"
        );
        // Still the state first: a forgery without `iss` does not end it.
        let outcome = with("code=c&state=s2");
        assert!(matches!(outcome, Callback::Forged), "{outcome:?}");
    }

    /// One plain HTTP/1.1 GET to the listener; the whole response.
    async fn get(port: u16, target: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    /// Starts waiting on a fresh listener; returns the wait and the port.
    async fn start_wait(
        timeout: Duration,
    ) -> (
        tokio::task::JoinHandle<Result<AuthorizationCode, Error>>,
        u16,
    ) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let wait = tokio::spawn(wait_for_callback(listener, expected(false), timeout));
        (wait, port)
    }

    /// Forged callbacks first, the real one second: the login completes.
    #[tokio::test]
    async fn a_forged_callback_does_not_end_the_wait() {
        let (wait, port) = start_wait(Duration::from_secs(30)).await;
        for forged in [
            "/callback?code=evil&state=s2",
            "/callback?error=access_denied",
            "/callback?code=evil&state=s1&state=s2",
        ] {
            let response = get(port, forged).await;
            assert!(
                response.starts_with("HTTP/1.1 400 "),
                "{forged}: {response}"
            );
            assert!(response.contains("still waiting"), "{response}");
            assert!(!wait.is_finished(), "{forged} ended the login");
        }
        let response = get(port, "/callback?code=c0de&state=s1").await;
        assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
        let code = wait.await.unwrap().unwrap();
        assert_eq!(code.secret(), "c0de");
    }

    /// The wait ends at the timeout; after a refused `state`, it says so.
    #[tokio::test]
    async fn times_out() {
        let (wait, _port) = start_wait(Duration::from_millis(100)).await;
        let outcome = wait.await.unwrap();
        assert!(
            matches!(outcome, Err(Error::TimedOut { .. })),
            "{outcome:?}"
        );
        let (wait, port) = start_wait(Duration::from_millis(500)).await;
        let response = get(port, "/callback?code=evil&state=s2").await;
        assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
        let outcome = wait.await.unwrap();
        assert!(matches!(outcome, Err(Error::StateMismatch)), "{outcome:?}");
    }

    #[test]
    fn other_requests_are_ignored() {
        assert!(matches!(
            check(Method::GET, "/favicon.ico", ""),
            Callback::Ignored(StatusCode::NOT_FOUND)
        ));
        assert!(matches!(
            check(Method::POST, "/callback", "code=c&state=s1"),
            Callback::Ignored(StatusCode::METHOD_NOT_ALLOWED)
        ));
        assert!(matches!(
            check(Method::GET, "/callback/", "code=c&state=s1"),
            Callback::Ignored(StatusCode::NOT_FOUND)
        ));
    }

    #[test]
    fn callback_without_code_fails() {
        let outcome = check(Method::GET, "/callback", "state=s1");
        assert!(
            matches!(outcome, Callback::Done(Err(Error::ProviderRefused { .. }))),
            "{outcome:?}"
        );
    }
}
