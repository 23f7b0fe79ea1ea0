//! A real OIDC provider on loopback for the end-to-end tests:
//! `node tests/oidc/provider.mjs` (oauth2-mock-server), started per test and
//! killed on drop. See `tests/oidc/README.md` for its endpoints.
//!
//! Its issuer is always `http://localhost:PORT`, so a CA under test needs
//! `danger_allow_http_issuer`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// How long the provider may take to print its ready line.
/// Generous: on a loaded 2-core CI machine a cold `node` start (first import
/// of freshly installed packages, RSA key generation) once took over 30 s.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Where `code_flow_token` says the browser would land. Nothing listens
/// there: redirects are never followed.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const NPM_CI: &str = "npm ci --prefix tests/oidc";
const INSTALL_HINT: &str = "run `npm ci --prefix tests/oidc` (needs Node.js 20.19+)";

/// A running test OIDC provider. Dropping it kills the process.
#[derive(Debug)]
pub struct OidcProvider {
    child: Child,
    // Held open: the provider exits when its stdin closes, so it cannot
    // outlive a test process that dies without running Drop.
    _stdin: Option<ChildStdin>,
    issuer: String,
    port: u16,
    agent: ureq::Agent,
}

impl OidcProvider {
    /// Starts the provider on a random loopback port and waits until it is
    /// ready.
    pub fn start() -> anyhow::Result<Self> {
        let NodeScript {
            child,
            stdin,
            issuer,
            port,
        } = start_node("provider.mjs", "oauth2-mock-server", Stdio::inherit())?;
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout(Duration::from_secs(10))
            .build();
        Ok(Self {
            child,
            _stdin: stdin,
            issuer,
            port,
            agent,
        })
    }

    /// The issuer URL, `http://localhost:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The loopback port the provider listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Base URL on 127.0.0.1 (avoids a `localhost` lookup that may try
    /// `::1` first).
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Logs in as `email` (subject = email, `email_verified` = true unless
    /// the default login says otherwise) with `groups` through the real
    /// authorization-code flow with PKCE, as a browser and the CLI would:
    /// GET /authorize, read the redirect (not followed), POST /token.
    /// Returns the ID token.
    pub fn code_flow_token(
        &self,
        client_id: &str,
        email: &str,
        groups: &[&str],
    ) -> anyhow::Result<String> {
        let verifier = pkce_verifier();
        let challenge = pkce_challenge(&verifier);
        let state = format!("st{}", &verifier[..16]);
        let groups = groups.join(",");
        let response = self
            .agent
            .get(&format!("{}/authorize", self.base()))
            .query("response_type", "code")
            .query("client_id", client_id)
            .query("redirect_uri", REDIRECT_URI)
            .query("scope", "openid email profile groups")
            .query("state", &state)
            .query("nonce", &format!("n{}", &verifier[16..32]))
            .query("code_challenge", &challenge)
            .query("code_challenge_method", "S256")
            .query("login_hint", email)
            .query("groups", &groups)
            .call()
            .map_err(|err| http_error("GET /authorize", err))?;
        if response.status() != 302 {
            bail!(
                "GET /authorize answered {} instead of a redirect",
                response.status()
            );
        }
        let location = response
            .header("location")
            .context("GET /authorize redirect has no Location")?
            .to_owned();
        let query = location
            .strip_prefix(REDIRECT_URI)
            .and_then(|rest| rest.strip_prefix('?'))
            .with_context(|| format!("redirected to {location:?}, not to {REDIRECT_URI}"))?;
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_owned())
        };
        if let Some(error) = param("error") {
            bail!("GET /authorize redirected with error={error}");
        }
        if param("state").as_deref() != Some(state.as_str()) {
            bail!("GET /authorize redirect lost the state: {location:?}");
        }
        let code = param("code").context("GET /authorize redirect has no code")?;

