//! `lifeboat export`

use anyhow::{Context, Result};
use lifeboat_postgres::logical::export::{
    ExportOptions, ExportSummary, export_custom, export_plain, export_roles,
};

use crate::cli::{ExportArgs, ExportFormat, Global};
use crate::commands::{open_repo, scoped_reference};
use crate::output::{self, Reporter};

/// Writes a logical backup as an ordinary dump.
pub async fn run(g: &Global, args: &ExportArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let mut args = args.clone();
    args.snapshot = scoped_reference(g, &repo, &args.snapshot, &reporter.sink()).await?;
    crate::audit::detail("snapshot", args.snapshot.clone());
    let args = &args;
    if let ExportFormat::Custom = args.format {
        return custom(g, args, &repo, &reporter).await;
    }
    let result = match &args.output {
        Some(path) => {
            // Written beside the target and renamed into place when complete,
            // so a failed export never leaves a truncated dump under its name.
            let tmp = path.with_extension("lifeboat-partial");
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            match write_to(&repo, args, &mut file, &reporter).await {
                Ok(s) => {
                    file.sync_all()
                        .await
                        .with_context(|| format!("cannot write {}", tmp.display()))?;
                    tokio::fs::rename(&tmp, path)
                        .await
                        .with_context(|| format!("cannot rename into {}", path.display()))?;
                    Ok(s)
                }
                Err(e) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    Err(e)
                }
            }
        }
        None => write_to(&repo, args, &mut tokio::io::stdout(), &reporter).await,
    };
    reporter.finish();
    done(g, args, result?)
}

/// The plain script or the roles script, to `out`.
async fn write_to(
    repo: &lifeboat_repo::Repository,
    args: &ExportArgs,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    reporter: &std::sync::Arc<Reporter>,
) -> std::result::Result<ExportSummary, lifeboat_postgres::PgError> {
    match args.format {
        ExportFormat::Roles => export_roles(repo, &args.snapshot, out, reporter.sink()).await,
        _ => {
            export_plain(
                repo,
                &args.snapshot,
                args.database.as_deref(),
                args.pg_bin.clone(),
                ExportOptions {
                    no_roles: args.no_roles,
                    no_owner: args.no_owner,
                    no_privileges: args.no_privileges,
                },
                out,
                reporter.sink(),
            )
            .await
        }
    }
}

/// The custom format, written by pg_dump beside the target and renamed
/// into place when complete.
async fn custom(
    g: &Global,
    args: &ExportArgs,
    repo: &lifeboat_repo::Repository,
    reporter: &std::sync::Arc<Reporter>,
) -> Result<()> {
    let tmp = args
        .output
        .as_ref()
        .map(|p| p.with_extension("lifeboat-partial"));
    let result = export_custom(
        repo,
        &args.snapshot,
        args.database.as_deref(),
        args.pg_bin.clone(),
        tmp.as_deref(),
        reporter.sink(),
    )
    .await;
    reporter.finish();
    let summary = match (result, &tmp, &args.output) {
        (Ok(s), Some(tmp), Some(path)) => {
            tokio::fs::rename(tmp, path)
                .await
                .with_context(|| format!("cannot rename into {}", path.display()))?;
            s
        }
        (Ok(s), _, _) => s,
        (Err(e), tmp, _) => {
            if let Some(t) = tmp {
                let _ = tokio::fs::remove_file(t).await;
            }
            return Err(e.into());
        }
    };
    done(g, args, summary)
}

fn done(g: &Global, args: &ExportArgs, summary: ExportSummary) -> Result<()> {
    if g.json && args.output.is_some() {
        output::json(&summary)?;
    } else if !g.quiet && args.output.is_some() && matches!(args.format, ExportFormat::Roles) {
        outln!(
            "exported the roles of snapshot {} ({}); run it with psql before loading the dump",
            &summary.snapshot[..8.min(summary.snapshot.len())],
            output::size(summary.bytes)
        );
    } else if !g.quiet && args.output.is_some() {
        outln!(
            "exported database {} of snapshot {}: {} tables, {} rows, {}",
            summary.database,
            &summary.snapshot[..8.min(summary.snapshot.len())],
            summary.tables,
            summary.rows,
            output::size(summary.bytes)
        );
    }
    Ok(())
}
