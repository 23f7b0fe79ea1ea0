//! The review UI's one-time sign-in link (`shiftkey-ca ui link`), end to
//! end: a CA with `[ui]` and no identity provider (the quickstart's case),
//! the link used over real HTTPS from loopback, from this machine's other
//! address, twice and too late, and opened in Debian's chromium.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::oidc::OidcProvider;
use shiftkey_tests::util::free_port;

use crate::fixtures::policy;
use crate::ui::{drive_script, page_status, screenshots_dir, set_cookie};

const SESSION: &str = "__Secure-shiftkey-ui";

/// A CA with `[ui]` (and `[oidc]` when `provider` is given), listening on
/// every address (so that a request can come from a peer that is not
/// loopback).
fn start_ca(provider: Option<&OidcProvider>, extra_ui: &str) -> anyhow::Result<TestCa> {
    // The port is chosen before the CA binds it (public_url names it), so
    // another test may take it first: try another.
    let mut tries = 0;
    loop {
        match start_ca_once(provider, extra_ui) {
            Err(e) if tries < 4 && format!("{e:#}").contains("Address already in use") => {
                tries += 1;
            }
            started => return started,
        }
    }
}

fn start_ca_once(provider: Option<&OidcProvider>, extra_ui: &str) -> anyhow::Result<TestCa> {
    let (text, _) = policy();
    let mut ca = TestCa::init(&text, provider.map(|p| (p.issuer(), "shiftkey-ui-link")))?;
    let port = free_port();
    let path = ca.data_dir().join("ca.toml");
    let config = std::fs::read_to_string(&path)?.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"0.0.0.0:{port}\""),
    );
    std::fs::write(
        &path,
        format!("{config}\n[ui]\npublic_url = \"https://127.0.0.1:{port}\"\n{extra_ui}"),
    )?;
    ca.port = port;
    ca.start()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `shiftkey-ca ui link --json` as the user running the tests (root).
fn link(ca: &TestCa, ttl: &str) -> anyhow::Result<String> {
    let dir = ca.data_dir().display().to_string();
    let out = ca.cli(&["ui", "link", "--data-dir", &dir, "--ttl", ttl, "--json"])?;
    ensure!(
        out.status.success(),
        "ui link failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(stdout(&out).trim())?;
    ensure!(answer["identity"] == "local:root", "{answer}");
    answer["url"]
        .as_str()
        .map(str::to_owned)
        .context("no url in the answer")
}

/// This machine's address on its default route: not loopback.
fn other_address() -> anyhow::Result<IpAddr> {
    // Connecting a UDP socket sends nothing; it only picks the source address.
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket
        .connect("192.0.2.1:9")
        .context("this machine has no route off loopback, which the test needs")?;
    let ip = socket.local_addr()?.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        bail!("this machine has no address but loopback ({ip}), which the test needs");
    }
    Ok(ip)
}

/// GET `url` (from loopback, or from `from` by connecting to that address).
fn open(url: &str, via: Option<SocketAddr>) -> anyhow::Result<reqwest::blocking::Response> {
    let mut client = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    if let Some(addr) = via {
        // The link names 127.0.0.1; reach the same port at the other address.
        client = client.resolve("link.test", addr);
    }
    let client = client.build()?;
    let url = match via {
        Some(addr) => url.replace(
            &format!("127.0.0.1:{}", addr.port()),
            &format!("link.test:{}", addr.port()),
        ),
        None => url.to_owned(),
    };
    Ok(client.get(url).send()?)
}

fn refusals(ca: &TestCa) -> anyhow::Result<Vec<Value>> {
    Ok(ca
        .audit_rows()?
        .into_iter()
        .filter(|r| r["kind"] == "ui.link_refused")
        .collect())
}

