//! The command-line surface (DESIGN.md section 5).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
ENVIRONMENT:
  LIFEBOAT_REPOSITORY       repository: a directory, or s3://bucket/prefix
  LIFEBOAT_PASSWORD         the passphrase itself (prefer a file or command)
  LIFEBOAT_PASSWORD_FILE    file holding the passphrase
  LIFEBOAT_PASSWORD_COMMAND command printing the passphrase
  LIFEBOAT_CONFIG           lifeboat.toml with the same settings
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
  AWS_ENDPOINT_URL          S3 credentials and endpoint (path-style when set)

EXIT CODES:
  0  success
  1  failure: damaged or missing data, I/O error, refused operation
  2  bad usage: invalid arguments or references, missing passphrase
  3  repository unusable: not found, unreachable, access denied, wrong passphrase";

/// Backups for PostgreSQL, object storage and config files: continuous,
/// deduplicated, encrypted, and proven by restores.
#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct Global {
    /// Repository location: a directory, or s3://bucket/prefix.
    #[arg(
        short = 'r',
        long = "repo",
        env = "LIFEBOAT_REPOSITORY",
        global = true,
        value_name = "LOCATION"
    )]
    pub repo: Option<String>,
    /// Read the passphrase from this file (first line).
    #[arg(
        long,
        env = "LIFEBOAT_PASSWORD_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use what it prints as the passphrase.
    #[arg(
        long,
        env = "LIFEBOAT_PASSWORD_COMMAND",
        global = true,
        value_name = "COMMAND"
    )]
    pub password_command: Option<String>,
    /// Settings file (lifeboat.toml).
    #[arg(long, env = "LIFEBOAT_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Machine-readable JSON on standard output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository.
    Init(InitArgs),
    /// Back up a source into the repository.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// List snapshots.
    Snapshots,
    /// List the files in a snapshot.
    Ls(LsArgs),
    /// Restore a snapshot.
    #[command(subcommand)]
    Restore(RestoreCommand),
    /// Verify the repository: structure always, every byte with --read-data.
    Check(CheckArgs),
    /// Manage the passphrases that unlock the repository.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Repair the repository's metadata.
    #[command(subcommand)]
    Repair(RepairCommand),
}

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild index entries from the packs themselves: indexes every pack
    /// that no readable index file lists, then removes unreadable index files.
    /// Use it when `check` reports a damaged index file.
    Index,
}

/// Argon2id cost for new key slots.
#[derive(Debug, Args, Clone)]
pub struct KdfArgs {
    /// Argon2id memory in MiB for the new key slot (default 64). Lower values
    /// make a weak passphrase easier to guess; keep the default in production.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub kdf_memory: u32,
    /// Argon2id passes for the new key slot.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub kdf_iterations: u32,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Target pack size in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pack_size: u32,
}

/// Why a backup is taken.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// Taken by a schedule.
    Scheduled,
    /// Before a deployment, migration, bulk operation or schema change.
    PreDeploy,
    /// On demand.
    Manual,
}

/// How hard to compress.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    /// Store uncompressed.
    Off,
    /// zstd level 1.
    Fastest,
    /// zstd level 3.
    Default,
    /// zstd level 15.
    Max,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up files and directories (config files, .env files, any tree).
    Files(BackupFilesArgs),
}

#[derive(Debug, Args)]
pub struct BackupFilesArgs {
    /// Files and directories to back up (directories recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Why this backup is taken.
    #[arg(long, value_enum, default_value = "manual")]
    pub kind: Kind,
    /// Free-text reason, e.g. "before migration 42".
    #[arg(long)]
    pub reason: Option<String>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Compression.
    #[arg(long, value_enum, default_value = "default")]
    pub compression: CompressionArg,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Host name to record (default: this host).
    #[arg(long)]
    pub host: Option<String>,
    /// Compare with this snapshot instead of the newest one of the same
    /// paths and host: files unchanged since it are not read again.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "force")]
    pub parent: Option<String>,
    /// Read every file, even those unchanged since the last backup.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot id (or unique prefix), or "latest".
    pub snapshot: String,
    /// Only list these paths (and what is below them).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Restore files of a file snapshot into a directory.
    Files(RestoreFilesArgs),
}

#[derive(Debug, Args)]
pub struct RestoreFilesArgs {
    /// Snapshot id (or unique prefix), or "latest".
    pub snapshot: String,
    /// Directory to restore into (created if missing; must be empty unless --overwrite).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    /// Restore only this path of the snapshot (repeatable).
    #[arg(long, value_name = "PATH")]
    pub include: Vec<PathBuf>,
    /// Allow a non-empty target; files in the way are replaced.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read and verify every byte of every pack.
    #[arg(long)]
    pub read_data: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List key slots.
    List,
    /// Add a passphrase. The new one is read from --new-password-file,
    /// LIFEBOAT_NEW_PASSWORD, or a prompt.
    Add(KeyAddArgs),
    /// Remove a passphrase (by key slot id or prefix). Data is not touched.
    Remove(KeyRemoveArgs),
}

#[derive(Debug, Args)]
pub struct KeyAddArgs {
    /// File holding the new passphrase.
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    /// Label shown by `key list`.
    #[arg(long)]
    pub label: Option<String>,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

#[derive(Debug, Args)]
pub struct KeyRemoveArgs {
    /// Key slot id or unique prefix.
    pub id: String,
}
