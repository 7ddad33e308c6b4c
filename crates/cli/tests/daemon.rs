//! The daemon (`lifeboat serve`) against real components: throwaway
//! PostgreSQL clusters, the S3 test server, an HTTP receiver and an SMTP
//! server for alerts, and a real Prometheus. Schedules are second-scale.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::{Cluster, clean_restore_args, free_port};
use common::{Env, audited};

/// A running `lifeboat serve`.
struct Daemon {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Daemon {
    fn start(env: &Env, config: &Path, state: &Path) -> Self {
        let port = free_port();
        let log = state.with_extension("log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = env
            .cmd()
            .args(["--config", config.to_str().unwrap(), "serve"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--state-dir", state.to_str().unwrap()])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let d = Self {
            child: Some(child),
            port,
            log,
        };
        d.wait("the daemon to answer", || {
            http(d.port, "GET", "/healthz").is_some_and(|b| b.starts_with("ok"))
        });
        d
    }

    fn wait(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "waited 90 s for {what}; the daemon's log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        let child = self.child.as_mut().unwrap();
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        self.child = None;
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A plain HTTP request to 127.0.0.1:`port`; the body, if it answered.
fn http(port: u16, method: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some(body.to_string())
}

fn runs(env: &Env, config: &Path) -> Vec<serde_json::Value> {
    let out = env.ok(&["--config", config.to_str().unwrap(), "--json", "runs"]);
    out.json().as_array().unwrap().clone()
}

fn count(runs: &[serde_json::Value], outcome: &str) -> usize {
    runs.iter().filter(|r| r["outcome"] == outcome).count()
}

/// Holds an ACCESS EXCLUSIVE lock on a table until dropped, so a logical
/// backup of the database waits: a job that outlasts its schedule.
struct TableLock(Child);

impl TableLock {
    fn take(c: &Cluster, db: &str, table: &str) -> Self {
        let mut lock = Self(
            c.client("psql")
                .args(["-X", "-q", "-d", db])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let stdin = lock.0.stdin.as_mut().unwrap();
        writeln!(stdin, "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;").unwrap();
        stdin.flush().unwrap();
        // Wait until the lock is held.
        for _ in 0..100 {
            let held = c.psql_db(
                db,
                &format!("SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass AND mode = 'AccessExclusiveLock' AND granted"),
            );
            if held == "1" {
                return lock;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the lock on {table} was never held");
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.0.stdin.take() {
            let _ = writeln!(stdin, "COMMIT;");
        }
        let _ = self.0.wait();
    }
}

/// A cluster with a database `app` to back up logically.
fn app_cluster(env: &Env) -> Cluster {
    let c = Cluster::new(env, "src");
    c.psql("CREATE DATABASE app");
    c.psql_db(
        "app",
        "CREATE TABLE t AS SELECT generate_series(1, 1000) AS v",
    );
    c
}

fn config(env: &Env, c: &Cluster, jobs: &str, extra: &str) -> PathBuf {
    let path = env.path().join("lifeboat.toml");
    std::fs::write(
        &path,
        format!(
            "[[source]]\nname = \"app\"\nkind = \"postgres-logical\"\ndb = \"{}\"\n\n{jobs}\n{extra}",
            c.conninfo_db("app")
        ),
    )
    .unwrap();
    path
}

#[test]
fn backups_run_on_time_and_a_run_that_outlasts_its_interval_is_skipped_not_doubled() {
    let env = Env::s3("daemon-schedule");
    env.init();
    let c = app_cluster(&env);
    let cfg = config(
        &env,
        &c,
        "[[job]]\nrun = \"backup\"\nsource = \"app\"\nevery = \"2s\"\n",
        "",
    );
    let state = env.path().join("state");
    let d = Daemon::start(&env, &cfg, &state);
    d.wait("two scheduled backups", || {
        count(&runs(&env, &cfg), "success") >= 2
    });

    // The next backup waits for a lock: fires meanwhile are skipped.
    let lock = TableLock::take(&c, "app", "t");
    d.wait("a skipped fire", || {
        count(&runs(&env, &cfg), "skipped") >= 2
    });
    drop(lock);
    let before = count(&runs(&env, &cfg), "success");
    d.wait("the held backup to finish", || {
        count(&runs(&env, &cfg), "success") > before
    });

    let all = runs(&env, &cfg);
    let ran: Vec<&serde_json::Value> = all.iter().filter(|r| r["outcome"] != "skipped").collect();
    for pair in ran.windows(2) {
        assert!(
            pair[1]["started"].as_str() >= pair[0]["ended"].as_str(),
            "two runs of one job overlapped: {pair:?}"
        );
    }
    let time = |r: &serde_json::Value, k: &str| {
        chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap()).unwrap()
    };
    for r in &ran {
        assert_eq!(r["outcome"], "success", "{r}");
        // On time: each started at its fire, give or take the tick.
        let late = time(r, "started") - time(r, "scheduled");
        assert!(
            late >= chrono::Duration::zero() && late < chrono::Duration::seconds(2),
            "not started on time: {r}"
        );
    }
    // The snapshots carry their source.
    let snaps = env
        .ok(&[
            "--config",
            cfg.to_str().unwrap(),
            "--source",
            "app",
            "--json",
            "snapshots",
        ])
        .json();
    assert_eq!(snaps.as_array().unwrap().len(), count(&all, "success"));
    // The metrics say how old the newest backup is.
    let metrics = http(d.port, "GET", "/metrics").unwrap();
    assert!(
        metrics.contains("lifeboat_source_last_success_age_seconds{source=\"app\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lifeboat_job_runs_total{job=\"backup app\",outcome=\"skipped\"}"),
        "{metrics}"
    );
}

#[test]
fn kill_9_gives_one_catch_up_and_sigterm_records_an_interruption() {
    let env = Env::fs();
    env.init();
    let c = app_cluster(&env);
    let cfg = config(
        &env,
        &c,
        "[[job]]\nrun = \"backup\"\nsource = \"app\"\nevery = \"1h\"\n",
        "[serve]\nstop_timeout = \"1s\"\n",
    );
    let state = env.path().join("state");

    // A run, held by a lock, when the daemon is killed.
    let lock = TableLock::take(&c, "app", "t");
    let mut d = Daemon::start(&env, &cfg, &state);
    let answer = http(d.port, "POST", "/api/jobs/backup%20app/run");
    assert!(
        answer.as_deref().is_some_and(|a| a.contains("queued")),
        "{answer:?}"
    );
    d.wait("the run to start", || {
        http(d.port, "GET", "/api/status").is_some_and(|s| s.contains("\"running_since\":\"2"))
    });
    // Its process reports how far it has got, and the API shows it.
    d.wait("the running job's progress", || {
        http(d.port, "GET", "/api/status").is_some_and(|s| {
            serde_json::from_str::<serde_json::Value>(&s).is_ok_and(|v| {
                v["jobs"].as_array().into_iter().flatten().any(|j| {
                    j["progress"]["phase"]
                        .as_str()
                        .is_some_and(|p| !p.is_empty())
                })
            })
        })
    });
    d.signal("-KILL");
    drop(lock);
    // The job died with the daemon.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let out = Command::new("pgrep")
            .args(["-f", &format!("{}.*backup --kind scheduled", cfg.display())])
            .output()
            .unwrap();
        if out.stdout.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let snapshots_before = env
        .ok(&["--json", "snapshots"])
        .json()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(snapshots_before, 0);

    let d = Daemon::start(&env, &cfg, &state);
    d.wait("the catch-up run", || {
        count(&runs(&env, &cfg), "success") == 1
    });
    std::thread::sleep(Duration::from_secs(3));
    let all = runs(&env, &cfg);
    assert_eq!(count(&all, "interrupted"), 1, "{all:#?}");
    assert_eq!(count(&all, "success"), 1, "exactly one catch-up: {all:#?}");
    assert!(
        all.iter()
            .any(|r| r["outcome"] == "success" && r["catch_up"] == true),
        "{all:#?}"
    );
    drop(d);

    // SIGTERM while a run is held: it is stopped after stop_timeout and
    // recorded as interrupted; no snapshot is half-written.
    let lock = TableLock::take(&c, "app", "t");
    let mut d = Daemon::start(&env, &cfg, &state);
    http(d.port, "POST", "/api/jobs/backup%20app/run").unwrap();
    d.wait("the run to start", || {
        http(d.port, "GET", "/api/status").is_some_and(|s| s.contains("\"running_since\":\"2"))
    });
    let status = d.signal("-TERM");
    assert!(status.success(), "{status}");
    drop(lock);
    let all = runs(&env, &cfg);
    assert_eq!(count(&all, "interrupted"), 2, "{all:#?}");
    assert_eq!(
        env.ok(&["--json", "snapshots"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let check = env.ok(&["check"]);
    assert!(check.stdout.contains("0 errors"), "{}", check.stdout);
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(log.contains("stopping: waiting up to 1s"), "{log}");
}

/// Collects the bodies POSTed to it.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let store = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then as much body as it announces.
                loop {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            let line = head.lines().next().unwrap_or_default();
                            store.lock().unwrap().push(format!("{line}\n{body}"));
                            break;
                        }
                    }
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { port, bodies }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter_map(|b| serde_json::from_str(b.split_once('\n')?.1).ok())
            .collect()
    }

    /// The request lines received ("GET /beat HTTP/1.1").
    fn requests(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.lines().next().unwrap_or_default().to_string())
            .collect()
    }
}

#[test]
fn a_failing_job_alerts_once_by_webhook_and_mail_and_then_resolves() {
    let env = Env::fs();
    env.init();
    let c = app_cluster(&env);
    let hook = Receiver::start();
    let smtp_port = free_port();
    let maildir = env.path().join("mail");
    let python = std::env::var("LIFEBOAT_TEST_PYTHON").expect(
        "LIFEBOAT_TEST_PYTHON is not set: run the suite with scripts/test.sh, which installs aiosmtpd",
    );
    let mut smtp = Command::new(&python)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{smtp_port}"),
        ])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", smtp_port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cfg = config(
        &env,
        &c,
        "[[job]]\nrun = \"backup\"\nsource = \"app\"\nevery = \"2s\"\n",
        &format!(
            // disk_full 100%: the test machine's own disk must not raise an
            // alert of its own, which would hold back the heartbeat.
            "[serve]\nrefresh = \"1s\"\n[alerts]\nrepeat = \"1h\"\ndisk_full = \"100%\"\nheartbeat_url = \"http://127.0.0.1:{hook}/beat\"\n[[alerts.route]]\nwebhook = \"http://127.0.0.1:{hook}/hook\"\n\
             [[alerts.route]]\nemail = \"ops@example.com\"\nsmtp = \"smtp://127.0.0.1:{smtp_port}\"\nfrom = \"lifeboat@example.com\"\n",
            hook = hook.port
        ),
    );
    // `alert test` reaches both routes.
    let out = env.ok(&["--config", cfg.to_str().unwrap(), "alert", "test"]);
    assert_eq!(out.stdout.matches("sent:").count(), 2, "{}", out.stdout);

    c.stop();
    let state = env.path().join("state");
    let d = Daemon::start(&env, &cfg, &state);
    d.wait("three failed backups", || {
        count(&runs(&env, &cfg), "failure") >= 3
    });
    let firing: Vec<serde_json::Value> = hook
        .bodies()
        .into_iter()
        .filter(|b| b["key"] == "job-failed:backup app" && b["status"] == "firing")
        .collect();
    assert_eq!(
        firing.len(),
        1,
        "sent once, not per failure: {:#?}",
        hook.bodies()
    );
    assert!(
        firing[0]["detail"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{:#?}",
        firing[0]
    );
    // No heartbeat while an alert holds: the dead-man's switch goes off.
    let beats = |r: &Receiver| {
        r.requests()
            .iter()
            .filter(|l| l.starts_with("GET /beat"))
            .count()
    };
    let during = beats(&hook);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(beats(&hook), during, "{:?}", hook.requests());
    c.start();
    d.wait("the resolution", || {
        hook.bodies()
            .iter()
            .any(|b| b["key"] == "job-failed:backup app" && b["status"] == "resolved")
    });
    // The mail server got the alert too.
    d.wait("the mail", || {
        std::fs::read_dir(maildir.join("new")).is_ok_and(|d| {
            d.flatten().any(|m| {
                std::fs::read_to_string(m.path()).is_ok_and(|t| t.contains("backup app failed"))
            })
        })
    });
    // Healthy again: the heartbeat is called.
    d.wait("a heartbeat", || beats(&hook) > during);
    let _ = smtp.kill();
    let _ = smtp.wait();
}

#[test]
fn prometheus_scrapes_the_daemon_and_answers_the_backup_age() {
    let env = Env::fs();
    env.init();
    let files = env.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("app.env"), "SECRET=1\n").unwrap();
    let cfg = env.path().join("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\nname = \"app\"\nkind = \"files\"\npaths = [\"{}\"]\n\n[[job]]\nrun = \"backup\"\nsource = \"app\"\nevery = \"2s\"\n",
            files.display()
        ),
    )
    .unwrap();
    let state = env.path().join("state");
    let d = Daemon::start(&env, &cfg, &state);
    d.wait("a backup", || count(&runs(&env, &cfg), "success") >= 1);

    // promtool accepts what the daemon exposes.
    let text = http(d.port, "GET", "/metrics").unwrap();
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A real Prometheus scrapes it and answers a PromQL query.
    let prom_port = free_port();
    let prom_dir = env.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lifeboat\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            d.port
        ),
    )
    .unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            prom_dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            prom_dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let query =
        "/api/v1/query?query=lifeboat_source_last_success_age_seconds%7Bsource%3D%22app%22%7D";
    let mut answer = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(body) = http(prom_port, "GET", query)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
            && v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        {
            answer = v;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = prom.kill();
    let _ = prom.wait();
    let age: f64 = answer["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or_else(|| panic!("Prometheus never answered: {answer}"))
        .parse()
        .unwrap();
    assert!((0.0..60.0).contains(&age), "{answer}");
}

#[test]
fn a_bad_settings_file_stops_the_daemon_before_it_starts_naming_file_line_and_key() {
    let env = Env::fs();
    env.init();
    let cfg = env.path().join("lifeboat.toml");
    let good = "[[source]]\nname = \"etc\"\nkind = \"files\"\npaths = [\"/etc/hostname\"]\n\n[[job]]\nrun = \"backup\"\nsource = \"etc\"\nschedule = \"0 2 * * *\"\ntimezone = \"Europe/Berlin\"\n";
    let serve = |text: &str| {
        std::fs::write(&cfg, text).unwrap();
        env.run(&[
            "--config",
            cfg.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:1",
        ])
    };
    for (text, expect) in [
        (
            format!("{good}colour = \"blue\"\n"),
            vec!["line 11", "unknown field `colour`"],
        ),
        (
            good.replace("0 2 * * *", "0 2 * *"),
            vec!["line 9", "has 4 fields"],
        ),
        (
            good.replace("source = \"etc\"\nschedule", "source = \"nope\"\nschedule"),
            vec!["line 8", "\"nope\""],
        ),
        (
            good.replace("Europe/Berlin", "Europe/Atlantis"),
            vec!["line 10", "not a time zone"],
        ),
    ] {
        let out = serve(&text);
        assert_eq!(out.code, 2, "{text}\n{}", out.stderr);
        assert!(out.stderr.contains(cfg.to_str().unwrap()), "{}", out.stderr);
        for e in expect {
            assert!(out.stderr.contains(e), "{e}: {}", out.stderr);
        }
    }
    let out = env.run(&["--config", "/no/such/lifeboat.toml", "serve"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("/no/such/lifeboat.toml"),
        "{}",
        out.stderr
    );
    // An unknown --source is bad usage for any verb.
    std::fs::write(&cfg, good).unwrap();
    let out = env.run(&[
        "--config",
        cfg.to_str().unwrap(),
        "--source",
        "nope",
        "backup",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("declared: etc"), "{}", out.stderr);
    // The example that ships is valid and holds the runbook's schedule.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/lifeboat.example.toml");
    let out = env.ok(&["--config", example.to_str().unwrap(), "--json", "schedule"]);
    let jobs: Vec<String> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        jobs,
        [
            "backup main",
            "backup supabase",
            "backup config",
            "backup media",
            "copy",
            "check",
            "drill supabase",
            "prune"
        ],
    );
    // The schedule shows the time zone and the next runs, in UTC.
    let out = env.ok(&["--config", cfg.to_str().unwrap(), "schedule"]);
    assert!(
        out.stdout.contains("(Europe/Berlin)") && out.stdout.contains(" 01:00:00 UTC"),
        "{}",
        out.stdout
    );
}

/// The runs of `job` that started (not skipped).
fn started<'a>(all: &'a [serde_json::Value], job: &str) -> Vec<&'a serde_json::Value> {
    all.iter()
        .filter(|r| r["job"] == job && r["outcome"] != "skipped")
        .collect()
}

#[test]
fn deadlines_stop_a_job_groups_take_turns_and_resuming_fires_nothing_missed() {
    let env = Env::fs();
    env.init();
    let c = app_cluster(&env);
    let files = env.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("app.env"), "SECRET=1\n").unwrap();
    let cfg = config(
        &env,
        &c,
        "[[job]]\nrun = \"backup\"\nsource = \"app\"\nevery = \"2s\"\ndeadline = \"3s\"\ngroup = \"nightly\"\n\n\
         [[job]]\nrun = \"backup\"\nsource = \"files\"\nevery = \"2s\"\ngroup = \"nightly\"\n",
        &format!(
            "[[source]]\nname = \"files\"\nkind = \"files\"\npaths = [\"{}\"]\n",
            files.display()
        ),
    );
    let state = env.path().join("state");

