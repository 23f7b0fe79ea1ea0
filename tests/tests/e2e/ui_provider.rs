//! The review UI with an identity provider as real ones behave: `groups`
//! released only under the `groups` scope (the UI asks for it by default,
//! `[ui] scopes` says otherwise), and a confidential web client of its own
//! (`[ui] client_id` and its secret) next to the CLI's public one.

use std::os::unix::fs::PermissionsExt as _;

use anyhow::{Context, ensure};
use serde_json::json;
use shiftkey_tests::oidc::OidcProvider;

use crate::ui::{drive_script, page_status, screenshots_dir, start_ca_ui};
use crate::ui_powers::sign_in_as;

/// gina reviews every recording through her group only.
const GROUP_REVIEWER: &str = r#"
[[authority]]
identities = ["group:security"]
actions = ["recording.review"]
"#;

#[test]
fn a_group_based_reviewer_signs_in_because_the_ui_asks_for_groups() -> anyhow::Result<()> {
    let provider = OidcProvider::start()?;
    let ca = start_ca_ui(&provider, GROUP_REVIEWER, "")?;
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir)?;
    let report = drive_script(
        &ca,
        "groups.mjs",
        &json!({
            "base": format!("https://127.0.0.1:{}", ca.port),
            "idp": provider.issuer(),
            "email": "gina@example.com",
            "groups": ["security"],
            "screenshots": dir,
        }),
    )?;
    ensure!(report["ok"] == true, "{report}");
    let signed_in = ca.last_audit("ui.signed_in")?;
    ensure!(
        signed_in["actor"] == "user:gina@example.com" && signed_in["detail"]["review_all"] == true,
        "{signed_in}"
    );

    // Without the groups scope the provider sends no groups: gina is
    // refused, and the page says the CA saw none.
    let narrow = start_ca_ui(
        &provider,
        GROUP_REVIEWER,
        "scopes = [\"openid\", \"email\", \"profile\"]\n",
    )?;
    let (status, page, session) = sign_in_as(&narrow, "gina@example.com", "security")?;
    ensure!(status == 403 && session.is_none(), "{status}: {page}");
    ensure!(
        page.contains("<dt>Groups the CA saw</dt><dd>none</dd>"),
        "{page}"
    );
    Ok(())
}

fn register_client(provider: &OidcProvider, id: &str, secret: &str) -> anyhow::Result<()> {
    let response = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/__test/clients",
            provider.port()
        ))
        .json(&json!({ "client_id": id, "client_secret": secret }))
        .send()?;
    ensure!(
        response.status() == 200,
        "registering the client: {}",
        response.status()
    );
    Ok(())
}

#[test]
fn a_confidential_web_client_signs_in_with_its_secret() -> anyhow::Result<()> {
    const SECRET: &str = "web-client-secret-7f3a9c";
    let provider = OidcProvider::start()?;
    register_client(&provider, "shiftkey-web", SECRET)?;
    let work = tempfile::tempdir()?;
    let write_secret = |name: &str, value: &str, mode: u32| -> anyhow::Result<String> {
        let path = work.path().join(name);
        std::fs::write(&path, format!("{value}\n"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(path.display().to_string())
    };
    let ui =
        |file: &str| format!("client_id = \"shiftkey-web\"\nclient_secret_file = \"{file}\"\n");

    let good = write_secret("good.secret", SECRET, 0o600)?;
    let ca = start_ca_ui(&provider, "", &ui(&good))?;
    // The authorize request names the web client, not the CLI's.
    let (status, page, session) = sign_in_as(&ca, "rita@example.com", "")?;
    ensure!(
        status == 200,
        "sign-in through the web client: {status}: {page}"
    );
    let session = session.context("no session")?;
    ensure!(page_status(&ca, "/ui/sessions", &session)? == 200);
    ensure!(!ca.log().contains(SECRET), "the secret is in the CA's log");

    // The provider refuses the code without the right secret: a clear
    // sign-in failure, no session.
    let wrong = write_secret("wrong.secret", "not-the-secret", 0o600)?;
    let ca = start_ca_ui(&provider, "", &ui(&wrong))?;
    let (status, page, session) = sign_in_as(&ca, "rita@example.com", "")?;
    ensure!(status == 400 && session.is_none(), "{status}: {page}");
    ensure!(page.contains("refused the sign-in code"), "{page}");

    // A secret file others may read keeps the CA from starting.
    let open = write_secret("open.secret", SECRET, 0o644)?;
    let refused = start_ca_ui(&provider, "", &ui(&open));
    let error = format!("{:#}", refused.err().context("the CA started")?);
    ensure!(error.contains("chmod 600"), "{error}");
    ensure!(!error.contains(SECRET));
    Ok(())
}