#[test]
fn a_one_time_link_signs_the_local_user_in_once_from_loopback_only() -> anyhow::Result<()> {
    // No identity provider: the quickstart's case.
    let ca = start_ca(None, "")?;
    let url = link(&ca, "5m")?;
    ensure!(
        url.starts_with(&format!("https://127.0.0.1:{}/ui/link?token=", ca.port)),
        "{url}"
    );
    let issued = ca.last_audit("ui.link_issued")?;
    ensure!(issued["actor"] == "local:root", "{issued}");
    ensure!(
        !issued
            .to_string()
            .contains(url.rsplit('=').next().unwrap_or("?")),
        "the token is not in the audit log"
    );

    // From this machine's other address: refused, audited, and not used up.
    let other = SocketAddr::new(other_address()?, ca.port);
    let response = open(&url, Some(other))?;
    ensure!(
        response.status() == 403,
        "from {other}: {}",
        response.status()
    );
    ensure!(set_cookie(&response, SESSION).is_none());
    let refused = refusals(&ca)?;
    ensure!(
        refused.last().is_some_and(|r| r["detail"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("not loopback"))),
        "{refused:?}"
    );
    // Through a proxy on this machine (a forwarding header): refused too.
    let proxied = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(&url)
        .header("X-Forwarded-For", "203.0.113.7")
        .send()?;
    ensure!(proxied.status() == 403, "proxied: {}", proxied.status());

    // From loopback: signed in, once.
    let response = open(&url, None)?;
    ensure!(response.status() == 200, "first use: {}", response.status());
    let session = set_cookie(&response, SESSION).context("no session cookie")?;
    ensure!(page_status(&ca, "/ui/sessions", &session)? == 200);
    ensure!(page_status(&ca, "/ui/audit", &session)? == 200);
    let used = ca.last_audit("ui.link_used")?;
    ensure!(
        used["actor"] == "local:root" && used["detail"]["link"] == issued["detail"]["link"],
        "{used}"
    );
    let second = open(&url, None)?;
    ensure!(second.status() == 410, "second use: {}", second.status());
    ensure!(set_cookie(&second, SESSION).is_none());
    ensure!(
        refusals(&ca)?.last().is_some_and(|r| r["detail"]["why"]
            .as_str()
            .is_some_and(|w| w.starts_with("used before"))),
        "the second use is audited"
    );

    // Too late.
    let short = link(&ca, "1s")?;
    std::thread::sleep(Duration::from_millis(2100));
    let late = open(&short, None)?;
    ensure!(late.status() == 410, "expired link: {}", late.status());
    ensure!(set_cookie(&late, SESSION).is_none());
    ensure!(
        refusals(&ca)?
            .last()
            .is_some_and(|r| r["detail"]["why"] == "expired"),
        "the late use is audited"
    );

    // A made-up token.
    let made_up = format!(
        "https://127.0.0.1:{}/ui/link?token={}",
        ca.port,
        "A".repeat(43)
    );
    ensure!(open(&made_up, None)?.status() == 403);

    // In a real browser: the link lands on the sessions page, once.
    let url = link(&ca, "5m")?;
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir)?;
    let report = drive_script(
        &ca,
        "link.mjs",
        &json!({
            "base": format!("https://127.0.0.1:{}", ca.port),
            "url": url,
            "identity": "local:root",
            "screenshots": dir,
        }),
    )?;
    ensure!(
        report["ok"] == true && report["second_use"] == 410,
        "{report}"
    );
    Ok(())
}

#[test]
fn operators_can_turn_sign_in_links_off() -> anyhow::Result<()> {
    let provider = OidcProvider::start()?;
    let ca = start_ca(Some(&provider), "local_link = false\n")?;
    let dir = ca.data_dir().display().to_string();
    let out = ca.cli(&["ui", "link", "--data-dir", &dir])?;
    ensure!(!out.status.success(), "a link was made: {}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(err.contains("local_link = false"), "{err}");
    ensure!(stdout(&out).is_empty());
    let refused = ca.last_audit("ui.link_refused")?;
    ensure!(
        refused["actor"] == "local:root" && refused["detail"]["stage"] == "issue",
        "{refused}"
    );
    // And a link made before it was turned off works no more: the CA
    // refuses any use while off.
    let response = open(
        &format!(
            "https://127.0.0.1:{}/ui/link?token={}",
            ca.port,
            "A".repeat(43)
        ),
        None,
    )?;
    ensure!(response.status() == 404, "{}", response.status());
    Ok(())
}