    // A backup held by a lock outlasts its deadline: stopped, recorded.
    let lock = TableLock::take(&c, "app", "t");
    let d = Daemon::start(&env, &cfg, &state);
    d.wait("a run stopped at its deadline", || {
        count(&runs(&env, &cfg), "timed-out") >= 1
    });
    d.wait("a backup of the other job of the group", || {
        started(&runs(&env, &cfg), "backup files")
            .iter()
            .any(|r| r["outcome"] == "success")
    });
    // `status` says the scheduled backup failed, not merely that it is old.
    let out = env.run(&[
        "--config",
        cfg.to_str().unwrap(),
        "--source",
        "app",
        "status",
    ]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("scheduled job backup app: the last run")
            && out.stdout.contains("was stopped at its deadline"),
        "{}",
        out.stdout
    );
    drop(lock);
    d.wait("a backup of app", || {
        started(&runs(&env, &cfg), "backup app")
            .iter()
            .any(|r| r["outcome"] == "success")
    });

    // Pausing skips fires; resuming runs nothing that was missed.
    assert!(
        http(d.port, "POST", "/api/pause")
            .unwrap()
            .contains("pausing")
    );
    let paused = chrono::Utc::now();
    std::thread::sleep(Duration::from_secs(5));
    let resumed = chrono::Utc::now();
    assert!(
        http(d.port, "POST", "/api/resume")
            .unwrap()
            .contains("resuming")
    );
    d.wait("a run after resuming", || {
        runs(&env, &cfg).iter().any(|r| {
            r["outcome"] == "success"
                && r["started"].as_str().unwrap() > resumed.to_rfc3339().as_str()
        })
    });
    let all = runs(&env, &cfg);
    let time = |r: &serde_json::Value, k: &str| {
        chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap()).unwrap()
    };
    let during: Vec<&serde_json::Value> = all
        .iter()
        .filter(|r| {
            let t = time(r, "started");
            t > paused + chrono::Duration::milliseconds(500) && t < resumed
        })
        .collect();
    assert!(
        !during.is_empty(),
        "fires while paused are recorded: {all:#?}"
    );
    for r in &during {
        assert_eq!(r["outcome"], "skipped", "{r}");
        assert_eq!(r["error"], "scheduling was paused", "{r}");
    }
    for r in all.iter().filter(|r| time(r, "started") > resumed) {
        if r["outcome"] != "skipped" {
            assert!(
                time(r, "scheduled") >= resumed,
                "a run fired for a time missed while paused: {r}"
            );
        }
    }