        let tokens: Value = self
            .agent
            .post(&format!("{}/token", self.base()))
            .send_form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", client_id),
                ("code_verifier", &verifier),
            ])
            .map_err(|err| http_error("POST /token", err))?
            .into_json()
            .context("POST /token answered no JSON")?;
        tokens["id_token"]
            .as_str()
            .map(str::to_owned)
            .context("POST /token answered no id_token")
    }

    /// A token signed by the provider's published RS256 key: the defaults
    /// (`iss` = issuer, `aud` = "shiftkey", `sub`/`email`/`groups` of
    /// alice, `email_verified` = true, `iat` = now, `exp` = now + 10 min)
    /// with `overrides` merged in; a claim overridden with `null` is
    /// removed.
    pub fn mint(&self, overrides: Value) -> anyhow::Result<String> {
        self.mint_with(json!({ "claims": overrides }))
    }

    /// Like [`mint`](Self::mint) with the whole request:
    /// `{"claims": {..}, "header": {..}, "kid": "..", "key": "unpublished"}`
    /// (`key: "unpublished"` signs with a key that is not in the JWKS).
    pub fn mint_with(&self, request: Value) -> anyhow::Result<String> {
        let answer = self.post_json("/__test/mint", &request)?;
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .context("/__test/mint answered no token")
    }

    /// Publishes a new signing key (e.g. `RS256`, `ES256`, `EdDSA`) in the
    /// JWKS and returns its kid; mint with `{"kid": kid}` to use it.
    pub fn add_key(&self, alg: &str) -> anyhow::Result<String> {
        let answer = self.post_json("/__test/keys", &json!({ "alg": alg }))?;
        answer["kid"]
            .as_str()
            .map(str::to_owned)
            .context("/__test/keys answered no kid")
    }

    /// Withdraws a published key from the JWKS (as after a compromise). The
    /// key still signs tokens minted with `{"kid": kid}`.
    pub fn remove_key(&self, kid: &str) -> anyhow::Result<()> {
        let path = format!("/__test/keys/{kid}");
        self.agent
            .delete(&format!("{}{path}", self.base()))
            .call()
            .map_err(|err| http_error(&format!("DELETE {path}"), err))?;
        Ok(())
    }

    /// Sets who logs in at /authorize when a request has no `login_hint`
    /// (for flows driven by the real CLI): `{"sub", "email",
    /// "email_verified", "groups"}`, merged into the current default.
    pub fn set_default_login(&self, identity: Value) -> anyhow::Result<()> {
        self.post_json("/__test/login", &identity).map(|_| ())
    }

    /// How many times the JWKS has been fetched.
    pub fn jwks_requests(&self) -> anyhow::Result<u64> {
        let stats: Value = self
            .agent
            .get(&format!("{}/__test/stats", self.base()))
            .call()
            .map_err(|err| http_error("GET /__test/stats", err))?
            .into_json()
            .context("/__test/stats answered no JSON")?;
        stats["jwks_requests"]
            .as_u64()
            .context("/__test/stats has no jwks_requests")
    }

    fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.agent
            .post(&format!("{}{path}", self.base()))
            .send_json(body)
            .map_err(|err| http_error(&format!("POST {path}"), err))?
            .into_json()
            .with_context(|| format!("POST {path} answered no JSON"))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A provider script under `tests/oidc` started by `node`, past its ready
/// line. The caller kills `child` when done.
#[derive(Debug)]
pub(crate) struct NodeScript {
    pub(crate) child: Child,
    /// Held open by the caller: the scripts exit when their stdin closes, so
    /// they cannot outlive a test process that dies without running Drop.
    pub(crate) stdin: Option<ChildStdin>,
    /// `issuer` from the ready line.
    pub(crate) issuer: String,
    /// `port` from the ready line: where it listens on 127.0.0.1.
    pub(crate) port: u16,
}

/// Starts `node tests/oidc/SCRIPT 0` (a random loopback port) and waits for
/// its JSON ready line. Fails with the install hint when `node` or the npm
/// `package` the script needs is missing; `stderr` is where the script's
/// diagnostics go.
pub(crate) fn start_node(script: &str, package: &str, stderr: Stdio) -> anyhow::Result<NodeScript> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc");
    let script = dir.join(script);
    if !script.is_file() {
        bail!("{} is missing", script.display());
    }
    if !dir.join("node_modules").join(package).is_dir() {
        bail!(
            "the npm package {package} that {} needs is not installed in {}; {INSTALL_HINT}",
            script.display(),
            dir.display()
        );
    }
    let mut child = Command::new("node")
        .arg(&script)
        .arg("0")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                anyhow!("`node` is not on PATH; install Node.js 20.19+, then run `{NPM_CI}`")
            } else {
                anyhow!("starting node {}: {err}", script.display())
            }
        })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("node stdout was not piped")?;

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(result);
    });
    let name = script.display();
    let ready = match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(line)) if !line.trim().is_empty() => line,
        Ok(Ok(_)) => {
            let status = child.wait().ok();
            bail!("{name} exited before it was ready ({status:?}); see its stderr; {INSTALL_HINT}")
        }
        Ok(Err(err)) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("reading the ready line of {name}: {err}")
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{name} printed no ready line within {READY_TIMEOUT:?}")
        }
    };
    let parsed = serde_json::from_str::<Value>(ready.trim())
        .ok()
        .and_then(|ready| {
            let issuer = ready["issuer"].as_str()?.to_owned();
            let port = u16::try_from(ready["port"].as_u64()?).ok()?;
            Some((issuer, port))
        });
    let Some((issuer, port)) = parsed else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("the ready line of {name} is not JSON with `issuer` and `port`: {ready:?}")
    };
    Ok(NodeScript {
        child,
        stdin,
        issuer,
        port,
    })
}

pub(crate) fn http_error(what: &str, err: ureq::Error) -> anyhow::Error {
    match err {
        ureq::Error::Status(code, response) => {
            let body = response.into_string().unwrap_or_default();
            anyhow!("{what} answered {code}: {body}")
        }
        ureq::Error::Transport(transport) => anyhow!("{what} failed: {transport}"),
    }
}

/// 64 characters from [A-Za-z0-9-._~], unique per call. Test code: it needs
/// to be well-formed, not unguessable.
fn pkce_verifier() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!(
        "{nanos}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let digest = sha256(seed.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// S256: BASE64URL(SHA256(verifier)) without padding.
fn pkce_challenge(verifier: &str) -> String {
    base64url(&sha256(verifier.as_bytes()))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn base64url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}
