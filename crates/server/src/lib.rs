//! The daemon's HTTP side: Prometheus metrics (`/metrics`), health
//! (`/healthz`) and a small JSON API over the daemon's cached view
//! (`/api/status`, pause, resume, run a job now). It reads what the daemon
//! shares and never touches the repository, so a scrape costs microseconds
//! whatever the repository holds.
//!
//! It listens on 127.0.0.1 unless configured otherwise: the API can start
//! and pause jobs, and has no authentication of its own yet.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lifeboat_ops::daemon::{Request, Shared};

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

/// The routes over the daemon's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .route("/api/status", get(status))
        .route("/api/pause", post(pause))
        .route("/api/resume", post(resume))
        .route("/api/jobs/{name}/run", post(run_now))
        .with_state(shared)
}

/// OpenMetrics for clients that ask for it (Prometheus does), the classic
/// text format otherwise (promtool, curl).
async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
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

async fn health(State(s): State<Arc<Shared>>) -> Response {
    if s.ready.load(std::sync::atomic::Ordering::SeqCst) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn status(State(s): State<Arc<Shared>>) -> Response {
    let body = serde_json::to_string(&s.view()).unwrap_or_else(|_| "{}".into());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn pause(State(s): State<Arc<Shared>>) -> Response {
    s.request(Request::Pause);
    (StatusCode::ACCEPTED, "pausing\n").into_response()
}

async fn resume(State(s): State<Arc<Shared>>) -> Response {
    s.request(Request::Resume);
    (StatusCode::ACCEPTED, "resuming\n").into_response()
}

async fn run_now(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    if !s.view().jobs.iter().any(|j| j.name == name) {
        return (StatusCode::NOT_FOUND, format!("no job {name:?}\n")).into_response();
    }
    s.request(Request::RunNow(name));
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
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Serve)
}
