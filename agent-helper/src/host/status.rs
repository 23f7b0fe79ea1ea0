//! `shiftkey host status`: the installed host certificate and KRL, read
//! from disk (no CA needed).

use anyhow::Context;
use serde_json::json;
use ssh_key::Certificate;

use super::state::State;
use super::{Layout, StatusArgs, duration_words, krl, local_time, unix_now};

pub(crate) fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let layout = Layout::new(&args.ssh.ssh_dir)?;
    let state = State::load(&layout)?;
    let now = unix_now();
    let cert_path = layout.host_certificate();
    let certificate = std::fs::read_to_string(&cert_path)
        .with_context(|| format!("cannot read {}", cert_path.display()))
        .and_then(|text| {
            Certificate::from_openssh(text.trim())
                .with_context(|| format!("{} is not an OpenSSH certificate", cert_path.display()))
        });
    let krl_bytes = std::fs::read(layout.krl());
    let krl_info = krl_bytes.as_ref().ok().map(|b| krl::parse(b));
    let fetched_at = state.krl_fetched_at;

    if args.json {
        let cert = certificate.as_ref().ok().map(|c| {
            json!({
                "serial": c.serial(),
                "key_id": c.key_id(),
                "principals": c.valid_principals(),
                "valid_after": c.valid_after(),
                "valid_before": c.valid_before(),
                "seconds_left": c.valid_before().saturating_sub(now),
                "renewal_due": super::refresh::renewal_due(c.valid_after(), c.valid_before(), now),
            })
        });
        let krl = match &krl_info {
            Some(Ok(info)) => json!({
                "version": info.version,
                "generated_at": info.generated_at,
                "fetched_at": fetched_at,
                "age_seconds": fetched_at.map(|at| now.saturating_sub(at)),
                "bytes": krl_bytes.as_ref().map_or(0, Vec::len),
            }),
            Some(Err(e)) => json!({ "error": e.to_string() }),
            None => serde_json::Value::Null,
        };
        println!(
            "{}",
            json!({
                "name": state.name,
                "kind": state.kind,
                "ca": state.ca,
                "enrolled_at": state.enrolled_at,
                "renewed_at": state.renewed_at,
                "certificate": cert,
                "certificate_error": certificate.as_ref().err().map(|e| format!("{e:#}")),
                "krl": krl,
            })
        );
        return Ok(());
    }

    println!(
        "host         {} ({}), CA {}",
        state.name, state.kind, state.ca
    );
    match &certificate {
        Ok(c) => {
            let left = c.valid_before().saturating_sub(now);
            println!(
                "certificate  serial {}, principals {}",
                c.serial(),
                c.valid_principals().join(", ")
            );
            println!(
                "             valid until {} ({}){}",
                local_time(c.valid_before()),
                if left == 0 {
                    "EXPIRED: enroll again".to_owned()
                } else {
                    format!("{} left", duration_words(left))
                },
                if left > 0 && super::refresh::renewal_due(c.valid_after(), c.valid_before(), now) {
                    "; renewal due at the next refresh"
                } else {
                    ""
                }
            );
        }
        Err(e) => println!("certificate  {e:#}"),
    }
    match &krl_info {
        Some(Ok(info)) => println!(
            "KRL          version {}, generated {} by the CA; last fetched {}",
            info.version,
            local_time(info.generated_at),
            match fetched_at {
                Some(at) => format!("{} ago", duration_words(now.saturating_sub(at))),
                None => "never".to_owned(),
            }
        ),
        Some(Err(e)) => println!(
            "KRL          {} does not parse: {e}",
            layout.krl().display()
        ),
        None => println!("KRL          {} is missing", layout.krl().display()),
    }
    println!("drop-in      {}", layout.drop_in().display());
    Ok(())
}
