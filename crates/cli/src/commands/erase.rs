//! `lifeboat erase` and `lifeboat erasures`: GDPR erasure requests, kept in
//! the repository's ledger and re-applied by every restore.

use anyhow::Result;
use lifeboat_format::erasure::AppliedRule;
use lifeboat_postgres::erasure;
use lifeboat_postgres::erasure::ErasureReplay;
use lifeboat_repo::Repository;
use lifeboat_repo::erasures::Ledger;

use crate::cli::{EraseArgs, ErasuresArgs, Global};
use crate::commands::{erase_objects, erasure_reports, open_repo};
use crate::exit::UsageError;
use crate::output;
use crate::settings::FileSettings;

/// Erases one subject from the live database and buckets, recording it first.
pub async fn erase(g: &Global, args: &EraseArgs) -> Result<()> {
    let file = FileSettings::load(g)?;
    if file.erasure.is_empty() && file.bucket_erasure.is_empty() {
        return Err(UsageError(
            "no [[erasure]] or [[bucket_erasure]] rules in lifeboat.toml: say, per table and per \
             bucket, how a data subject is found (see `lifeboat erase --help`)"
                .into(),
        )
        .into());
    }
    if args.reason.trim().is_empty() {
        return Err(
            UsageError("--reason must say why (a request or ticket reference)".into()).into(),
        );
    }
    let repo = open_repo(g).await?;
    // The audit log records this command line: never with the subject's key.
    crate::audit::conceal(
        &args.subject,
        format!("<subject {}>", &repo.subject_hash(&args.subject)[..12]),
    );
    let mut client = if erase_objects::needs_database(&file) {
        let conninfo = conninfo(&file, args)?;
        let config = lifeboat_postgres::sql::config(conninfo.as_deref(), None)?;
        Some(lifeboat_postgres::sql::connect(&config).await?)
    } else {
        None
    };
    let found = erase_objects::find(&file, client.as_ref(), &args.subject).await?;
    let held = args.hold.is_some();
    let deleting = !held && !args.dry_run;
    let records = |found: &[erase_objects::FoundObjects]| {
        found
            .iter()
            .map(|f| f.record(&repo, deleting))
            .collect::<Vec<_>>()
    };
    // The ledger entry first, then the objects, then the rows (committed
    // last): a failure part-way leaves the erasure recorded, to be run again.
    let record = |counts: Vec<AppliedRule>| {
        let (repo, found) = (&repo, &found);
        async move {
            let e = repo
                .append_erasure(
                    &args.subject,
                    &args.reason,
                    counts,
                    records(found),
                    args.hold.clone(),
                )
                .await?;
            if deleting {
                for f in found {
                    f.delete()
                        .await
                        .map_err(|e| lifeboat_postgres::PgError::Erasure(format!("{e:#}")))?;
                }
            }
            Ok::<_, lifeboat_postgres::PgError>(e)
        }
    };
    let entry = std::sync::Mutex::new(None);
    let applied = match client.as_mut() {
        Some(client) if !file.erasure.is_empty() => {
            erasure::erase(
                client,
                &file.erasure,
                &args.subject,
                !deleting,
                |counts: Vec<AppliedRule>| {
                    let (record, entry) = (&record, &entry);
                    async move {
                        let e = record(counts).await?;
                        if let Ok(mut slot) = entry.lock() {
                            *slot = Some(e);
                        }
                        Ok(())
                    }
                },
            )
            .await?
        }
        _ => Vec::new(),
    };
    let mut entry = entry.into_inner().ok().flatten();
    if entry.is_none() && !args.dry_run {
        // A hold (the tables were only counted), or buckets alone.
        entry = Some(record(applied.clone()).await?);
    }
    let rows: u64 = applied.iter().map(|a| a.rows).sum();
    let objects: usize = found.iter().map(|f| f.count()).sum();
    if g.json {
        return output::json(&serde_json::json!({
            "dry_run": args.dry_run,
            "held": held,
            "entry": entry.as_ref().map(|e| e.seq),
            "subject": repo.subject_hash(&args.subject),
            "rules": applied,
            "rows": rows,
            "buckets": records(&found).into_iter().map(|mut r| { r.hashes.clear(); r }).collect::<Vec<_>>(),
            "objects": objects,
        }));
    }
    if g.quiet {
        return Ok(());
    }
    let verb = if deleting { "deleted" } else { "match" };
    for a in &applied {
        outln!("{:<40} {:>8} row(s) {verb}", a.table, a.rows);
    }
    for r in records(&found) {
        outln!(
            "{:<40} {:>8} object(s) {verb}  ({})",
            r.location,
            r.objects,
            r.rule
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
            "erased: {rows} row(s) and {objects} object(s) deleted; ledger entry {} makes every later restore remove them too",
            e.seq
        ),
        (None, _, _) => {}
    }
    Ok(())
}

/// The database to erase from: `--db`, else the `--source`'s one database,
/// else the libpq environment's.
fn conninfo(file: &FileSettings, args: &EraseArgs) -> Result<Option<String>> {
    Ok(match (&args.db, &args.source) {
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
    })
}

/// Lists the ledger (or re-applies it with `--replay`); a damaged ledger exits 1.
pub async fn list(g: &Global, args: &ErasuresArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    if let Some(key) = &args.subject {
        return erasure_reports::subject(g, &repo, key).await;
    }
    if args.compliance {
        return erasure_reports::compliance(g, &repo).await;
    }
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

/// The erasure ledger a restore re-applies: `None` with `skip` (said on
/// stderr). A damaged ledger stops the restore unless `skip`.
pub async fn ledger_for_restore(repo: &Repository, skip: bool) -> Result<Option<Ledger>> {
    if skip {
        eprintln!(
            "warning: --skip-erasures: the erasure ledger is not re-applied; erased subjects in this backup come back"
        );
        crate::audit::detail(erasure_reports::LEDGER_DETAIL, "skipped");
        return Ok(None);
    }
    let ledger = repo.erasure_ledger().await?;
    if let Some(last) = ledger.entries.last() {
        // The compliance report's replay history reads this.
        crate::audit::detail(erasure_reports::LEDGER_DETAIL, last.seq.to_string());
    }
    if let Some((object, why)) = ledger.problems.first() {
        anyhow::bail!(lifeboat_repo::RepoError::Damaged(format!(
            "the erasure ledger is damaged ({object}: {why}), so this restore cannot be trusted to remove \
             every erased subject; nothing was restored. Pass --skip-erasures to restore anyway"
        )));
    }
    Ok(Some(ledger))
}

/// What a restore re-applies: `None` when the ledger has no erasure in
/// force (or `skip`). A damaged ledger stops the restore unless `skip`.
pub async fn replay_for_restore(
    g: &Global,
    repo: &Repository,
    skip: bool,
) -> Result<Option<ErasureReplay>> {
    let Some(ledger) = ledger_for_restore(repo, skip).await? else {
        return Ok(None);
    };
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
