//! `shiftkey requests`: access requests as a table people read at a
//! glance, with when each expires (a pending one waits for approvals until
//! then, an approved one for its certificate to be fetched).

use crate::access::printable;

/// The requests as an aligned table; control characters escaped.
pub(crate) fn requests_table(requests: &[shiftkey_wire::AccessRequest], now: i64) -> String {
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|r| {
            vec![
                printable(&r.id),
                printable(&r.status),
                printable(&r.requester),
                printable(&r.role),
                printable(r.incident.as_deref().unwrap_or("-")),
                format!("{}/{}", r.approvals.len(), r.approvals_needed),
                age(now - r.created_at),
                expiry(r, now),
                printable(r.reason.as_deref().unwrap_or("-")),
            ]
        })
        .collect();
    let header: Vec<String> = [
        "ID",
        "STATUS",
        "REQUESTER",
        "ROLE",
        "INCIDENT",
        "APPROVALS",
        "AGE",
        "EXPIRES",
        "REASON",
    ]
    .map(str::to_owned)
    .to_vec();
    table(&header, &rows)
}

/// When a request stops waiting: `in 23h59m`, `expired`, or `-` once
/// decided or issued.
fn expiry(r: &shiftkey_wire::AccessRequest, now: i64) -> String {
    match r.status.as_str() {
        "expired" => "expired".to_owned(),
        "pending" | "approved" if r.expires_at <= now => "expired".to_owned(),
        "pending" | "approved" => format!("in {}", age(r.expires_at - now)),
        _ => "-".to_owned(),
    }
}

/// Rows under a header, columns padded to the widest cell; the last
/// column is not padded.
pub(crate) fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths = vec![0; header.len()];
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        table.push_str(line.trim_end());
        table.push('\n');
    }
    table
}

/// How long, roughly: `45s`, `12m`, `3h05m`, `2d`.
pub(crate) fn age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86400 => format!("{}h{:02}m", seconds / 3600, seconds / 60 % 60),
        _ => format!("{}d", seconds / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, reason: Option<&str>) -> shiftkey_wire::AccessRequest {
        shiftkey_wire::AccessRequest {
            id: id.into(),
            status: "pending".into(),
            requester: "user:alice@example.com".into(),
            role: "db-debug".into(),
            incident: Some("INC-42".into()),
            reason: reason.map(str::to_owned),
            approvals: vec![],
            approvals_needed: 1,
            denied_by: None,
            decision_reason: None,
            created_at: 1000,
            expires_at: 2000,
            certificate: None,
        }
    }

    #[test]
    fn ages_read_like_people_say_them() {
        assert_eq!(age(-5), "0s");
        assert_eq!(age(45), "45s");
        assert_eq!(age(12 * 60 + 59), "12m");
        assert_eq!(age(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(age(2 * 86400 + 7), "2d");
    }

    #[test]
    fn requests_table_is_aligned_and_escaped_and_says_when_each_expires() {
        let mut approved = request("r_longer_id", None);
        approved.status = "approved".into();
        let mut late = request("r_late", None);
        late.status = "expired".into();
        let mut denied = request("r_no", None);
        denied.status = "denied".into();
        let table = requests_table(
            &[
                request("r_abc", Some("replica lag\x1b[2J")),
                approved,
                late,
                denied,
            ],
            1000 + 125,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(
            lines[0].starts_with("ID           STATUS    REQUESTER"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("r_abc        pending   user:alice@example.com  db-debug  INC-42    0/1        2m   in 14m   replica lag\u{241b}[2J"),
            "{table}"
        );
        assert!(lines[2].ends_with("2m   in 14m   -"), "{table}");
        assert!(lines[3].ends_with("2m   expired  -"), "{table}");
        assert!(lines[4].ends_with("2m   -        -"), "{table}");
        assert!(!table.contains('\x1b'));
    }
}
