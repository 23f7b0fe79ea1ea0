//! The conditions of a role that depend on facts other people set: the
//! incident, the on-call shift, approvals, and auto-approval.
//!
//! Conditions are not self-served: an incident opened, or an override
//! created, by any identity of the requester's person does not count for
//! `require_incident`, `require_on_call` or `auto_approve` unless the role
//! lists it in `self_served`. Incidents opened by a webhook (an alert
//! source) are independent. An opener or creator the policy cannot read as
//! an identity is treated as the requester (fail closed). A denial says
//! which fact was self-served.

use super::Policy;
use super::denied::{Denied, DenyCode};
use super::eval::{AccessQuery, IncidentState, Trace, given};
use super::identity::Identity;
use super::model::{Fact, Role};
use super::schedule::{Shift, ShiftSource};

/// What the on-call check found.
#[derive(Debug, Default)]
pub(super) struct OnCall {
    /// The requester's shift that counts: independent, or self-served
    /// where the role allows it.
    pub(super) usable: Option<Shift>,
    /// A shift of the requester's own making that did not count.
    pub(super) refused: Option<Shift>,
}

/// What the incident check found.
#[derive(Debug, Default)]
pub(super) struct IncidentCheck {
    /// The severity of the named incident, when it is open and counts.
    pub(super) counts: Option<u8>,
    /// The incident is open but the requester opened it, and that does not
    /// count for this role.
    pub(super) self_served: bool,
}

impl Policy {
    /// Whether `subject` brought the fact about, given who did (`None`:
    /// someone the policy cannot name, which fails closed as "yes").
    fn self_made(&self, by: Option<&Identity>, subject: Option<&Identity>) -> bool {
        match (by, subject) {
            (Some(by), Some(subject)) => self.people.same(by, subject),
            _ => true,
        }
    }

    pub(super) fn check_incident(
        &self,
        role: &Role,
        q: &AccessQuery<'_>,
        subject: Option<&Identity>,
        trace: &mut Trace,
    ) -> IncidentCheck {
        let Some(id) = given(q.incident) else {
            if role.require_incident {
                trace.fail(Denied::new(
                    DenyCode::IncidentRequired,
                    format!(
                        "role {:?} requires an open incident; ask again with --incident ID",
                        role.name
                    ),
                ));
            } else {
                trace.pass("no incident required".to_owned());
            }
            return IncidentCheck::default();
        };
        // Any incident named must be one the CA knows and open: its ID goes
        // into the certificate's key ID and the audit log.
        let (severity, opened_by) = match &q.incident_state {
            None | Some(IncidentState::Unknown) => {
                trace.fail(Denied::new(
                    DenyCode::IncidentUnknown,
                    format!("the CA knows no incident {id:?}; check the ID, or open it with `shiftkey incident open`"),
                ));
                return IncidentCheck::default();
            }
            Some(IncidentState::Resolved) => {
                trace.fail(Denied::new(
                    DenyCode::IncidentResolved,
                    format!("incident {id} is resolved; access under it has ended"),
                ));
                return IncidentCheck::default();
            }
            Some(IncidentState::Open {
                severity,
                opened_by,
            }) => (*severity, opened_by),
        };
        if let Some(worst_allowed) = role.incident_severity
            && severity > worst_allowed
        {
            trace.fail(Denied::new(
                DenyCode::IncidentNotSevere,
                format!(
                    "role {:?} needs an incident of sev{worst_allowed} or worse; {id} is sev{severity}",
                    role.name
                ),
            ));
            return IncidentCheck::default();
        }
        let opener = Identity::parse_subject(opened_by).ok();
        if !self.self_made(opener.as_ref(), subject) {
            let by = match &opener {
                Some(Identity::Webhook(source)) => format!("by the {source} webhook"),
                _ => "by someone else".to_owned(),
            };
            trace.pass(format!(
                "incident {id} is open (sev{severity}), opened {by}"
            ));
            return IncidentCheck {
                counts: Some(severity),
                self_served: false,
            };
        }
        let who = match &opener {
            Some(opener) => format!("you ({opener})"),
            None => format!("an identity the policy cannot read ({opened_by:?})"),
        };
        if role.self_served.contains(&Fact::Incident) {
            trace.pass(format!(
                "incident {id} is open (sev{severity}), opened by {who}; the role accepts \
                 self_served incidents"
            ));
            return IncidentCheck {
                counts: Some(severity),
                self_served: false,
            };
        }
        if role.require_incident {
            trace.fail(Denied::new(
                DenyCode::SelfServed,
                format!(
                    "incident {id} was opened by {who}; role {:?} does not count an incident its \
                     requester opened. Ask the incident to be opened by someone else (your \
                     alerting, the incident lead)",
                    role.name
                ),
            ));
        } else {
            trace.pass(format!(
                "incident {id} is open (sev{severity}), opened by {who}: recorded, but it \
                 counts for no condition"
            ));
        }
        IncidentCheck {
            counts: None,
            self_served: true,
        }
    }

