//! `lifeboat recover`

use anyhow::{Context, Result, bail};
use lifeboat_ops::markdown;
use lifeboat_ops::recover::{self, RecoverOptions};
use lifeboat_ops::targets::human;

use crate::cli::{Global, RecoverArgs};
use crate::commands::drill::{checks, write_report};
use crate::commands::open_repo;
use crate::commands::restore_postgres::{parse_time, restore_command, tablespace_maps};
use crate::output::{self, Reporter};
use crate::settings::{FileSettings, Settings};

/// Runs the corruption runbook.
pub async fn recover(g: &Global, args: &RecoverArgs) -> Result<()> {
    use lifeboat_ops::access::protect::Destination;
    // Recover stops writes on the live database and may switch clients
    // over: aimed at a protected one, it needs approval like a restore.
    if let Some(db) = &args.db {
        crate::commands::protect::guard(
            g,
            Destination::Database(db),
            "the database recover would stop writes on",
        )
        .await?;
    }
    crate::commands::protect::guard(
        g,
        Destination::Directory(&args.target_dir),
        &args.target_dir.display().to_string(),
    )
    .await?;
    let file = FileSettings::load(g)?;
    let checks = checks(&file)?;
    let (target_time, note) = parse_time(&args.target_time)?;
    let tablespaces = tablespace_maps(&args.tablespace_map)?;
    let settings = Settings::resolve(g)?;
    let repo = open_repo(g).await?;
    let (restore_command, _) = restore_command(g, &settings, Some(&args.target_dir))?;
    let reporter = Reporter::new(g);
    if let Some(n) = note {
        reporter.note(&format!("note: {n}"));
    }
    let erasure = crate::commands::erase::replay_for_restore(g, &repo, false).await?;
    let opts = RecoverOptions {
        erasure,
        target_time,
        target_dir: args.target_dir.clone(),
        tablespaces,
        live_db: args.db.clone(),
        grace: args.grace,
        checks,
        restore_command,
        port: match args.port {
            Some(p) => p,
            None => lifeboat_postgres::scratch::free_port()?,
        },
        socket_dir: args.socket_dir.clone(),
        timeout: args.timeout,
        concurrency: if repo.storage().capabilities().remote {
            8
        } else {
            4
        },
        no_archive: args.no_archive,
        on_command: file.maintenance.on_command.clone(),
        off_command: file.maintenance.off_command.clone(),
        switch_command: file.recover.switch_command.clone(),
    };
    let report = recover::run(&repo, &opts, reporter.sink()).await;
    reporter.finish();
    let saved = repo.save_report(&report.to_catalog()).await;
    let md = markdown::recover(&report);
    if let Some(path) = &args.report {
        write_report(path, &report, &md)?;
    }
    if g.json {
        output::json(&report)?;
    } else if !g.quiet {
        for s in &report.steps {
            outln!(
                "{:<6} {:<12} {:>10}  {}",
                if s.ok { "ok" } else { "FAILED" },
                s.name,
                human(s.seconds),
                s.detail
            );
        }
        outln!("{}", report.outcome);
        for n in &report.next {
            outln!("next: {n}");
        }
    }
    saved.context("the recovery report could not be stored in the repository")?;
    if !report.ok {
        bail!("recovery stopped: {}", report.outcome);
    }
    Ok(())
}
