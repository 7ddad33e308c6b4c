//! The dashboard's pages and form actions.

use std::net::SocketAddr;
use std::time::Instant;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use lifeboat_ops::access::Permission;
use lifeboat_ops::access::requests::Request as ApprovalRequest;
use lifeboat_ops::daemon::{JobView, SourceView};
use lifeboat_ops::runs::{Outcome, RunRecord};
use lifeboat_repo::audit::AuditLog;
use serde::Deserialize;

use super::session::{self, Session};
use super::{html, svg, to_login};
use crate::AppState;

/// What every page's frame shows.
pub struct Frame {
    user: String,
    role: String,
    csrf: String,
    page: &'static str,
}

impl Frame {
    fn of(s: &Session, page: &'static str) -> Self {
        Frame {
            user: s.user.name.clone(),
            role: s.user.role.name().to_string(),
            csrf: s.csrf.clone(),
            page,
        }
    }
}

fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(t) = t else {
        return "never".into();
    };
    let s = (now - t).num_seconds().max(0);
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86400),
    }
}

fn span(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A source's row on the overview.
pub struct SourceRow {
    name: String,
    url: String,
    kind: String,
    protected: bool,
    last: String,
    rpo: String,
    status: &'static str,
    status_text: String,
    timeline: String,
}

fn source_row(s: &SourceView, now: DateTime<Utc>) -> SourceRow {
    let (status, status_text) = match s.last_success {
        None => ("bad", "no backup yet".to_string()),
        Some(t) if (now - t).num_seconds() > s.rpo_seconds => (
            "bad",
            format!("late: older than its RPO of {}", span(s.rpo_seconds)),
        ),
        Some(_) => ("ok", "within RPO".to_string()),
    };
    SourceRow {
        name: s.name.clone(),
        url: format!("/sources/{}", segment(&s.name)),
        kind: s.kind.clone(),
        protected: s.protected,
        last: ago(s.last_success, now),
        rpo: span(s.rpo_seconds),
        status,
        status_text,
        timeline: svg::timeline(&s.snapshots, s.window, now),
    }
}

/// `s` as one URL path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A job's row.
pub struct JobRow {
    name: String,
    url: String,
    schedule: String,
    next: String,
    running: Option<String>,
    last: String,
    last_class: &'static str,
    button: Option<&'static str>,
}

fn outcome_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "ok",
        Outcome::Skipped => "warn",
        _ => "bad",
    }
}

fn job_row(j: &JobView, now: DateTime<Utc>, can_run: bool) -> JobRow {
    let button = match j.run.as_str() {
        "backup" => Some("Back up now"),
        "drill" => Some("Drill now"),
        _ => Some("Run now"),
    };
    JobRow {
        name: j.name.clone(),
        url: format!("/jobs/{}/run", segment(&j.name)),
        schedule: j.schedule.clone(),
        next: j.next.map(when).unwrap_or_else(|| "-".into()),
        running: j.running_since.map(|t| match &j.progress {
            Some(p) => format!(
                "running for {}: {}",
                span((now - t).num_seconds()),
                p.describe()
            ),
            None => format!("running for {}", span((now - t).num_seconds())),
        }),
        last: j
            .last
            .as_ref()
            .map(|r| format!("{} {}", r.outcome.as_str(), ago(Some(r.ended), now)))
            .unwrap_or_else(|| "never ran".into()),
        last_class: j.last.as_ref().map_or("", |r| outcome_class(r.outcome)),
        button: button.filter(|_| can_run && j.running_since.is_none()),
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    frame: Frame,
    paused: bool,
    alerts: Vec<(String, String)>,
    sources: Vec<SourceRow>,
    jobs: Vec<JobRow>,
    pending: usize,
    /// Seconds between reloads: sooner while a job runs, to follow it.
    refresh: u32,
}

/// `/`: every source against its RPO, the jobs, the alerts.
pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = state.access.sessions.get(&headers) else {
        return to_login();
    };
    let now = Utc::now();
    let view = state.shared.view();
    let can_run = s.user.role.allows(Permission::Operate);
    let pending = state
        .access
        .requests
        .as_ref()
        .and_then(|r| r.list(now).ok())
        .map_or(0, |all| {
            all.iter()
                .filter(|r| r.state == lifeboat_ops::access::requests::State::Pending)
                .count()
        });
    html(
        Overview {
            frame: Frame::of(&s, "overview"),
            paused: view.paused,
            alerts: view
                .alerts
                .iter()
                .map(|a| (a.summary.clone(), a.detail.clone()))
                .collect(),
            sources: view.sources.iter().map(|x| source_row(x, now)).collect(),
            jobs: view.jobs.iter().map(|j| job_row(j, now, can_run)).collect(),
            pending,
            refresh: if view.jobs.iter().any(|j| j.running_since.is_some()) {
                3
            } else {
                10
            },
        }
        .render(),
    )
}

