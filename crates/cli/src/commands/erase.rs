//! `lifeboat erase` and `lifeboat erasures`: GDPR erasure requests, kept in
//! the repository's ledger and re-applied by every restore.

use anyhow::Result;
use lifeboat_format::erasure::AppliedRule;
use lifeboat_postgres::erasure;
use lifeboat_postgres::erasure::ErasureReplay;
use lifeboat_repo::Repository;

use crate::cli::{EraseArgs, ErasuresArgs, Global};
use crate::commands::open_repo;
use crate::exit::UsageError;
use crate::output;
use crate::settings::FileSettings;

/// Erases one subject from the live database, recording it first.
pub async fn erase(g: &Global, args: &EraseArgs) -> Result<()> {
    let file = FileSettings::load(g)?;
    if file.erasure.is_empty() {
        return Err(UsageError(
            "no [[erasure]] rules in lifeboat.toml: say, per table, how a data subject is found \
             (see `lifeboat erase --help`)"
                .into(),
        )
        .into());
    }
    if args.reason.trim().is_empty() {
        return Err(
            UsageError("--reason must say why (a request or ticket reference)".into()).into(),
        );
    }
    let conninfo = match (&args.db, &args.source) {
        (Some(db), _) => Some(db.clone()),
        (None, Some(name)) => {
            let dbs = file.source(name)?.db.values();
            match dbs.as_slice() {
                [one] => Some(one.clone()),
                _ => {
                    return Err(UsageError(format!(
                        "--source {name}: give the one database to erase from with --db"
                    ))
                    .into());
                }
            }
        }
        (None, None) => None,
    };
    let repo = open_repo(g).await?;
    let config = lifeboat_postgres::sql::config(conninfo.as_deref(), None)?;
    let mut client = lifeboat_postgres::sql::connect(&config).await?;
    let mut entry = None;
    let applied = if args.hold.is_some() {
        // A hold: recorded, nothing deleted.
        let counts = erasure::erase(&mut client, &file.erasure, &args.subject, true, |_| async {
            Ok(())
        })
        .await?;
        if !args.dry_run {
            entry = Some(
                repo.append_erasure(
                    &args.subject,
                    &args.reason,
                    counts.clone(),
                    args.hold.clone(),
                )
                .await?,
            );
        }
        counts
    } else {
        let recorded = std::sync::Mutex::new(None);
        let applied = erasure::erase(
            &mut client,
            &file.erasure,
            &args.subject,
            args.dry_run,
            |counts: Vec<AppliedRule>| {
                let (repo, recorded) = (&repo, &recorded);
                async move {
                    let e = repo
                        .append_erasure(&args.subject, &args.reason, counts, None)
                        .await?;
                    if let Ok(mut r) = recorded.lock() {
                        *r = Some(e);
                    }
                    Ok(())
                }
            },
        )
        .await?;
        entry = recorded.into_inner().ok().flatten();
        applied
    };
    let rows: u64 = applied.iter().map(|a| a.rows).sum();
    if g.json {
        return output::json(&serde_json::json!({
            "dry_run": args.dry_run,
            "held": args.hold.is_some(),
            "entry": entry.as_ref().map(|e| e.seq),
            "subject": repo.subject_hash(&args.subject),
            "rules": applied,
            "rows": rows,
        }));
    }
    if g.quiet {
        return Ok(());
    }
    for a in &applied {
        outln!(
            "{:<40} {:>8} row(s) {}",
            a.table,
            a.rows,
            if args.dry_run || args.hold.is_some() {
                "match"
            } else {
                "deleted"
            }
        );
    }
    match (&entry, args.dry_run, &args.hold) {
        (_, true, _) => outln!("dry run: nothing was recorded or deleted"),
        (Some(e), _, Some(why)) => outln!(
            "recorded as ledger entry {} under a legal hold ({why}): nothing deleted; \
             run `lifeboat erase` again without --hold when the hold ends",
            e.seq
        ),
        (Some(e), _, None) => outln!(
            "erased: {rows} row(s) deleted; ledger entry {} makes every later restore remove them too",
            e.seq
        ),
        (None, _, _) => {}
    }
    Ok(())
}

