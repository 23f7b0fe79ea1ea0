//! ID token verification: the pure helpers directly, and [`OidcVerifier`]
//! against the real test provider (`tests/oidc`, node). A test that needs
//! the provider fails with its install hint when node or its packages are
//! missing; it never skips.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::json;
use shiftkey_tests::oidc::OidcProvider;

use super::*;

const CLIENT: &str = "shiftkey";

fn provider() -> OidcProvider {
    // reqwest's rustls needs a process-wide crypto provider; the binary
    // installs it in `init_process`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    OidcProvider::start()
        .unwrap_or_else(|err| panic!("cannot start the test OIDC provider: {err:#}"))
}

/// The defaults for everything but issuer and audience, as the config file
/// would give them, with `danger_allow_http_issuer` (the provider is http).
fn settings(issuer: impl Into<String>) -> OidcSettings {
    OidcSettings {
        issuer: issuer.into(),
        audience: CLIENT.to_owned(),
        groups_claim: DEFAULT_GROUPS_CLAIM.to_owned(),
        allowed_algs: DEFAULT_ALLOWED_ALGS
            .iter()
            .map(|alg| (*alg).to_owned())
            .collect(),
        clock_skew: DEFAULT_CLOCK_SKEW,
        danger_allow_http_issuer: true,
        danger_accept_unverified_email: false,
    }
}

async fn verifier(p: &OidcProvider) -> OidcVerifier {
    OidcVerifier::discover(settings(p.issuer()))
        .await
        .expect("discovery")
}

fn now() -> i64 {
    Utc::now().timestamp()
}

fn split(token: &str) -> (String, String, String) {
    let mut parts = token.split('.').map(str::to_owned);
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// HMAC-SHA256, to forge HS256 tokens.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

// ---- Pure helpers -------------------------------------------------------

#[test]
fn emails_that_could_forge_key_id_fields_are_refused() {
    for bad in [
        "",
        "alice",
        "@example.com",
        "alice@",
        "a@b@c",
        "alice @example.com",
        "alice@example.com role=admin",
        "alice,bob@example.com",
        "alice\n@example.com",
        "alice\0@example.com",
        "alice\u{2028}@example.com",
        "role=admin@example.com",
        "alice@example.com=x",
        "jöhn@example.com",
        "alice@exämple.com",
        "аlice@example.com", // Cyrillic а
        "\"alice\"@example.com",
        "alice!x@example.com",
        "alice@[127.0.0.1]",
        "alice@example.com\u{200b}",
    ] {
        assert!(
            matches!(check_email(bad), Err(Error::InvalidEmail(_))),
            "{bad:?} accepted"
        );
    }
    for good in [
        "alice+oncall@example.com",
        "A.B_C%D-E@sub-1.example.COM",
        "x@y",
    ] {
        assert!(check_email(good).is_ok(), "{good:?} refused");
    }
    let longest = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN - 12));
    assert_eq!(longest.len(), MAX_EMAIL_LEN);
    assert!(check_email(&longest).is_ok());
    assert!(check_email(&format!("a{longest}")).is_err());
}

#[test]
fn only_discovery_and_jwks_failures_mean_the_provider_is_unavailable() {
    assert!(Error::Discovery("connection refused".to_owned()).is_provider_unavailable());
    assert!(Error::JwksFetch("timed out".to_owned()).is_provider_unavailable());
    for token_fault in [
        Error::InvalidSettings("x".to_owned()),
        Error::InsecureIssuer("http://x".to_owned()),
        Error::Malformed("x"),
        Error::UnknownKey("k".to_owned()),
        Error::BadSignature,
        Error::Expired,
        Error::EmailNotVerified,
        Error::InvalidEmail("x"),
        Error::WrongIssuer,
    ] {
        assert!(!token_fault.is_provider_unavailable(), "{token_fault}");
    }
}

