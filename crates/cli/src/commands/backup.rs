//! `lifeboat backup files`

use anyhow::{Result, bail};
use lifeboat_format::compress::Compression;
use lifeboat_format::snapshot::BackupKind;
use lifeboat_repo::BackupOptions;
use lifeboat_repo::backup::Parent;

use crate::cli::{BackupFilesArgs, CompressionArg, Global, Kind};
use crate::commands::open_repo;
use crate::output::{self, Reporter};

/// The snapshot kind chosen on the command line.
pub fn kind(k: Kind) -> BackupKind {
    match k {
        Kind::Scheduled => BackupKind::Scheduled,
        Kind::PreDeploy => BackupKind::PreDeploy,
        Kind::Manual => BackupKind::Manual,
    }
}

/// The compression chosen on the command line.
pub fn compression(c: CompressionArg) -> Compression {
    match c {
        CompressionArg::Off => Compression::Off,
        CompressionArg::Fastest => Compression::Zstd(1),
        CompressionArg::Default => Compression::DEFAULT,
        CompressionArg::Max => Compression::Zstd(15),
    }
}

/// Backs up files and directories.
pub async fn files(g: &Global, args: &BackupFilesArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let options = BackupOptions {
        kind: kind(args.kind),
        reason: args.reason.clone(),
        tags: args.tags.clone(),
        compression: compression(args.compression),
        threads: args.threads,
        // Pack buffers in memory: one being filled plus those uploading. A
        // local write is quick, so one at a time keeps up.
        uploads: if repo.storage().capabilities().remote {
            4
        } else {
            1
        },
        host: args.host.clone(),
        parent: match (&args.parent, args.force) {
            (_, true) => Parent::Disabled,
            (Some(p), false) => Parent::Snapshot(p.clone()),
            (None, false) => Parent::Auto,
        },
    };
    let result = repo
        .backup_files(&args.paths, &options, reporter.sink())
        .await;
    reporter.finish();
    let result = result?;
    let s = &result.snapshot.summary;
    if g.json {
        output::json(&result)?;
    } else if !g.quiet {
        println!(
            "snapshot {} saved: {} files ({} unchanged), {} dirs, {} in {}; added {} new data ({} stored)",
            result.id.short(),
            s.files,
            s.files_unchanged,
            s.dirs,
            output::size(s.bytes),
            output::secs(s.duration_ms),
            output::size(s.new_bytes),
            output::size(s.stored_bytes),
        );
    }
    if s.skipped > 0 {
        bail!(
            "snapshot {} was saved, but {} entries could not be backed up (see the warnings above)",
            result.id.short(),
            s.skipped
        );
    }
    Ok(())
}
