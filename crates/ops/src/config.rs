//! The operational part of `lifeboat.toml`: the declared `[[source]]`s,
//! the `[[job]]`s that run on schedules, the daemon's `[serve]` settings and
//! the `[alerts]`. The CLI and the daemon read the same file; every
//! problem is reported with the file's line, so a daemon never starts with
//! half a schedule.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{OpsError, Result};
use crate::schedule::Schedule;

/// What a declared source is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A PostgreSQL cluster on this host: physical base backups and WAL.
    Postgres,
    /// Databases over a SQL connection: logical backups.
    PostgresLogical,
    /// Files and directories.
    Files,
    /// An S3-compatible bucket (or a prefix of one).
    Bucket,
}

impl SourceKind {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Postgres => "postgres",
            SourceKind::PostgresLogical => "postgres-logical",
            SourceKind::Files => "files",
            SourceKind::Bucket => "bucket",
        }
    }
}

/// One connection string or several.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// None given.
    #[default]
    None,
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values, in order.
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A `[[source]]`: something to back up, named.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Its name (`--source NAME`).
    pub name: Spanned<String>,
    /// What it is.
    pub kind: SourceKind,
    /// `postgres`: the data directory.
    pub pgdata: Option<PathBuf>,
    /// `postgres`: the connection; `postgres-logical`: one or more.
    #[serde(default)]
    pub db: OneOrMany,
    /// `postgres-logical`: parallel connections per database.
    pub jobs: Option<usize>,
    /// `postgres-logical`: every database of the server.
    #[serde(default)]
    pub all_databases: bool,
    /// `files`: what to back up.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// `files`: glob patterns left out (a pattern without `/` matches a
    /// name anywhere, one with `/` the whole path).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `bucket`: `s3://BUCKET[/PREFIX]`.
    pub bucket: Option<String>,
    /// `bucket`: the object store's endpoint URL (default: AWS, or
    /// `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// `bucket`: the region (default: `AWS_REGION`, else us-east-1).
    pub region: Option<String>,
    /// `bucket`: path-style requests (default: on with a custom endpoint).
    pub path_style: Option<bool>,
    /// `bucket`: access key id (default: `LIFEBOAT_BUCKET_ACCESS_KEY_ID`,
    /// else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// `bucket`: a file holding the secret access key (default:
    /// `LIFEBOAT_BUCKET_SECRET_ACCESS_KEY`, else `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key_file: Option<PathBuf>,
    /// How old its newest backup may be (default: `[targets] rpo`).
    pub rpo: Option<String>,
    /// A production target: a restore into its data directory, database
    /// or bucket needs other people's approval (`[approvals]`).
    #[serde(default)]
    pub protected: bool,
}

/// `[approvals]`: two-person approval of restores into protected targets.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Distinct approvers a request needs, never its requester (default 1).
    pub required: Option<u32>,
    /// How long a request waits for its approvals (default `24h`).
    pub expire: Option<String>,
}

/// A `[[set]]`: sources backed up back to back by `backup --set NAME`
/// (and a backup job with `set`), their snapshots linked by a shared
/// `set-run:` tag so that they can be restored to the same moment.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// Its name.
    pub name: Spanned<String>,
    /// The sources, in the order they are backed up (the database first,
    /// then its buckets).
    pub sources: Vec<String>,
}

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// Back up a source.
    Backup,
    /// Copy the repository to a replica.
    Copy,
    /// Check the repository (optionally reading data).
    Check,
    /// Apply retention (`forget`), then `prune`.
    Prune,
    /// A restore drill of a source's newest backup.
    Drill,
}

impl JobKind {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Copy => "copy",
            JobKind::Check => "check",
            JobKind::Prune => "prune",
            JobKind::Drill => "drill",
        }
    }
}