#[test]
fn groups_must_be_an_array_of_strings() {
    assert_eq!(parse_groups("groups", None).ok(), Some(vec![]));
    let ok = json!(["a", "b"]);
    assert_eq!(
        parse_groups("groups", Some(&ok)).ok(),
        Some(vec!["a".to_owned(), "b".to_owned()])
    );
    for bad in [json!("a"), json!([1]), json!(["a\nb"]), json!({"a": 1})] {
        assert!(
            parse_groups("groups", Some(&bad)).is_err(),
            "{bad} accepted"
        );
    }
}

#[test]
fn unsigned_and_shared_secret_algorithms_cannot_be_allowed() {
    for bad in ["none", "HS256", "HS384", "HS512", "rs256", "XYZ"] {
        assert!(
            parse_allowed_algs(&[bad.to_owned()]).is_err(),
            "{bad} allowed"
        );
    }
    assert!(parse_allowed_algs(&[]).is_err());
    let defaults: Vec<String> = DEFAULT_ALLOWED_ALGS
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    assert_eq!(parse_allowed_algs(&defaults).map(|a| a.len()).ok(), Some(3));
}

#[test]
fn header_is_parsed_without_trusting_the_token() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
    let parsed = parse_header(&format!("{header}.e30.")).ok();
    assert_eq!(parsed.as_ref().map(|h| h.alg.as_str()), Some("none"));
    assert_eq!(parsed.and_then(|h| h.kid), Some("k1".to_owned()));
    assert!(matches!(parse_header("a.b"), Err(Error::Malformed(_))));
    assert!(matches!(
        parse_header("a.b.c.d.e"),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(parse_header("!!.e30.x"), Err(Error::Malformed(_))));
    let long = "a".repeat(MAX_TOKEN_LEN + 1);
    assert!(matches!(parse_header(&long), Err(Error::Malformed(_))));
}

#[test]
fn printable_escapes_and_truncates() {
    assert_eq!(printable("a\nb"), "a\\nb");
    assert_eq!(printable(&"x".repeat(100)).chars().count(), 81);
}

#[test]
fn verifier_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<OidcVerifier>();
}

// ---- Against the real provider -----------------------------------------

#[tokio::test]
async fn code_flow_token_verifies_with_email_and_groups() {
    let p = provider();
    let v = verifier(&p).await;
    // The provider signs in turn with its RS256 and ES256 keys.
    for _ in 0..4 {
        let token = p
            .code_flow_token(CLIENT, "bob@example.com", &["oncall", "db-admins"])
            .unwrap();
        let verified = v.verify(&token).await.unwrap();
        assert_eq!(verified.email, "bob@example.com");
        assert_eq!(verified.subject, "bob@example.com");
        assert_eq!(verified.groups, vec!["oncall", "db-admins"]);
        let left = verified.expires_at - Utc::now();
        assert!(left > chrono::Duration::minutes(50) && left <= chrono::Duration::minutes(60));
    }
    // No groups at all is fine.
    let token = p.code_flow_token(CLIENT, "carol@example.com", &[]).unwrap();
    assert_eq!(v.verify(&token).await.unwrap().groups, Vec::<String>::new());
    let token = p.mint(json!({ "aud": CLIENT, "groups": null })).unwrap();
    assert_eq!(v.verify(&token).await.unwrap().groups, Vec::<String>::new());
    assert_eq!(
        p.jwks_requests().unwrap(),
        1,
        "only discovery fetched the JWKS"
    );
}

#[tokio::test]
async fn code_flow_token_for_another_client_is_wrong_audience() {
    let p = provider();
    let v = verifier(&p).await;
    let token = p
        .code_flow_token("other-app", "bob@example.com", &[])
        .unwrap();
    assert!(matches!(v.verify(&token).await, Err(Error::WrongAudience)));
}

#[tokio::test]
async fn each_login_gets_a_fresh_token() {
    let p = provider();
    let a = p.code_flow_token(CLIENT, "a@example.com", &[]).unwrap();
    let b = p.code_flow_token(CLIENT, "a@example.com", &[]).unwrap();
    assert_ne!(a, b);
}

