//! The API's application state: the domain services, each handler taking
//! only the ones it needs (`State<Arc<Issuance>>`, ...) through `FromRef`.

use std::sync::Arc;

use super::auth::Authenticator;
use super::webhooks::Webhooks;
use crate::audit::Audit;
use crate::current_policy::CurrentPolicy;
use crate::events::EventFeed;
use crate::hosts::Hosts;
use crate::incidents::Incidents;
use crate::issuance::Issuance;
use crate::keys::CaKeys;
use crate::metrics::Metrics;
use crate::oncall::OnCall;
use crate::recordings::Recordings;
use crate::requests::Requests;
use crate::revocation::Krl;
use crate::sessions::Sessions;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) keys: Arc<CaKeys>,
    pub(crate) policy: Arc<CurrentPolicy>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) audit: Audit,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) issuance: Arc<Issuance>,
    pub(crate) requests: Arc<Requests>,
    pub(crate) incidents: Arc<Incidents>,
    pub(crate) oncall: Arc<OnCall>,
    pub(crate) krl: Arc<Krl>,
    pub(crate) hosts: Arc<Hosts>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) recordings: Arc<Recordings>,
    pub(crate) events: Arc<EventFeed>,
    pub(crate) webhooks: Arc<Webhooks>,
}

/// `FromRef` for each field of a state struct, so a handler names only
/// the parts it takes (the review UI's state uses it too).
macro_rules! substates {
    ($state:ty { $($field:ident: $ty:ty),* $(,)? }) => {
        $(
            impl axum::extract::FromRef<$state> for $ty {
                fn from_ref(state: &$state) -> Self {
                    state.$field.clone()
                }
            }
        )*
    };
}
pub(crate) use substates;

substates! { AppState {
    keys: Arc<CaKeys>,
    policy: Arc<CurrentPolicy>,
    metrics: Arc<Metrics>,
    audit: Audit,
    auth: Arc<Authenticator>,
    issuance: Arc<Issuance>,
    requests: Arc<Requests>,
    incidents: Arc<Incidents>,
    oncall: Arc<OnCall>,
    krl: Arc<Krl>,
    hosts: Arc<Hosts>,
    sessions: Arc<Sessions>,
    recordings: Arc<Recordings>,
    events: Arc<EventFeed>,
    webhooks: Arc<Webhooks>,
}}
