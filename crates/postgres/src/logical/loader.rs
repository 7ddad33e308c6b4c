//! Loading a logical backup's table rows through parallel connections
//! (`COPY … FROM STDIN`, biggest table first), and building a big table's
//! own indexes as soon as its rows are in.
//!
//! Waiting for every table before building any index leaves a core idle
//! while the last big table loads alone; `pg_restore --jobs` avoids that by
//! scheduling each index once its table's data is restored, and so does
//! this loader: when a table of at least [`EARLY_BUILD_MIN_BYTES`] is
//! loaded, each of its indexes and index-backed constraints joins the
//! queue as one `pg_restore` run of that entry. Smaller tables' indexes
//! (where starting a `pg_restore` would cost more than it saves) and
//! everything that needs several tables (foreign keys, triggers,
//! policies) stay for the post-data pass that follows.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use lifeboat_repo::Repository;
use lifeboat_repo::progress::{DynProgress, Event};
use tokio_postgres::Client;

use super::load::{Failure, RestoreError, TableCheck, run_pg_restore, write_list};
use super::toc::TocEntry;
use super::tools::Tools;
use super::{OpenedBackup, TableData, part_path};
use crate::error::{PgError, Result};
use crate::sql::{self, PgConfig};

/// A table's stored data from which its indexes are built as soon as it is
/// loaded (below this, a `pg_restore` per index costs more than it saves).
pub const EARLY_BUILD_MIN_BYTES: u64 = 32 << 20;

/// Session settings for loading (mirrors the backup's).
const LOAD_SESSION: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; \
    SET TimeZone = 'UTC'; SET statement_timeout = 0; SET lock_timeout = 0; \
    SET row_security = off; SET synchronous_commit = off";

/// The post-data entries to run as soon as their table is loaded, and how.
#[derive(Clone, Debug)]
pub struct EarlyBuilds {
    /// The `pg_restore` to run them with.
    pub tools: Tools,
    /// The schema dump (`pg_restore`'s archive).
    pub dump: PathBuf,
    /// Flags shared with the post-data pass (`--no-owner`, `--clean`…).
    pub flags: Vec<String>,
    /// By table (`schema.table` as displayed): its index builds. The
    /// caller puts only tables of at least [`EARLY_BUILD_MIN_BYTES`] here.
    pub by_table: HashMap<String, Vec<TocEntry>>,
}

/// What the loaders did: rows per table, and the early builds that failed.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Rows loaded against rows recorded, per table.
    pub tables: Vec<TableCheck>,
    /// Index builds run early that failed (reported like post-data ones).
    pub failures: Vec<Failure>,
    /// Index builds run early (failed or not).
    pub built: u64,
}

/// One table to load: its parts in order, through one connection, so the
/// rows land in the order they were read (and dump identically).
struct LoadJob {
    table: String,
    sql: String,
    parts: Vec<(Vec<lifeboat_format::Id>, String)>,
}

/// One piece of work for a loader.
enum Task {
    /// Load one table's rows.
    Load(LoadJob),
    /// Run one post-data entry of a table that is loaded.
    Build(TocEntry),
}

/// The loaders' shared work: tasks not taken yet, and how many loads are
/// running, whose tables' index builds may still join the queue (a loader
/// that finds the queue empty waits for them rather than leaving).
struct Tasks {
    state: Mutex<TaskState>,
    changed: tokio::sync::Notify,
}

struct TaskState {
    queue: VecDeque<Task>,
    loading: usize,
    stopped: bool,
}