#[tokio::test]
async fn wrong_issuer_audience_and_azp() {
    let p = provider();
    let v = verifier(&p).await;
    let t = p
        .mint(json!({ "aud": CLIENT, "iss": "http://localhost:1" }))
        .unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::WrongIssuer)));
    let t = p
        .mint(json!({ "aud": CLIENT, "iss": format!("{}/", p.issuer()) }))
        .unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::WrongIssuer)));
    let t = p.mint(json!({ "aud": CLIENT, "iss": null })).unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::Malformed(_))));

    let t = p.mint(json!({ "aud": "other-app" })).unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::WrongAudience)));
    let t = p.mint(json!({ "aud": [] })).unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::WrongAudience)));
    // Several audiences: only with azp = us.
    let t = p.mint(json!({ "aud": [CLIENT, "other-app"] })).unwrap();
    assert!(matches!(
        v.verify(&t).await,
        Err(Error::WrongAuthorizedParty)
    ));
    let t = p
        .mint(json!({ "aud": [CLIENT, "other-app"], "azp": "other-app" }))
        .unwrap();
    assert!(matches!(
        v.verify(&t).await,
        Err(Error::WrongAuthorizedParty)
    ));
    let t = p
        .mint(json!({ "aud": [CLIENT, "other-app"], "azp": CLIENT }))
        .unwrap();
    assert!(v.verify(&t).await.is_ok());
    let t = p
        .mint(json!({ "aud": CLIENT, "azp": "other-app" }))
        .unwrap();
    assert!(matches!(
        v.verify(&t).await,
        Err(Error::WrongAuthorizedParty)
    ));
}

#[tokio::test]
async fn time_claims_with_skew() {
    let p = provider();
    let v = verifier(&p).await;
    let n = now();
    let t = p
        .mint(json!({ "aud": CLIENT, "iat": n - 3600, "exp": n - 120 }))
        .unwrap();
    let err = v.verify(&t).await.unwrap_err();
    assert!(matches!(err, Error::Expired), "{err}");
    assert_eq!(err.code(), "expired");
    // Within the 60 s skew.
    let t = p
        .mint(json!({ "aud": CLIENT, "iat": n - 3600, "exp": n - 30 }))
        .unwrap();
    assert!(v.verify(&t).await.is_ok());

    let t = p
        .mint(json!({ "aud": CLIENT, "iat": n + 600, "exp": n + 1200 }))
        .unwrap();
    let err = v.verify(&t).await.unwrap_err();
    assert!(matches!(err, Error::IssuedInFuture), "{err}");
    let t = p.mint(json!({ "aud": CLIENT, "iat": n + 30 })).unwrap();
    assert!(v.verify(&t).await.is_ok());

    let t = p.mint(json!({ "aud": CLIENT, "nbf": n + 600 })).unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::NotYetValid)));
    let t = p.mint(json!({ "aud": CLIENT, "exp": null })).unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::Malformed(_))));

    // The injectable clock: a fresh token is expired an hour later.
    let t = p.mint(json!({ "aud": CLIENT })).unwrap();
    let later = Utc::now() + chrono::Duration::hours(1);
    assert!(matches!(v.verify_at(&t, later).await, Err(Error::Expired)));
}