/// Lists the ledger (or re-applies it with `--replay`); a damaged ledger exits 1.
pub async fn list(g: &Global, args: &ErasuresArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    if args.replay {
        return replay_into(
            g,
            &repo,
            args.db.as_deref().unwrap_or_default(),
            args.database.as_deref(),
        )
        .await;
    }
    let ledger = repo.erasure_ledger().await?;
    if g.json {
        output::json(&serde_json::json!({
            "entries": ledger.entries,
            "in_force": ledger.erased_subjects().len(),
            "problems": ledger
                .problems
                .iter()
                .map(|(object, message)| serde_json::json!({"object": object, "message": message}))
                .collect::<Vec<_>>(),
        }))?;
    } else if !g.quiet {
        if ledger.entries.is_empty() {
            outln!("the erasure ledger is empty");
        }
        for e in &ledger.entries {
            let rows: u64 = e.rules.iter().map(|r| r.rows).sum();
            outln!(
                "{:>4}  {}  subject {}…  {} row(s) in {} table(s)  by {}  {:?}{}",
                e.seq,
                e.time.format("%Y-%m-%d %H:%M:%S UTC"),
                &e.subject[..12.min(e.subject.len())],
                rows,
                e.rules.len(),
                e.by,
                e.reason,
                e.hold
                    .as_ref()
                    .map(|h| format!("  HELD: {h}"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some((object, why)) = ledger.problems.first() {
        for (o, w) in &ledger.problems {
            eprintln!("error: {o}: {w}");
        }
        anyhow::bail!(lifeboat_repo::RepoError::Damaged(format!(
            "the erasure ledger is damaged ({object}: {why}; {} problem(s) in all)",
            ledger.problems.len()
        )));
    }
    Ok(())
}

/// What a restore re-applies: `None` when the ledger has no erasure in
/// force (or `skip`). A damaged ledger stops the restore unless `skip`.
pub async fn replay_for_restore(
    g: &Global,
    repo: &Repository,
    skip: bool,
) -> Result<Option<ErasureReplay>> {
    if skip {
        eprintln!(
            "warning: --skip-erasures: the erasure ledger is not re-applied; erased subjects in this backup come back"
        );
        return Ok(None);
    }
    let ledger = repo.erasure_ledger().await?;
    if let Some((object, why)) = ledger.problems.first() {
        anyhow::bail!(lifeboat_repo::RepoError::Damaged(format!(
            "the erasure ledger is damaged ({object}: {why}), so this restore cannot be trusted to remove \
             every erased subject; nothing was restored. Pass --skip-erasures to restore anyway"
        )));
    }
    let erased = ledger.erased_subjects();
    if erased.is_empty() {
        return Ok(None);
    }
    let rules = FileSettings::load(g)?.erasure;
    Ok(Some(ErasureReplay { rules, erased }))
}

/// `erasures --replay --db`: re-applies the ledger to one database.
async fn replay_into(
    g: &Global,
    repo: &Repository,
    conninfo: &str,
    rules_of: Option<&str>,
) -> Result<()> {
    let Some(er) = replay_for_restore(g, repo, false).await? else {
        if !g.quiet && !g.json {
            outln!("the erasure ledger has no erasure in force: nothing to re-apply");
        }
        if g.json {
            output::json(&erasure::ReplayReport::default())?;
        }
        return Ok(());
    };
    let config = lifeboat_postgres::sql::config(Some(conninfo), None)?;
    let db = config.get_dbname().unwrap_or("postgres").to_string();
    let mut client = lifeboat_postgres::sql::connect(&config).await?;
    let report = er
        .apply_to(&mut client, rules_of.unwrap_or(&db), |k| {
            repo.subject_hash(k)
        })
        .await?;
    if g.json {
        return output::json(&report);
    }
    if !g.quiet {
        let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
        outln!(
            "re-applied the erasure ledger to database {db}: {} of {} erased subject(s) found and removed ({rows} row(s))",
            report.found,
            report.subjects
        );
    }
    Ok(())
}