/// A run's row.
pub struct RunRow {
    job: String,
    started: String,
    took: String,
    outcome: String,
    class: &'static str,
    result: String,
}

fn run_row(r: &RunRecord) -> RunRow {
    RunRow {
        job: match &r.started_by {
            Some(by) => format!("{} · asked by {by}", r.job),
            None => r.job.clone(),
        },
        started: when(r.started),
        took: span((r.ended - r.started).num_seconds()),
        outcome: r.outcome.as_str().to_string(),
        class: outcome_class(r.outcome),
        result: match (&r.error, &r.snapshot, r.rto_seconds) {
            (Some(e), _, _) => e.lines().last().unwrap_or_default().to_string(),
            (None, _, Some(rto)) => format!("recovered in {rto:.0} s"),
            (None, Some(s), _) => format!("snapshot {}", &s[..8.min(s.len())]),
            _ => String::new(),
        },
    }
}

#[derive(Template)]
#[template(path = "source.html")]
struct SourcePage {
    frame: Frame,
    source: SourceRow,
    snapshots: Vec<String>,
    runs: Vec<RunRow>,
    /// The in-place restore this user may ask for (shown without passwords).
    restore: Option<String>,
}

/// `/sources/NAME`: the source's timeline and its runs.
pub async fn source(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let Some(s) = state.access.sessions.get(&headers) else {
        return to_login();
    };
    let now = Utc::now();
    let view = state.shared.view();
    let Some(src) = view.sources.iter().find(|x| x.name == name) else {
        return (StatusCode::NOT_FOUND, format!("no source {name:?}\n")).into_response();
    };
    html(
        SourcePage {
            frame: Frame::of(&s, "overview"),
            source: source_row(src, now),
            snapshots: src
                .snapshots
                .iter()
                .rev()
                .take(50)
                .map(|t| when(*t))
                .collect(),
            runs: view
                .runs
                .iter()
                .rev()
                .filter(|r| r.source.as_deref() == Some(&name))
                .take(50)
                .map(run_row)
                .collect(),
            restore: src
                .restore_command
                .as_ref()
                .filter(|_| src.protected && s.user.role.allows(Permission::Restore))
                .map(|c| {
                    lifeboat_ops::access::requests::Plan {
                        command: c.clone(),
                        source: Some(name.clone()),
                    }
                    .shown()
                }),
        }
        .render(),
    )
}

/// `POST /sources/NAME/request`: asks for the in-place restore of a
/// protected source from its newest backup; another person approves it on
/// the approvals page.
pub async fn request_restore(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let need = Permission::Restore;
    let s = match permitted(
        &state,
        &headers,
        &form,
        peer,
        need,
        ("request", vec![("source", name.clone())]),
    ) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let view = state.shared.view();
    let Some(command) = view
        .sources
        .iter()
        .find(|x| x.name == name && x.protected)
        .and_then(|x| x.restore_command.clone())
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("no protected source {name:?} the dashboard can restore\n"),
        )
            .into_response();
    };
    let Some(store) = &state.access.requests else {
        return (StatusCode::NOT_FOUND, "this daemon takes no requests\n").into_response();
    };
    let plan = lifeboat_ops::access::requests::Plan {
        command,
        source: Some(name),
    };
    let who = (
        format!("{} (dashboard)", s.user.name),
        peer.ip().to_string(),
    );
    let message =
        match crate::requests::make(&state, store, &s.user.name, who, plan, None, "request") {
            Ok(r) => format!(
                "asked for request {}: it runs once {} other person(s) approve plan {}",
                r.id,
                state.access.approvals_required,
                &r.hash[..12.min(r.hash.len())]
            ),
            Err(e) => format!("not asked: {e}"),
        };
    render_approvals(&state, &s, Some(message)).await
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    frame: Frame,
    runs: Vec<RunRow>,
    failures: usize,
    chart: String,
    drills: usize,
}

/// `/runs`: runs and their failures; drills with their recovery times.
pub async fn runs(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = state.access.sessions.get(&headers) else {
        return to_login();
    };
    let view = state.shared.view();
    let drills: Vec<(DateTime<Utc>, f64, bool)> = view
        .runs
        .iter()
        .filter(|r| r.run == "drill")
        .filter_map(|r| {
            r.rto_seconds
                .map(|rto| (r.ended, rto, r.outcome == Outcome::Success))
        })
        .collect();
    html(
        RunsPage {
            frame: Frame::of(&s, "runs"),
            failures: view
                .runs
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Failure | Outcome::TimedOut))
                .count(),
            runs: view.runs.iter().rev().take(200).map(run_row).collect(),
            chart: svg::rto_chart(&drills, view.rto_target_seconds),
            drills: drills.len(),
        }
        .render(),
    )
}