#[tokio::test]
async fn flipped_signature_byte_is_bad_signature() {
    let p = provider();
    let v = verifier(&p).await;
    let t = p.mint(json!({ "aud": CLIENT })).unwrap();
    let (h, c, s) = split(&t);
    let mut sig = URL_SAFE_NO_PAD.decode(&s).unwrap();
    sig[10] ^= 0x01;
    let forged = format!("{h}.{c}.{}", b64(&sig));
    let err = v.verify(&forged).await.unwrap_err();
    assert!(matches!(err, Error::BadSignature), "{err}");
    assert_eq!(err.code(), "bad-signature");

    // Claims changed under a valid signature.
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).unwrap()).unwrap();
    claims["email"] = json!("mallory@example.com");
    let forged = format!("{h}.{}.{s}", b64(claims.to_string().as_bytes()));
    assert!(matches!(v.verify(&forged).await, Err(Error::BadSignature)));

    // Signed by another key under a published kid.
    let t = p
        .mint_with(json!({
            "claims": { "aud": CLIENT },
            "key": "unpublished",
            "kid": "unpublished-1",
            "header": { "kid": "rs256-1" },
        }))
        .unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::BadSignature)));
}

#[tokio::test]
async fn alg_none_and_hs256_are_refused_before_any_key_lookup() {
    let p = provider();
    let v = verifier(&p).await;
    let t = p.mint(json!({ "aud": CLIENT })).unwrap();
    let (_, claims, _) = split(&t);

    for header in [
        json!({ "alg": "none", "typ": "JWT" }),
        json!({ "alg": "none", "kid": "never-seen" }),
        json!({ "alg": "None" }),
    ] {
        let unsigned = format!("{}.{claims}.", b64(header.to_string().as_bytes()));
        let err = v.verify(&unsigned).await.unwrap_err();
        assert!(matches!(&err, Error::AlgorithmNotAllowed(_)), "{err}");
        assert_eq!(err.code(), "algorithm-not-allowed");
    }

    // HS256 keyed with something an attacker knows (the client ID), and
    // with a kid nobody publishes.
    for secret in [CLIENT.as_bytes(), b"some secret".as_slice()] {
        let header = b64(json!({ "alg": "HS256", "typ": "JWT", "kid": "hs-forged" })
            .to_string()
            .as_bytes());
        let sig = b64(&hmac_sha256(
            secret,
            format!("{header}.{claims}").as_bytes(),
        ));
        let err = v
            .verify(&format!("{header}.{claims}.{sig}"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::AlgorithmNotAllowed(alg) if alg == "HS256"),
            "{err}"
        );
    }
    assert_eq!(
        p.jwks_requests().unwrap(),
        1,
        "no JWKS fetch for refused algorithms"
    );
}

#[tokio::test]
async fn allowed_algs_are_enforced() {
    let p = provider();
    let mut s = settings(p.issuer());
    s.allowed_algs = vec!["ES256".to_owned()];
    let v = OidcVerifier::discover(s).await.unwrap();
    let t = p.mint(json!({ "aud": CLIENT })).unwrap(); // RS256
    assert!(matches!(v.verify(&t).await, Err(Error::AlgorithmNotAllowed(alg)) if alg == "RS256"));
    let t = p
        .mint_with(json!({ "claims": { "aud": CLIENT }, "kid": "es256-1" }))
        .unwrap();
    assert!(v.verify(&t).await.is_ok());

    for bad in ["none", "HS256"] {
        let mut s = settings(p.issuer());
        s.allowed_algs = vec!["RS256".to_owned(), bad.to_owned()];
        assert!(matches!(
            OidcVerifier::discover(s).await,
            Err(Error::InvalidSettings(_))
        ));
    }
}

#[tokio::test]
async fn unknown_kid_refetches_the_jwks_at_most_once_per_window() {
    let p = provider();
    let v = verifier(&p).await;
    assert_eq!(p.jwks_requests().unwrap(), 1);
    let forged = p
        .mint_with(json!({ "claims": { "aud": CLIENT }, "key": "unpublished" }))
        .unwrap();

    let err = v.verify(&forged).await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey(kid) if kid == "unpublished-1"),
        "{err}"
    );
    assert_eq!(err.code(), "unknown-key");
    assert_eq!(p.jwks_requests().unwrap(), 2, "one refetch");

    // Within the window: refused without asking the provider again, even
    // for other forged kids and concurrent requests.
    for i in 0..5 {
        let t = p
            .mint_with(json!({
                "claims": { "aud": CLIENT },
                "key": "unpublished",
                "header": { "kid": format!("forged-{i}") },
            }))
            .unwrap();
        assert!(matches!(v.verify(&t).await, Err(Error::UnknownKey(_))));
    }
    let (a, b) = tokio::join!(v.verify(&forged), v.verify(&forged));
    assert!(matches!(a, Err(Error::UnknownKey(_))) && matches!(b, Err(Error::UnknownKey(_))));
    assert_eq!(
        p.jwks_requests().unwrap(),
        2,
        "no refetch within the window"
    );
}

