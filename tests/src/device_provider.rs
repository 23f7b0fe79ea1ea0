//! A real OIDC provider with the device authorization grant and HTML login
//! pages for the tests: `node tests/oidc/device-provider.mjs`
//! (`oidc-provider`), started per test and killed on drop, and a
//! [`Browser`] that goes through those pages as a user would.
//!
//! Its issuer is `http://127.0.0.1:PORT` and its client `shiftkey` is
//! public (PKCE) with the device grant and the code flow (redirects to
//! `http://127.0.0.1:ANY/callback`). Any login name and password sign in:
//! the account is the login name (email = the name if it contains `@`).
//! See the script's header for its test endpoints.

use std::fs::File;
use std::process::{Child, ChildStdin, Stdio};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

use crate::oidc::{NodeScript, http_error, start_node};

/// The public client the provider knows.
pub const CLIENT_ID: &str = "shiftkey";
/// At most this many pages in one [`Browser::sign_in`].
const MAX_PAGES: usize = 20;
/// Per request of the [`Browser`].
const BROWSER_TIMEOUT: Duration = Duration::from_secs(10);
/// The form on which the user confirms a device code.
const DEVICE_CONFIRM_FORM: &str = "op.deviceConfirmForm";
/// The form that asks for a user code: where a device login that is over
/// (aborted, or an unknown code) ends.
const DEVICE_INPUT_FORM: &str = "op.deviceInputForm";

/// A running `device-provider.mjs`. Dropping it kills the process.
#[derive(Debug)]
pub struct DeviceProvider {
    child: Child,
    // Held open: the provider exits when its stdin closes.
    _stdin: Option<ChildStdin>,
    issuer: String,
    port: u16,
    agent: ureq::Agent,
    /// Holds `stderr.log`, the provider's diagnostics (its start-up
    /// warnings would otherwise land in every test's output).
    log_dir: tempfile::TempDir,
}

impl DeviceProvider {
    /// Starts the provider on a random loopback port and waits until it is
    /// ready. Fails with an install hint when `node` or the npm package
    /// `oidc-provider` is missing.
    pub fn start() -> anyhow::Result<Self> {
        // One retry: a start that stalled once on a loaded CI machine (no
        // ready line) has not been reproduced; a second start is cheap.
        Self::start_once().or_else(|first| {
            eprintln!("device provider did not start, retrying once: {first:#}");
            Self::start_once()
        })
    }

    fn start_once() -> anyhow::Result<Self> {
        let log_dir = tempfile::tempdir().context("creating a directory for the provider log")?;
        let log =
            File::create(log_dir.path().join("stderr.log")).context("creating the provider log")?;
        let NodeScript {
            child,
            stdin,
            issuer,
            port,
        } = start_node("device-provider.mjs", "oidc-provider", Stdio::from(log)).map_err(
            |err| {
                let log =
                    std::fs::read_to_string(log_dir.path().join("stderr.log")).unwrap_or_default();
                anyhow!("{err:#}\n--- device-provider.mjs stderr ---\n{log}")
            },
        )?;
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
            log_dir,
        })
    }

    /// The issuer URL, `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The loopback port the provider listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the provider wrote to stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Sets how the device grant behaves from now on (`POST /__test/device`):
    /// `{"interval": N|null, "ttl": SECS, "slow_down": N}`, each optional:
    /// the `interval` device authorization responses name (null: none, so
    /// clients wait 5 s), the lifetime of new device codes (default 600 s),
    /// and how many of the next `authorization_pending` answers become
    /// `slow_down`. Returns the settings now in force.
    pub fn set_device(&self, settings: &Value) -> anyhow::Result<Value> {
        self.agent
            .post(&format!("{}/__test/device", self.base()))
            .send_json(settings)
            .map_err(|err| http_error("POST /__test/device", err))?
            .into_json()
            .context("POST /__test/device answered no JSON")
    }

    /// Counters since start (`GET /__test/stats`): `device_authorizations`,
    /// `device_token_polls`, `slow_downs`, `token_requests`.
    pub fn stats(&self) -> anyhow::Result<Value> {
        self.agent
            .get(&format!("{}/__test/stats", self.base()))
            .call()
            .map_err(|err| http_error("GET /__test/stats", err))?
            .into_json()
            .context("GET /__test/stats answered no JSON")
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for DeviceProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the user does when the provider asks to confirm a device code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Approve,
    /// Aborts on the confirm page (the device login is then denied).
    Abort,
}

/// A page the [`Browser`] ended on.
#[derive(Clone, Debug)]
pub struct Page {
    pub status: u16,
    pub body: String,
}

/// A user's browser, over plain HTTP: keeps cookies, follows redirects only
/// inside [`sign_in`](Self::sign_in) and submits the providers' forms.
///
/// It is blocking (`reqwest::blocking`): from async code, create, use and
/// drop it inside `tokio::task::spawn_blocking`, which also leaves the
/// test's runtime free to serve a login's loopback redirect.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::blocking::Client,
}

