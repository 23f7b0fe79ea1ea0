//! The `shiftkey` client as an on-call engineer uses it: sign in through a
//! real OIDC provider (the test plays the browser), `access` a role, then
//! plain `ssh` with the agent to a real sshd that trusts only the CA.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::oidc::OidcProvider;
use shiftkey_tests::ssh_agent::SshAgent;
use shiftkey_tests::sshd::{Sshd, principals_config};
use shiftkey_tests::util::{binary, ensure_login_user, run};

use crate::fixtures::{LOGIN_USER, policy};

const CLIENT_ID: &str = "shiftkey-e2e";

/// A user's world: a home, a runtime dir for the token cache, an agent.
struct User {
    home: tempfile::TempDir,
    runtime: tempfile::TempDir,
    agent: SshAgent,
    ca_url: String,
    ca_cert: PathBuf,
}

impl User {
    fn new(ca: &TestCa) -> anyhow::Result<Self> {
        let home = tempfile::tempdir()?;
        let runtime = tempfile::tempdir()?;
        std::fs::set_permissions(
            runtime.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let agent = SshAgent::start(runtime.path())?;
        Ok(Self {
            home,
            runtime,
            agent,
            ca_url: ca.url(""),
            ca_cert: ca.data_dir().join("tls/cert.pem"),
        })
    }

    /// `shiftkey ARGS` in this user's environment (and working directory).
    fn command(&self, args: &[&str]) -> anyhow::Result<Command> {
        let mut cmd = Command::new(binary("shiftkey")?);
        cmd.args(args)
            .current_dir(self.home.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_RUNTIME_DIR", self.runtime.path())
            .env("SSH_AUTH_SOCK", &self.agent.socket)
            .env("BROWSER", "none")
            .stdin(Stdio::null());
        Ok(cmd)
    }

    fn shiftkey(&self, args: &[&str]) -> anyhow::Result<Output> {
        run(&mut self.command(args)?)
    }

    /// `shiftkey login`, clicking through the provider like a browser.
    fn login(&self) -> anyhow::Result<()> {
        self.login_as("alice@example.com")
    }

    /// Like [`login`](Self::login), for whoever the provider signs in.
    fn login_as(&self, email: &str) -> anyhow::Result<()> {
        let cert = self.ca_cert.to_string_lossy().into_owned();
        let mut child = self
            .command(&[
                "login",
                "--ca",
                &self.ca_url,
                "--ca-cert",
                &cert,
                "--no-browser",
            ])?
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let url = loop {
            let Some(line) = lines.next().transpose()? else {
                bail!("shiftkey login printed no URL:\n{}", seen.join("\n"));
            };
            if let Some(url) = line
                .trim()
                .strip_prefix("http")
                .map(|rest| format!("http{rest}"))
            {
                break url;
            }
            seen.push(line);
        };
        browse(&url)?;
        let status = child.wait()?;
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        if !status.success() {
            bail!(
                "shiftkey login failed: {}\n{}",
                seen.join("\n"),
                rest.join("\n")
            );
        }
        let expected = format!("Signed in as user:{email}");
        assert!(rest.iter().any(|l| l.contains(&expected)), "{rest:?}");
        Ok(())
    }
}

/// What a browser does with the authorization URL: the provider redirects
/// to the client's loopback callback, which the browser then loads.
fn browse(url: &str) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = client.get(url).send()?;
    let location = answer
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .with_context(|| format!("the provider did not redirect: {}", answer.status()))?
        .to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:"),
        "loopback redirect: {location}"
    );
    let page = client.get(&location).send()?;
    assert!(
        page.status().is_success(),
        "callback answered {}",
        page.status()
    );
    Ok(())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir` that holds an OpenSSH (or any PEM) private key.
fn private_keys_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(Result::ok).map(|e| e.path()));
            }
        } else if std::fs::read(&path)
            .is_ok_and(|bytes| bytes.windows(11).any(|w| w == b"PRIVATE KEY"))
        {
            found.push(path);
        }
    }
    found
}

fn setup() -> anyhow::Result<(OidcProvider, TestCa, User)> {
    ensure_login_user(LOGIN_USER)?;
    let provider = OidcProvider::start()?;
    provider.set_default_login(
        json!({ "sub": "alice", "email": "alice@example.com", "groups": ["sre"] }),
    )?;
    let ca = TestCa::init(&policy().0, Some((provider.issuer(), CLIENT_ID)))?.start()?;
    let user = User::new(&ca)?;
    Ok((provider, ca, user))
}

#[test]
fn login_access_and_plain_ssh_until_the_agent_forgets() -> anyhow::Result<()> {
    let (_provider, ca, user) = setup()?;
    user.login()?;
    // One cache file, for this CA only.
    let cached: Vec<PathBuf> = std::fs::read_dir(user.runtime.path().join("shiftkey"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("token-"))
        })
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let token = cached[0].clone();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&token)?.permissions()) & 0o777;
    assert_eq!(mode, 0o600, "the token cache is private");

    let who = user.shiftkey(&["whoami", "--json"])?;
    assert!(who.status.success(), "{}", stderr(&who));
    let who: Value = serde_json::from_str(&stdout(&who))?;
    assert_eq!(who["identity"], "user:alice@example.com");

    let out = user.shiftkey(&[
        "access",
        "shell",
        "--reason",
        "e2e: check the client",
        "--ttl",
        "15s",
        "--json",
    ])?;
    assert!(out.status.success(), "{}\n{}", stderr(&out), ca.log());
    let access: Value = serde_json::from_str(&stdout(&out))?;
    // The login scoped to its role; `shiftkey access` shows what to ssh as.
    assert_eq!(access["principals"], json!([format!("{LOGIN_USER}@shell")]));
    assert_eq!(access["hosts"], json!(["127.0.0.1"]));
    assert_eq!(access["placed_in"], "ssh-agent");
    let valid_before = access["valid_before"].as_u64().unwrap_or(0);

    // The agent holds the key and certificate; nothing on disk does.
    let listed = user.agent.list()?;
    assert!(listed.contains("(ED25519-CERT)"), "{listed}");
    assert!(
        private_keys_under(user.home.path()).is_empty(),
        "no private key under HOME or the working directory"
    );
    assert!(private_keys_under(user.runtime.path()).is_empty());

    let status = user.shiftkey(&["status", "--json"])?;
    let status: Value = serde_json::from_str(&stdout(&status))?;
    assert_eq!(status["certificates"][0]["role"], "shell");
    assert_eq!(status["certificates"][0]["serial"], access["serial"]);

    // Plain ssh with the agent, to an sshd that trusts only the CA and
    // lists the role's principal for the login, as an enrolled host does.
    let user_ca = ca.client().get(ca.url("/v1/ca/user.pub")).send()?.text()?;
    // Not under the 0700 runtime dir: sshd reads principals files as the login.
    let host = tempfile::tempdir()?;
    let sshd_dir = host.path().join("sshd");
    let sshd = Sshd::start_with_extra(
        &sshd_dir,
        &user_ca,
        &principals_config(&sshd_dir, LOGIN_USER, &[&format!("{LOGIN_USER}@shell")])?,
    )?;
    let ok = sshd.ssh_with_agent(&user.agent.socket, LOGIN_USER, "id -un")?;
    assert!(ok.status.success(), "{}\n{}", stderr(&ok), sshd.log());
    assert_eq!(stdout(&ok).trim(), LOGIN_USER);

    // At the end of the certificate's life the agent forgets key and
    // certificate, and ssh is refused.
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    std::thread::sleep(Duration::from_secs(valid_before.saturating_sub(now) + 2));
    assert!(
        !user.agent.list()?.contains("ED25519-CERT"),
        "the agent dropped it at expiry"
    );
    let late = sshd.ssh_with_agent(&user.agent.socket, LOGIN_USER, "true")?;
    assert!(!late.status.success());

    let logout = user.shiftkey(&["logout"])?;
    assert!(logout.status.success(), "{}", stderr(&logout));
    assert!(!token.exists(), "logout removes the cached token");
    Ok(())
}

#[test]
fn failures_say_what_to_do_next() -> anyhow::Result<()> {
    let (provider, ca, user) = setup()?;
    user.login()?;

    // Role denied by the policy: the CA's reason, non-zero exit.
    let denied = user.shiftkey(&["access", "db-debug"])?;
    assert!(!denied.status.success());
    assert!(stderr(&denied).contains("incident"), "{}", stderr(&denied));

    // No agent running.
    let no_agent = run(user
        .command(&["access", "shell"])?
        .env_remove("SSH_AUTH_SOCK"))?;
    assert!(!no_agent.status.success());
    assert!(
        stderr(&no_agent).contains("ssh-agent"),
        "{}",
        stderr(&no_agent)
    );

    // An expired token from a pipeline.
    let now = chrono::Utc::now().timestamp();
    let expired = provider.mint(json!({ "aud": CLIENT_ID, "email": "alice@example.com", "iat": now - 7200, "exp": now - 3600 }))?;
    let file = user.runtime.path().join("ci-token");
    std::fs::write(&file, expired)?;
    let out = user.shiftkey(&[
        "access",
        "shell",
        "--id-token-file",
        &file.to_string_lossy(),
    ])?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("expired") && stderr(&out).contains("pipeline mint a fresh one"),
        "a pipeline's token gets advice for the pipeline: {}",
        stderr(&out)
    );

    // Not logged in at all.
    let out = run(user
        .command(&["access", "shell"])?
        .env("XDG_RUNTIME_DIR", user.home.path().join("nowhere")))?;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("shiftkey login"), "{}", stderr(&out));

    // The CA is down.
    let mut ca = ca;
    ca.stop()?;
    let down = user.shiftkey(&["access", "shell"])?;
    assert!(!down.status.success());
    assert!(
        stderr(&down).contains("cannot reach the CA"),
        "{}",
        stderr(&down)
    );
    Ok(())
}

#[test]
fn pinned_fingerprint_local_socket_out_dir_and_ssh_config() -> anyhow::Result<()> {
    let (_provider, ca, user) = setup()?;
    // Trust by fingerprint instead of a bundle: the right pin works...
    let pem = std::fs::read_to_string(ca.data_dir().join("tls/cert.pem"))?;
    let der = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let der = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(der)?
    };
    let pin = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&der))
    };
    let config = user.home.path().join("pinned.toml");
    let config = config.to_string_lossy();
    let pinned = user.shiftkey(&[
        "roles",
        "--ca",
        &user.ca_url,
        "--ca-fingerprint",
        &pin,
        "--config",
        &config,
        "--id-token-env",
        "NOPE",
    ])?;
    assert!(
        stderr(&pinned).contains("$NOPE is not set"),
        "{}",
        stderr(&pinned)
    );
    user.login()?;
    let good = user.shiftkey(&["roles", "--ca-fingerprint", &pin])?;
    assert!(good.status.success(), "{}", stderr(&good));
    assert!(stdout(&good).contains("db-debug"), "{}", stdout(&good));
    // ...a wrong one refuses the connection.
    let wrong = user.shiftkey(&["roles", "--ca-fingerprint", &"00".repeat(32)])?;
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("not the pinned one"),
        "{}",
        stderr(&wrong)
    );

    // ssh-config: Host blocks for the roles, the host CA for known_hosts.
    let out = user.shiftkey(&["ssh-config", "--install"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let conf = std::fs::read_to_string(user.home.path().join(".ssh/shiftkey.conf"))?;
    assert!(
        conf.contains("Host db-*.prod.example.com\n    User postgres"),
        "{conf}"
    );
    let known = std::fs::read_to_string(user.home.path().join(".ssh/shiftkey_known_hosts"))?;
    let host_ca = ca.client().get(ca.url("/v1/ca/host.pub")).send()?.text()?;
    assert!(
        known.contains(&format!(
            "@cert-authority 127.0.0.1,db-*.prod.example.com {}",
            host_ca.trim()
        )),
        "{known}"
    );
    user.shiftkey(&["ssh-config", "--install"])?;
    let main = std::fs::read_to_string(user.home.path().join(".ssh/config"))?;
    assert_eq!(
        main.matches("Include shiftkey.conf").count(),
        1,
        "idempotent"
    );

    // On the CA host, the local socket needs no login; --out for CI writes 0600 files.
    let out_dir = user.home.path().join("ci-keys");
    std::fs::create_dir(&out_dir)?;
    let config = user.home.path().join("local.toml");
    let config = config.to_string_lossy();
    let socket = format!("unix:{}", ca.socket().display());
    let out = run(user
        .command(&[
            "access",
            "shell",
            "--ca",
            &socket,
            "--out",
            &out_dir.to_string_lossy(),
            "--config",
            &config,
        ])?
        .env_remove("SSH_AUTH_SOCK"))?;
    assert!(out.status.success(), "{}", stderr(&out));
    let key = out_dir.join("id_ed25519");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key)?.permissions()) & 0o777;
    assert_eq!(mode, 0o600);
    let listing = run(Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(out_dir.join("id_ed25519-cert.pub")))?;
    assert!(
        stdout(&listing).contains("local:root role=shell"),
        "{}",
        stdout(&listing)
    );
    Ok(())
}

#[test]
fn ssh_config_makes_plain_ssh_trust_the_host_without_a_prompt() -> anyhow::Result<()> {
    let (_provider, ca, user) = setup()?;
    user.login()?;
    let out = user.shiftkey(&["access", "shell"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = user.shiftkey(&["ssh-config", "--install"])?;
    assert!(out.status.success(), "{}", stderr(&out));

    // sshd presents a host certificate from the CA's host key; the client
    // knows nothing of this host but the @cert-authority line.
    let user_ca = ca.client().get(ca.url("/v1/ca/user.pub")).send()?.text()?;
    let host_ca = ca.data_dir().join("keys/host_ca");
    // Not under the 0700 runtime dir: sshd reads principals files as the login.
    let host = tempfile::tempdir()?;
    let sshd_dir = host.path().join("sshd");
    let sshd = Sshd::start_with_host_ca_and_extra(
        &sshd_dir,
        &user_ca,
        Some(&host_ca),
        &principals_config(&sshd_dir, LOGIN_USER, &[&format!("{LOGIN_USER}@shell")])?,
    )?;
    let config = user.home.path().join(".ssh/shiftkey.conf");
    let ok = sshd.ssh_with_config(&config, &user.agent.socket, "id -un")?;
    assert!(
        ok.status.success(),
        "ssh with the generated config: {}\n{}",
        stderr(&ok),
        sshd.log()
    );
    assert_eq!(
        stdout(&ok).trim(),
        LOGIN_USER,
        "User comes from the role's principal"
    );

    // The same host with a plain (uncertified) host key is refused outright:
    // StrictHostKeyChecking yes, and no trust on first use.
    let plain = Sshd::start(&user.runtime.path().join("sshd-plain"), &user_ca)?;
    let refused = plain.ssh_with_config(&config, &user.agent.socket, "true")?;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("Host key verification failed"),
        "{}",
        stderr(&refused)
    );
    Ok(())
}

#[test]
fn device_grant_login_through_the_binary() -> anyhow::Result<()> {
    use shiftkey_tests::device_provider::{Answer, Browser, DeviceProvider};
    let provider = DeviceProvider::start()?;
    provider.set_device(&json!({ "interval": 1 }))?;
    let ca = TestCa::init(&policy().0, Some((provider.issuer(), "shiftkey")))?.start()?;
    let user = User::new(&ca)?;
    let cert = user.ca_cert.to_string_lossy().into_owned();
    let mut child = user
        .command(&[
            "login",
            "--device",
            "--ca",
            &user.ca_url,
            "--ca-cert",
            &cert,
        ])?
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let mut seen = Vec::new();
    let url = loop {
        let Some(line) = lines.next().transpose()? else {
            bail!(
                "shiftkey login --device showed no code:\n{}",
                seen.join("\n")
            );
        };
        if let Some(url) = line.strip_prefix("To sign in, open ") {
            break url.trim().to_owned();
        }
        seen.push(line);
    };
    // The user approves on "another device": the provider's own pages.
    let page = Browser::new()?.sign_in(&url, "alice@example.com", Answer::Approve)?;
    assert_eq!(page.status, 200, "{}", page.body);
    let status = child.wait()?;
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "{}\n{}", seen.join("\n"), rest.join("\n"));
    assert!(
        rest.iter()
            .any(|l| l.contains("Signed in as user:alice@example.com")),
        "{rest:?}"
    );

    let who = user.shiftkey(&["whoami", "--json"])?;
    let who: Value = serde_json::from_str(&stdout(&who))?;
    assert_eq!(who["identity"], "user:alice@example.com");
    Ok(())
}

#[test]
fn incidents_from_the_client_open_access_and_resolving_revokes_it() -> anyhow::Result<()> {
    let (_provider, ca, user) = setup()?;
    user.login()?;
    // The policy lets SREs open small incidents, not a sev1.
    let open = |id: &str, severity: &str| {
        user.shiftkey(&[
            "incident",
            "open",
            "--title",
            "primary db slow",
            "--severity",
            severity,
            "--id",
            id,
            "--json",
        ])
    };
    let out = open("INC-98", "sev1")?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("may not open a sev1 incident"),
        "{}",
        stderr(&out)
    );
    let out = open("INC-99", "sev3")?;
    assert!(out.status.success(), "{}", stderr(&out));
    let opened: Value = serde_json::from_str(&stdout(&out))?;
    assert_eq!(
        (opened["id"].as_str(), opened["status"].as_str()),
        (Some("INC-99"), Some("open"))
    );

    // An incident alice opened herself does not unlock db-debug for her.
    let ask = |incident: &str, role: &str| {
        user.shiftkey(&[
            "access",
            role,
            "--incident",
            incident,
            "--reason",
            "failover",
            "--json",
        ])
    };
    let out = ask("INC-99", "db-debug")?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not count an incident its requester opened"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        ca.last_audit("certificate.denied")?["detail"]["denied"],
        "self-served"
    );

    // Access tied to her incident where the role does not require one.
    let out = ask("INC-99", "shell")?;
    assert!(out.status.success(), "{}\n{}", stderr(&out), ca.log());
    let access: Value = serde_json::from_str(&stdout(&out))?;
    assert!(
        access["key_id"]
            .as_str()
            .unwrap_or_default()
            .contains("incident=INC-99"),
        "{access}"
    );

    // One the pager opened (here the CA host's root) counts.
    let (status, page) = ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-97", "title": "primary db down", "severity": "sev1" }),
    )?;
    assert_eq!(status, 201, "{page}");
    let out = ask("INC-97", "db-debug")?;
    assert!(out.status.success(), "{}\n{}", stderr(&out), ca.log());

    let out = user.shiftkey(&["incident", "list", "--json"])?;
    let listed: Value = serde_json::from_str(&stdout(&out))?;
    assert!(
        listed
            .as_array()
            .is_some_and(|l| l.iter().any(|i| i["id"] == "INC-99")),
        "{listed}"
    );

    // She resolves her own incident, not the pager's.
    let out = user.shiftkey(&["incident", "resolve", "INC-97", "--json"])?;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("may not resolve"), "{}", stderr(&out));
    let out = user.shiftkey(&["incident", "resolve", "INC-99", "--json"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let resolved: Value = serde_json::from_str(&stdout(&out))?;
    assert_eq!(resolved["revoked_serials"], json!([access["serial"]]));

    let out = ask("INC-99", "shell")?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("INC-99 is resolved"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn oncall_shows_who_is_on_call_now_and_next() -> anyhow::Result<()> {
    let (_provider, _ca, user) = setup()?;
    let (_, shift_end) = policy();
    user.login()?;
    let out = user.shiftkey(&["oncall", "primary", "--json"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let schedules: Value = serde_json::from_str(&stdout(&out))?;
    let primary = &schedules[0];
    assert_eq!(primary["schedule"], "primary");
    assert_eq!(primary["now"][0]["member"], "user:alice@example.com");
    assert_eq!(primary["next"][0]["member"], "user:bob@example.com");
    let end = primary["now"][0]["end"].as_i64().unwrap_or(0);
    assert!(
        (end - i64::try_from(shift_end)?).abs() <= 60,
        "alice's shift ends at the handoff: {end} vs {shift_end}"
    );
    assert_eq!(primary["next"][0]["start"], primary["now"][0]["end"]);
    let text = user.shiftkey(&["oncall"])?;
    assert!(
        stdout(&text).contains("now   user:alice@example.com  until"),
        "{}",
        stdout(&text)
    );
    let unknown = user.shiftkey(&["oncall", "nope"])?;
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no schedule"),
        "{}",
        stderr(&unknown)
    );
    Ok(())
}

#[test]
fn access_waits_for_an_approval_given_with_shiftkey_approve() -> anyhow::Result<()> {
    ensure_login_user(LOGIN_USER)?;
    let provider = OidcProvider::start()?;
    let roles = "\n[[role]]\nname = \"reviewed\"\nprincipals = [\"deploy\"]\nhosts = [\"app-1.prod.example.com\"]\n\
                 approvals = 1\napprovers = [\"group:sre\"]\n\n[[grant]]\nidentities = [\"group:sre\"]\nroles = [\"reviewed\"]\n";
    let ca = TestCa::init(
        &format!("{}{roles}", policy().0),
        Some((provider.issuer(), CLIENT_ID)),
    )?
    .start()?;
    let carol = User::new(&ca)?;
    let bob = User::new(&ca)?;
    provider.set_default_login(
        json!({ "sub": "carol", "email": "carol@example.com", "groups": ["sre"] }),
    )?;
    carol.login_as("carol@example.com")?;
    provider.set_default_login(
        json!({ "sub": "bob", "email": "bob@example.com", "groups": ["sre"] }),
    )?;
    bob.login_as("bob@example.com")?;

    // Carol asks; her `access` waits for the approval.
    let waiting = carol
        .command(&[
            "access",
            "reviewed",
            "--reason",
            "deploy hotfix 1.2.3",
            "--json",
            "--wait",
            "60s",
        ])?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;

    // Bob finds it and approves it.
    let mut id = String::new();
    for _ in 0..50 {
        let out = bob.shiftkey(&["requests", "--json"])?;
        let list: Value = serde_json::from_str(&stdout(&out)).unwrap_or(Value::Null);
        if let Some(found) = list
            .as_array()
            .and_then(|l| l.first())
            .and_then(|r| r["id"].as_str())
        {
            id = found.to_owned();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!id.is_empty(), "bob sees carol's pending request");
    let own = carol.shiftkey(&["approve", &id])?;
    assert!(!own.status.success(), "self-approval is refused");
    assert!(
        stderr(&own).contains("nobody approves a request of their own person"),
        "{}",
        stderr(&own)
    );
    let refused = ca.last_audit("authority.denied")?;
    assert_eq!(refused["actor"], "user:carol@example.com");
    assert_eq!(refused["detail"]["denied"], "self-approval");
    let approved = bob.shiftkey(&["approve", &id, "--reason", "reviewed the change"])?;
    assert!(approved.status.success(), "{}", stderr(&approved));

    let done = waiting.wait_with_output()?;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let access: Value = serde_json::from_str(&String::from_utf8_lossy(&done.stdout))?;
    assert!(
        access["key_id"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("req={id}")),
        "{access}"
    );
    assert!(
        carol.agent.list()?.contains("(ED25519-CERT)"),
        "the certificate is in carol's agent"
    );
    Ok(())
}

#[test]
fn an_override_covers_a_shift_for_access_and_oncall() -> anyhow::Result<()> {
    let (provider, ca, alice) = setup()?;
    alice.login()?;
    let (status, _) = ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-3", "title": "db slow", "severity": "sev2" }),
    )?;
    assert_eq!(status, 201);

    // Alice hands her shift to bob for an hour.
    let out = alice.shiftkey(&[
        "oncall",
        "override",
        "primary",
        "--member",
        "user:bob@example.com",
        "--for",
        "1h",
        "--reason",
        "covering while alice is at the dentist",
    ])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let row = ca.last_audit("oncall.override")?;
    assert_eq!(row["actor"], "user:alice@example.com");
    assert_eq!(row["detail"]["member"], "user:bob@example.com");

    let now: Value =
        serde_json::from_str(&stdout(&alice.shiftkey(&["oncall", "primary", "--json"])?))?;
    assert_eq!(now[0]["now"][0]["member"], "user:bob@example.com", "{now}");

    // Bob, not on the rotation now, gets database access during the cover;
    // alice, covered, does not.
    let bob = User::new(&ca)?;
    provider.set_default_login(
        json!({ "sub": "bob", "email": "bob@example.com", "groups": ["sre"] }),
    )?;
    bob.login_as("bob@example.com")?;
    let out = bob.shiftkey(&["access", "db-debug", "--incident", "INC-3", "--json"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = alice.shiftkey(&["access", "db-debug", "--incident", "INC-3"])?;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("on call"), "{}", stderr(&out));

    // Overrides are checked: a bad member or a past window is refused.
    let bad = alice.shiftkey(&[
        "oncall", "override", "primary", "--member", "bob", "--for", "1h", "--reason", "x y z",
    ])?;
    assert!(!bad.status.success());

    // The overrides in force, listed; shortening and deleting one is the
    // policy's to allow (here: the admins only), every change audited.
    let listed: Value = serde_json::from_str(&stdout(&alice.shiftkey(&[
        "oncall",
        "overrides",
        "--json",
    ])?))?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["member"], "user:bob@example.com");
    assert_eq!(listed[0]["created_by"], "user:alice@example.com");
    let id = listed[0]["id"].as_str().unwrap_or_default().to_owned();
    assert!(id.starts_with("ov_"), "{listed}");
    let table = stdout(&alice.shiftkey(&["oncall", "overrides"])?);
    assert!(table.starts_with("ID") && table.contains(&id), "{table}");
    for args in [
        vec![
            "oncall",
            "overrides",
            "delete",
            &id,
            "--reason",
            "not needed",
        ],
        vec![
            "oncall",
            "overrides",
            "shorten",
            &id,
            "--in",
            "10m",
            "--reason",
            "back early",
        ],
    ] {
        let refused = bob.shiftkey(&args)?;
        assert!(!refused.status.success());
        assert!(stderr(&refused).contains("may not"), "{}", stderr(&refused));
    }
    let denied = ca.last_audit("authority.denied")?;
    assert_eq!(denied["actor"], "user:bob@example.com");
    assert_eq!(denied["detail"]["action"], "override.shorten");
    let root = |args: &[&str]| -> anyhow::Result<Output> {
        run(Command::new(binary("shiftkey")?)
            .arg("--ca")
            .arg(format!("unix:{}", ca.socket().display()))
            .args(args))
    };
    let out = root(&[
        "oncall",
        "overrides",
        "shorten",
        &id,
        "--in",
        "30m",
        "--reason",
        "back early",
        "--json",
    ])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let shortened: Value = serde_json::from_str(&stdout(&out))?;
    let end = shortened["end"].as_i64().unwrap_or_default();
    let expected = chrono::Utc::now().timestamp() + 30 * 60;
    assert!((expected - 60..=expected).contains(&end), "{shortened}");
    let row = ca.last_audit("oncall.override_shortened")?;
    assert_eq!(row["actor"], "local:root");
    assert_eq!(row["detail"]["override"], id.as_str());
    let out = root(&[
        "oncall",
        "overrides",
        "delete",
        &id,
        "--reason",
        "bob is back",
    ])?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        ca.last_audit("oncall.override_deleted")?["detail"]["override"],
        id.as_str()
    );
    let (status, left) = ca.local("GET", "/v1/oncall/overrides", &Value::Null)?;
    assert_eq!((status, left), (200, json!([])));
    let out = root(&["oncall", "overrides", "delete", &id, "--reason", "again"])?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no on-call override"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

/// `shiftkey-ca keys ARGS --yes --json --data-dir DIR`: the phase's first
/// result line.
fn key_phase(ca: &TestCa, args: &[&str]) -> anyhow::Result<Value> {
    let out = run(Command::new(binary("shiftkey-ca")?)
        .arg("keys")
        .args(args)
        .args(["--yes", "--json", "--data-dir"])
        .arg(ca.data_dir())
        .stdin(Stdio::null()))?;
    anyhow::ensure!(out.status.success(), "keys {args:?}: {}", stderr(&out));
    let first = stdout(&out).lines().next().unwrap_or_default().to_owned();
    Ok(serde_json::from_str(&first)?)
}

/// The signing CA fingerprint of each certificate the agent holds, by
/// serial (`ssh-add -L`, `ssh-keygen -L`).
fn agent_certificates(user: &User) -> anyhow::Result<Vec<(u64, String)>> {
    let out = run(Command::new("ssh-add")
        .arg("-L")
        .env("SSH_AUTH_SOCK", &user.agent.socket))?;
    let mut found = Vec::new();
    for (i, line) in stdout(&out).lines().enumerate() {
        if !line.contains("-cert-v01@openssh.com") {
            continue;
        }
        let file = user.runtime.path().join(format!("held-{i}-cert.pub"));
        std::fs::write(&file, format!("{line}\n"))?;
        let shown = run(Command::new("ssh-keygen").arg("-L").arg("-f").arg(&file))?;
        let text = stdout(&shown);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(str::to_owned))
        };
        let serial = field("Serial: ").and_then(|s| s.trim().parse().ok());
        let signer =
            field("Signing CA: ").and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
        if let (Some(serial), Some(signer)) = (serial, signer) {
            found.push((serial, signer));
        }
    }
    Ok(found)
}

/// After a rotation, `access` accepts and `status` recognises a
/// certificate from the new key without a new login (they fetch the CA's
/// keys); with the CA down, `status` uses the keys it saved.
#[test]
fn status_and_access_follow_a_rotation_without_a_new_login() -> anyhow::Result<()> {
    let (_provider, mut ca, user) = setup()?;
    user.login()?;
    let next = key_phase(&ca, &["rotate", "--user"])?["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The serving CA publishes the next key (it follows the phase through
    // its event stream) before it may sign with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ca
        .client()
        .get(ca.url("/v1/ca/user.pub"))
        .send()?
        .text()?
        .lines()
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "{}", ca.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    key_phase(&ca, &["activate", "--user"])?;

    // The serving CA follows the phase through its event stream: ask until
    // a certificate comes from the next key.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let serial = loop {
        let out = user.shiftkey(&[
            "access",
            "shell",
            "--reason",
            "e2e: after a rotation",
            "--ttl",
            "10m",
            "--json",
        ])?;
        assert!(out.status.success(), "{}\n{}", stderr(&out), ca.log());
        let access: Value = serde_json::from_str(&stdout(&out))?;
        let serial = access["serial"].as_u64().unwrap_or_default();
        let held = agent_certificates(&user)?;
        if held.contains(&(serial, next.clone())) {
            break serial;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the CA never signed with {next}: {held:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };

    let status = user.shiftkey(&["status", "--json"])?;
    assert!(status.status.success(), "{}", stderr(&status));
    let status: Value = serde_json::from_str(&stdout(&status))?;
    assert_eq!(status["ca_keys"], "ca", "{status}");
    let serials: Vec<u64> = status["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["serial"].as_u64())
        .collect();
    assert!(
        serials.contains(&serial),
        "status recognises the new key's certificate: {status}"
    );

    // Offline: the keys saved by the last status serve.
    ca.stop()?;
    let status = user.shiftkey(&["status", "--json"])?;
    assert!(status.status.success(), "{}", stderr(&status));
    let status: Value = serde_json::from_str(&stdout(&status))?;
    assert_eq!(status["ca_keys"], "saved", "{status}");
    assert!(
        status["certificates"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["serial"].as_u64() == Some(serial)),
        "{status}"
    );
    Ok(())
}
