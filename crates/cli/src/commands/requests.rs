//! `request`, `requests`, `approve`: the CLI side of two-person approval.
//! They talk to the daemon's API with the token in `LIFEBOAT_TOKEN`, under
//! the same rules as any other API client.

use anyhow::{Context, Result, bail};
use lifeboat_ops::access::requests::Request;
use serde_json::json;

use crate::cli::{ApproveArgs, DaemonArgs, Global, RequestArgs};
use crate::exit::UsageError;
use crate::output;
use crate::settings::FileSettings;

/// The daemon's base URL.
fn base(g: &Global, d: &DaemonArgs) -> Result<String> {
    if let Some(u) = d
        .daemon
        .clone()
        .or_else(|| std::env::var("LIFEBOAT_DAEMON").ok())
    {
        return Ok(u.trim_end_matches('/').to_string());
    }
    let listen = FileSettings::load(g)?
        .serve
        .listen
        .unwrap_or_else(|| "127.0.0.1:9187".into());
    Ok(format!("http://{listen}"))
}

/// Sends a request with the token, and turns a refusal into an error with
/// the daemon's words (401/403 are bad usage: exit 2).
async fn call(
    g: &Global,
    d: &DaemonArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    let url = format!("{}{path}", base(g, d)?);
    let mut req = reqwest::Client::new().request(method, &url);
    if let Ok(token) = std::env::var("LIFEBOAT_TOKEN") {
        req = req.bearer_auth(token.trim());
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.with_context(|| {
        format!("cannot reach the daemon at {url} (is `lifeboat serve` running? --daemon URL)")
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        let why = text.trim();
        if status.is_client_error() {
            bail!(UsageError(format!("the daemon refused ({status}): {why}")));
        }
        bail!("the daemon failed ({status}): {why}");
    }
    serde_json::from_str(&text)
        .with_context(|| format!("the daemon answered something else than JSON: {text}"))
}

fn print_request(r: &Request) -> Result<()> {
    outln!("request {} ({}) by {}", r.id, r.state.name(), r.requester);
    outln!("  runs:     lifeboat {}", r.plan.shown());
    outln!("  plan:     {}", r.hash);
    outln!("  approved: {}", r.approvals_text());
    outln!("  expires:  {}", r.expires.format("%Y-%m-%d %H:%M:%S UTC"));
    if let Some(why) = &r.break_glass {
        outln!("  BREAK GLASS: {why} (marked for review)");
    }
    if let Some(code) = r.exit {
        outln!("  ended with exit code {code}");
    }
    Ok(())
}

/// `lifeboat request -- COMMAND…`.
pub async fn request(g: &Global, args: &RequestArgs) -> Result<()> {
    let body = json!({ "command": args.command, "break_glass": args.break_glass });
    let r: Request = serde_json::from_value(
        call(
            g,
            &args.daemon,
            reqwest::Method::POST,
            "/api/requests",
            Some(body),
        )
        .await?,
    )?;
    if g.json {
        return output::json(&r);
    }
    print_request(&r)?;
    if !g.quiet && r.break_glass.is_none() {
        outln!(
            "an approver runs: lifeboat approve {} --plan {}",
            r.id,
            r.hash
        );
    }
    Ok(())
}

/// `lifeboat requests`.
pub async fn list(g: &Global, d: &DaemonArgs) -> Result<()> {
    let all: Vec<Request> =
        serde_json::from_value(call(g, d, reqwest::Method::GET, "/api/requests", None).await?)?;
    if g.json {
        return output::json(&all);
    }
    if all.is_empty() {
        outln!("no requests");
    }
    for r in &all {
        print_request(r)?;
    }
    Ok(())
}

/// `lifeboat approve ID --plan HASH`.
pub async fn approve(g: &Global, args: &ApproveArgs) -> Result<()> {
    let path = format!("/api/requests/{}/approve", args.id);
    let r: Request = serde_json::from_value(
        call(
            g,
            &args.daemon,
            reqwest::Method::POST,
            &path,
            Some(json!({ "hash": args.plan })),
        )
        .await?,
    )?;
    if g.json {
        return output::json(&r);
    }
    print_request(&r)
}
