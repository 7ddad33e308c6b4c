//! The daemon's Prometheus metrics. The daemon sets them as jobs finish and
//! as its cached figures are refreshed; a scrape only encodes them, it never
//! reads the repository.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A gauge holding a float.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// Labels naming a declared source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The source's name.
    pub source: String,
}

/// Labels naming a job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The job's name.
    pub job: String,
}

/// Labels naming a job and how a run ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// The job's name.
    pub job: String,
    /// `success`, `failure`, `skipped`, `interrupted`, `timed-out`.
    pub outcome: String,
}

/// Labels naming a PostgreSQL cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// Its system identifier.
    pub system_id: String,
}

/// Labels naming an alert.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// The alert's key.
    pub alert: String,
}

/// Every metric the daemon exposes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// 1 while scheduling is paused.
    pub paused: Gauge,
    /// Unix time of each source's last successful backup.
    pub last_success: Family<SourceLabels, FloatGauge>,
    /// Seconds since each source's last successful backup.
    pub last_success_age: Family<SourceLabels, FloatGauge>,
    /// 1 for a source no backup of which ever succeeded.
    pub never_succeeded: Family<SourceLabels, Gauge>,
    /// The data a loss now would cost, in seconds: the age of the newest
    /// point a source can be restored to (the end of the WAL archive for
    /// physical backups, the newest backup otherwise).
    pub rpo: Family<SourceLabels, FloatGauge>,
    /// Wall time of each job's last run.
    pub last_duration: Family<JobLabels, FloatGauge>,
    /// Bytes each job's last backup added to the repository.
    pub last_bytes_added: Family<JobLabels, Gauge>,
    /// Runs by job and outcome.
    pub runs: Family<RunLabels, Counter>,
    /// Seconds since each cluster's newest WAL file was archived.
    pub archive_lag: Family<ClusterLabels, FloatGauge>,
    /// Unix time of the start of each cluster's recoverable window.
    pub window_start: Family<ClusterLabels, FloatGauge>,
    /// Unix time of the end of each cluster's recoverable window.
    pub window_end: Family<ClusterLabels, FloatGauge>,
    /// Recovery time measured by each source's last drill.
    pub drill_rto: Family<SourceLabels, FloatGauge>,
    /// 1 when each source's last drill passed.
    pub drill_ok: Family<SourceLabels, Gauge>,
    /// Bytes the repository's packs take.
    pub stored_bytes: Gauge,
    /// Free bytes on a local repository's file system.
    pub free_bytes: Gauge,
    /// 1 for each alert that holds.
    pub alert: Family<AlertLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            paused: Gauge::default(),
            last_success: Family::default(),
            last_success_age: Family::default(),
            never_succeeded: Family::default(),
            rpo: Family::default(),
            last_duration: Family::default(),
            last_bytes_added: Family::default(),
            runs: Family::default(),
            archive_lag: Family::default(),
            window_start: Family::default(),
            window_end: Family::default(),
            drill_rto: Family::default(),
            drill_ok: Family::default(),
            stored_bytes: Gauge::default(),
            free_bytes: Gauge::default(),
            alert: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "lifeboat_paused",
            "1 while the daemon's scheduling is paused",
            m.paused.clone(),
        );
        registry.register(
            "lifeboat_source_last_success_timestamp_seconds",
            "Unix time of the source's last successful backup",
            m.last_success.clone(),
        );
        registry.register(
            "lifeboat_source_last_success_age_seconds",
            "Seconds since the source's last successful backup",
            m.last_success_age.clone(),
        );
        registry.register(
            "lifeboat_source_never_succeeded",
            "1 when no backup of the source ever succeeded",
            m.never_succeeded.clone(),
        );
        registry.register(
            "lifeboat_source_rpo_seconds",
            "Seconds of data a loss now would cost: the age of the newest point the source can be restored to",
            m.rpo.clone(),
        );
        registry.register(
            "lifeboat_job_last_duration_seconds",
            "Wall time of the job's last run",
            m.last_duration.clone(),
        );
        registry.register(
            "lifeboat_job_last_bytes_added",
            "Bytes the job's last backup added to the repository",
            m.last_bytes_added.clone(),
        );
        registry.register(
            "lifeboat_job_runs",
            "Runs of the job by outcome",
            m.runs.clone(),
        );
        registry.register(
            "lifeboat_archive_lag_seconds",
            "Seconds since the cluster's newest WAL file was archived",
            m.archive_lag.clone(),
        );
        registry.register(
            "lifeboat_recoverable_window_start_timestamp_seconds",
            "Unix time of the start of the cluster's recoverable window",
            m.window_start.clone(),
        );
        registry.register(
            "lifeboat_recoverable_window_end_timestamp_seconds",
            "Unix time of the end of the cluster's recoverable window",
            m.window_end.clone(),
        );
        registry.register(
            "lifeboat_drill_rto_seconds",
            "Recovery time measured by the source's last restore drill",
            m.drill_rto.clone(),
        );
        registry.register(
            "lifeboat_drill_success",
            "1 when the source's last restore drill passed",
            m.drill_ok.clone(),
        );
        registry.register(
            "lifeboat_repository_stored_bytes",
            "Bytes the repository's packs take on storage",
            m.stored_bytes.clone(),
        );
        registry.register(
            "lifeboat_repository_free_bytes",
            "Free bytes on a local repository's file system",
            m.free_bytes.clone(),
        );
        registry.register(
            "lifeboat_alert",
            "1 for each alert that holds",
            m.alert.clone(),
        );
        Self { registry, ..m }
    }

    /// The metrics in Prometheus's text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The metrics in Prometheus's classic text format (version 0.0.4),
    /// for clients that do not ask for OpenMetrics: counters are described
    /// under their `_total` name and there is no `# EOF`.
    pub fn encode_text(&self) -> String {
        let open = self.encode();
        let counters: std::collections::HashSet<String> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.strip_suffix(" counter"))
            .map(str::to_string)
            .collect();
        let mut out = String::with_capacity(open.len());
        for line in open.lines() {
            if line == "# EOF" || line.starts_with("# UNIT ") {
                continue;
            }
            let meta = ["# HELP ", "# TYPE "]
                .iter()
                .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
            match meta {
                Some((prefix, rest)) => {
                    let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                    if counters.contains(name) {
                        out.push_str(&format!("{prefix}{name}_total {tail}\n"));
                    } else {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Labels for a source.
    pub fn source(name: &str) -> SourceLabels {
        SourceLabels {
            source: name.to_string(),
        }
    }

    /// Labels for a job.
    pub fn job(name: &str) -> JobLabels {
        JobLabels {
            job: name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_with_their_labels() {
        let m = Metrics::new();
        m.last_success_age
            .get_or_create(&Metrics::source("prod"))
            .set(12.5);
        m.runs
            .get_or_create(&RunLabels {
                job: "backup prod".into(),
                outcome: "success".into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("lifeboat_source_last_success_age_seconds{source=\"prod\"} 12.5"),
            "{text}"
        );
        assert!(
            text.contains("lifeboat_job_runs_total{job=\"backup prod\",outcome=\"success\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        let classic = m.encode_text();
        assert!(
            classic.contains("# HELP lifeboat_job_runs_total Runs"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE lifeboat_job_runs_total counter"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");
    }
}
