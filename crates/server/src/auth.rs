//! Who is asking: a bearer token (`Authorization: Bearer lbt_…`) or a user
//! name and password (HTTP Basic), checked against the user store, with
//! wrong passwords rate-limited and every failure recorded in the audit
//! log. Without any user the API is open to whoever reaches its address
//! (the daemon then listens on loopback only).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lifeboat_ops::access::ratelimit::LoginLimiter;
use lifeboat_ops::access::{AccessError, Authenticated, Permission, UserStore};
use lifeboat_ops::daemon::Shared;

/// The access side of the server.
#[derive(Debug)]
pub struct Access {
    /// The user store; `None` leaves the API open.
    pub users: Option<UserStore>,
    /// Wrong passwords per user and address.
    pub limiter: LoginLimiter,
    /// Requests for restores into protected targets; `None`: none taken.
    pub requests: Option<lifeboat_ops::access::requests::RequestStore>,
    /// Approvals a request needs.
    pub approvals_required: u32,
    /// How long a request waits for them.
    pub approvals_expire: chrono::Duration,
    /// Dashboard sessions.
    pub sessions: crate::dashboard::session::Sessions,
}

/// Who made a request, once allowed.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user, or `None` when the API has no users.
    pub user: Option<Authenticated>,
    /// Their address.
    pub address: String,
}

impl Caller {
    /// The name an audit entry gives.
    pub fn actor(&self) -> String {
        match &self.user {
            Some(u) => format!("{} (API)", u.name),
            None => format!("anonymous (API, no users configured) from {}", self.address),
        }
    }
}

/// Why a request was refused; answered as its status with a one-line body.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut r = (self.status, format!("{}\n", self.message)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(
                    "Bearer realm=\"lifeboat\", Basic realm=\"lifeboat\"",
                ),
            );
        }
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        r
    }
}

/// A refusal with `status` saying `why`.
pub(crate) fn refuse(status: StatusCode, why: &str) -> Refusal {
    Refusal {
        status,
        message: why.to_string(),
        retry_after: None,
    }
}

fn record_failure(shared: &Shared, who: &str, address: &str, action: &str, why: &str) {
    crate::audit_action(
        shared,
        who.to_string(),
        address.to_string(),
        action,
        Err(why.to_string()),
        Vec::new(),
    );
}

/// Checks the request's credentials and that they allow `need`.
/// Answers 401 (no or bad credentials, revoked token), 403 (not allowed),
/// 429 (too many wrong passwords).
pub fn authorize(
    shared: &Arc<Shared>,
    access: &Access,
    headers: &HeaderMap,
    peer: SocketAddr,
    need: Permission,
    action: &str,
) -> Result<Caller, Refusal> {
    let address = peer.ip().to_string();
    let Some(store) = &access.users else {
        return Ok(Caller {
            user: None,
            address,
        });
    };
    let open = match store.has_users() {
        Ok(has) => !has,
        Err(e) => return Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    };
    if open {
        return Ok(Caller {
            user: None,
            address,
        });
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let user = if let Some(token) = given.strip_prefix("Bearer ") {
        match store.check_token(token) {
            Ok(u) => u,
            Err(e @ (AccessError::TokenInvalid | AccessError::TokenRevoked)) => {
                record_failure(shared, "unknown token", &address, "login", &e.to_string());
                return Err(refuse(StatusCode::UNAUTHORIZED, &e.to_string()));
            }
            Err(e) => return Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
        }
    } else if let Some(basic) = given.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let (name, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        let now = Instant::now();
        if let Some(wait) = access.limiter.blocked_for(name, &address, now) {
            record_failure(shared, name, &address, "login", "too many wrong passwords");
            return Err(Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: "too many wrong passwords: try again later".into(),
                retry_after: Some(wait.as_secs().max(1)),
            });
        }
        match store.check_password(name, password) {
            Ok(Some(u)) => {
                access.limiter.succeeded(name, &address);
                u
            }
            Ok(None) => {
                access.limiter.failed(name, &address, now);
                record_failure(
                    shared,
                    name,
                    &address,
                    "login",
                    "wrong user name or password",
                );
                return Err(refuse(
                    StatusCode::UNAUTHORIZED,
                    "wrong user name or password",
                ));
            }
            Err(e) => return Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
        }
    } else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "this needs a token (Authorization: Bearer lbt_…; `lifeboat token create`) or a user's password",
        ));
    };
    if !user.role.allows(need) {
        record_failure(
            shared,
            &format!("{} (API)", user.name),
            &address,
            action,
            &format!("the {} role does not allow this", user.role.name()),
        );
        return Err(refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "{} is a {}: this needs another role",
                user.name,
                user.role.name()
            ),
        ));
    }
    Ok(Caller {
        user: Some(user),
        address,
    })
}