#[tokio::test]
async fn unknown_kid_refetch_window_reopens() {
    let p = provider();
    let mut v = verifier(&p).await;
    v.refetch_interval = Duration::from_millis(300);
    let forged = p
        .mint_with(json!({ "claims": { "aud": CLIENT }, "key": "unpublished" }))
        .unwrap();
    assert!(matches!(v.verify(&forged).await, Err(Error::UnknownKey(_))));
    assert!(matches!(v.verify(&forged).await, Err(Error::UnknownKey(_))));
    assert_eq!(p.jwks_requests().unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(v.verify(&forged).await, Err(Error::UnknownKey(_))));
    assert_eq!(p.jwks_requests().unwrap(), 3);
}

#[tokio::test]
async fn rotated_in_key_is_picked_up_by_one_refetch() {
    let p = provider();
    let v = verifier(&p).await;
    let kid = p.add_key("RS256").unwrap();
    let t = p
        .mint_with(json!({ "claims": { "aud": CLIENT }, "kid": kid }))
        .unwrap();
    let result = v.verify(&t).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(p.jwks_requests().unwrap(), 2);
    // Known now: no more fetches.
    assert!(v.verify(&t).await.is_ok());
    assert_eq!(p.jwks_requests().unwrap(), 2);

    // A second rotation inside the window waits for the window.
    let kid = p.add_key("EdDSA").unwrap();
    let t = p
        .mint_with(json!({ "claims": { "aud": CLIENT }, "kid": kid }))
        .unwrap();
    let result = v.verify(&t).await;
    assert!(matches!(result, Err(Error::UnknownKey(_))), "{result:?}");
    assert_eq!(p.jwks_requests().unwrap(), 2);
}

#[tokio::test]
async fn withdrawn_key_is_refused_once_the_cached_jwks_is_too_old() {
    let p = provider();
    let mut v = verifier(&p).await;
    v.jwks_max_age = Duration::from_millis(500);
    v.refetch_interval = Duration::ZERO;
    let kid = p.add_key("ES256").unwrap();
    let t = p
        .mint_with(json!({ "claims": { "aud": CLIENT }, "kid": kid }))
        .unwrap();
    assert!(v.verify(&t).await.is_ok());
    assert_eq!(p.jwks_requests().unwrap(), 2, "unknown kid: one refetch");

    p.remove_key(&kid).unwrap();
    // Still cached and young: trusted, no fetch.
    assert!(v.verify(&t).await.is_ok());
    assert_eq!(p.jwks_requests().unwrap(), 2);

    tokio::time::sleep(Duration::from_millis(600)).await;
    // Too old: refetched before use, and the withdrawn key is gone.
    let result = v.verify(&t).await;
    assert!(
        matches!(&result, Err(Error::UnknownKey(k)) if *k == kid),
        "{result:?}"
    );
    assert_eq!(p.jwks_requests().unwrap(), 3);
    // Keys still published keep working from the fresh set, without a fetch.
    let t = p.mint(json!({ "aud": CLIENT })).unwrap();
    assert!(v.verify(&t).await.is_ok());
    assert_eq!(p.jwks_requests().unwrap(), 3);
}

