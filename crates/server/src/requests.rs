//! The approval API: restorers ask for a restore into a protected target,
//! approvers approve it bound to its plan's hash, and the daemon runs it.
//! `GET /api/requests`, `POST /api/requests`, `POST /api/requests/{id}/approve`.

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use lifeboat_ops::access::Permission;
use lifeboat_ops::access::requests::{Plan, Request, RequestError, RequestStore};
use serde::Deserialize;

use crate::{AppState, Peer, auth};

/// `POST /api/requests`.
#[derive(Debug, Deserialize)]
pub struct NewRequest {
    /// The `lifeboat` arguments from the verb on.
    pub command: Vec<String>,
    /// The protected source it reaches.
    #[serde(default)]
    pub source: Option<String>,
    /// Break glass (admins only): run without approval, for this reason.
    #[serde(default)]
    pub break_glass: Option<String>,
}

/// `POST /api/requests/{id}/approve`.
#[derive(Debug, Deserialize)]
pub struct ApproveBody {
    /// The plan hash the approver read.
    pub hash: String,
}

fn store(state: &AppState) -> Result<&RequestStore, auth::Refusal> {
    state
        .access
        .requests
        .as_ref()
        .ok_or_else(|| auth::refuse(StatusCode::NOT_FOUND, "this daemon takes no requests"))
}

fn status_of(e: &RequestError) -> StatusCode {
    match e {
        RequestError::Unknown(_) => StatusCode::NOT_FOUND,
        RequestError::SelfApproval => StatusCode::FORBIDDEN,
        RequestError::Expired(_) => StatusCode::GONE,
        RequestError::PlanChanged { .. }
        | RequestError::AlreadyApproved(_)
        | RequestError::NotPending(_) => StatusCode::CONFLICT,
        RequestError::BadPlan(_) => StatusCode::BAD_REQUEST,
        RequestError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn audit(
    state: &AppState,
    caller: &auth::Caller,
    action: &str,
    outcome: Result<(), String>,
    details: Vec<(&str, String)>,
) {
    crate::audit_action(
        &state.shared,
        caller.actor(),
        caller.address.clone(),
        action,
        outcome,
        details,
    );
}

/// Lists the requests.
pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = state.authorize(&headers, peer, Permission::View, "requests") {
        return r.into_response();
    }
    let store = match store(&state) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    match store.list(Utc::now()) {
        Ok(all) => Json(all).into_response(),
        Err(e) => (status_of(&e), format!("{e}\n")).into_response(),
    }
}

/// Makes a request (or, for an admin with a reason, breaks glass).
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Json(body): Json<NewRequest>,
) -> Response {
    let need = if body.break_glass.is_some() {
        Permission::Administer
    } else {
        Permission::Restore
    };
    let action = if body.break_glass.is_some() {
        "break glass"
    } else {
        "request"
    };
    let caller = match state.authorize(&headers, peer, need, action) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let store = match store(&state) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if body
        .break_glass
        .as_deref()
        .is_some_and(|r| r.trim().is_empty())
    {
        return (StatusCode::BAD_REQUEST, "break glass needs a reason\n").into_response();
    }
    let requester = caller
        .user
        .as_ref()
        .map_or("anonymous".to_string(), |u| u.name.clone());
    let plan = Plan {
        command: body.command,
        source: body.source,
    };
    let who = (caller.actor(), caller.address.clone());
    match make(
        &state,
        store,
        &requester,
        who,
        plan,
        body.break_glass,
        action,
    ) {
        Ok(r) => (StatusCode::CREATED, Json(r)).into_response(),
        Err(e) => (status_of(&e), format!("{e}\n")).into_response(),
    }
}

/// Makes a request for `plan` by `requester` and records it in the audit
/// log as `who` (actor, address) did `action`, whether it was made or not.
pub(crate) fn make(
    state: &AppState,
    store: &RequestStore,
    requester: &str,
    who: (String, String),
    plan: Plan,
    break_glass: Option<String>,
    action: &str,
) -> Result<Request, RequestError> {
    let command = plan.shown();
    let (actor, address) = who;
    let made = store.create(
        plan,
        requester,
        state.access.approvals_required,
        state.access.approvals_expire,
        break_glass,
        Utc::now(),
    );
    let (outcome, details) = match &made {
        Ok(r) => {
            let mut details = vec![
                ("request", r.id.clone()),
                ("plan", r.hash.clone()),
                ("command", command),
            ];
            if let Some(why) = &r.break_glass {
                details.push(("reason", why.clone()));
                details.push(("review", "needed".into()));
            }
            (Ok(()), details)
        }
        Err(e) => (Err(e.to_string()), vec![("command", command)]),
    };
    crate::audit_action(&state.shared, actor, address, action, outcome, details);
    made
}

/// Approves a request, bound to the plan hash given.
pub async fn approve(
    State(state): State<AppState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<ApproveBody>,
) -> Response {
    let caller = match state.authorize(&headers, peer, Permission::Approve, "approve") {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let store = match store(&state) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let Some(user) = caller.user.clone() else {
        return (
            StatusCode::FORBIDDEN,
            "approvals need users: an anonymous caller cannot be told apart from the requester\n",
        )
            .into_response();
    };
    let details = vec![("request", id.clone()), ("plan", body.hash.clone())];
    match store.approve(&id, &user, &body.hash, Utc::now()) {
        Ok(r) => {
            audit(&state, &caller, "approve", Ok(()), details);
            Json(r).into_response()
        }
        Err(e) => {
            audit(&state, &caller, "approve", Err(e.to_string()), details);
            (status_of(&e), format!("{e}\n")).into_response()
        }
    }
}
