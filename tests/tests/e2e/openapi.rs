//! The OpenAPI document against the CA that serves it.
//!
//! - Every operation the router registers (read from the router's own
//!   source, `ca/src/http/`, so a new route cannot be forgotten: a `.route(`
//!   this reader cannot follow fails the test) is documented, with every
//!   status the running CA answers it with when probed: without
//!   credentials (401), with an unknown ID (404), with a body that is not
//!   JSON (400) and with one past the body limit (413).
//! - The document is valid OpenAPI 3.1 by an independent validator
//!   (openapi-spec-validator, PyPI; `scripts/test` installs it).
//! - Bodies the schemas refuse (a second key line, an unknown field, a
//!   negative `since`) are refused by the server too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use shiftkey_tests::ca::{TestCa, http_over_socket};
use shiftkey_tests::util::ssh_keygen;

use crate::fixtures::policy;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn http_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ca/src/http")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text from `open` (just after a `(`) to its matching `)`.
fn balanced(text: &str) -> Option<&str> {
    let mut depth = 1usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return text.get(..i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every `(METHOD, PATH)` the CA's API router registers, from the
/// `.route("PATH", get(h).post(h))` calls in `ca/src/http/`.
fn registered_routes() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    rust_files(&http_dir(), &mut files);
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let where_ = || {
                let shown: String = rest.chars().take(80).collect();
                format!("{}: .route({shown}", file.display())
            };
            let args = balanced(rest).unwrap_or_else(|| panic!("unbalanced {}", where_()));
            let args = args.trim_start();
            let path = args
                .strip_prefix('"')
                .and_then(|a| a.split_once('"'))
                .map(|(p, _)| p)
                .unwrap_or_else(|| {
                    panic!(
                        "cannot read the route's path in {}; register routes as .route(\"PATH\", get(handler).post(handler))",
                        where_()
                    )
                });
            let handlers = &args[path.len() + 2..];
            let mut found = 0;
            for method in METHODS {
                let mut h = handlers;
                while let Some(i) = h.find(&format!("{method}(")) {
                    let before = h[..i].trim_end();
                    if before.ends_with(',') || before.ends_with('.') || before.is_empty() {
                        routes.insert((method.to_owned(), path.to_owned()));
                        found += 1;
                    }
                    h = &h[i + method.len() + 1..];
                }
            }
            assert!(
                found > 0,
                "no method handler found in {}; use axum's get/post/put/patch/delete",
                where_()
            );
        }
    }
    routes
}

fn spec() -> Value {
    serde_json::from_str(&std::fs::read_to_string(http_dir().join("openapi.json")).unwrap())
        .unwrap()
}

/// The path with each `{param}` replaced by an ID nothing has.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        let name = &rest[open + 1..close - 1];
        out.push_str(match name {
            "name" => "channel-0.cast.gz",
            "session" => "ses_0000000000000000",
            _ => "unknown-0",
        });
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_router_source_lists_the_routes_it_serves() -> anyhow::Result<()> {
    let routes = registered_routes();
    for expected in [
        ("post", "/v1/certificates"),
        ("post", "/v1/oncall/overrides"),
        ("get", "/v1/events"),
        ("patch", "/v1/oncall/overrides/{id}"),
        ("delete", "/v1/oncall/overrides/{id}"),
        ("post", "/v1/recordings/{session}/files/{name}"),
    ] {
        assert!(
            routes.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not read from the router: {routes:?}"
        );
    }
    Ok(())
}

