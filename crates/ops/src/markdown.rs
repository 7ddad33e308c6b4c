//! Markdown renderings of reports, for files, tickets and humans.

use crate::drill::DrillReport;
use crate::recover::RecoverReport;
use crate::steps::Step;
use crate::targets::human;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn steps_table(out: &mut String, steps: &[Step]) {
    out.push_str("| step | time | result | detail |\n|---|---|---|---|\n");
    for s in steps {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(&s.name),
            human(s.seconds),
            if s.ok { "ok" } else { "**FAILED**" },
            cell(&s.detail)
        ));
    }
}

/// A drill report as Markdown.
pub fn drill(r: &DrillReport) -> String {
    let mut out = format!(
        "# Restore drill {}\n\n{}\n\n",
        if r.ok { "passed" } else { "FAILED" },
        r.summary()
    );
    out.push_str(&format!(
        "- started: {}\n- backup: {} ({}, taken {})\n- source: {}\n- restored into: {}\n- simulated loss at: {}\n- newest recoverable point: {}\n",
        r.started,
        r.snapshot,
        r.source,
        r.backup_time,
        r.source_name,
        r.restored_into,
        r.target_time,
        r.recoverable_to.map_or("unknown".into(), |t| t.to_string())
    ));
    for (what, m) in [("RTO", r.rto), ("RPO", r.rpo)] {
        out.push_str(&match m {
            Some(m) => format!(
                "- {what}: {} against a target of {} — {}\n",
                human(m.seconds),
                human(m.target_seconds),
                if m.met { "met" } else { "**missed**" }
            ),
            None => format!("- {what}: not measured\n"),
        });
    }
    out.push_str("\n## Steps\n\n");
    steps_table(&mut out, &r.steps);
    if !r.checks.is_empty() {
        out.push_str("\n## Checks\n\n| check | value | result | detail |\n|---|---|---|---|\n");
        for c in &r.checks {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                cell(&c.name),
                cell(c.value.as_deref().unwrap_or("")),
                if c.passed { "pass" } else { "**FAIL**" },
                cell(&c.detail)
            ));
        }
    }
    if !r.tables.is_empty() {
        out.push_str(
            "\n## Tables\n\n| database | table | rows | at backup |\n|---|---|---:|---:|\n",
        );
        for t in &r.tables {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                cell(&t.database),
                cell(&t.table),
                t.found,
                t.expected.map_or("-".into(), |e| e.to_string())
            ));
        }
    }
    if !r.failures.is_empty() {
        out.push_str("\n## Failures\n\n");
        for f in &r.failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    out
}

/// A recovery report as Markdown.
pub fn recover(r: &RecoverReport) -> String {
    let mut out = format!(
        "# Recovery to {}: {}\n\n- started: {}\n- new data directory: {}\n- recovered server: {}\n",
        r.target_time,
        r.outcome,
        r.started,
        r.target_dir.display(),
        r.conninfo.as_deref().unwrap_or("not started")
    );
    out.push_str("\n## Steps\n\n");
    steps_table(&mut out, &r.steps);
    if !r.next.is_empty() {
        out.push_str("\n## Next\n\n");
        for n in &r.next {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out
}