impl Tasks {
    fn new(tasks: impl IntoIterator<Item = Task>) -> Self {
        Self {
            state: Mutex::new(TaskState {
                queue: tasks.into_iter().collect(),
                loading: 0,
                stopped: false,
            }),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The next task, once there is one; `None` when the work is done or
    /// stopped.
    async fn next(&self) -> Option<Task> {
        loop {
            // Registered before looking, so a change made after the look
            // still wakes this loader.
            let changed = self.changed.notified();
            {
                let Ok(mut s) = self.state.lock() else {
                    return None;
                };
                if s.stopped {
                    return None;
                }
                if let Some(t) = s.queue.pop_front() {
                    if matches!(t, Task::Load(_)) {
                        s.loading += 1;
                    }
                    return Some(t);
                }
                if s.loading == 0 {
                    return None;
                }
            }
            changed.await;
        }
    }

    /// A load taken from [`Tasks::next`] finished (or failed: then with no
    /// builds); its table's index builds join the queue.
    fn loaded(&self, builds: Vec<TocEntry>) {
        if let Ok(mut s) = self.state.lock() {
            s.loading = s.loading.saturating_sub(1);
            s.queue.extend(builds.into_iter().map(Task::Build));
        }
        self.changed.notify_waiters();
    }

    /// Stops every loader at its next task (after a failure).
    fn stop(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.stopped = true;
            s.queue.clear();
        }
        self.changed.notify_waiters();
    }
}

/// Loads `tables` through `jobs` connections, biggest first unless
/// `keep_order`; with `builds`, a loaded big table's indexes are built by
/// whichever loader is free next.
#[allow(clippy::too_many_arguments)]
pub async fn load_tables(
    repo: &Repository,
    backup: &OpenedBackup,
    dir: &std::path::Path,
    config: &PgConfig,
    tables: &[&TableData],
    jobs: usize,
    keep_order: bool,
    builds: Option<&EarlyBuilds>,
    progress: &DynProgress,
) -> Result<Loaded> {
    let mut queue = Vec::new();
    for t in tables {
        let sql = format!("COPY {} FROM STDIN", t.copy_target());
        let mut parts = Vec::new();
        for p in &t.parts {
            let path = part_path(dir, &p.file);
            parts.push((
                backup.node(&path)?.content.clone(),
                path.display().to_string(),
            ));
        }
        let size = stored_size(backup, dir, t)?;
        queue.push((
            size,
            LoadJob {
                table: t.name.display(),
                sql,
                parts,
            },
        ));
    }
    if !keep_order {
        queue.sort_by_key(|j| std::cmp::Reverse(j.0));
    }
    progress.event(Event::Total {
        items: queue.len() as u64,
        bytes: queue.iter().map(|(s, _)| s).sum(),
    });
    let builds = builds.map(|b| Arc::new(b.clone()));
    let queue = Arc::new(Tasks::new(queue.into_iter().map(|(_, j)| Task::Load(j))));
    let index = backup.index.clone();
    let mut workers = Vec::new();
    for _ in 0..jobs.max(1) {
        let (repo, config, queue, index, progress, builds) = (
            repo.clone(),
            config.clone(),
            queue.clone(),
            index.clone(),
            progress.clone(),
            builds.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client = sql::connect(&config).await?;
            client
                .batch_execute(LOAD_SESSION)
                .await
                .map_err(PgError::sql("preparing a loading session"))?;
            let mut loaded = Vec::new();
            let mut failures = Vec::new();
            let mut built = 0;
            loop {
                let outcome = match queue.next().await {
                    None => break,
                    Some(Task::Load(job)) => {
                        let rows = load_part(&repo, &index, &client, &job, &progress).await;
                        let ready = match (&rows, &builds) {
                            (Ok(_), Some(b)) => b.by_table.get(&job.table).cloned(),
                            _ => None,
                        };
                        queue.loaded(ready.unwrap_or_default());
                        rows.map(|rows| loaded.push((job.table, rows)))
                    }
                    Some(Task::Build(entry)) => match &builds {
                        Some(b) => build(b, &config, &entry).await.map(|errors| {
                            built += 1;
                            failures.extend(errors.into_iter().map(RestoreError::failure));
                        }),
                        None => Ok(()),
                    },
                };
                if let Err(e) = outcome {
                    queue.stop();
                    return Err(e);
                }
            }
            Ok::<_, PgError>((loaded, failures, built))
        }));
    }
    let mut rows_by_table = HashMap::<String, u64>::new();
    let mut failures = Vec::new();
    let mut built = 0;
    let mut failure = None;
    for w in workers {
        match w.await {
            Ok(Ok((loaded, failed, n))) => {
                built += n;
                for (t, n) in loaded {
                    *rows_by_table.entry(t).or_default() += n;
                }
                failures.extend(failed);
            }
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(PgError::Command(format!("a loading worker failed: {e}")));
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Loaded {
        tables: tables
            .iter()
            .map(|t| {
                let table = t.name.display();
                TableCheck {
                    restored: rows_by_table.get(&table).copied().unwrap_or(0),
                    expected: t.rows,
                    table,
                }
            })
            .collect(),
        failures,
        built,
    })
}