#[tokio::test]
async fn old_jwks_is_used_for_a_grace_period_while_the_provider_is_down() {
    let p = provider();
    // Minted first: the ages count from discovery.
    let t = p.mint(json!({ "aud": CLIENT })).unwrap();
    let unknown = p
        .mint_with(json!({ "claims": { "aud": CLIENT }, "key": "unpublished" }))
        .unwrap();
    let mut v = verifier(&p).await;
    v.jwks_max_age = Duration::from_millis(200);
    v.jwks_stale_grace = Duration::from_millis(1500);
    v.refetch_interval = Duration::ZERO;
    drop(p); // the provider is gone

    tokio::time::sleep(Duration::from_millis(300)).await;
    // Past the maximum age, the refetch fails: the old set still serves.
    let result = v.verify(&t).await;
    assert!(result.is_ok(), "{result:?}");
    // An unknown kid cannot be looked up: the provider's fault.
    let err = v.verify(&unknown).await.unwrap_err();
    assert!(
        matches!(err, Error::JwksFetch(_)) && err.is_provider_unavailable(),
        "{err}"
    );

    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Past the grace period too: refused as unavailable.
    let err = v.verify(&t).await.unwrap_err();
    assert!(
        matches!(err, Error::JwksFetch(_)) && err.is_provider_unavailable(),
        "{err}"
    );
    assert_eq!(err.code(), "jwks-fetch");
}

#[tokio::test]
async fn stale_jwks_is_refetched_once() {
    let p = provider();
    let t = p.mint(json!({ "aud": CLIENT })).unwrap();
    let mut v = verifier(&p).await;
    v.jwks_max_age = Duration::from_millis(300);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // One refetch for the stale set; the fresh set then serves.
    let (a, b) = tokio::join!(v.verify(&t), v.verify(&t));
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert!(v.verify(&t).await.is_ok());
    assert_eq!(p.jwks_requests().unwrap(), 2);
}

#[tokio::test]
async fn stale_jwks_refetch_failures_are_rate_limited() {
    let p = provider();
    let t = p.mint(json!({ "aud": CLIENT })).unwrap();
    let mut v = verifier(&p).await;
    v.jwks_max_age = Duration::from_millis(100);
    drop(p);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(v.verify(&t).await.is_ok());
    let first = v.refetch.lock().await.last;
    assert!(first.is_some(), "a refetch was tried");
    assert!(v.refetch.lock().await.last_error.is_some());
    // Within the window: the old set serves without another attempt.
    for _ in 0..3 {
        assert!(v.verify(&t).await.is_ok());
    }
    assert_eq!(v.refetch.lock().await.last, first);
}

#[tokio::test]
async fn eddsa_tokens_verify() {
    let p = provider();
    let kid = p.add_key("EdDSA").unwrap();
    let v = verifier(&p).await; // discovered after the key was added
    let t = p
        .mint_with(json!({ "claims": { "aud": CLIENT }, "kid": kid }))
        .unwrap();
    assert!(v.verify(&t).await.is_ok());
}

#[tokio::test]
async fn email_claim_rules() {
    let p = provider();
    let v = verifier(&p).await;
    let t = p.mint(json!({ "aud": CLIENT, "email": null })).unwrap();
    let err = v.verify(&t).await.unwrap_err();
    assert!(matches!(err, Error::MissingEmail), "{err}");
    assert_eq!(err.code(), "missing-email");

    // Minted and code-flow tokens say email_verified = true by default.
    let t = p
        .mint(json!({ "aud": CLIENT, "email_verified": true }))
        .unwrap();
    assert!(v.verify(&t).await.is_ok());

    let t = p
        .mint(json!({ "aud": CLIENT, "email_verified": false }))
        .unwrap();
    let err = v.verify(&t).await.unwrap_err();
    assert!(matches!(err, Error::EmailNotVerified), "{err}");
    assert_eq!(err.code(), "email-not-verified");
    // Absent email_verified is refused by default (an email the user typed
    // in must not name them).
    let missing = p
        .mint(json!({ "aud": CLIENT, "email_verified": null }))
        .unwrap();
    assert!(matches!(
        v.verify(&missing).await,
        Err(Error::EmailNotVerified)
    ));

    for bad in [
        "alice @example.com",
        "alice@example.com role=admin",
        "role=admin@example.com",
        "jöhn@example.com",
        "alice@exämple.com",
        "a,b@example.com",
        "alice\u{0}@example.com",
        "alice\n@example.com",
        "alice",
    ] {
        let t = p.mint(json!({ "aud": CLIENT, "email": bad })).unwrap();
        let result = v.verify(&t).await;
        assert!(
            matches!(result, Err(Error::InvalidEmail(_))),
            "{bad:?}: {result:?}"
        );
    }

    let t = p
        .mint(json!({ "aud": CLIENT, "groups": "oncall" }))
        .unwrap();
    let err = v.verify(&t).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidClaim { claim, .. } if claim == "groups"),
        "{err}"
    );
}

