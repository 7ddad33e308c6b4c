//! Dashboard sessions: a random id in an HttpOnly, Secure, SameSite=Strict
//! cookie, each with its own CSRF token that every form must send back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use lifeboat_ops::access::Authenticated;

/// The session cookie's name.
pub const COOKIE: &str = "lb_session";
/// The cookie carrying the login form's CSRF token (before a session).
pub const LOGIN_COOKIE: &str = "lb_login";
/// How long a session lasts without use.
const IDLE: Duration = Duration::from_secs(8 * 3600);

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who.
    pub user: Authenticated,
    /// The token every form of this session carries.
    pub csrf: String,
    seen: Instant,
}

/// The live sessions of this daemon (they end with it).
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    // Without randomness no token is safe: an empty one matches nothing.
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The value of cookie `name` in a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value for `name`: HttpOnly, Secure, SameSite=Strict.
pub fn set_cookie(name: &str, value: &str, max_age: u64) -> String {
    format!("{name}={value}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}")
}

/// Whether two tokens are the same (in constant time); empty never matches.
pub fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty()
        && a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// Starts a session for `user`; returns its id.
    pub fn start(&self, user: Authenticated) -> Option<String> {
        let id = random_token();
        let csrf = random_token();
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let mut live = self.live.lock().ok()?;
        live.retain(|_, s| s.seen.elapsed() < IDLE);
        live.insert(
            id.clone(),
            Session {
                user,
                csrf,
                seen: Instant::now(),
            },
        );
        Some(id)
    }

    /// The session a request carries, if it is live.
    pub fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut live = self.live.lock().ok()?;
        let s = live.get_mut(&id)?;
        if s.seen.elapsed() >= IDLE {
            live.remove(&id);
            return None;
        }
        s.seen = Instant::now();
        Some(s.clone())
    }

    /// Ends the session a request carries.
    pub fn end(&self, headers: &HeaderMap) {
        if let (Some(id), Ok(mut live)) = (cookie(headers, COOKIE), self.live.lock()) {
            live.remove(&id);
        }
    }
}
