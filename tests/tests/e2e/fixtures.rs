//! The policy the end-to-end tests run against.

/// The account sshd lets certificates log in as.
pub(crate) const LOGIN_USER: &str = "sktest";

/// The test policy and the unix time alice's shift ends.
///
/// Schedule `primary` started an hour ago (floored to the minute) with shifts
/// of 70 minutes: alice is on call now and until `shift_end` (9-10 minutes
/// from now), bob after her.
pub(crate) fn policy() -> (String, u64) {
    let now = chrono::Utc::now().timestamp();
    let start_unix = (now / 60) * 60 - 3600;
    let start = chrono::DateTime::from_timestamp(start_unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let start_unix = u64::try_from(start_unix).unwrap_or(0);
    let shift_end = start_unix + 70 * 60;
    let text = format!(
        r#"
[settings]
default_ttl = "5m"
max_ttl = "1h"

[[schedule]]
name = "primary"
timezone = "UTC"
rotation = {{ members = ["alice@example.com", "bob@example.com"], start = "{start}", shift = "70m" }}

[[role]]
name = "shell"
principals = ["{LOGIN_USER}"]
hosts = ["127.0.0.1"]
max_ttl = "10m"
extensions = ["permit-pty"]

[[role]]
name = "db-debug"
principals = ["postgres"]
hosts = ["db-*.prod.example.com"]
max_ttl = "30m"
require_on_call = ["primary"]
require_incident = true
extensions = ["permit-pty", "permit-port-forwarding"]
source_address = ["127.0.0.1/32", "10.0.0.0/8"]

[[role]]
name = "nobody-has-this"
principals = ["root"]
hosts = ["*"]

[[grant]]
identities = ["local:root", "group:sre"]
roles = ["shell"]

[[grant]]
identities = ["group:sre"]
roles = ["db-debug"]

# Alert sources open and resolve incidents. SREs open the small ones and
# resolve their own, and hand their own shifts to colleagues; every other
# power is the admins' (local:root, on the CA's socket).
[[authority]]
identities = ["webhook:alertmanager", "webhook:pagerduty"]
actions = ["incident.open", "incident.resolve"]

[[authority]]
identities = ["group:sre"]
actions = ["incident.open"]
severities = ["sev3", "sev4"]

[[authority]]
identities = ["group:sre"]
actions = ["incident.resolve"]
for = "self"

[[authority]]
identities = ["group:sre"]
actions = ["override.create"]
schedules = ["primary"]
"#
    );
    (text, shift_end)
}

pub(crate) use shiftkey_tests::util::with_ports;