/// The bytes of `t`'s rows as stored in the backup (before compression).
pub fn stored_size(backup: &OpenedBackup, dir: &std::path::Path, t: &TableData) -> Result<u64> {
    let mut size = 0;
    for p in &t.parts {
        size += backup.node(&part_path(dir, &p.file))?.size;
    }
    Ok(size)
}

/// Runs one post-data entry with `pg_restore`; returns the errors it printed.
async fn build(b: &EarlyBuilds, config: &PgConfig, entry: &TocEntry) -> Result<Vec<RestoreError>> {
    let list = write_list(&[entry])?;
    let mut args = vec!["--section=post-data"];
    args.extend(b.flags.iter().map(String::as_str));
    let out = run_pg_restore(&b.tools, Some(config), &args, &b.dump, Some(list.path())).await?;
    Ok(out.errors)
}

/// Streams one stored part into `COPY … FROM STDIN`; returns rows loaded.
async fn load_part(
    repo: &Repository,
    index: &Arc<lifeboat_repo::index::MasterIndex>,
    client: &Client,
    job: &LoadJob,
    progress: &DynProgress,
) -> Result<u64> {
    let sink = client
        .copy_in::<_, Bytes>(job.sql.as_str())
        .await
        .map_err(PgError::sql(format!("starting {}", job.sql)))?;
    futures::pin_mut!(sink);
    let ids = job
        .parts
        .iter()
        .flat_map(|(ids, label)| ids.iter().map(move |id| (*id, label.clone())))
        .collect::<Vec<_>>();
    let mut blobs = futures::stream::iter(ids)
        .map(|(id, label)| {
            let (repo, index) = (repo.clone(), index.clone());
            async move { repo.read_blob(&index, &id, &label).await }
        })
        .buffered(4);
    while let Some(blob) = blobs.next().await {
        let blob = blob?;
        let n = blob.len() as u64;
        sink.send(Bytes::from(blob))
            .await
            .map_err(PgError::sql(format!("loading {}", job.table)))?;
        progress.event(Event::Advance { items: 0, bytes: n });
    }
    let rows = sink
        .finish()
        .await
        .map_err(PgError::sql(format!("loading {}", job.table)))?;
    progress.event(Event::Advance { items: 1, bytes: 0 });
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load(table: &str) -> Task {
        Task::Load(LoadJob {
            table: table.into(),
            sql: String::new(),
            parts: Vec::new(),
        })
    }

    fn entry(tag: &str) -> TocEntry {
        TocEntry {
            line: format!("1; 1259 1 INDEX public {tag} alice"),
            kind: "INDEX".into(),
            schema: "public".into(),
            tag: tag.into(),
            owner: String::new(),
        }
    }

    fn name(t: Option<Task>) -> String {
        match t {
            Some(Task::Load(j)) => format!("load {}", j.table),
            Some(Task::Build(e)) => format!("build {}", e.tag),
            None => "done".into(),
        }
    }

    #[tokio::test]
    async fn a_free_loader_waits_for_the_builds_of_a_table_still_loading() {
        let tasks = Arc::new(Tasks::new([load("big"), load("small")]));
        assert_eq!(name(tasks.next().await), "load big");
        assert_eq!(name(tasks.next().await), "load small");
        tasks.loaded(Vec::new());
        // "big" still loads: the other loader waits instead of leaving.
        let waiting = tokio::spawn({
            let tasks = tasks.clone();
            async move { name(tasks.next().await) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        tasks.loaded(vec![entry("big_pkey"), entry("big_idx")]);
        assert_eq!(waiting.await.ok().as_deref(), Some("build big_pkey"));
        assert_eq!(name(tasks.next().await), "build big_idx");
        // Builds add nothing: the work is done.
        assert_eq!(name(tasks.next().await), "done");
    }

    #[tokio::test]
    async fn a_failure_stops_the_waiting_loaders() {
        let tasks = Arc::new(Tasks::new([load("big"), load("next")]));
        assert_eq!(name(tasks.next().await), "load big");
        let waiting = tokio::spawn({
            let tasks = tasks.clone();
            async move {
                let first = name(tasks.next().await);
                (first, name(tasks.next().await))
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tasks.stop();
        let (first, second) = waiting.await.unwrap_or_default();
        assert_eq!(first, "load next");
        assert_eq!(second, "done", "nothing is handed out after a failure");
    }
}