    pub(super) fn check_on_call(
        &self,
        role: &Role,
        q: &AccessQuery<'_>,
        subject: Option<&Identity>,
        trace: &mut Trace,
    ) -> OnCall {
        if role.require_on_call.is_empty() {
            trace.pass("no on-call requirement".to_owned());
            return OnCall::default();
        }
        let mut independent: Option<Shift> = None;
        let mut own_making: Option<Shift> = None;
        let mut others = Vec::new();
        let longer = |slot: &mut Option<Shift>, shift: Shift| {
            if slot.as_ref().is_none_or(|s| shift.end > s.end) {
                *slot = Some(shift);
            }
        };
        for name in &role.require_on_call {
            let shifts = self.on_call_all(name, q.at, q.overrides);
            if shifts.is_empty() {
                let why = self.schedule(name).map_or("", |s| s.when_nobody());
                others.push(format!("{name}: nobody ({why})"));
            }
            for shift in shifts {
                let mine = subject.is_some_and(|s| self.people.same(&shift.member, s));
                if !mine {
                    others.push(format!("{name}: {}", shift.describe()));
                    continue;
                }
                let self_served = match &shift.source {
                    ShiftSource::Schedule => false,
                    ShiftSource::Override { created_by } => {
                        self.self_made(created_by.as_ref(), subject)
                    }
                };
                if self_served {
                    longer(&mut own_making, shift);
                } else {
                    longer(&mut independent, shift);
                }
            }
        }
        if let Some(shift) = independent {
            trace.pass(format!(
                "on call for {:?}: {}{}",
                shift.schedule,
                shift.describe(),
                match shift.source {
                    ShiftSource::Schedule => "",
                    ShiftSource::Override { .. } => " (an override someone else created)",
                }
            ));
            return OnCall {
                usable: Some(shift),
                refused: None,
            };
        }
        if let Some(shift) = own_making {
            if role.self_served.contains(&Fact::OnCall) {
                trace.pass(format!(
                    "on call for {:?} through an override you created: {}; the role accepts \
                     self_served on_call",
                    shift.schedule,
                    shift.describe()
                ));
                return OnCall {
                    usable: Some(shift),
                    refused: None,
                };
            }
            trace.fail(Denied::new(
                DenyCode::SelfServed,
                format!(
                    "{} is on call for {:?} only through an override you created ({}); role {:?} \
                     does not count an on-call shift its requester gave themselves. Ask someone \
                     with authority over the schedule to put you on call, or the on-call engineer",
                    q.identity,
                    shift.schedule,
                    shift.describe(),
                    role.name
                ),
            ));
            return OnCall {
                usable: None,
                refused: Some(shift),
            };
        }
        trace.fail(Denied::new(
            DenyCode::NotOnCall,
            format!(
                "{} is not on call for {} right now (on call: {}); ask the on-call engineer, \
                 or take over the shift in the rotation",
                q.identity,
                role.require_on_call.join(" or "),
                others.join("; ")
            ),
        ));
        OnCall::default()
    }

    /// Last check, once everything else passed: approvals, where the role
    /// wants them. An auto-approve rule whose every condition holds with
    /// facts that count approves at once.
    pub(super) fn check_approval(
        &self,
        role: &Role,
        q: &AccessQuery<'_>,
        subject: Option<&Identity>,
        on_call: &OnCall,
        incident: &IncidentCheck,
        trace: &mut Trace,
    ) {
        if role.approvals == 0 {
            trace.pass("no approval required".to_owned());
            return;
        }
        let mut not_auto = String::new();
        if let Some(rule) = &role.auto_approve {
            let severity_ok = match rule.incident_severity {
                None => true,
                Some(worst) => incident.counts.is_some_and(|severity| severity <= worst),
            };
            let on_call_ok = !rule.on_call || on_call.usable.is_some();
            if on_call_ok && severity_ok {
                let mut why = Vec::new();
                if rule.on_call {
                    why.push("on call".to_owned());
                }
                if let Some(worst) = rule.incident_severity {
                    why.push(format!("incident of sev{worst} or worse"));
                }
                trace.pass(format!("auto-approved: {}", why.join(" and ")));
                return;
            }
            let mut served = Vec::new();
            if rule.on_call && on_call.refused.is_some() {
                served.push("the on-call shift is your own override");
            }
            if rule.incident_severity.is_some() && incident.self_served {
                served.push("the incident is one you opened");
            }
            if !served.is_empty() {
                not_auto = format!(" (not auto-approved: {})", served.join(" and "));
            }
        }
        let mut counted: Vec<Identity> = Vec::new();
        for approver in q.approved_by {
            let Ok(approver) = Identity::parse_subject(approver) else {
                continue;
            };
            let theirs = subject.is_none_or(|s| self.people.same(&approver, s));
            let again = counted.iter().any(|c| self.people.same(c, &approver));
            if !theirs && !again {
                counted.push(approver);
            }
        }
        let shown: Vec<String> = counted.iter().map(ToString::to_string).collect();
        if counted.len() >= usize::from(role.approvals) {
            trace.pass(format!("approved by {}", shown.join(", ")));
        } else {
            let approvers: Vec<String> = role.approvers.iter().map(ToString::to_string).collect();
            trace.fail(Denied::new(
                DenyCode::ApprovalRequired,
                format!(
                    "role {:?} needs {} approval(s) from {} ({} so far){not_auto}; the request \
                     waits for them",
                    role.name,
                    role.approvals,
                    approvers.join(", "),
                    counted.len()
                ),
            ));
        }
    }
}
