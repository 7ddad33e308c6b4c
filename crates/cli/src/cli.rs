//! The command-line surface (the README shows it in use; `--help` explains each verb).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
EXAMPLES:
  lifeboat init --repo /backups/repo
  lifeboat backup postgres --pgdata /var/lib/postgresql/15/main
  lifeboat backup postgres --logical --db 'host=db.example.com dbname=app user=backup'
  lifeboat restore postgres latest --target-time '2026-11-30 09:15:00+00' --target-dir /srv/pg-restored
  lifeboat --source app-db snapshots --since 7d --json

ENVIRONMENT:
  LIFEBOAT_REPOSITORY       repository: a directory, or s3://bucket/prefix
  LIFEBOAT_PASSWORD         the passphrase itself (prefer a file or command)
  LIFEBOAT_PASSWORD_FILE    file holding the passphrase
  LIFEBOAT_PASSWORD_COMMAND command printing the passphrase
  LIFEBOAT_CONFIG           settings file (default /etc/lifeboat/lifeboat.toml,
                            then $XDG_CONFIG_HOME/lifeboat/lifeboat.toml)
  LIFEBOAT_LOG, LIFEBOAT_LOG_FILE   as --log-level and --log-file
  LIFEBOAT_PG_BIN           directory of pg_dump, pg_restore, psql
  LIFEBOAT_BUCKET_ACCESS_KEY_ID, LIFEBOAT_BUCKET_SECRET_ACCESS_KEY,
  LIFEBOAT_BUCKET_SESSION_TOKEN     a backed-up bucket's own credentials
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
  AWS_ENDPOINT_URL, AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE,
  AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN
                            S3 credentials, region and endpoint, as the AWS
                            tools read them (environment, then ~/.aws/*)
  PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE, PGSERVICE,
  PGSERVICEFILE, PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY,
  PGCONNECT_TIMEOUT, PGAPPNAME
                            PostgreSQL connections, as libpq reads them
                            (also ~/.pgpass and ~/.pg_service.conf)

DURATIONS AND SIZES:
  durations: 500ms, 90s, 15min, 6h, 1h 30min, 1.5d, 2w, 3mo (30 days), 1y (365 days);
  \"m\" alone is refused (minutes or months?). sizes: 512, 64K, 256M, 1.5GiB
  (powers of 1024).

EXIT CODES:
  0  success
  1  failure: damaged or missing data, I/O error, refused operation
  2  bad usage: invalid arguments or references, missing passphrase, a
     restore target that is not empty
  3  repository unusable: not found, unreachable, access denied, wrong passphrase
  4  source unreachable: the database server, or a backed-up bucket's endpoint
  5  source refused the credentials
  6  source does not exist: the database, or the bucket
  wal fetch (restore_command): 0 restored, 1 not in the archive (the
  repository was read and has no such file), 200 any other error, so that
  PostgreSQL stops recovery instead of ending it early.

With --json, errors are one JSON document on stderr:
  {\"error\": MESSAGE, \"exit\": CODE, \"hint\": HINT or null}";

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
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
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
    /// Log more: -v logs each step (info), -vv debug, -vvv trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log level (error, warn, info, debug, trace), or a filter such as
    /// `info,lifeboat_postgres=debug`. Logs go to stderr, or to --log-file.
    #[arg(long, global = true, env = "LIFEBOAT_LOG", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Append logs to this file as JSON lines (one object per event).
    #[arg(long, global = true, env = "LIFEBOAT_LOG_FILE", value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Use the source of this name declared in the settings file
    /// ([[source]]): `backup` backs it up; `snapshots`, `runs`, `status`
    /// and `drill` look at its snapshots and runs only; `latest` in `ls`,
    /// `restore` and `export` is its newest snapshot. Verbs on the whole
    /// repository (check, forget, prune, copy, key) are not limited by it.
    #[arg(long, global = true, value_name = "NAME")]
    pub source: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository.
    #[command(
        after_help = "Examples:\n  LIFEBOAT_PASSWORD_FILE=/etc/lifeboat/passphrase lifeboat init --repo /backups/repo\n  lifeboat init --repo s3://my-backups/prod"
    )]
    Init(InitArgs),
    /// Print lifeboat's version (and, with --json, the format it writes).
    #[command(after_help = "Examples:\n  lifeboat version --json")]
    Version,
    /// Shell completions and manual pages, for packagers and operators.
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Back up a source into the repository: files, a PostgreSQL cluster or
    /// database, or a source declared in the settings file (--source NAME).
    #[command(
        after_help = "Examples:\n  lifeboat backup files /etc/nginx /srv/app/.env --exclude \"*.log\"\n  lifeboat backup postgres --pgdata /var/lib/postgresql/15/main\n  lifeboat --source app-db backup --kind pre-deploy --reason \"migration 42\""
    )]
    Backup(BackupArgs),
    /// List snapshots, oldest first, optionally filtered.
    #[command(
        after_help = "Examples:\n  lifeboat snapshots --kind postgres --since 7d\n  lifeboat --source app-db snapshots --json | jq '.[-1].id'"
    )]
    Snapshots(SnapshotsArgs),
    /// List the files in a snapshot.
    #[command(after_help = "Examples:\n  lifeboat ls latest\n  lifeboat ls 3723e387 --json")]
    Ls(LsArgs),
    /// Restore a snapshot.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  lifeboat restore files latest --target /tmp/etc-restored\n  lifeboat restore postgres latest --target-time \"2026-11-30 09:15:00+00\" --target-dir /srv/pg15-restored --start"
    )]
    Restore(RestoreCommand),
    /// Verify the repository: structure always, every byte with --read-data.
    #[command(after_help = "Examples:\n  lifeboat check\n  lifeboat check --read-data --subset 5%")]
    Check(CheckArgs),
    /// Manage the passphrases that unlock the repository.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  lifeboat key list\n  lifeboat key add --new-password-file /etc/lifeboat/second-passphrase"
    )]
    Key(KeyCommand),
    /// Repair the repository's metadata.
    #[command(subcommand)]
    #[command(after_help = "Examples:\n  lifeboat repair index")]
    Repair(RepairCommand),
    /// PostgreSQL WAL archiving: archive_command and restore_command.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  archive_command = 'lifeboat wal push %p'\n  restore_command = 'lifeboat wal fetch %f %p'"
    )]
    Wal(WalCommand),
    /// What the repository holds.
    #[command(subcommand)]
    #[command(after_help = "Examples:\n  lifeboat info postgres --json")]
    Info(InfoCommand),
    /// Write a logical backup as an ordinary dump (psql loads it without lifeboat).
    #[command(
        after_help = "Examples:\n  lifeboat export latest --database app > app.sql\n  lifeboat export latest --format custom --database app > app.dump"
    )]
    Export(ExportArgs),
    /// Apply a retention policy per source: keep what the rules say, remove
    /// the other snapshots (their data stays until `prune`). Without --keep-*
    /// rules, the runbook policy: daily 30 days, weekly 13 weeks, monthly 12
    /// months, yearly 7 years, pre-deploy backups 90 days. Periods are UTC
    /// calendar periods counted back from each source's newest snapshot.
    /// PostgreSQL WAL outside the point-in-time-recovery window (--pitr-window,
    /// 30 days) is removed, never WAL a kept base backup needs.
    #[command(
        after_help = "Examples:\n  lifeboat forget --dry-run\n  lifeboat forget --keep-daily 7 --keep-weekly 4 --keep-within 2d --pitr-window 14d"
    )]
    Forget(ForgetArgs),
    /// Pin a snapshot (legal hold): no retention policy removes it until unpinned.
    #[command(
        after_help = "Examples:\n  lifeboat pin 3723e387 --reason \"legal hold: case 2026-17\""
    )]
    Pin(PinArgs),
    /// Remove every pin of a snapshot.
    #[command(after_help = "Examples:\n  lifeboat unpin 3723e387")]
    Unpin(UnpinArgs),
    /// Erase a data subject (GDPR): the [[erasure]] rules of lifeboat.toml
    /// find its rows; an entry in the repository's erasure ledger (the
    /// subject only as a keyed hash) is written first, then the objects the
    /// [[bucket_erasure]] rules find are deleted, then the rows, in one
    /// transaction. Every later restore re-applies the ledger.
    #[command(after_help = "Examples:\n  \
        lifeboat erase 4711 --reason \"request 2026-118\" --db postgresql://app@db/app\n  \
        lifeboat erase 4711 --reason \"request 2026-118\" --source app --dry-run\n  \
        lifeboat erase 4711 --reason \"case 12\" --hold \"litigation hold, case 12\"\n\n\
        lifeboat.toml:\n  \
        [[erasure]]                     # tables that reference others first\n  \
        table = \"public.orders\"\n  \
        subject = \"customer_id\"\n  \
        [[erasure]]\n  \
        table = \"public.customers\"\n  \
        subject = \"id\"\n  \
        [[bucket_erasure]]              # objects, in a declared bucket source\n  \
        source = \"media\"\n  \
        key = \"users/{subject}/**\"\n  \
        [[bucket_erasure]]              # objects a table names (Supabase)\n  \
        source = \"media\"\n  \
        query = \"SELECT name FROM storage.objects WHERE bucket_id = 'media' AND owner_id::text = $1\"")]
    Erase(EraseArgs),
    /// List the erasure ledger and verify its chain (exits 1 if an entry
    /// was removed, replaced or cannot be read); with --replay, re-apply it
    /// to a database restored without lifeboat starting it; with --subject,
    /// say which backups still hold a subject's data and until when; with
    /// --compliance, the compliance report.
    #[command(
        after_help = "Examples:\n  lifeboat erasures\n  lifeboat erasures --json\n  \
        lifeboat erasures --subject 4711\n  lifeboat erasures --compliance\n  \
        lifeboat erasures --replay --db \"host=/tmp port=5433 dbname=app\""
    )]
    Erasures(ErasuresArgs),
    /// Remove data no snapshot needs, in two phases that are safe while
    /// backups run: packs no snapshot uses (and partly used packs, repacked
    /// first) are marked in a deletion plan; a later run deletes them once
    /// the plan is older than --grace and no backup that started before it
    /// is still running. Backups never wait for prune. Only one prune runs
    /// at a time; a killed prune is finished by the next.
    #[command(
        after_help = "Examples:\n  lifeboat prune --dry-run\n  lifeboat prune --grace 2h --max-repack 10G"
    )]
    Prune(PruneArgs),
    /// Copy snapshots (with the data they need) and archived WAL to a
    /// replica repository in another region or provider, only what it
    /// lacks, verifying everything read. The replica shares this
    /// repository's encryption key but has its own passphrase; create it
    /// with --init. Run it repeatedly (the weekly offsite copy).
    #[command(
        after_help = "Examples:\n  lifeboat copy --to s3://offsite-backups/prod --init\n  lifeboat copy --to s3://offsite-backups/prod latest"
    )]
    Copy(CopyArgs),
    /// Run the data checks of lifeboat.toml ([[check]]: a query and the
    /// value it must return, a range, or a maximum age) against a live
    /// database. Exits 1 when any check fails.
    #[command(
        after_help = "Examples:\n  lifeboat verify-data --db 'host=/run/postgresql dbname=app'"
    )]
    VerifyData(VerifyDataArgs),
    /// Stop writes to a database (new sessions read-only, existing ones
    /// ended after --grace) for a recovery, or allow them again. Runs the
    /// [maintenance] hook commands of lifeboat.toml for the application side.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  lifeboat maintenance on --db 'dbname=app' --grace 30s\n  lifeboat maintenance off --db 'dbname=app'"
    )]
    Maintenance(MaintenanceCommand),
    /// Prove a backup restores: restore it into a scratch PostgreSQL
    /// cluster (started in a temporary directory on a free port, removed
    /// afterwards; or an empty staging database with --db), compare row
    /// counts with those recorded at backup time, run pg_amcheck and the
    /// [[check]]s of lifeboat.toml, and measure the recovery time (RTO) and
    /// the data-loss window (RPO) against [targets]. The report goes into
    /// the repository (see `lifeboat drills`), to stdout and to --report.
    /// Exits 1 when anything fails or a target is missed.
    #[command(
        after_help = "Examples:\n  lifeboat drill latest\n  lifeboat --source app-db drill latest --target-time \"2026-11-30 09:00:00Z\" --report drill.md"
    )]
    Drill(DrillArgs),
    /// List the drill reports kept in the repository.
    #[command(after_help = "Examples:\n  lifeboat drills --json")]
    Drills(DrillsArgs),
    /// The runbook checklist at a glance: per source the newest backup and
    /// its age against the RPO target, the WAL archive lag, the newest drill
    /// and its RTO, the last integrity check, and what is overdue. Exits 1
    /// when anything is overdue or failing (for cron and monitoring).
    #[command(after_help = "Examples:\n  lifeboat status\n  lifeboat status --json | jq .ok")]
    Status,
    /// The corruption runbook in one command: stop writes on the damaged
    /// database (--db), recover a new data directory to --target-time and
    /// start it, verify it with pg_amcheck and the [[check]]s, switch over
    /// ([recover] switch_command, else printed) and resume writes. Stops
    /// at the first failed step; never writes to the damaged cluster's data
    /// directory.
    #[command(
        after_help = "Examples:\n  lifeboat recover --target-time \"2026-11-30 09:14:00+00\" --target-dir /srv/pg15-recovered --db 'dbname=app'"
    )]
    Recover(RecoverArgs),
    /// The daemon: runs the [[job]]s of the settings file on their
    /// schedules (each job a child process; no overlaps; one catch-up run
    /// after downtime; deadlines), records every run in the repository,
    /// serves Prometheus metrics and a small API on 127.0.0.1, and sends
    /// alerts. SIGTERM waits for running jobs up to [serve] stop_timeout.
    #[command(after_help = "Examples:\n  lifeboat --config /etc/lifeboat/lifeboat.toml serve")]
    Serve(ServeArgs),
    /// The run history the daemon keeps in the repository (--source filters).
    #[command(
        after_help = "Examples:\n  lifeboat runs --last 20\n  lifeboat --source app-db runs --json"
    )]
    Runs(RunsArgs),
    /// The audit log: every backup, restore, export, drill, copy, forget,
    /// prune, erasure and key change, with who ran it (the account, not
    /// $USER), from which host, when, and how it ended. It is kept in the
    /// repository, hash-chained, and travels to replicas with `copy`;
    /// `audit verify` names an entry that was edited, deleted, moved, or
    /// cut off the end (exit 1).
    #[command(
        after_help = "Examples:\n  lifeboat audit --last 20\n  lifeboat audit --json\n  lifeboat audit verify"
    )]
    Audit(AuditArgs),
    /// Users of the daemon's API and dashboard, each with a role: viewer,
    /// operator (back up, drill), restorer (restore into unprotected
    /// targets), approver, admin. Kept in the daemon's state directory
    /// (users.json, passwords Argon2id-hashed); each change is recorded
    /// in the audit log.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  LIFEBOAT_NEW_PASSWORD=… lifeboat user add ann --role approver\n  lifeboat user list\n  lifeboat user passwd ann\n  lifeboat user remove ann"
    )]
    User(UserCommand),
    /// API tokens: `Authorization: Bearer lbt_…` for scripts and the CLI.
    /// A token is shown once; only its hash is kept; a revoked token is
    /// refused at once.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  lifeboat token create ann --label grafana\n  lifeboat token list\n  lifeboat token revoke 3f2a"
    )]
    Token(TokenCommand),
    /// Ask the daemon to run a restore into a protected target once other
    /// people approve it. Everything after `--` is the lifeboat command
    /// that will run, exactly as a refused restore printed it.
    #[command(
        after_help = "Examples:\n  LIFEBOAT_TOKEN=lbt_… lifeboat request -- restore postgres latest --logical --db service=prod --clean"
    )]
    Request(RequestArgs),
    /// Requests for restores into protected targets: their plans, hashes,
    /// approvals and outcomes.
    #[command(after_help = "Examples:\n  LIFEBOAT_TOKEN=lbt_… lifeboat requests")]
    Requests(DaemonArgs),
    /// Approve a request. --plan is the hash `lifeboat requests` shows:
    /// the approval holds for that plan only.
    #[command(
        after_help = "Examples:\n  LIFEBOAT_TOKEN=lbt_… lifeboat approve 3f2a9c0d11aa --plan 5e0c…"
    )]
    Approve(ApproveArgs),
    /// Every scheduled job with its schedule (time zone shown) and next runs.
    #[command(after_help = "Examples:\n  lifeboat schedule")]
    Schedule(ScheduleArgs),
    /// Alerts.
    #[command(subcommand)]
    #[command(after_help = "Examples:\n  lifeboat alert test")]
    Alert(AlertCommand),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackupArgs {
    /// What to back up (or --source NAME, or --set NAME).
    #[command(subcommand)]
    pub what: Option<BackupCommand>,
    /// Back up every source of this [[set]] of the settings file, back to
    /// back (the database, then its buckets), linking the snapshots with a
    /// shared `set-run:` tag (`restore bucket --paired-with` uses it).
    #[arg(long, value_name = "NAME")]
    pub set: Option<String>,
    #[command(flatten)]
    pub common: BackupCommon,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for metrics and the API (default: [serve] listen, else 127.0.0.1:9187).
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<String>,
    /// Directory for the daemon's state and the jobs' output (default:
    /// [serve] state_dir, else /var/lib/lifeboat as root, else
    /// $XDG_STATE_HOME/lifeboat).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Show only the newest N.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Verify the logs instead of listing them.
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Show only the newest N entries.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is read from --password-file,
    /// LIFEBOAT_NEW_PASSWORD, or a prompt (at least 10 characters).
    Add(UserAddArgs),
    /// List users and their roles.
    List(StateDirArg),
    /// Remove a user (their tokens are revoked).
    Remove(UserNameArgs),
    /// Set a user's password (read like `user add`'s).
    Passwd(UserNameArgs),
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The daemon's address (default: LIFEBOAT_DAEMON, else
    /// http://[serve] listen, else http://127.0.0.1:9187). The token is
    /// read from LIFEBOAT_TOKEN.
    #[arg(long, value_name = "URL")]
    pub daemon: Option<String>,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Break glass (admins only): run now without approval, for this
    /// reason; alerted in the audit log and marked for review.
    #[arg(long, value_name = "REASON")]
    pub break_glass: Option<String>,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// The lifeboat command to run (`restore …` or `recover …`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The request's id.
    pub id: String,
    /// The plan hash being approved.
    #[arg(long, value_name = "HASH")]
    pub plan: String,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

#[derive(Debug, Args)]
pub struct StateDirArg {
    /// The daemon's state directory (default: [serve] state_dir, else
    /// /var/lib/lifeboat as root, else $XDG_STATE_HOME/lifeboat).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The user name (letters, digits, '.', '_', '-', '@').
    pub name: String,
    /// viewer, operator, restorer, approver or admin.
    #[arg(long)]
    pub role: String,
    /// File holding the password.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub dir: StateDirArg,
}

#[derive(Debug, Args)]
pub struct UserNameArgs {
    /// The user name.
    pub name: String,
    /// File holding the new password (`passwd` only).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub dir: StateDirArg,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token for a user; it is printed once.
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    List(StateDirArg),
    /// Revoke a token by its id (or the first 4 or more characters of it).
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Whose token it is.
    pub user: String,
    /// What it is for (shown by `token list`).
    #[arg(long)]
    pub label: Option<String>,
    #[command(flatten)]
    pub dir: StateDirArg,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id or a prefix of it.
    pub id: String,
    #[command(flatten)]
    pub dir: StateDirArg,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every log's chain, head and signed checkpoints; name the
    /// first entry that was edited, deleted, moved or cut off (exit 1).
    Verify,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// How many next runs to show per job.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub next: usize,
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test alert through every [[alerts.route]]; exits 1 if any fails.
    Test,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The backup to drill: latest, random, or a snapshot id.
    #[arg(default_value = "latest", value_name = "SNAPSHOT")]
    pub snapshot: String,
    /// Simulate a loss at this time: recover to it (physical) or use the
    /// newest logical backup before it. Default: now.
    #[arg(long, value_name = "TIME")]
    pub target_time: Option<String>,
    /// Restore a logical backup into this empty staging database instead of
    /// a scratch cluster.
    #[arg(long, value_name = "CONNINFO")]
    pub db: Option<String>,
    /// Also write the report to this file (JSON if it ends in .json, else Markdown).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Parallel connections for a logical restore.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Give up on recovery after this long (e.g. 30min, 2h).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::units::duration)]
    pub timeout: std::time::Duration,
    /// Bucket snapshots: restore into this s3://BUCKET/PREFIX (kept
    /// afterwards) instead of a fresh prefix under .lifeboat-drills/ of
    /// the backed-up bucket (removed afterwards).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub scratch: Option<String>,
    #[command(flatten)]
    pub conn: BucketConnArgs,
}

#[derive(Debug, Args)]
pub struct DrillsArgs {
    /// Show only the newest N.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Recover to this moment (just before the accident), e.g. "2026-11-23 09:41:00+00".
    #[arg(long, value_name = "TIME")]
    pub target_time: String,
    /// The new data directory (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub target_dir: PathBuf,
    /// The damaged database, still running: writes are stopped there first.
    #[arg(long, value_name = "CONNINFO")]
    pub db: Option<String>,
    /// How long sessions on it may finish before they are ended.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::units::duration)]
    pub grace: std::time::Duration,
    /// Port for the recovered server (default: a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Unix socket directory for the recovered server.
    #[arg(long, value_name = "DIR", default_value = "/tmp")]
    pub socket_dir: PathBuf,
    /// Tablespace destination, OID=DIR (repeatable).
    #[arg(long, value_name = "OID=DIR")]
    pub tablespace_map: Vec<String>,
    /// Keep the recovered server from archiving WAL into the repository.
    #[arg(long)]
    pub no_archive: bool,
    /// How long recovery may take (e.g. 30min, 2h).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::units::duration)]
    pub timeout: std::time::Duration,
    /// Also write the report to this file (JSON if it ends in .json, else Markdown).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyDataArgs {
    /// The database (libpq connection string or URL; PG* variables apply).
    #[arg(long, value_name = "CONNINFO")]
    pub db: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Stop writes.
    On(MaintenanceOnArgs),
    /// Allow writes again.
    Off(MaintenanceOffArgs),
}

#[derive(Debug, Args)]
pub struct MaintenanceOnArgs {
    /// The database (libpq connection string or URL; PG* variables apply).
    #[arg(long, value_name = "CONNINFO")]
    pub db: Option<String>,
    /// How long connected sessions may finish their work before they are ended.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::units::duration)]
    pub grace: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct MaintenanceOffArgs {
    /// The database (libpq connection string or URL; PG* variables apply).
    #[arg(long, value_name = "CONNINFO")]
    pub db: Option<String>,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The replica: a directory or s3://bucket/prefix (S3 credentials from
    /// the usual AWS_* variables).
    #[arg(long, value_name = "LOCATION")]
    pub to: String,
    /// Create the replica first (the location must be empty).
    #[arg(long)]
    pub init: bool,
    /// The replica's passphrase from this file (else LIFEBOAT_TO_PASSWORD,
    /// --to-password-command, or a prompt).
    #[arg(long, env = "LIFEBOAT_TO_PASSWORD_FILE", value_name = "FILE")]
    pub to_password_file: Option<PathBuf>,
    /// Run this command for the replica's passphrase.
    #[arg(long, env = "LIFEBOAT_TO_PASSWORD_COMMAND", value_name = "COMMAND")]
    pub to_password_command: Option<String>,
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Snapshots to copy (ids or unique prefixes, or "latest"); default all.
    pub snapshots: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Report what would be marked, repacked and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long marked packs are kept before deletion: longer than any
    /// restore or check that may run meanwhile (e.g. 1h, 30min, 1d; 0 deletes
    /// in the same run, still waiting for running backups).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::units::duration)]
    pub grace: std::time::Duration,
    /// Unused space tolerated inside partly used packs, as a percentage of
    /// the repository; beyond it the most wasteful packs are repacked.
    #[arg(long, value_name = "PERCENT", default_value = "5%")]
    pub max_unused: String,
    /// Most bytes of packs to repack in one run (e.g. 10G); default no limit.
    #[arg(long, value_name = "SIZE", value_parser = crate::units::size)]
    pub max_repack: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Print the plan (every snapshot, kept or removed, and the rules that
    /// keep it) without removing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the newest N snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N UTC hours.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N UTC days.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep everything younger than this (e.g. 30d, 12h, 2w) before the newest snapshot.
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep snapshots of a kind for a duration (e.g. pre-deploy=90d; repeatable).
    #[arg(long, value_name = "KIND=DURATION")]
    pub keep_kind: Vec<String>,
    /// The point-in-time-recovery window of PostgreSQL clusters, back from
    /// now (e.g. 30d, 12h, 90min). The base backup the window starts from is
    /// kept whatever the rules say; archived WAL that neither the window nor
    /// any kept base backup needs is removed.
    /// Default: `pitr_window` in lifeboat.toml's [retention], else 30d.
    #[arg(long, value_name = "DURATION")]
    pub pitr_window: Option<String>,
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The subject's key, as the rules' `subject` expressions give it (a
    /// customer id, an email address…). Stored only as a keyed hash.
    pub subject: String,
    /// Why (a request or ticket reference). Do not name the person: the
    /// reason is kept in the ledger as long as the repository.
    #[arg(long)]
    pub reason: String,
    /// The live database (default: the `PG*` variables).
    #[arg(long, value_name = "CONNINFO", conflicts_with = "source")]
    pub db: Option<String>,
    /// The [[source]] whose `db` is the live database.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Count what the rules match; record and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Record the request under a legal hold: nothing is deleted (and
    /// restores keep the rows) until `erase` runs again without --hold.
    #[arg(long, value_name = "WHY")]
    pub hold: Option<String>,
}

#[derive(Debug, Args)]
pub struct ErasuresArgs {
    /// Re-apply every erasure in force to the database --db names (its
    /// [[erasure]] rules: those naming that database or none).
    #[arg(long, requires = "db")]
    pub replay: bool,
    /// The database to re-apply the ledger to.
    #[arg(long, value_name = "CONNINFO")]
    pub db: Option<String>,
    /// Apply the rules of this database (as named in [[erasure]] rules),
    /// for a copy restored under another name (default: --db's database).
    #[arg(long, value_name = "NAME", requires = "replay")]
    pub database: Option<String>,
    /// Report on one data subject: its ledger entries, which retained
    /// backups still hold its data and when the last expires under the
    /// current retention policy. The key is hashed, never stored or logged.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["replay", "compliance"])]
    pub subject: Option<String>,
    /// The compliance report: where the repository and its replicas live,
    /// their encryption, retention and Object Lock, and each erasure with
    /// the restores that re-applied it (from the audit log).
    #[arg(long, conflicts_with = "replay")]
    pub compliance: bool,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// Snapshot id (or unique prefix), or "latest".
    pub snapshot: String,
    /// Why it is held (recorded with the pin).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// Snapshot id (or unique prefix).
    pub snapshot: String,
}

#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Archive one WAL file (archive_command = 'lifeboat wal push %p').
    /// Exits 0 only once it is durably stored. A background pusher archives
    /// the next waiting segments ahead, so later calls return at once.
    #[command(
        after_help = "Examples:\n  archive_command = 'lifeboat wal push %p'   (postgresql.conf)"
    )]
    Push(WalPushArgs),
    /// The background pusher started by `wal push` (not for direct use).
    #[command(hide = true)]
    PushAhead(WalPushAheadArgs),
    /// Restore one WAL file (restore_command = 'lifeboat wal fetch %f %p').
    /// Exits 0 when restored, 1 when the archive does not have it, and 200
    /// on any other error, so PostgreSQL stops recovery instead of ending it early.
    #[command(
        after_help = "Examples:\n  restore_command = 'lifeboat wal fetch %f %p'   (set by lifeboat restore postgres)"
    )]
    Fetch(WalFetchArgs),
}

#[derive(Debug, Args)]
pub struct WalPushArgs {
    /// The file, as PostgreSQL's %p (relative to the data directory).
    pub path: PathBuf,
    /// The cluster's data directory (default: $PGDATA, else the current directory).
    #[arg(long, value_name = "DIR")]
    pub pgdata: Option<PathBuf>,
    /// Segments the background pusher archives at once (0: no background
    /// pusher; archive only the file asked for, in this process).
    #[arg(long, default_value_t = 4)]
    pub ahead: usize,
}

#[derive(Debug, Args)]
pub struct WalPushAheadArgs {
    /// The cluster's data directory.
    #[arg(long, value_name = "DIR")]
    pub pgdata: PathBuf,
    /// Segments archived at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
}

#[derive(Debug, Args)]
pub struct WalFetchArgs {
    /// The file name PostgreSQL asks for (%f).
    pub name: String,
    /// Where to write it (%p, relative to the data directory).
    pub path: PathBuf,
    /// The data directory being recovered (default: $PGDATA, else the current directory).
    #[arg(long, value_name = "DIR")]
    pub pgdata: Option<PathBuf>,
    /// Prefetch up to this many following segments into the spool.
    #[arg(long, default_value_t = 8)]
    pub prefetch: usize,
}

#[derive(Debug, Subcommand)]
pub enum InfoCommand {
    /// PostgreSQL clusters: base backups, recoverable windows per timeline,
    /// WAL gaps and archive lag.
    Postgres,
}

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild index entries from the packs themselves: indexes every pack
    /// that no readable index file lists, then removes unreadable index files.
    /// Use it when `check` reports a damaged index file.
    Index,
    /// Remove deletion plans and backup-in-progress records that cannot be
    /// read (every prune stops on a damaged plan). Loses no data: the packs
    /// a plan marked are kept, and the next prune marks them again.
    Plans,
}

/// Argon2id cost for new key slots.
#[derive(Debug, Args, Clone)]
pub struct KdfArgs {
    /// Argon2id memory in MiB for the new key slot (default 64, at least 19:
    /// OWASP's floor for Argon2id). Lower values make a weak passphrase
    /// easier to guess; keep the default in production.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(19..=4096))]
    pub kdf_memory: u32,
    /// Argon2id passes for the new key slot (at least 2).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub kdf_iterations: u32,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Target pack size in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pack_size: u32,
    /// The bucket has S3 Object Lock with a default retention of this many
    /// days: prune then deletes nothing younger (and says what it kept).
    /// Fixed at init, like the bucket's retention.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub object_lock_days: Option<u32>,
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
    /// zstd level 3, or level 1 on data where level 3 saves less than 2 %.
    Default,
    /// zstd level 15.
    Max,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up files and directories (config files, .env files, any tree).
    #[command(
        after_help = "Examples:\n  lifeboat backup files /etc/postgresql /srv/app/.env\n  lifeboat backup files /srv/app --exclude \"*.log\" --exclude-file /etc/lifeboat/excludes"
    )]
    Files(BackupFilesArgs),
    /// Back up a PostgreSQL cluster: a physical base backup with --pgdata.
    #[command(
        after_help = "Examples:\n  lifeboat backup postgres --pgdata /var/lib/postgresql/15/main\n  lifeboat backup postgres --logical --db 'postgresql://backup@db.example.com/app?sslmode=verify-full' --jobs 4"
    )]
    Postgres(BackupPostgresArgs),
    /// Back up an S3-compatible bucket (or a prefix of one), incrementally:
    /// objects unchanged since the last backup (same ETag, size and time)
    /// are not downloaded again.
    ///
    /// Credentials: LIFEBOAT_BUCKET_ACCESS_KEY_ID / LIFEBOAT_BUCKET_SECRET_ACCESS_KEY
    /// (else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), separate from the
    /// repository's when both are set.
    ///
    /// Example: lifeboat backup bucket s3://media/uploads --endpoint https://PROJECT.supabase.co/storage/v1/s3 --region eu-central-1
    #[command(
        after_help = "Examples:\n  lifeboat backup bucket s3://media --endpoint https://PROJECT.supabase.co/storage/v1/s3"
    )]
    Bucket(BackupBucketArgs),
}

/// How to reach a bucket (each falls back to the environment).
#[derive(Debug, Clone, Args)]
pub struct BucketConnArgs {
    /// The object store's endpoint URL (default: AWS_ENDPOINT_URL_S3 /
    /// AWS_ENDPOINT_URL, else AWS's regional endpoint).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The bucket's region (default: AWS_REGION, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Path-style requests (http://endpoint/bucket/key); the default with
    /// a custom endpoint.
    #[arg(long, conflicts_with = "virtual_hosted")]
    pub path_style: bool,
    /// Virtual-hosted requests (http://bucket.endpoint/key); the default on AWS.
    #[arg(long)]
    pub virtual_hosted: bool,
}

#[derive(Debug, Args)]
pub struct BackupBucketArgs {
    /// The bucket, or a prefix of it: s3://BUCKET[/PREFIX].
    #[arg(value_name = "s3://BUCKET[/PREFIX]")]
    pub bucket: String,
    #[command(flatten)]
    pub conn: BucketConnArgs,
    /// Objects downloaded at once.
    #[arg(long, value_name = "N", default_value_t = lifeboat_sources::bucket::DEFAULT_PARALLEL)]
    pub parallel: usize,
    #[command(flatten)]
    pub common: BackupCommon,
}

#[derive(Debug, Args)]
pub struct BackupFilesArgs {
    /// Files and directories to back up (directories recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Leave out what matches this glob pattern (repeatable): one without
    /// `/` matches a name at any depth (`*.log`), one with `/` the absolute
    /// path (`/srv/app/tmp/**`).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read --exclude patterns from this file, one per line (blank lines and
    /// lines starting with # are skipped). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Record the snapshot as taken at this time instead of now (for copies
    /// imported from elsewhere), e.g. "2026-11-01 03:00:00Z".
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    #[command(flatten)]
    pub common: BackupCommon,
}

/// Options every kind of backup takes.
#[derive(Debug, Clone, Args)]
pub struct BackupCommon {
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
    /// source and host: files unchanged since it are not read again.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "force")]
    pub parent: Option<String>,
    /// Read every file, even those unchanged since the last backup.
    #[arg(long)]
    pub force: bool,
    /// Percentage of the new data packs read back from storage and verified
    /// before the snapshot is written (new metadata, index files and the
    /// snapshot are always read back; 0 reads back one data pack).
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0)]
    pub read_back: f64,
    /// Check the source and the repository and say what would be backed up
    /// (files and bytes, excluded paths, databases, objects); write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct BackupPostgresArgs {
    /// The data directory of the running server (a physical base backup; the
    /// tool must run on the database host).
    #[arg(long, value_name = "DIR", required_unless_present = "logical")]
    pub pgdata: Option<PathBuf>,
    /// Connection string (libpq key=value or URL). Missing parts come from
    /// PGHOST/PGPORT/PGUSER/PGDATABASE and the server's postmaster.pid.
    /// With --logical, repeat it to back up several databases in one snapshot.
    #[arg(long, value_name = "CONNINFO")]
    pub db: Vec<String>,
    /// A logical backup over SQL only (managed PostgreSQL: no file access,
    /// no superuser, no replication needed). Every database is read in one
    /// consistent snapshot by --jobs connections, each table its own stream.
    #[arg(long, conflicts_with = "pgdata")]
    pub logical: bool,
    /// With --logical: every database of the server --db reaches.
    #[arg(long, requires = "logical")]
    pub all_databases: bool,
    /// With --logical: parallel connections per database.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub jobs: usize,
    /// With --logical: tables larger than this are read in parts
    /// (PostgreSQL 14 and later), e.g. 64M, 1G.
    #[arg(long, default_value = "256M", value_name = "SIZE", value_parser = crate::units::size_mib_at_least)]
    pub split_size: u64,
    /// Directory of pg_dump, pg_dumpall and pg_restore (default:
    /// $LIFEBOAT_PG_BIN, the newest /usr/lib/postgresql/N/bin, then PATH).
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
    /// Physical backups: how long to wait for the WAL the backup needs to
    /// reach the repository through archive_command (e.g. 90s, 10min). While
    /// waiting, lifeboat says which segment it waits for and what
    /// pg_stat_archiver reports; after the limit the backup fails and is not
    /// recorded.
    #[arg(long, value_name = "DURATION", default_value = "5min", value_parser = crate::units::duration, conflicts_with = "logical")]
    pub archive_timeout: std::time::Duration,
    #[command(flatten)]
    pub common: BackupCommon,
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
    #[command(
        after_help = "Examples:\n  lifeboat restore files latest --target /tmp/restored\n  lifeboat restore files 3723e387 --target / --include /etc/nginx --overwrite"
    )]
    Files(RestoreFilesArgs),
    /// Restore a PostgreSQL base backup into a new data directory and recover
    /// it to the end of the archived WAL or to a point in time.
    #[command(
        after_help = "Examples:\n  lifeboat restore postgres latest --target-time \"2026-11-30 09:15:00+00\" --target-dir /srv/pg15-restored --start\n  lifeboat restore postgres latest --logical --db 'dbname=app_restored' --jobs 4"
    )]
    Postgres(Box<RestorePostgresArgs>),
    /// Restore a bucket snapshot into another bucket or prefix (--to
    /// s3://…), a local directory (--to DIR), or the original bucket
    /// (--in-place). Only objects that differ are written.
    ///
    /// Examples:
    ///   lifeboat restore bucket latest --as-of "2026-11-30 09:00Z" --to s3://media-restored
    ///   lifeboat restore bucket 1a2b3c4d --to /srv/restore/media
    ///   lifeboat restore bucket latest --source media --in-place --delete --dry-run
    #[command(
        after_help = "Examples:\n  lifeboat restore bucket latest --to s3://media-restored\n  lifeboat restore bucket latest --as-of \"2026-11-30 09:00:00Z\" --in-place --dry-run"
    )]
    Bucket(Box<RestoreBucketArgs>),
}

#[derive(Debug, Args)]
pub struct RestoreBucketArgs {
    /// Snapshot id (or unique prefix), or "latest" (the newest bucket
    /// snapshot; with --source, of that source).
    pub snapshot: String,
    /// Restore the newest snapshot of the same bucket taken at or before
    /// this time instead, e.g. "2026-11-30 09:00:00Z".
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
    /// Where to restore: s3://BUCKET[/PREFIX] or a local directory.
    #[arg(
        long,
        value_name = "s3://BUCKET[/PREFIX]|DIR",
        required_unless_present = "in_place",
        conflicts_with = "in_place"
    )]
    pub to: Option<String>,
    /// Restore into the bucket and prefix the snapshot was taken from,
    /// rewriting only objects that differ.
    #[arg(long)]
    pub in_place: bool,
    /// With --in-place (or a bucket --to): also delete objects that did not
    /// exist at the snapshot's time.
    #[arg(long)]
    pub delete: bool,
    /// Allow a --to that already holds objects or files (those that differ
    /// are replaced; nothing is deleted without --delete).
    #[arg(long)]
    pub overwrite: bool,
    /// Print what would be written and deleted, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Restore the bucket snapshot taken in the same `backup --set` run as
    /// this (database) snapshot, so that both come back to the same moment.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "as_of")]
    pub paired_with: Option<String>,
    /// Afterwards, compare the restored objects with the rows of the
    /// database that name them (Supabase's storage.objects): report rows
    /// whose object is missing and objects no row names.
    #[arg(long, value_name = "CONNINFO")]
    pub check_rows: Option<String>,
    /// With --check-rows: the table naming the objects (columns bucket_id, name).
    #[arg(long, value_name = "SCHEMA.TABLE", default_value = "storage.objects")]
    pub rows_table: String,
    /// With --check-rows: the bucket id in the rows (default: the bucket's name).
    #[arg(long, value_name = "ID")]
    pub bucket_id: Option<String>,
    /// Restore the objects of erased subjects too (the erasure ledger is not
    /// applied: for a repository whose ledger is damaged; they come back).
    #[arg(long)]
    pub skip_erasures: bool,
    #[command(flatten)]
    pub conn: BucketConnArgs,
}

/// Where recovery stops.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TargetKeyword {
    /// The end of the backup: the earliest consistent point.
    Immediate,
    /// All the archived WAL.
    Latest,
}

/// What the server does at the target.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TargetActionArg {
    /// Open for writes on a new timeline.
    Promote,
    /// Stay in recovery, paused, for inspection.
    Pause,
    /// Shut down.
    Shutdown,
}

#[derive(Debug, Args)]
pub struct RestorePostgresArgs {
    /// Base backup to start from (id or prefix), or "latest" to let lifeboat
    /// pick the newest base backup that ends before the target.
    pub snapshot: String,
    /// New data directory (created; must be empty unless --delta).
    #[arg(long, value_name = "DIR", required_unless_present = "logical")]
    pub target_dir: Option<PathBuf>,
    /// Recover to this time: "2026-02-23 10:00:00+01", RFC 3339, or without a
    /// zone (read as UTC).
    #[arg(long, value_name = "TIMESTAMP", group = "goal")]
    pub target_time: Option<String>,
    /// Recover to this WAL position (X/Y).
    #[arg(long, value_name = "LSN", group = "goal")]
    pub target_lsn: Option<String>,
    /// Recover to the end of this transaction.
    #[arg(long, value_name = "XID", group = "goal")]
    pub target_xid: Option<u64>,
    /// Recover to this named restore point (pg_create_restore_point).
    #[arg(long, value_name = "NAME", group = "goal")]
    pub target_name: Option<String>,
    /// Recover to the end of the backup (immediate) or of the archive (latest).
    #[arg(long, value_enum, value_name = "WHERE", group = "goal")]
    pub target: Option<TargetKeyword>,
    /// Timeline to follow: a number, or "latest" (the default).
    #[arg(long, value_name = "TIMELINE")]
    pub target_timeline: Option<String>,
    /// What the server does at the target.
    #[arg(long, value_enum, default_value = "promote")]
    pub target_action: TargetActionArg,
    /// Start the server and wait until it reaches the target.
    #[arg(long)]
    pub start: bool,
    /// Port for --start (default: a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Unix socket directory for --start.
    #[arg(long, value_name = "DIR", default_value = "/tmp")]
    pub socket_dir: PathBuf,
    /// How long --start waits for recovery (e.g. 30min, 2h).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::units::duration)]
    pub timeout: std::time::Duration,
    /// Plan only: choose the base backup, check the target and the
    /// destination directories, say what would be restored, write nothing.
    #[arg(long, conflicts_with_all = ["start", "logical"])]
    pub dry_run: bool,
    /// Restore into an existing data directory, rewriting only what differs.
    #[arg(long)]
    pub delta: bool,
    /// The restored cluster replaces the original (complete loss, region
    /// outage): it keeps the source's WAL archiving, so the timeline it
    /// starts is archived into this repository, and the restore is recorded
    /// as the new primary. Without it, archiving is switched off in the
    /// restored cluster (archive_mode = off in postgresql.auto.conf): a copy
    /// for inspection or testing never writes into the repository, and
    /// `restore postgres latest` keeps following production's timeline.
    #[arg(long, conflicts_with = "logical")]
    pub new_primary: bool,
    /// Accepted for compatibility: archiving is off in restored copies by
    /// default (see --new-primary).
    #[arg(long, hide = true, conflicts_with = "new_primary")]
    pub no_archive: bool,
    /// With a target of latest: recover although the archive has a gap, as
    /// far as it is continuous, then exit 1 saying how far recovery got.
    /// Without it such a restore is refused before anything is written.
    #[arg(long, conflicts_with = "logical")]
    pub up_to_gap: bool,
    /// Restore tablespace OID into DIR instead of its original location (repeatable).
    #[arg(long = "tablespace-map", value_name = "OID=DIR")]
    pub tablespace_map: Vec<String>,
    /// A logical restore into a database (from `backup postgres --logical`).
    #[arg(long, conflicts_with_all = ["target_dir", "start", "delta"])]
    pub logical: bool,
    /// With --logical: the target database (connection string; missing
    /// parts from PG* variables). It must be empty unless --clean, or, with
    /// --table/--schema, the selected tables must be empty or missing.
    #[arg(long, value_name = "CONNINFO", requires = "logical")]
    pub db: Option<String>,
    /// With --logical: which database of the backup (when it holds several).
    #[arg(long, value_name = "NAME", requires = "logical")]
    pub database: Option<String>,
    /// With --logical: restore only this table (schema.table; repeatable).
    /// A missing table is created with its indexes, constraints, triggers
    /// and policies; an existing one gets its rows loaded.
    #[arg(long, value_name = "TABLE", requires = "logical")]
    pub table: Vec<String>,
    /// With --logical: restore only this schema (repeatable).
    #[arg(long, value_name = "SCHEMA", requires = "logical")]
    pub schema: Vec<String>,
    /// With --logical: the schema only, no rows.
    #[arg(long, requires = "logical", conflicts_with = "data_only")]
    pub schema_only: bool,
    /// With --logical: the rows only, into tables that exist.
    #[arg(long, requires = "logical")]
    pub data_only: bool,
    /// With --logical: replace what the backup holds (drops and recreates
    /// its objects; empties tables before loading them).
    #[arg(long, requires = "logical")]
    pub clean: bool,
    /// With --logical: do not create the backup's roles where the target
    /// lacks them (roles that exist are never changed either way).
    #[arg(long, requires = "logical")]
    pub no_roles: bool,
    /// With --logical: do not restore owners; everything belongs to the
    /// restoring user (like pg_restore --no-owner).
    #[arg(long, requires = "logical")]
    pub no_owner: bool,
    /// With --logical: do not restore privileges: grants, default
    /// privileges and the database's own (like pg_restore --no-privileges).
    #[arg(long, requires = "logical")]
    pub no_privileges: bool,
    /// Do not re-apply the erasure ledger to the restored data (for a
    /// repository whose ledger is damaged; erased subjects come back).
    #[arg(long)]
    pub skip_erasures: bool,
    /// With --logical: parallel connections.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub jobs: usize,
    /// With --logical: directory of pg_restore (default: searched).
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
}

/// Formats `lifeboat export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// A plain SQL script for psql: the roles (created only where missing),
    /// the schema, the data, and the database's owner, privileges and
    /// settings, applied to the database it runs in.
    Plain,
    /// pg_dump's custom format for pg_restore, made with --create so that
    /// `pg_restore --create` brings back the database's own state too
    /// (rebuilt in a throwaway cluster: needs PostgreSQL's server programs
    /// on this machine). Roles are not part of it: export them with
    /// --format roles and run that first, as with pg_dumpall --roles-only.
    Custom,
    /// Only the roles, as a psql script that creates those missing.
    Roles,
}

#[derive(Clone, Debug, Args)]
pub struct ExportArgs {
    /// A logical backup (id or prefix), or "latest".
    pub snapshot: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "plain")]
    pub format: ExportFormat,
    /// Output file (default: standard output).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Which database of the backup (when it holds several).
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// Directory of pg_restore (default: searched).
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
    /// Plain format: leave the roles out.
    #[arg(long)]
    pub no_roles: bool,
    /// Plain format: leave owners out (everything belongs to whoever loads it).
    #[arg(long)]
    pub no_owner: bool,
    /// Plain format: leave privileges out.
    #[arg(long)]
    pub no_privileges: bool,
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
    /// Say what would be restored and which existing files would be
    /// replaced; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read and verify every byte of every pack.
    #[arg(long)]
    pub read_data: bool,
    /// With --read-data: read a random share of the packs (e.g. 10%), a
    /// different one each run, so a daily check covers everything in time.
    #[arg(long, value_name = "PERCENT", requires = "read_data")]
    pub subset: Option<String>,
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

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only snapshots of this kind of source (files, postgres,
    /// postgres-logical, bucket) or taken for this reason (scheduled,
    /// pre-deploy, manual).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only snapshots taken on this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only snapshots taken at or after this time: a timestamp
    /// ("2026-11-01 03:00:00Z") or an age such as 7d or 12h.
    #[arg(long, value_name = "TIME|AGE")]
    pub since: Option<String>,
    /// Only snapshots taken before this time: a timestamp or an age.
    #[arg(long, value_name = "TIME|AGE")]
    pub until: Option<String>,
    /// Only snapshots with this tag (repeatable: all must match).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Shell completions on standard output.
    #[command(
        after_help = "Examples:\n  lifeboat generate completions bash > /etc/bash_completion.d/lifeboat\n  lifeboat generate completions zsh > \"${fpath[1]}/_lifeboat\"\n  lifeboat generate completions fish > ~/.config/fish/completions/lifeboat.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Manual pages (lifeboat.1 and one per command) into a directory.
    #[command(after_help = "Example:\n  lifeboat generate man --dir /usr/share/man/man1")]
    Man {
        /// Where to write the pages (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    /// Splits a command line as a POSIX shell would for the simple quoting
    /// the examples use.
    fn words(line: &str) -> Vec<String> {
        let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
        for c in line.chars() {
            match (quote, c) {
                (None, '\'' | '"') => {
                    quote = Some(c);
                    any = true;
                }
                (Some(q), c) if c == q => quote = None,
                (None, ' ') => {
                    if any {
                        out.push(std::mem::take(&mut cur));
                        any = false;
                    }
                }
                (_, c) => {
                    cur.push(c);
                    any = true;
                }
            }
        }
        if any {
            out.push(cur);
        }
        out
    }

    fn examples(cmd: &clap::Command, found: &mut Vec<String>) {
        if let Some(text) = cmd.get_after_help() {
            for line in text.to_string().lines() {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("lifeboat ") {
                    // Only the lifeboat part of a pipeline or redirection.
                    let rest = rest.split(" | ").next().unwrap_or(rest);
                    let rest = rest.split(" > ").next().unwrap_or(rest);
                    found.push(format!("lifeboat {rest}"));
                }
            }
        }
        for sub in cmd.get_subcommands() {
            examples(sub, found);
        }
    }

    #[test]
    fn every_example_in_the_help_parses() {
        let mut found = Vec::new();
        examples(&Cli::command(), &mut found);
        assert!(found.len() > 30, "{found:?}");
        for line in found {
            let w = words(&line);
            if let Err(e) = Cli::try_parse_from(&w) {
                panic!("{line}: {e}");
            }
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