/// Every registered operation is in openapi.json, and every status the
/// running CA answers it with when probed is documented for it.
#[test]
fn every_operation_is_documented_with_the_statuses_it_answers() -> anyhow::Result<()> {
    let routes = registered_routes();
    let spec = spec();
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let mut missing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut undocumented_operations = Vec::new();
    for (method, path) in &routes {
        let Some(operation) = spec["paths"][path][method].as_object() else {
            undocumented_operations.push(format!("{} {path}", method.to_uppercase()));
            continue;
        };
        let documented: BTreeSet<&str> = operation
            .get("responses")
            .and_then(Value::as_object)
            .map(|r| r.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let url_path = concrete(path);
        let mut answered = BTreeSet::new();
        // Without credentials, over HTTPS.
        let anonymous = ca
            .client()
            .request(method.to_uppercase().parse()?, ca.url(&url_path))
            .header("Content-Type", "application/json")
            .body("{}")
            .send()?;
        answered.insert(anonymous.status().as_u16());
        // As local:root over the socket: an unknown ID, a body that is not
        // JSON and one past the limit. GETs without an ID would stream
        // (`/v1/events`) or just list: nothing to learn.
        let upper = method.to_uppercase();
        if method != "get" || path.contains('{') {
            let (status, _) = http_over_socket(&ca.socket(), &upper, &url_path, b"")?;
            answered.insert(status);
        }
        if method != "get" && method != "delete" {
            let (status, _) = http_over_socket(&ca.socket(), &upper, &url_path, b"{not json")?;
            answered.insert(status);
            let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
            let (status, _) = http_over_socket(&ca.socket(), &upper, &url_path, huge.as_bytes())?;
            answered.insert(status);
        }
        for status in answered {
            // 2xx: the probe did what a caller may; documented or not, the
            // operation's success answers are checked by the schemas.
            if (200..300).contains(&status) || status >= 500 {
                continue;
            }
            if !documented.contains(status.to_string().as_str()) {
                missing
                    .entry(format!("{upper} {path}"))
                    .or_default()
                    .insert(status.to_string());
            }
        }
    }
    assert!(
        undocumented_operations.is_empty() && missing.is_empty(),
        "ca/src/http/openapi.json is behind the router.\n\
         operations missing: {undocumented_operations:#?}\n\
         statuses the CA answers that are not documented (operation: statuses): {missing:#?}"
    );
    // And nothing documented that the router does not serve.
    let documented_ops: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|m| METHODS.contains(&m.as_str()))
                .map(|m| (m.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let stale: Vec<_> = documented_ops.difference(&routes).collect();
    assert!(stale.is_empty(), "documented but not served: {stale:?}");
    Ok(())
}

/// openapi-spec-validator (PyPI), a validator the CA's authors did not
/// write, accepts the document.
#[test]
fn the_document_is_valid_openapi() -> anyhow::Result<()> {
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(http_dir().join("openapi.json"))
        .output()?;
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses ca/src/http/openapi.json (install it with scripts/test, \
         or `pip install openapi-spec-validator==0.9.0`):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Whether the document's schema for `pointer` accepts `instance`, by the
/// validator's own JSON Schema implementation (jsonschema, 2020-12).
fn schema_accepts(pointer: &str, instance: &Value) -> anyhow::Result<bool> {
    let script = r#"
import json, sys
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
spec = json.load(open(sys.argv[1]))
registry = Registry().with_resource("urn:openapi", Resource(contents=spec, specification=DRAFT202012))
validator = Draft202012Validator({"$ref": "urn:openapi" + sys.argv[2]}, registry=registry)
print("refused" if list(validator.iter_errors(json.loads(sys.argv[3]))) else "accepted")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(http_dir().join("openapi.json"))
        .arg(pointer)
        .arg(instance.to_string())
        .output()?;
    let verdict = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    anyhow::ensure!(
        out.status.success() && (verdict == "accepted" || verdict == "refused"),
        "jsonschema: {}{}",
        verdict,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(verdict == "accepted")
}

/// What the schemas refuse, the server refuses: and what they accept in
/// the same shape, it accepts (so the refusals are for the reason shown).
#[test]
fn bodies_the_schemas_refuse_are_refused_by_the_server() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let work = tempfile::tempdir()?;
    let key = ssh_keygen(work.path(), "ed", &["-t", "ed25519"])?;
    let key = std::fs::read_to_string(key.with_extension("pub"))?
        .trim()
        .to_owned();
    let request = "#/components/schemas/CertificateRequest";
    let good = json!({ "public_key": key, "role": "shell" });
    assert!(schema_accepts(request, &good)?, "the schema refuses {good}");
    let (status, body) = ca.request_local(&good)?;
    assert_eq!(status, 200, "{body}");
    let refused = [
        json!({ "public_key": format!("{key}\n{key}"), "role": "shell" }),
        json!({ "public_key": key, "role": "shell", "admin": true }),
        json!({ "public_key": "ssh-ed25519 not-base64!!", "role": "shell" }),
        json!({ "public_key": key }),
        json!({ "public_key": key, "role": "shell", "principals": [] }),
    ];
    for body in &refused {
        assert!(!schema_accepts(request, body)?, "the schema accepts {body}");
        let (status, answer) = ca.request_local(body)?;
        assert!(
            (400..500).contains(&status),
            "the server answers {status} to {body}: {answer}"
        );
    }
    // A negative `since` (the events feed's sequence number).
    let since = spec()["paths"]["/v1/events"]["get"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "since").cloned())
        .expect("GET /v1/events documents `since`");
    assert_eq!(since["schema"]["minimum"], 0, "{since}");
    let (status, _) = http_over_socket(&ca.socket(), "GET", "/v1/events?since=-1", b"")?;
    assert_eq!(status, 400, "a negative since");
    Ok(())
}
