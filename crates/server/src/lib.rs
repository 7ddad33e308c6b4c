//! The daemon's HTTP side: Prometheus metrics (`/metrics`), health
//! (`/healthz`) and a small JSON API over the daemon's cached view
//! (`/api/status`, pause, resume, run a job now). It reads what the daemon
//! shares and never touches the repository, so a scrape costs microseconds
//! whatever the repository holds.
//!
//! Metrics and health are open (Prometheus scrapes them); the API asks
//! who is calling once the daemon has users ([`auth`]): viewers read,
//! operators start and pause jobs. Every API action and every refused
//! login is recorded in the repository's audit log.

#![forbid(unsafe_code)]

pub mod auth;
pub mod dashboard;
pub mod requests;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lifeboat_ops::access::Permission;
use lifeboat_ops::daemon::{Request, Shared};
use lifeboat_repo::audit::AuditRecord;

pub use auth::Access;

/// What the handlers share: the daemon's state and the access rules.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The daemon's shared state.
    pub shared: Arc<Shared>,
    /// Users, tokens and the login limit.
    pub access: Arc<Access>,
    /// The repository, for the audit log page.
    pub repo: Option<lifeboat_repo::Repository>,
}

/// What can go wrong starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl AppState {
    /// Who is calling, if their credentials allow `need` (see [`auth::authorize`]).
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        need: Permission,
        action: &str,
    ) -> Result<auth::Caller, auth::Refusal> {
        auth::authorize(&self.shared, &self.access, headers, peer, need, action)
    }
}

/// The routes over the daemon's shared state.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .route("/api/status", get(status))
        .route("/api/pause", post(pause))
        .route("/api/resume", post(resume))
        .route("/api/jobs/{name}/run", post(run_now))
        .route("/api/requests", get(requests::list).post(requests::create))
        .route("/api/requests/{id}/approve", post(requests::approve))
        .merge(dashboard::routes())
        .with_state(state)
}

/// The caller's address.
pub(crate) type Peer = ConnectInfo<SocketAddr>;

/// Records an allowed API action in the audit log.
fn record(state: &AppState, caller: &auth::Caller, action: &str, details: &[(&str, &str)]) {
    audit_action(
        &state.shared,
        caller.actor(),
        caller.address.clone(),
        action,
        Ok(()),
        details.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    );
}

/// Queues an audit entry for something done (or refused) through the HTTP
/// side; the daemon appends it to the repository's log.
pub(crate) fn audit_action(
    shared: &Shared,
    actor: String,
    from: String,
    action: &str,
    outcome: Result<(), String>,
    details: Vec<(&str, String)>,
) {
    let (outcome, error) = match outcome {
        Ok(()) => ("ok".to_string(), None),
        Err(e) => ("refused".to_string(), Some(e)),
    };
    shared.audit(AuditRecord {
        actor,
        from,
        action: action.to_string(),
        outcome,
        error,
        details: details
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..Default::default()
    });
}

/// OpenMetrics for clients that ask for it (Prometheus does), the classic
/// text format otherwise (promtool, curl).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = &state.shared;
    let open = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if open {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            s.metrics.encode(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            s.metrics.encode_text(),
        )
            .into_response()
    }
}

async fn health(State(state): State<AppState>) -> Response {
    if state.shared.ready.load(std::sync::atomic::Ordering::SeqCst) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn status(
    State(state): State<AppState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = state.authorize(&headers, peer, Permission::View, "status") {
        return r.into_response();
    }
    let body = serde_json::to_string(&state.shared.view()).unwrap_or_else(|_| "{}".into());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An operator's request to the loop (pause, resume), recorded.
fn operate(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    action: &str,
    request: Request,
    answer: &'static str,
) -> Response {
    match state.authorize(headers, peer, Permission::Operate, action) {
        Ok(caller) => {
            state.shared.request(request);
            record(state, &caller, action, &[]);
            (StatusCode::ACCEPTED, answer).into_response()
        }
        Err(r) => r.into_response(),
    }
}

async fn pause(
    State(state): State<AppState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    operate(&state, peer, &headers, "pause", Request::Pause, "pausing\n")
}

async fn resume(
    State(state): State<AppState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    operate(
        &state,
        peer,
        &headers,
        "resume",
        Request::Resume,
        "resuming\n",
    )
}

async fn run_now(
    State(state): State<AppState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let caller = match state.authorize(&headers, peer, Permission::Operate, "run now") {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    if !state.shared.view().jobs.iter().any(|j| j.name == name) {
        return (StatusCode::NOT_FOUND, format!("no job {name:?}\n")).into_response();
    }
    state.shared.request(Request::RunNow {
        job: name.clone(),
        by: caller.user.as_ref().map(|u| format!("{} (API)", u.name)),
    });
    record(&state, &caller, "run now", &[("job", &name)]);
    (StatusCode::ACCEPTED, "queued\n").into_response()
}

/// Binds `address` (so an address in use is reported before the daemon
/// starts any job).
pub async fn bind(address: &str) -> Result<tokio::net::TcpListener, ServerError> {
    let addr: SocketAddr = address.parse().map_err(|e| ServerError::Bind {
        address: address.into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            address: address.into(),
            source,
        })
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(ServerError::Serve)
}