impl Browser {
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .timeout(BROWSER_TIMEOUT)
            .build()
            .context("building the test browser's HTTP client")?;
        Ok(Self { http })
    }

    /// One GET, redirects not followed: the status and the body.
    pub fn get(&self, url: &str) -> anyhow::Result<Page> {
        let response = self
            .http
            .get(url)
            .send()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .with_context(|| format!("reading the page at {url}"))?;
        Ok(Page { status, body })
    }

    /// One GET that must answer a redirect: its `Location`, not followed.
    pub fn redirect_of(&self, url: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(url)
            .send()
            .with_context(|| format!("GET {url}"))?;
        if !response.status().is_redirection() {
            bail!("GET {url} answered {}, not a redirect", response.status());
        }
        location(&response)
    }

    /// Opens `url` and goes through every page as a user would: follows
    /// redirects (including the one to a login's loopback callback), signs
    /// in as `login` with any password, confirms or aborts a device code,
    /// consents. Returns the last page: the first without a form, or the
    /// provider's "enter a code" page where a device login ends once
    /// aborted.
    pub fn sign_in(&self, url: &str, login: &str, answer: Answer) -> anyhow::Result<Page> {
        let mut current = reqwest::Url::parse(url).with_context(|| format!("bad URL {url:?}"))?;
        let mut request = self.http.get(current.clone());
        for _ in 0..MAX_PAGES {
            let response = request
                .send()
                .with_context(|| format!("opening {current}"))?;
            let status = response.status();
            if status.is_redirection() {
                current = current.join(&location(&response)?)?;
                request = self.http.get(current.clone());
                continue;
            }
            let body = response
                .text()
                .with_context(|| format!("reading the page at {current}"))?;
            let page = Page {
                status: status.as_u16(),
                body,
            };
            let Some(form) = first_form(&page.body) else {
                return Ok(page);
            };
            if form.id.as_deref() == Some(DEVICE_INPUT_FORM) {
                return Ok(page);
            }
            if !status.is_success() {
                bail!("{current} answered {status}: {}", page.body);
            }
            let mut fields = form.fields;
            for (name, value) in &mut fields {
                match name.as_str() {
                    "login" => login.clone_into(value),
                    "password" => "any password".clone_into(value),
                    _ => {}
                }
            }
            if answer == Answer::Abort && form.id.as_deref() == Some(DEVICE_CONFIRM_FORM) {
                fields.push(("abort".to_owned(), "yes".to_owned()));
            }
            current = current.join(&form.action)?;
            request = self.http.post(current.clone()).form(&fields);
        }
        bail!("more than {MAX_PAGES} pages from {url}")
    }
}

fn location(response: &reqwest::blocking::Response) -> anyhow::Result<String> {
    Ok(response
        .headers()
        .get(reqwest::header::LOCATION)
        .with_context(|| format!("{} redirected without a Location", response.url()))?
        .to_str()
        .context("a Location that is not text")?
        .to_owned())
}

#[derive(Debug)]
struct Form {
    id: Option<String>,
    action: String,
    fields: Vec<(String, String)>,
}

/// The first `<form>` of a page: its id, its action and its inputs' names
/// and values. Enough HTML for the providers' own pages, no more.
fn first_form(html: &str) -> Option<Form> {
    let rest = &html[html.find("<form")?..];
    let tag = &rest[..rest.find('>')?];
    let end = rest.find("</form>").unwrap_or(rest.len());
    let mut fields = Vec::new();
    let mut body = &rest[tag.len()..end];
    while let Some(at) = body.find("<input") {
        let input = &body[at..];
        let close = input.find('>').unwrap_or(input.len());
        let input_tag = &input[..close];
        if let Some(name) = attr(input_tag, "name") {
            fields.push((name, attr(input_tag, "value").unwrap_or_default()));
        }
        body = &input[close..];
    }
    Some(Form {
        id: attr(tag, "id"),
        action: attr(tag, "action").unwrap_or_default(),
        fields,
    })
}

/// The value of attribute `name="..."` in one tag (`&amp;` decoded).
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let mut from = 0;
    while let Some(at) = tag[from..].find(&needle) {
        let at = from + at;
        let value_start = at + needle.len();
        let value_end = value_start + tag[value_start..].find('"')?;
        if tag[..at].ends_with(char::is_whitespace) {
            return Some(tag[value_start..value_end].replace("&amp;", "&"));
        }
        from = value_end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_form_reads_id_action_and_inputs() {
        let html = r#"<p>x</p><form id="op.deviceConfirmForm" method="post" action="/device?a=1&amp;b=2">
            <input type="hidden" name="xsrf" value="abc"/>
            <input type="hidden" data-name="no" name="user_code" value="WXYZ-1234">
            <input type="submit" value="Continue">
            <input name="confirm" value="yes"></form><form id="second"></form>"#;
        let form = first_form(html).expect("a form");
        assert_eq!(form.id.as_deref(), Some(DEVICE_CONFIRM_FORM));
        assert_eq!(form.action, "/device?a=1&b=2");
        let expected = [
            ("xsrf", "abc"),
            ("user_code", "WXYZ-1234"),
            ("confirm", "yes"),
        ];
        let fields: Vec<(&str, &str)> = form
            .fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(fields, expected);
        assert!(first_form("<p>Sign-in Success</p>").is_none());
    }
}
