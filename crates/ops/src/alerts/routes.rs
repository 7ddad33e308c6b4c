//! Where alerts go: a webhook (the notification as JSON, or a
//! Slack-compatible `{"text": …}`), e-mail over SMTP, or a command. Each
//! route is tried on its own; one that fails does not stop the others.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::AsyncWriteExt;

use super::Notification;
use crate::config::RouteConfig;
use crate::error::{OpsError, Result};

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A route, described for messages.
pub fn describe(route: &RouteConfig) -> String {
    if let Some(w) = &route.webhook {
        format!("webhook {w}")
    } else if !route.email.values().is_empty() {
        format!("e-mail to {}", route.email.values().join(", "))
    } else if let Some(c) = &route.command {
        format!("command {c:?}")
    } else {
        "an empty route".into()
    }
}

/// Checks a route before the daemon starts.
pub fn validate(route: &RouteConfig) -> Result<()> {
    let set = [
        route.webhook.is_some(),
        !route.email.values().is_empty(),
        route.command.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err(OpsError::Invalid(
            "an [[alerts.route]] has exactly one of `webhook`, `email` or `command`".into(),
        ));
    }
    if let Some(f) = &route.format
        && f != "json"
        && f != "slack"
    {
        return Err(OpsError::Invalid(format!(
            "[[alerts.route]] format = {f:?}: use \"json\" or \"slack\""
        )));
    }
    if !route.email.values().is_empty() && (route.smtp.is_none() || route.from.is_none()) {
        return Err(OpsError::Invalid(
            "an e-mail [[alerts.route]] needs `smtp` (smtp://host:port) and `from`".into(),
        ));
    }
    Ok(())
}

/// Delivers `n` through `route`.
pub async fn send(route: &RouteConfig, n: &Notification) -> Result<()> {
    let fail = |why: String| OpsError::Invalid(format!("alert via {}: {why}", describe(route)));
    if let Some(url) = &route.webhook {
        let body = if route.format.as_deref() == Some("slack") {
            serde_json::json!({ "text": format!("{}\n{}", n.text(), n.alert.detail).trim_end().to_string() })
        } else {
            serde_json::to_value(n).map_err(|e| fail(e.to_string()))?
        };
        let response = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| fail(e.to_string()))?
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("the receiver answered {}", response.status())));
        }
        return Ok(());
    }
    if !route.email.values().is_empty() {
        return send_mail(route, n).await.map_err(fail);
    }
    if let Some(cmd) = &route.command {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env(
                "LIFEBOAT_ALERT_STATUS",
                match n.status {
                    super::Status::Firing => "firing",
                    super::Status::Resolved => "resolved",
                },
            )
            .env("LIFEBOAT_ALERT_KEY", &n.alert.key)
            .env("LIFEBOAT_ALERT_SUMMARY", &n.alert.summary)
            .env("LIFEBOAT_ALERT_DETAIL", &n.alert.detail)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let json = serde_json::to_vec(n).map_err(|e| fail(e.to_string()))?;
            let _ = stdin.write_all(&json).await;
        }
        let status = tokio::time::timeout(TIMEOUT, child.wait())
            .await
            .map_err(|_| fail("it did not finish in 15s".into()))?
            .map_err(|e| fail(e.to_string()))?;
        if !status.success() {
            return Err(fail(format!("it exited with {status}")));
        }
        return Ok(());
    }
    Err(fail("nothing to send to".into()))
}

async fn send_mail(route: &RouteConfig, n: &Notification) -> std::result::Result<(), String> {
    let server = route.smtp.as_deref().unwrap_or_default();
    let (implicit_tls, rest) = match server.split_once("://") {
        Some(("smtps", rest)) => (true, rest),
        Some(("smtp", rest)) => (false, rest),
        _ => {
            return Err(format!(
                "smtp = {server:?}: use smtp://host:port or smtps://host:port"
            ));
        }
    };
    let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| format!("bad port in {server:?}"))?,
        ),
        None => (rest.to_string(), if implicit_tls { 465 } else { 25 }),
    };
    let tls = TlsParameters::new(host.clone()).map_err(|e| e.to_string())?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(port)
        .timeout(Some(TIMEOUT))
        .tls(if implicit_tls {
            Tls::Wrapper(tls)
        } else {
            Tls::Opportunistic(tls)
        });
    if let Some(user) = &route.smtp_user {
        let password = match &route.smtp_password_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?
                .trim_end()
                .to_string(),
            None => String::new(),
        };
        transport = transport.credentials(Credentials::new(user.clone(), password));
    }
    let from = route.from.as_deref().unwrap_or_default();
    let mut message = Message::builder()
        .from(from.parse().map_err(|e| format!("from = {from:?}: {e}"))?)
        .subject(n.text())
        .header(ContentType::TEXT_PLAIN);
    for to in route.email.values() {
        message = message.to(to.parse().map_err(|e| format!("email = {to:?}: {e}"))?);
    }
    let body = format!(
        "{}\n\n{}\n\nsince {}\nalert {}\n",
        n.text(),
        n.alert.detail,
        n.since.format("%Y-%m-%d %H:%M:%S UTC"),
        n.alert.key
    );
    let message = message.body(body).map_err(|e| e.to_string())?;
    transport
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Calls the heartbeat URL (a dead-man's switch).
pub async fn heartbeat(url: &str) -> Result<()> {
    let r = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| OpsError::Invalid(format!("heartbeat {url}: {e}")))?
        .get(url)
        .send()
        .await
        .map_err(|e| OpsError::Invalid(format!("heartbeat {url}: {e}")))?;
    if !r.status().is_success() {
        return Err(OpsError::Invalid(format!(
            "heartbeat {url}: answered {}",
            r.status()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_exactly_one_target_and_mail_its_server() {
        let ok = RouteConfig {
            webhook: Some("http://127.0.0.1:9/hook".into()),
            ..RouteConfig::default()
        };
        assert!(validate(&ok).is_ok());
        let none = RouteConfig::default();
        assert!(validate(&none).is_err());
        let mail = RouteConfig {
            email: crate::config::OneOrMany::One("ops@example.com".into()),
            ..RouteConfig::default()
        };
        let e = validate(&mail)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("smtp"), "{e}");
        let slackish = RouteConfig {
            format: Some("teams".into()),
            ..ok
        };
        assert!(validate(&slackish).is_err());
    }
}