/// A request's row.
pub struct RequestRow {
    id: String,
    state: String,
    requester: String,
    command: String,
    hash: String,
    approvals: String,
    expires: String,
    can_approve: bool,
    outcome: String,
    outcome_class: &'static str,
    break_glass: Option<String>,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    frame: Frame,
    requests: Vec<RequestRow>,
    message: Option<String>,
}

fn request_row(r: &ApprovalRequest, s: &Session) -> RequestRow {
    let pending = r.state == lifeboat_ops::access::requests::State::Pending;
    RequestRow {
        id: r.id.clone(),
        state: r.state.name().to_string(),
        requester: r.requester.clone(),
        command: format!("lifeboat {}", r.plan.shown()),
        hash: r.hash.clone(),
        approvals: r.approvals_text(),
        expires: when(r.expires),
        can_approve: pending
            && s.user.role.allows(Permission::Approve)
            && s.user.name != r.requester
            && !r.approvals.iter().any(|a| a.by == s.user.name),
        outcome: match r.exit {
            Some(0) => "restored".into(),
            Some(code) => format!("failed (exit {code})"),
            None => String::new(),
        },
        outcome_class: match r.exit {
            Some(0) => "restored",
            _ => "failed",
        },
        break_glass: r.break_glass.clone(),
    }
}

async fn render_approvals(state: &AppState, s: &Session, message: Option<String>) -> Response {
    let all = state
        .access
        .requests
        .as_ref()
        .and_then(|r| r.list(Utc::now()).ok())
        .unwrap_or_default();
    html(
        ApprovalsPage {
            frame: Frame::of(s, "approvals"),
            requests: all.iter().rev().map(|r| request_row(r, s)).collect(),
            message,
        }
        .render(),
    )
}

/// `/approvals`: the queue.
pub async fn approvals(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = state.access.sessions.get(&headers) else {
        return to_login();
    };
    render_approvals(&state, &s, None).await
}

/// A form post: its CSRF token, and what else it carries.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    hash: String,
}

/// The session of a form post that may do `action`: its CSRF token
/// matches, and its role allows `need`; a role that does not is answered
/// 403 and recorded with `details`.
fn permitted(
    state: &AppState,
    headers: &HeaderMap,
    form: &CsrfForm,
    peer: SocketAddr,
    need: Permission,
    (action, details): (&str, Vec<(&str, String)>),
) -> Result<Session, Box<Response>> {
    let s = checked(state, headers, form).map_err(|r| Box::new(r.into_response()))?;
    if !s.user.role.allows(need) {
        record(
            state,
            &s,
            peer,
            action,
            Err("the role does not allow it".into()),
            details,
        );
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                format!("your role does not allow {action}\n"),
            )
                .into_response(),
        ));
    }
    Ok(s)
}

/// The session of a form post whose CSRF token matches it.
fn checked(
    state: &AppState,
    headers: &HeaderMap,
    form: &CsrfForm,
) -> Result<Session, crate::auth::Refusal> {
    let Some(s) = state.access.sessions.get(headers) else {
        return Err(crate::auth::refuse(StatusCode::FORBIDDEN, "sign in first"));
    };
    if !session::same_token(&form.csrf, &s.csrf) {
        return Err(crate::auth::refuse(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong",
        ));
    }
    Ok(s)
}

fn record(
    state: &AppState,
    s: &Session,
    peer: SocketAddr,
    action: &str,
    outcome: Result<(), String>,
    details: Vec<(&str, String)>,
) {
    crate::audit_action(
        &state.shared,
        format!("{} (dashboard)", s.user.name),
        peer.ip().to_string(),
        action,
        outcome,
        details,
    );
}

/// `POST /approvals/ID/approve`.
pub async fn approve(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let details = vec![("request", id.clone()), ("plan", form.hash.clone())];
    let need = Permission::Approve;
    let s = match permitted(
        &state,
        &headers,
        &form,
        peer,
        need,
        ("approve", details.clone()),
    ) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Some(store) = &state.access.requests else {
        return (StatusCode::NOT_FOUND, "this daemon takes no requests\n").into_response();
    };
    let message = match store.approve(&id, &s.user, &form.hash, Utc::now()) {
        Ok(r) => {
            record(&state, &s, peer, "approve", Ok(()), details);
            format!("approved request {}: it is {}", r.id, r.state.name())
        }
        Err(e) => {
            record(&state, &s, peer, "approve", Err(e.to_string()), details);
            format!("not approved: {e}")
        }
    };
    render_approvals(&state, &s, Some(message)).await
}