/// A `[[job]]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Its name (default: what it does and to which source).
    pub name: Option<String>,
    /// What it does.
    pub run: Spanned<JobKind>,
    /// `backup` and `drill`: the source.
    pub source: Option<Spanned<String>>,
    /// `backup`: a `[[set]]` instead of one source.
    pub set: Option<Spanned<String>>,
    /// A 5-field cron expression.
    pub schedule: Option<Spanned<String>>,
    /// Or an interval (`6h`).
    pub every: Option<Spanned<String>>,
    /// The time zone the cron fields are read in (default UTC).
    pub timezone: Option<Spanned<String>>,
    /// Up to this much later than scheduled, fixed per job.
    pub jitter: Option<Spanned<String>>,
    /// Stopped, and recorded as failed, after running this long.
    pub deadline: Option<Spanned<String>>,
    /// Jobs of one group never run at the same time (default: copy, check
    /// and prune share `repository`; backups and drills have none).
    pub group: Option<String>,
    /// `backup`: the kind recorded (default `scheduled`).
    pub kind: Option<String>,
    /// `copy`: the replica.
    pub to: Option<String>,
    /// `copy`: the replica's passphrase file.
    pub to_password_file: Option<PathBuf>,
    /// `check`: read every byte (or `subset` of it).
    #[serde(default)]
    pub read_data: bool,
    /// `check`: the share of packs to read, e.g. `10%`.
    pub subset: Option<String>,
    /// Extra arguments for the command.
    #[serde(default)]
    pub args: Vec<String>,
}

/// `[serve]`: the daemon.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address of metrics and health (default `127.0.0.1:9187`).
    pub listen: Option<String>,
    /// Where the daemon keeps its state (default `/var/lib/lifeboat` when
    /// run as root, else `$XDG_STATE_HOME/lifeboat`).
    pub state_dir: Option<PathBuf>,
    /// How long SIGTERM waits for running jobs (default `5min`).
    pub stop_timeout: Option<String>,
    /// How often the archive and repository figures are refreshed (default `1min`).
    pub refresh: Option<String>,
}

/// `[alerts]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// How often an alert that still holds is sent again (default `4h`).
    pub repeat: Option<String>,
    /// A backup this many times larger or smaller than the median of its
    /// last runs is an anomaly (default 3).
    pub size_factor: Option<f64>,
    /// WAL not archived for longer than this (default `15min`).
    pub archive_lag: Option<String>,
    /// A local repository's file system fuller than this (default `90%`).
    pub disk_full: Option<String>,
    /// The repository may hold at most this much (e.g. `500G`).
    pub quota: Option<String>,
    /// Called (GET) after every cycle in which nothing alerts: a dead-man's
    /// switch that notices a dead daemon.
    pub heartbeat_url: Option<String>,
    /// Where alerts go.
    #[serde(default)]
    pub route: Vec<RouteConfig>,
}

/// One `[[alerts.route]]`: a webhook, e-mail, or a command.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// POST the alert here.
    pub webhook: Option<String>,
    /// `json` (default) or `slack` (a Slack-compatible `text` body).
    pub format: Option<String>,
    /// Mail the alert to these addresses.
    #[serde(default)]
    pub email: OneOrMany,
    /// The mail server: `smtp://host:port` (plain, or STARTTLS when the
    /// server offers it) or `smtps://host:port`.
    pub smtp: Option<String>,
    /// The sender address.
    pub from: Option<String>,
    /// SMTP user name.
    pub smtp_user: Option<String>,
    /// File holding the SMTP password.
    pub smtp_password_file: Option<PathBuf>,
    /// Run this (`sh -c`) with the alert in LIFEBOAT_ALERT_* variables and
    /// as JSON on standard input.
    pub command: Option<String>,
}

/// A job ready to schedule.
#[derive(Clone, Debug)]
pub struct Job {
    /// Its name.
    pub name: String,
    /// What it does.
    pub kind: JobKind,
    /// The source it concerns.
    pub source: Option<String>,
    /// When it runs.
    pub schedule: Schedule,
    /// When it is stopped.
    pub deadline: Option<Duration>,
    /// Its mutual-exclusion group.
    pub group: Option<String>,
    /// The `lifeboat` invocations it runs, in order (global options first).
    pub steps: Vec<Vec<String>>,
}

