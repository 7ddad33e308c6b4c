//! The web dashboard: server-rendered pages (askama templates, one
//! stylesheet, no JavaScript, nothing from a CDN) over the daemon's shared
//! view, the request store and the repository's audit log. Every page is a
//! plain link, every action a plain form with the session's CSRF token.

mod pages;
pub mod session;
pub mod svg;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::AppState;

/// The dashboard's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/sources/{name}", get(pages::source))
        .route("/sources/{name}/request", post(pages::request_restore))
        .route("/runs", get(pages::runs))
        .route("/approvals", get(pages::approvals))
        .route("/approvals/{id}/approve", post(pages::approve))
        .route("/audit", get(pages::audit_log))
        .route("/jobs/{name}/run", post(pages::run_job))
        .route("/static/style.css", get(style))
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../templates/style.css"),
    )
        .into_response()
}

/// Sends a browser without a session to the login page.
fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

/// A page, or why it could not be rendered.
fn html(rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::X_FRAME_OPTIONS, "DENY"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
                ),
                (header::REFERRER_POLICY, "same-origin"),
            ],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("the page failed: {e}\n")).into_response(),
    }
}