/// `POST /jobs/NAME/run`: "back up now", "drill now".
pub async fn run_job(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let need = Permission::Operate;
    let s = match permitted(
        &state,
        &headers,
        &form,
        peer,
        need,
        ("run now", vec![("job", name.clone())]),
    ) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if !state.shared.view().jobs.iter().any(|j| j.name == name) {
        return (StatusCode::NOT_FOUND, format!("no job {name:?}\n")).into_response();
    }
    state.shared.request(lifeboat_ops::daemon::Request::RunNow {
        job: name.clone(),
        by: Some(format!("{} (dashboard)", s.user.name)),
    });
    record(&state, &s, peer, "run now", Ok(()), vec![("job", name)]);
    Redirect::to("/").into_response()
}

/// An audit entry's row.
pub struct AuditRow {
    seq: u64,
    time: String,
    actor: String,
    from: String,
    action: String,
    outcome: String,
    class: &'static str,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    frame: Frame,
    logs: Vec<(String, bool, usize, Vec<String>)>,
    rows: Vec<AuditRow>,
    error: Option<String>,
}

fn audit_rows(logs: &[AuditLog]) -> Vec<AuditRow> {
    let mut rows: Vec<AuditRow> = logs
        .iter()
        .filter(|l| l.own)
        .flat_map(|l| &l.entries)
        .rev()
        .take(300)
        .map(|e| AuditRow {
            seq: e.seq,
            time: when(e.time),
            actor: e.actor.clone(),
            from: e.from.clone(),
            action: e.action.clone(),
            outcome: e.outcome.clone(),
            class: match e.outcome.as_str() {
                "ok" => "ok",
                "refused" => "warn",
                _ => "bad",
            },
            detail: e
                .error
                .clone()
                .or_else(|| {
                    (!e.details.is_empty()).then(|| {
                        e.details
                            .iter()
                            .map(|(k, v)| {
                                format!("{k}: {}", v.chars().take(40).collect::<String>())
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                })
                .unwrap_or_default(),
        })
        .collect();
    rows.truncate(300);
    rows
}

/// `/audit`: the log, verified.
pub async fn audit_log(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = state.access.sessions.get(&headers) else {
        return to_login();
    };
    let (logs, error) = match &state.repo {
        Some(repo) => match repo.audit_logs().await {
            Ok(l) => (l, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
        None => (Vec::new(), Some("this daemon has no repository".into())),
    };
    html(
        AuditPage {
            frame: Frame::of(&s, "audit"),
            rows: audit_rows(&logs),
            logs: logs
                .iter()
                .map(|l| {
                    (
                        l.log.clone(),
                        l.own,
                        l.entries.len(),
                        l.problems.iter().map(|p| p.problem.clone()).collect(),
                    )
                })
                .collect(),
            error,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    message: Option<String>,
}

/// `GET /login`.
pub async fn login_form() -> Response {
    login_page(None, StatusCode::OK)
}

fn login_page(message: Option<String>, status: StatusCode) -> Response {
    let csrf = session::random_token();
    let mut r = html(
        LoginPage {
            csrf: csrf.clone(),
            message,
        }
        .render(),
    );
    *r.status_mut() = status;
    if let Ok(v) =
        header::HeaderValue::from_str(&session::set_cookie(session::LOGIN_COOKIE, &csrf, 600))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /login`: the password checked (rate-limited), a session started.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or_default();
    if !session::same_token(&form.csrf, &expected) {
        return (
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong\n",
        )
            .into_response();
    }
    let Some(store) = &state.access.users else {
        return login_page(
            Some("this daemon has no users".into()),
            StatusCode::FORBIDDEN,
        );
    };
    let address = peer.ip().to_string();
    let now = Instant::now();
    let failed = |why: &str| {
        crate::audit_action(
            &state.shared,
            form.user.clone(),
            address.clone(),
            "login",
            Err(why.into()),
            vec![("via", "dashboard".into())],
        );
    };
    if state
        .access
        .limiter
        .blocked_for(&form.user, &address, now)
        .is_some()
    {
        failed("too many wrong passwords");
        return login_page(
            Some("Too many wrong passwords: wait a few minutes.".into()),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    match store.check_password(&form.user, &form.password) {
        Ok(Some(user)) => {
            state.access.limiter.succeeded(&form.user, &address);
            let Some(id) = state.access.sessions.start(user.clone()) else {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no randomness for a session\n",
                )
                    .into_response();
            };
            crate::audit_action(
                &state.shared,
                format!("{} (dashboard)", user.name),
                address,
                "login",
                Ok(()),
                Vec::new(),
            );
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) =
                header::HeaderValue::from_str(&session::set_cookie(session::COOKIE, &id, 8 * 3600))
            {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Ok(None) => {
            state.access.limiter.failed(&form.user, &address, now);
            failed("wrong user name or password");
            login_page(
                Some("Wrong user name or password.".into()),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = checked(&state, &headers, &form) {
        return r.into_response();
    }
    state.access.sessions.end(&headers);
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = header::HeaderValue::from_str(&session::set_cookie(session::COOKIE, "", 0)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
