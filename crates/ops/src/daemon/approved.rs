//! Runs approved requests: each approved plan once, as a child process of
//! the same binary told which request it carries out (it checks that its
//! own command line is the plan), and records how it ended in the request
//! and in the audit log.

use std::sync::Arc;

use chrono::Utc;
use lifeboat_repo::audit::AuditRecord;

use super::{Daemon, Shared};
use crate::access::requests::{Request, RequestStore};

impl Daemon {
    /// Starts every request approved since the last look.
    pub(super) fn run_approved(&self) {
        let store = RequestStore::new(&self.opts.state_dir);
        let (run, voided) = match store.take_approved() {
            Ok(x) => x,
            Err(e) => {
                (self.log)(&format!("warning: approved requests: {e}"));
                return;
            }
        };
        for r in voided {
            (self.log)(&format!(
                "request {}: its plan changed after it was approved; nothing runs",
                r.id
            ));
            self.shared.audit(record(
                &r,
                "refused",
                Some("the plan changed after approval"),
                &self.opts.host,
            ));
        }
        for r in run {
            (self.log)(&format!(
                "request {}: approved; running {}",
                r.id,
                r.plan.shown()
            ));
            let logs = self.opts.state_dir.join("requests");
            let program = self.opts.program.clone();
            let global = self.opts.global_args.clone();
            let state_dir = self.opts.state_dir.clone();
            let shared: Arc<Shared> = self.shared.clone();
            let log = self.log.clone();
            let host = self.opts.host.clone();
            let store = store.clone();
            tokio::spawn(async move {
                let _ = std::fs::create_dir_all(&logs);
                let out = std::fs::File::create(logs.join(format!("{}.log", r.id)));
                let mut cmd = tokio::process::Command::new(&program);
                cmd.args(&global)
                    .args(&r.plan.command)
                    .env("LIFEBOAT_APPROVED_REQUEST", &r.id)
                    .env("LIFEBOAT_STATE_DIR", &state_dir)
                    .env("LIFEBOAT_DIE_WITH_PARENT", std::process::id().to_string())
                    .stdin(std::process::Stdio::null());
                if let Ok(f) = out
                    && let Ok(g) = f.try_clone()
                {
                    cmd.stdout(f).stderr(g);
                }
                let code = match cmd.status().await {
                    Ok(s) => s.code().unwrap_or(-1),
                    Err(e) => {
                        log(&format!("request {}: cannot start: {e}", r.id));
                        -1
                    }
                };
                if let Err(e) = store.finish(&r.id, code, Utc::now()) {
                    log(&format!("warning: request {}: {e}", r.id));
                }
                log(&format!("request {}: ended with exit code {code}", r.id));
                let error = (code != 0).then(|| format!("exit code {code}"));
                let outcome = if code == 0 { "ok" } else { "failed" };
                shared.audit(record(&r, outcome, error.as_deref(), &host));
            });
        }
    }
}

fn record(r: &Request, outcome: &str, error: Option<&str>, host: &str) -> AuditRecord {
    let mut details = std::collections::BTreeMap::from([
        ("request".to_string(), r.id.clone()),
        ("plan".to_string(), r.hash.clone()),
        ("requester".to_string(), r.requester.clone()),
        (
            "approved_by".to_string(),
            r.approvals
                .iter()
                .map(|a| a.by.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ]);
    if let Some(why) = &r.break_glass {
        details.insert("break_glass".into(), why.clone());
        details.insert("review".into(), "needed".into());
    }
    AuditRecord {
        actor: format!("lifeboat serve@{host}"),
        from: host.to_string(),
        action: "run approved request".into(),
        args: vec![r.plan.shown()],
        outcome: outcome.into(),
        exit: 0,
        error: error.map(String::from),
        details,
    }
}
