//! `lifeboat verify-data` and `lifeboat maintenance on|off`: the runbook's
//! data checks and write stop, against a live database.

use anyhow::{Result, bail};
use lifeboat_postgres::{checks, maintenance, sql};

use crate::cli::{Global, MaintenanceCommand, VerifyDataArgs};
use crate::exit::UsageError;
use crate::output;
use crate::settings::FileSettings;

/// Runs the configured checks against a live database.
pub async fn verify_data(g: &Global, args: &VerifyDataArgs) -> Result<()> {
    let file = FileSettings::load(g)?;
    if file.check.is_empty() {
        bail!(UsageError(
            "no checks configured: add [[check]] entries (name, sql and expect/min/max/max_age) \
             to lifeboat.toml and pass it with --config"
                .into()
        ));
    }
    if let Some(p) = file.check.iter().find_map(|c| c.problem()) {
        bail!(UsageError(format!("lifeboat.toml: {p}")));
    }
    let client = sql::connect(&sql::config(args.db.as_deref(), None)?).await?;
    let results = checks::run(&client, &file.check, chrono::Utc::now()).await;
    let failed = results.iter().filter(|r| !r.passed).count();
    if g.json {
        output::json(&serde_json::json!({ "checks": results, "failed": failed }))?;
    } else if !g.quiet {
        for r in &results {
            outln!(
                "{}  {}: {} ({})",
                if r.passed { "pass" } else { "FAIL" },
                r.name,
                r.value.as_deref().unwrap_or("no value"),
                r.detail
            );
        }
    }
    if failed > 0 {
        bail!("{failed} of {} data check(s) failed", results.len());
    }
    if !g.quiet && !g.json {
        outln!("all {} data check(s) passed", results.len());
    }
    Ok(())
}

/// Runs a hook command from lifeboat.toml; a failing hook stops the command.
fn hook(what: &str, command: Option<&str>) -> Result<()> {
    Ok(lifeboat_ops::hooks::run(what, command, &[])?)
}

/// Stops or resumes writes.
pub async fn maintenance(g: &Global, command: &MaintenanceCommand) -> Result<()> {
    let file = FileSettings::load(g)?;
    let report = match command {
        MaintenanceCommand::On(a) => {
            let client = sql::connect(&sql::config(a.db.as_deref(), None)?).await?;
            hook(
                "maintenance on_command",
                file.maintenance.on_command.as_deref(),
            )?;
            maintenance::on(&client, a.grace).await?
        }
        MaintenanceCommand::Off(a) => {
            let client = sql::connect(&sql::config(a.db.as_deref(), None)?).await?;
            let r = maintenance::off(&client).await?;
            hook(
                "maintenance off_command",
                file.maintenance.off_command.as_deref(),
            )?;
            r
        }
    };
    if g.json {
        return output::json(&report);
    }
    if !g.quiet {
        if report.read_only {
            outln!(
                "database {}: new sessions are read-only; {} session(s) ended. `lifeboat maintenance off` resumes writes",
                report.database,
                report.sessions_ended
            );
        } else {
            outln!("database {}: writes allowed again", report.database);
        }
    }
    Ok(())
}