/// Where in the file a value is, for messages: `line N`.
fn line_of(text: &str, span: std::ops::Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

/// Reads `[[job]]`s against the declared sources. `text` is the file's
/// content and `file` its name, for messages that say where.
pub fn jobs(
    file: &str,
    text: &str,
    sources: &[SourceConfig],
    sets: &[SetConfig],
    configs: &[JobConfig],
) -> Result<Vec<Job>> {
    let at = |span: std::ops::Range<usize>, why: String| {
        OpsError::Invalid(format!("{file}, line {}: {why}", line_of(text, span)))
    };
    let mut seen_sources = std::collections::BTreeSet::new();
    for s in sources {
        if !seen_sources.insert(s.name.get_ref().clone()) {
            return Err(at(
                s.name.span(),
                format!("[[source]] name {:?} is used twice", s.name.get_ref()),
            ));
        }
        let missing = match s.kind {
            SourceKind::Postgres if s.pgdata.is_none() => Some("pgdata"),
            SourceKind::PostgresLogical if s.db.values().is_empty() => Some("db"),
            SourceKind::Files if s.paths.is_empty() => Some("paths"),
            SourceKind::Bucket if s.bucket.is_none() => Some("bucket"),
            _ => None,
        };
        if let Some(key) = missing {
            return Err(at(
                s.name.span(),
                format!(
                    "[[source]] {:?} of kind {} needs `{key}`",
                    s.name.get_ref(),
                    s.kind.as_str()
                ),
            ));
        }
    }
    let mut seen_sets = std::collections::BTreeSet::new();
    for set in sets {
        if !seen_sets.insert(set.name.get_ref().clone()) {
            return Err(at(
                set.name.span(),
                format!("[[set]] name {:?} is used twice", set.name.get_ref()),
            ));
        }
        if set.sources.is_empty() {
            return Err(at(
                set.name.span(),
                format!("[[set]] {:?} lists no `sources`", set.name.get_ref()),
            ));
        }
        if let Some(unknown) = set
            .sources
            .iter()
            .find(|n| !sources.iter().any(|d| d.name.get_ref() == *n))
        {
            return Err(at(
                set.name.span(),
                format!(
                    "[[set]] {:?} lists {unknown:?}, which no [[source]] declares",
                    set.name.get_ref()
                ),
            ));
        }
    }
    let mut out: Vec<Job> = Vec::new();
    for c in configs {
        let kind = *c.run.get_ref();
        let set = match &c.set {
            Some(n) if kind != JobKind::Backup => {
                return Err(at(n.span(), "only a backup [[job]] takes `set`".into()));
            }
            Some(n) if c.source.is_some() => {
                return Err(at(
                    n.span(),
                    "a [[job]] takes `source` or `set`, not both".into(),
                ));
            }
            Some(n) if !sets.iter().any(|s| s.name.get_ref() == n.get_ref()) => {
                return Err(at(
                    n.span(),
                    format!(
                        "[[job]] names set {:?}, which no [[set]] declares",
                        n.get_ref()
                    ),
                ));
            }
            Some(n) => Some(n.get_ref().clone()),
            None => None,
        };
        let source = match (&c.source, kind) {
            (Some(s), _) => {
                if !sources.iter().any(|d| d.name.get_ref() == s.get_ref()) {
                    let known: Vec<&str> =
                        sources.iter().map(|d| d.name.get_ref().as_str()).collect();
                    return Err(at(
                        s.span(),
                        format!(
                            "[[job]] names source {:?}, which no [[source]] declares (declared: {})",
                            s.get_ref(),
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
                Some(s.get_ref().clone())
            }
            (None, JobKind::Backup) if set.is_some() => None,
            (None, JobKind::Backup | JobKind::Drill) => {
                return Err(at(
                    c.run.span(),
                    format!("a {} [[job]] needs `source`", kind.as_str()),
                ));
            }
            (None, _) => None,
        };
        let tz = c
            .timezone
            .as_ref()
            .map(|t| t.get_ref().as_str())
            .unwrap_or("UTC");
        let mut schedule = match (&c.schedule, &c.every) {
            (Some(s), None) => Schedule::cron(s.get_ref(), tz).map_err(|e| {
                // A bad time zone is the `timezone` line's mistake.
                let span = match &c.timezone {
                    Some(t) if Schedule::cron("0 0 * * *", t.get_ref()).is_err() => t.span(),
                    _ => s.span(),
                };
                at(span, e.to_string())
            })?,
            (None, Some(e)) => Schedule::every(
                crate::duration::parse("every", e.get_ref())
                    .map_err(|err| at(e.span(), err.to_string()))?,
            ),
            (Some(s), Some(_)) => {
                return Err(at(
                    s.span(),
                    "a [[job]] has `schedule` or `every`, not both".into(),
                ));
            }
            (None, None) => {
                return Err(at(
                    c.run.span(),
                    "a [[job]] needs `schedule` (5-field cron) or `every` (an interval)".into(),
                ));
            }
        };
        if let (Some(t), Some(_)) = (&c.timezone, &c.every) {
            return Err(at(
                t.span(),
                "`timezone` applies to `schedule`, not to `every`".into(),
            ));
        }
        let name = c.name.clone().unwrap_or_else(|| match (&source, &set) {
            (Some(s), _) => format!("{} {s}", kind.as_str()),
            (None, Some(s)) => format!("{} set {s}", kind.as_str()),
            (None, None) => kind.as_str().to_string(),
        });
        if out.iter().any(|j| j.name == name) {
            return Err(at(
                c.run.span(),
                format!("two [[job]]s are called {name:?}; give one a `name`"),
            ));
        }
        if let Some(j) = &c.jitter {
            let d = crate::duration::parse("jitter", j.get_ref())
                .map_err(|e| at(j.span(), e.to_string()))?;
            schedule = schedule.with_jitter(d, &name);
        }
        let deadline = match &c.deadline {
            Some(d) => Some(
                crate::duration::parse("deadline", d.get_ref())
                    .map_err(|e| at(d.span(), e.to_string()))?,
            ),
            None => None,
        };
        let mut steps: Vec<Vec<String>> = Vec::new();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        match kind {
            JobKind::Backup if set.is_some() => {
                let mut step = s(&[
                    "--json",
                    "backup",
                    "--set",
                    set.as_deref().unwrap_or_default(),
                ]);
                step.extend(s(&["--kind", c.kind.as_deref().unwrap_or("scheduled")]));
                steps.push(step);
            }
            JobKind::Backup => {
                let mut step = s(&[
                    "--source",
                    source.as_deref().unwrap_or_default(),
                    "--json",
                    "backup",
                ]);
                step.extend(s(&["--kind", c.kind.as_deref().unwrap_or("scheduled")]));
                steps.push(step);
            }
            JobKind::Drill => {
                steps.push(s(&[
                    "--source",
                    source.as_deref().unwrap_or_default(),
                    "--json",
                    "drill",
                    "latest",
                ]));
            }
            JobKind::Copy => {
                let Some(to) = &c.to else {
                    return Err(at(
                        c.run.span(),
                        "a copy [[job]] needs `to`, the replica".into(),
                    ));
                };
                let mut step = s(&["--json", "copy", "--to", to]);
                if let Some(f) = &c.to_password_file {
                    step.push("--to-password-file".into());
                    step.push(f.display().to_string());
                }
                steps.push(step);
            }
            JobKind::Check => {
                let mut step = s(&["--json", "check"]);
                if c.read_data || c.subset.is_some() {
                    step.push("--read-data".into());
                }
                if let Some(p) = &c.subset {
                    step.push("--subset".into());
                    step.push(p.clone());
                }
                steps.push(step);
            }
            JobKind::Prune => {
                steps.push(s(&["--json", "forget"]));
                steps.push(s(&["--json", "prune"]));
            }
        }
        if let Some(last) = steps.last_mut() {
            last.extend(c.args.iter().cloned());
        }
        let group = c.group.clone().or_else(|| {
            matches!(kind, JobKind::Copy | JobKind::Check | JobKind::Prune)
                .then(|| "repository".to_string())
        });
        out.push(Job {
            name,
            kind,
            source,
            schedule,
            deadline,
            group,
            steps,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        source: Vec<SourceConfig>,
        #[serde(default)]
        set: Vec<SetConfig>,
        #[serde(default)]
        job: Vec<JobConfig>,
    }

    fn read(text: &str) -> Result<Vec<Job>> {
        let f: File = toml::from_str(text).map_err(|e| OpsError::Invalid(e.to_string()))?;
        jobs("lifeboat.toml", text, &f.source, &f.set, &f.job)
    }

    const GOOD: &str = r#"
[[source]]
name = "prod"
kind = "postgres"
pgdata = "/var/lib/postgresql/15/main"

[[job]]
run = "backup"
source = "prod"
schedule = "0 2 * * *"

[[job]]
name = "incremental"
run = "backup"
source = "prod"
every = "6h"
jitter = "5min"
deadline = "2h"

[[job]]
run = "prune"
schedule = "30 3 * * *"
timezone = "Europe/Berlin"
"#;

    #[test]
    fn jobs_become_commands_with_their_schedules_and_groups() {
        let jobs = read(GOOD).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs[0].name, "backup prod");
        assert_eq!(
            jobs[0].steps[0][..4],
            ["--source", "prod", "--json", "backup"]
        );
        assert_eq!(jobs[0].group, None);
        assert_eq!(jobs[1].deadline, Some(Duration::from_secs(7200)));
        assert!(jobs[1].schedule.jitter < Duration::from_secs(300));
        assert_eq!(jobs[2].steps.len(), 2, "forget, then prune");
        assert_eq!(jobs[2].group.as_deref(), Some("repository"));
        assert!(jobs[2].schedule.describe().contains("Europe/Berlin"));
    }

    #[test]
    fn a_set_backs_up_its_sources_together_and_is_checked() {
        let text = format!(
            "{GOOD}\n[[source]]\nname = \"media\"\nkind = \"bucket\"\nbucket = \"s3://media\"\n\n\
             [[set]]\nname = \"app\"\nsources = [\"prod\", \"media\"]\n\n\
             [[job]]\nrun = \"backup\"\nset = \"app\"\nevery = \"1h\"\n"
        );
        let jobs = read(&text).unwrap_or_else(|e| panic!("{e}"));
        let set = jobs.iter().find(|j| j.name == "backup set app");
        assert_eq!(
            set.map(|j| j.steps[0].clone()),
            Some(
                ["--json", "backup", "--set", "app", "--kind", "scheduled"]
                    .map(String::from)
                    .to_vec()
            )
        );
        let err = |t: String| read(&t).err().map(|e| e.to_string()).unwrap_or_default();
        let e = err(text.replace("[\"prod\", \"media\"]", "[\"prod\", \"nope\"]"));
        assert!(e.contains("\"nope\", which no [[source]] declares"), "{e}");
        let e = err(text.replace("set = \"app\"", "set = \"other\""));
        assert!(e.contains("no [[set]] declares"), "{e}");
        let e = err(text.replace("set = \"app\"", "set = \"app\"\nsource = \"prod\""));
        assert!(e.contains("`source` or `set`, not both"), "{e}");
    }

    #[test]
    fn mistakes_name_the_line_and_what_is_wrong() {
        let err = |text: &str| read(text).err().map(|e| e.to_string()).unwrap_or_default();
        let bad_cron = GOOD.replace("0 2 * * *", "0 25 * * *");
        let e = err(&bad_cron);
        assert!(
            e.contains("line 10") && e.contains("not a cron expression"),
            "{e}"
        );
        let unknown = GOOD.replace("source = \"prod\"\nschedule", "source = \"nope\"\nschedule");
        let e = err(&unknown);
        assert!(
            e.contains("line 9") && e.contains("\"nope\"") && e.contains("declared: prod"),
            "{e}"
        );
        let e = err(&format!(
            "{GOOD}\n[[job]]\nrun = \"backup\"\nsource = \"prod\"\nschedule = \"0 2 * * *\"\n"
        ));
        assert!(e.contains("called \"backup prod\""), "{e}");
        let e = err(&GOOD.replace("every = \"6h\"", "every = \"often\""));
        assert!(e.contains("line 16") && e.contains("not a duration"), "{e}");
        let e = err(&GOOD.replace("pgdata = \"/var/lib/postgresql/15/main\"\n", ""));
        assert!(e.contains("needs `pgdata`"), "{e}");
        let e = err("[[job]]\nrun = \"check\"\n");
        assert!(e.contains("line 2") && e.contains("`schedule`"), "{e}");
        let e = err("[[job]]\nrun = \"vacuum\"\nevery = \"1h\"\n");
        assert!(e.contains("unknown variant"), "{e}");
    }
}