#[tokio::test]
async fn danger_accept_unverified_email_accepts_only_a_missing_claim() {
    let p = provider();
    let mut s = settings(p.issuer());
    s.danger_accept_unverified_email = true;
    let v = OidcVerifier::discover(s).await.unwrap();
    let t = p
        .mint(json!({ "aud": CLIENT, "email_verified": null }))
        .unwrap();
    assert_eq!(v.verify(&t).await.unwrap().email, "alice@example.com");
    let t = p.mint(json!({ "aud": CLIENT })).unwrap();
    assert!(v.verify(&t).await.is_ok());
    // false is refused whatever the setting.
    let t = p
        .mint(json!({ "aud": CLIENT, "email_verified": false }))
        .unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::EmailNotVerified)));
}

#[tokio::test]
async fn code_flow_token_with_unverified_default_login_is_refused() {
    let p = provider();
    let v = verifier(&p).await;
    p.set_default_login(json!({ "email_verified": false }))
        .unwrap();
    // login_hint keeps the default login's email_verified.
    let t = p.code_flow_token(CLIENT, "bob@example.com", &[]).unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::EmailNotVerified)));
    p.set_default_login(json!({ "email_verified": null }))
        .unwrap();
    let t = p.code_flow_token(CLIENT, "bob@example.com", &[]).unwrap();
    assert!(matches!(v.verify(&t).await, Err(Error::EmailNotVerified)));
}

#[tokio::test]
async fn groups_come_from_the_configured_claim() {
    let p = provider();
    let mut s = settings(p.issuer());
    s.groups_claim = "roles".to_owned();
    let v = OidcVerifier::discover(s).await.unwrap();
    let t = p
        .mint(json!({ "aud": CLIENT, "groups": ["ignored"], "roles": ["sre"] }))
        .unwrap();
    assert_eq!(v.verify(&t).await.unwrap().groups, vec!["sre"]);
}

#[tokio::test]
async fn malformed_tokens() {
    let p = provider();
    let v = verifier(&p).await;
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d.e",
        "e30.e30.",
        &"x".repeat(20_000),
    ] {
        let result = v.verify(bad).await;
        assert!(
            matches!(result, Err(Error::Malformed(_))),
            "{bad:.20}: {result:?}"
        );
    }
}

#[tokio::test]
async fn discovery_refuses_plain_http_and_unreachable_issuers() {
    let p = provider();
    let mut s = settings(p.issuer());
    s.danger_allow_http_issuer = false;
    let err = OidcVerifier::discover(s).await.unwrap_err();
    assert!(matches!(err, Error::InsecureIssuer(_)), "{err}");
    assert_eq!(err.code(), "insecure-issuer");

    let err = OidcVerifier::discover(settings("http://127.0.0.1:9"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Discovery(_)), "{err}");
    // The issuer must match the discovery document exactly.
    let err = OidcVerifier::discover(settings(p.issuer().replace("localhost", "127.0.0.1")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Discovery(_)), "{err}");
}