    // The two jobs of one group never ran at once.
    let mut ran: Vec<&serde_json::Value> =
        all.iter().filter(|r| r["outcome"] != "skipped").collect();
    ran.sort_by_key(|r| time(r, "started"));
    for pair in ran.windows(2) {
        assert!(
            time(pair[1], "started") >= time(pair[0], "ended"),
            "two runs of the group overlapped: {pair:#?}"
        );
    }
    drop(d);

    // --source scopes the verbs: snapshots, runs, and a drill of its newest.
    let scoped = |source: &str, verb: &str| {
        env.ok(&[
            "--config",
            cfg.to_str().unwrap(),
            "--source",
            source,
            "--json",
            verb,
        ])
        .json()
    };
    let all_snaps = env.ok(&["--json", "snapshots"]).json();
    let files_snaps = scoped("files", "snapshots");
    let app_snaps = scoped("app", "snapshots");
    for (snaps, tag) in [(&files_snaps, "source:files"), (&app_snaps, "source:app")] {
        let list = snaps.as_array().unwrap();
        assert!(!list.is_empty(), "{tag}");
        assert!(
            list.iter()
                .all(|s| s["tags"].as_array().unwrap().iter().any(|t| t == tag)),
            "{snaps}"
        );
    }
    assert_eq!(
        files_snaps.as_array().unwrap().len() + app_snaps.as_array().unwrap().len(),
        all_snaps.as_array().unwrap().len()
    );
    let app_runs = scoped("app", "runs");
    assert!(
        app_runs
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["source"] == "app"),
        "{app_runs}"
    );
    let newest = app_snaps.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let drill = scoped("app", "drill");
    assert_eq!(drill["snapshot"], newest.as_str(), "{drill}");
    assert_eq!(drill["ok"], true, "{drill}");
    let out = env.run(&[
        "--config",
        cfg.to_str().unwrap(),
        "--source",
        "files",
        "backup",
        "files",
        "/etc/hostname",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn archive_command_needs_no_flags_when_the_settings_file_is_in_its_default_place() {
    let env = Env::fs();
    env.init();
    let lb = env!("CARGO_BIN_EXE_lifeboat");
    let c = Cluster::with(
        &env,
        "src",
        "postgres",
        &format!("archive_command = '{lb} wal push %p'"),
    );
    // The server's user finds the settings in its config directory.
    let config_home = env.path().join("config-home");
    std::fs::create_dir_all(config_home.join("lifeboat")).unwrap();
    std::fs::write(
        config_home.join("lifeboat/lifeboat.toml"),
        format!(
            "repository = \"{}\"\npassword_file = \"{}\"\n\n[[source]]\nname = \"main\"\nkind = \"postgres\"\npgdata = \"{}\"\ndb = \"{}\"\n",
            env.repo,
            env.path().join("passphrase").display(),
            c.data.display(),
            c.conninfo()
        ),
    )
    .unwrap();
    common::pg::give_to_postgres(&config_home);
    c.stop();
    let out = common::pg::pg_command("pg_ctl")
        .env("XDG_CONFIG_HOME", &config_home)
        .arg("-D")
        .arg(&c.data)
        .arg("-l")
        .arg(&c.log)
        .args(["-w", "start"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A base backup of the declared source waits for its WAL to reach the
    // repository: it does only if `wal push %p` found the settings.
    let cfg = config_home.join("lifeboat/lifeboat.toml");
    let backup = env.run(&[
        "--config",
        cfg.to_str().unwrap(),
        "--source",
        "main",
        "--json",
        "backup",
    ]);
    assert_eq!(
        backup.code,
        0,
        "{}{}",
        backup.stderr,
        std::fs::read_to_string(&c.log).unwrap_or_default()
    );
    let snaps = env
        .ok(&[
            "--config",
            cfg.to_str().unwrap(),
            "--source",
            "main",
            "--json",
            "snapshots",
        ])
        .json();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["source"], "postgres", "{snaps:?}");
    let info = env.ok(&["--json", "info", "postgres"]).json();
    assert!(info[0]["newest_wal"].is_string(), "{info}");
}

/// An HTTP request with extra headers; the status and body, if it answered.
fn http_as(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some((status, body.to_string()))
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn the_api_asks_who_is_calling_once_there_are_users_and_records_what_they_did() {
    let env = Env::fs();
    env.init();
    let files = env.path().join("etc");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("app.conf"), b"x = 1\n").unwrap();
    let cfg = env.path().join("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\nname = \"etc\"\nkind = \"files\"\npaths = [\"{}\"]\n\n[[job]]\nrun = \"backup\"\nsource = \"etc\"\nevery = \"1h\"\n",
            files.display()
        ),
    )
    .unwrap();
    let state = env.path().join("state");
    let c = cfg.to_str().unwrap();
    let s = state.to_str().unwrap();

    // Without users, the API may not listen beyond loopback.
    let open = env.run(&[
        "--config",
        c,
        "serve",
        "--listen",
        "0.0.0.0:1",
        "--state-dir",
        s,
    ]);
    assert_eq!(open.code, 2, "{}", open.stderr);
    assert!(open.stderr.contains("lifeboat user add"), "{}", open.stderr);

    let d = Daemon::start(&env, &cfg, &state);
    let (code, _) = http_as(d.port, "GET", "/api/status", &[]).unwrap();
    assert_eq!(code, 200, "no users yet: open on loopback");

    env.add_user(c, s, "vera", "viewer");
    env.add_user(c, s, "otto", "operator");
    let bad_role = env.try_add_user(c, s, "x", "root");
    assert_eq!(bad_role.code, 2, "{}", bad_role.stderr);
    let token = env.ok(&[
        "--config",
        c,
        "token",
        "create",
        "otto",
        "--label",
        "ci",
        "--state-dir",
        s,
    ]);
    let token = token.stdout.trim().to_string();
    assert!(token.starts_with("lbt_"), "{token}");
    let listed = env
        .ok(&["--config", c, "--json", "user", "list", "--state-dir", s])
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(
        !std::fs::read_to_string(state.join("users.json"))
            .unwrap()
            .contains("a long passphrase")
    );

    // Now every API call needs credentials.
    let (code, _) = http_as(d.port, "GET", "/api/status", &[]).unwrap();
    assert_eq!(code, 401);
    let vera = basic("vera", "a long passphrase");
    let (code, body) = http_as(d.port, "GET", "/api/status", &[("Authorization", &vera)]).unwrap();
    assert_eq!(code, 200, "{body}");
    // A viewer's forged POST is refused.
    let (code, _) = http_as(d.port, "POST", "/api/pause", &[("Authorization", &vera)]).unwrap();
    assert_eq!(code, 403);
    // The operator's token runs a job.
    let bearer = format!("Bearer {token}");
    let (code, body) = http_as(
        d.port,
        "POST",
        "/api/jobs/backup%20etc/run",
        &[("Authorization", &bearer)],
    )
    .unwrap();
    assert_eq!(code, 202, "{body}");
    d.wait("the backup the operator asked for", || {
        env.ok(&["--json", "snapshots"])
            .json()
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    // The snapshot names who asked for it, beside the account it ran as.
    let snap = env.ok(&["--json", "snapshots"]).json()[0].clone();
    let user = snap["user"].as_str().unwrap_or_default().to_string();
    assert!(user.starts_with("otto (API) via "), "{snap}");
    // Revoked: refused at once.
    let id = token.split('_').nth(1).unwrap().to_string();
    env.ok(&["--config", c, "token", "revoke", &id[..6], "--state-dir", s]);
    let (code, _) = http_as(d.port, "GET", "/api/status", &[("Authorization", &bearer)]).unwrap();
    assert_eq!(code, 401);
    // Wrong passwords: five are answered 401, then even the right one waits.
    let wrong = basic("vera", "not the passphrase");
    for _ in 0..5 {
        let (code, _) =
            http_as(d.port, "GET", "/api/status", &[("Authorization", &wrong)]).unwrap();
        assert_eq!(code, 401);
    }
    let (code, _) = http_as(d.port, "GET", "/api/status", &[("Authorization", &vera)]).unwrap();
    assert_eq!(code, 429);

    // All of it is in the audit log, with the API user as the actor.
    d.wait("the API's audit entries", || {
        let entries = env.audit_entries();
        let has =
            |action: &str, actor: &str, outcome: &str| audited(&entries, action, actor, outcome);
        has("user add", "", "ok")
            && has("token create", "", "ok")
            && has("token revoke", "", "ok")
            && has("run now", "otto (API)", "ok")
            && has("pause", "vera (API)", "refused")
            && has("login", "vera", "refused")
            && has("login", "unknown token", "refused")
            && has("backup", "otto (API) via ", "ok")
    });
    env.ok(&["audit", "verify"]);
}

#[test]
fn a_restore_into_a_protected_database_runs_only_after_another_person_approves_it() {
    let env = Env::fs();
    env.init();
    let c = app_cluster(&env);
    let conn = c.conninfo_db("app");
    let hook = Receiver::start();
    let cfg = config(
        &env,
        &c,
        "protected = true\n\n[[job]]\nrun = \"backup\"\nsource = \"app\"\nevery = \"1h\"\n",
        &format!(
            "[approvals]\nrequired = 1\nexpire = \"1h\"\n[alerts]\ndisk_full = \"100%\"\n[[alerts.route]]\nwebhook = \"http://127.0.0.1:{}/hook\"\n",
            hook.port
        ),
    );
    let cf = cfg.to_str().unwrap();
    env.ok(&["--config", cf, "--source", "app", "backup"]);
    c.psql_db("app", "DELETE FROM t WHERE v > 500");

    // A direct restore into the protected database is refused, naming the
    // command that asks for it, and the refusal is recorded.
    let direct = env.run(&[&["--config", cf][..], &clean_restore_args(&conn)].concat());
    assert_eq!(direct.code, 2, "{}", direct.stderr);
    assert!(
        direct.stderr.contains("protected target of source \"app\"")
            && direct
                .stderr
                .contains("lifeboat request -- restore postgres latest --logical --db"),
        "{}",
        direct.stderr
    );
    assert_eq!(c.psql_db("app", "SELECT count(*) FROM t").trim(), "500");
    let audit = env.ok(&["--json", "audit"]).json();
    let refused = audit[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "restore postgres")
        .cloned()
        .unwrap();
    assert_eq!(refused["exit"], 2, "{refused}");
    assert_eq!(refused["details"]["protected"], "app", "{refused}");

    let state = env.path().join("state");
    let s = state.to_str().unwrap();
    let token_for = |name: &str, role: &str| {
        env.add_user(cf, s, name, role);
        env.token(cf, s, name)
    };
    let rita = token_for("rita", "restorer");
    let ann = token_for("ann", "approver");
    let adam = token_for("adam", "admin");
    let d = Daemon::start(&env, &cfg, &state);
    let url = format!("http://127.0.0.1:{}", d.port);
    let as_user = |token: &str, args: &[&str]| {
        let mut all = vec!["--config", cf];
        all.extend_from_slice(args);
        env.run_with(
            &[("LIFEBOAT_TOKEN", token), ("LIFEBOAT_DAEMON", url.as_str())],
            &all,
        )
    };

    // An admin's own request cannot be approved by that admin.
    let own = as_user(
        &adam,
        &[&["--json", "request", "--"][..], &clean_restore_args(&conn)].concat(),
    );
    assert_eq!(own.code, 0, "{}", own.stderr);
    let own = own.json();
    let selfish = as_user(
        &adam,
        &[
            "approve",
            own["id"].as_str().unwrap(),
            "--plan",
            own["hash"].as_str().unwrap(),
        ],
    );
    assert_eq!(selfish.code, 2, "{}", selfish.stderr);
    assert!(
        selfish.stderr.contains("person who made it"),
        "{}",
        selfish.stderr
    );

    // The restorer asks; a restorer cannot approve; a wrong plan hash approves nothing.
    let asked = as_user(
        &rita,
        &[&["--json", "request", "--"][..], &clean_restore_args(&conn)].concat(),
    );
    assert_eq!(asked.code, 0, "{}", asked.stderr);
    let asked = asked.json();
    let (id, hash) = (
        asked["id"].as_str().unwrap(),
        asked["hash"].as_str().unwrap(),
    );
    assert_eq!(asked["state"], "pending");
    let by_restorer = as_user(&rita, &["approve", id, "--plan", hash]);
    assert_eq!(by_restorer.code, 2, "{}", by_restorer.stderr);
    let other_plan = as_user(&ann, &["approve", id, "--plan", &"0".repeat(64)]);
    assert_eq!(other_plan.code, 2, "{}", other_plan.stderr);
    assert!(
        other_plan.stderr.contains("plan changed"),
        "{}",
        other_plan.stderr
    );
    assert_eq!(
        c.psql_db("app", "SELECT count(*) FROM t").trim(),
        "500",
        "nothing ran yet"
    );
    // Approvers are told through the alert routes.
    let said = |words: &str| {
        hook.bodies()
            .iter()
            .any(|b| b["summary"].as_str().is_some_and(|s| s.contains(words)))
    };
    d.wait("the request's notification", || {
        said(&format!(
            "restore request {id} by rita (API) waits for approval"
        ))
    });

    // The approver approves that plan; the daemon restores.
    let approved = as_user(&ann, &["--json", "approve", id, "--plan", hash]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    d.wait("the approved restore to end", || {
        let all = as_user(&ann, &["--json", "requests"]).json();
        all.as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id && r["state"] == "done")
    });
    let all = as_user(&ann, &["--json", "requests"]).json();
    let done = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(
        done["exit"],
        0,
        "{done}; log: {:?}",
        std::fs::read_to_string(state.join("requests").join(format!("{id}.log")))
    );
    assert_eq!(c.psql_db("app", "SELECT count(*) FROM t").trim(), "1000");
    d.wait("the outcome's notification", || {
        said(&format!("approved restore {id} ended: ok"))
    });

    // The audit log tells the whole story.
    d.wait("the approval's audit entries", || {
        let entries = env.audit_entries();
        let has =
            |action: &str, actor: &str, outcome: &str| audited(&entries, action, actor, outcome);
        has("request", "rita (API)", "ok")
            && has("approve", "adam (API)", "refused")
            && has("approve", "ann (API)", "ok")
            && has("run approved request", "lifeboat serve", "ok")
            && entries.iter().any(|e| {
                e["action"] == "restore postgres"
                    && e["outcome"] == "ok"
                    && e["details"]["request"] == id
            })
    });
    env.ok(&["audit", "verify"]);
}

/// The guard covers every way at a protected source, not just `restore
/// --db`: `recover` aimed at its database, a logical restore whose target
/// comes from the PG* variables, and a `forget` whose flags would remove
/// restore points the configured retention promises. Dry runs and the
/// configured retention itself pass.
#[test]
fn recover_forget_and_a_database_named_by_pg_variables_are_guarded_like_restores() {
    let env = Env::fs();
    env.init();
    let c = app_cluster(&env);
    let conn = c.conninfo_db("app");
    let cfg = config(
        &env,
        &c,
        "protected = true\n",
        "[retention]\nkeep_last = 5\n",
    );
    let cf = cfg.to_str().unwrap();
    for _ in 0..2 {
        env.ok(&["--config", cf, "--source", "app", "backup"]);
    }
    let snapshots = || {
        env.ok(&["--json", "snapshots"])
            .json()
            .as_array()
            .unwrap()
            .len()
    };

    let out = env.run(&["--config", cf, "forget", "--keep-last", "1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("restore points of the protected source \"app\"")
            && out
                .stderr
                .contains("lifeboat request -- forget --keep-last 1"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshots(), 2);
    env.ok(&["--config", cf, "forget", "--keep-last", "1", "--dry-run"]);
    env.ok(&["--config", cf, "forget"]);
    assert_eq!(snapshots(), 2);

    let out = env.run(&[
        "--config",
        cf,
        "recover",
        "--target-time",
        "2026-11-30 09:00:00Z",
        "--target-dir",
        env.path().join("recovered").to_str().unwrap(),
        "--db",
        &conn,
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("protected target of source \"app\"")
            && out
                .stderr
                .contains("lifeboat request -- recover --target-time"),
        "{}",
        out.stderr
    );

    let port = c.port.to_string();
    let out = env.run_with(
        &[
            ("PGHOST", c.socket.to_str().unwrap()),
            ("PGPORT", port.as_str()),
            ("PGDATABASE", "app"),
        ],
        &[
            "--config",
            cf,
            "restore",
            "postgres",
            "latest",
            "--logical",
            "--clean",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("protected target"), "{}", out.stderr);
    assert_eq!(c.psql_db("app", "SELECT count(*) FROM t").trim(), "1000");
}

/// An edit of the settings file is a configuration change: the running
/// daemon records it (and that it still runs with the old settings), and
/// the next start records that the new ones are in force. Only which
/// sections changed is kept, never their text.
#[test]
fn an_edit_of_the_settings_file_is_recorded_in_the_audit_log() {
    let env = Env::fs();
    env.init();
    let c = app_cluster(&env);
    let cfg = config(
        &env,
        &c,
        "[[job]]\nrun = \"backup\"\nsource = \"app\"\nevery = \"1d\"\n",
        "[serve]\nrefresh = \"1s\"\n",
    );
    let state = env.path().join("state");
    let changes = || -> Vec<serde_json::Value> {
        env.audit_entries()
            .into_iter()
            .filter(|e| e["action"] == "settings changed")
            .collect()
    };
    let mut d = Daemon::start(&env, &cfg, &state);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}[retention]\nkeep_last = 9\n")).unwrap();
    d.wait("the edit to be recorded", || changes().len() == 1);
    let seen = &changes()[0];
    assert_eq!(seen["details"]["sections"], "retention added", "{seen}");
    assert!(
        seen["details"]["applied"]
            .as_str()
            .unwrap()
            .starts_with("not yet"),
        "{seen}"
    );
    assert!(!seen.to_string().contains("keep_last"), "{seen}");
    d.signal("-TERM");
    drop(d);
    let d = Daemon::start(&env, &cfg, &state);
    d.wait("the restart to record it", || changes().len() == 2);
    let started = &changes()[1];
    assert_eq!(
        started["details"]["sections"], "retention added",
        "{started}"
    );
    assert!(
        started["details"]["applied"]
            .as_str()
            .unwrap()
            .starts_with("yes"),
        "{started}"
    );
}
