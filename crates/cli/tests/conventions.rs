//! What DBAs and SREs expect of a command-line tool: no panics on pipes or
//! odd input, one grammar for durations, JSON errors, version, completions
//! and manual pages, snapshot filters, exclude files, and credentials found
//! where libpq (`.pgpass`, client certificates) and the AWS tools
//! (`AWS_PROFILE`, `~/.aws/*`) look for them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::Env;
use common::pg::{Cluster, give_to_postgres};
use serde_json::Value;

fn repository_with_one_snapshot() -> (Env, std::path::PathBuf) {
    let env = Env::fs();
    env.init();
    let src = env.path().join("app");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("app.env"), b"A=1\n").unwrap();
    env.backup(&[&src]);
    (env, src)
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let (env, _) = repository_with_one_snapshot();
    for args in [
        &["snapshots"][..],
        &["snapshots", "--json"],
        &["ls", "latest"],
    ] {
        let mut child = env
            .cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before lifeboat writes a byte.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.trim().is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn a_bad_percent_escape_in_a_connection_url_is_not_a_crash() {
    let env = Env::fs();
    env.init();
    for url in [
        "postgresql://u@127.0.0.1:1/db?sslrootcert=%a\u{e9}x&sslmode=require",
        "postgresql://u@127.0.0.1:1/db?sslmode=%",
        "postgresql://u@127.0.0.1:1/db?sslrootcert=%ZZ&sslmode=disable",
    ] {
        let out = env.run(&["backup", "postgres", "--logical", "--db", url]);
        assert!(!out.stderr.contains("panicked"), "{url}: {}", out.stderr);
        assert!(
            [1, 2, 4].contains(&out.code),
            "{url}: exit {}: {}",
            out.code,
            out.stderr
        );
    }
}

#[test]
fn durations_and_sizes_follow_one_grammar_everywhere() {
    let (env, _) = repository_with_one_snapshot();
    // Accepted forms, on flags that used to disagree.
    for grace in ["0", "90s", "30min", "1.5d", "1w", "1h 30min"] {
        env.ok(&["prune", "--dry-run", "--grace", grace]);
    }
    env.ok(&["forget", "--dry-run", "--keep-within", "1mo"]);
    env.ok(&["forget", "--dry-run", "--keep-within", "1.5d"]);
    env.ok(&[
        "forget",
        "--dry-run",
        "--keep-last",
        "1",
        "--pitr-window",
        "90min",
    ]);
    env.ok(&["prune", "--dry-run", "--max-repack", "1.5GiB"]);
    // Refused forms: bad usage, with the units listed.
    for (args, why) in [
        (&["prune", "--dry-run", "--grace", "1m"][..], "ambiguous"),
        (&["forget", "--dry-run", "--keep-within", "1m"], "ambiguous"),
        (
            &["forget", "--dry-run", "--pitr-window", "90"],
            "needs a unit",
        ),
        (
            &["prune", "--dry-run", "--grace", "soon"],
            "expected a number",
        ),
        (
            &["prune", "--dry-run", "--max-repack", "lots"],
            "not a size",
        ),
    ] {
        let out = env.run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("units:"),
            "{args:?} does not list the units: {}",
            out.stderr
        );
    }
    // Nothing was forgotten by any of it.
    assert!(env.ok(&["snapshots"]).stdout.contains("1 snapshot"));
}

#[test]
fn errors_are_json_when_json_is_asked_for() {
    let (env, _) = repository_with_one_snapshot();
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, i32);
    let cases: [Case; 4] = [
        (vec![], vec!["--json", "snapshots", "--bogus"], 2),
        (vec![], vec!["--json", "ls", "ffffffff"], 2),
        (
            vec![("LIFEBOAT_PASSWORD", "wrong")],
            vec!["snapshots", "--json"],
            3,
        ),
        (
            vec![("LIFEBOAT_REPOSITORY", "/nonexistent/repo")],
            vec!["snapshots", "--json"],
            3,
        ),
    ];
    for (vars, args, code) in cases {
        let out = env.run_with(&vars, &args);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        let doc: Value = serde_json::from_str(out.stderr.trim()).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stderr is not one JSON document ({e}): {}",
                out.stderr
            )
        });
        assert_eq!(doc["exit"], code, "{doc}");
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{doc}"
        );
        assert!(doc.get("hint").is_some(), "{doc}");
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    // forget --json states policies as the flags that give them.
    let plan = env
        .ok(&[
            "forget",
            "--json",
            "--dry-run",
            "--keep-daily",
            "7",
            "--keep-within",
            "2w",
            "--keep-kind",
            "pre-deploy=90d",
        ])
        .json();
    let policy = &plan["policy"]["default"];
    assert_eq!(policy["keep_daily"], 7, "{plan}");
    assert_eq!(policy["keep_within"], "14d", "{plan}");
    assert_eq!(policy["keep_kind"]["pre-deploy"], "90d", "{plan}");
}

#[test]
fn version_completions_and_manual_pages() {
    let env = Env::fs();
    let v = env.ok(&["version", "--json"]).json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["format_version"].as_u64().is_some(), "{v}");
    assert!(
        env.ok(&["--version"])
            .stdout
            .contains(env!("CARGO_PKG_VERSION"))
    );
    for shell in ["bash", "zsh", "fish"] {
        let script = env.ok(&["generate", "completions", shell]).stdout;
        assert!(
            script.contains("snapshots") && script.contains("--pitr-window"),
            "{shell}"
        );
    }
    // bash loads the script and completes a verb.
    let bash = env.ok(&["generate", "completions", "bash"]).stdout;
    let file = env.path().join("lifeboat.bash");
    fs::write(&file, bash).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {} && COMP_WORDS=(lifeboat snap) COMP_CWORD=1 && _lifeboat lifeboat snap lifeboat && echo \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("snapshots"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let man = env.path().join("man");
    let pages = env
        .ok(&["generate", "man", "--dir", man.to_str().unwrap(), "--json"])
        .json();
    assert!(pages.as_array().is_some_and(|p| p.len() > 20), "{pages}");
    let page = fs::read_to_string(man.join("lifeboat-restore-postgres.1")).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH lifeboat-restore-postgres"),
        "{page}"
    );
    // man itself renders it.
    let out = Command::new("man")
        .args(["-l", man.join("lifeboat.1").to_str().unwrap()])
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("EXIT CODES"));
}

#[test]
fn help_lists_global_options_exit_codes_environment_and_examples() {
    let env = Env::fs();
    let top = env.ok(&["--help"]).stdout;
    for want in [
        "Global options:",
        "EXIT CODES",
        "4  ",
        "5  ",
        "6  ",
        "wal fetch",
        "PGPASSFILE",
        "AWS_PROFILE",
        "LIFEBOAT_LOG",
    ] {
        assert!(top.contains(want), "--help lacks {want:?}:\n{top}");
    }
    for verb in [
        &["backup", "--help"][..],
        &["backup", "files", "--help"],
        &["backup", "postgres", "--help"],
        &["restore", "postgres", "--help"],
        &["restore", "files", "--help"],
        &["snapshots", "--help"],
        &["forget", "--help"],
        &["prune", "--help"],
        &["check", "--help"],
        &["drill", "--help"],
        &["wal", "push", "--help"],
    ] {
        let help = env.ok(verb).stdout;
        assert!(help.contains("Example"), "{verb:?} has no example:\n{help}");
    }
}

#[test]
fn snapshots_are_filtered_and_exclude_files_are_read() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("site");
    fs::create_dir_all(src.join("cache")).unwrap();
    fs::write(src.join("index.html"), b"<h1>hi</h1>").unwrap();
    fs::write(src.join("debug.log"), b"noise").unwrap();
    fs::write(src.join("cache/blob"), b"cached").unwrap();
    let excludes = env.path().join("excludes.txt");
    fs::write(&excludes, "# build output\n*.log\n\ncache\n").unwrap();
    env.ok(&[
        "backup",
        "files",
        src.to_str().unwrap(),
        "--exclude-file",
        excludes.to_str().unwrap(),
        "--tag",
        "web",
        "--kind",
        "pre-deploy",
    ]);
    env.ok(&["backup", "files", src.to_str().unwrap()]);
    let listed = env.ok(&["ls", "latest", "--json"]).stdout;
    assert!(
        listed.contains("debug.log"),
        "the second backup excludes nothing"
    );
    let all = env.ok(&["snapshots", "--json"]).json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let first_id = all[0]["id"].as_str().unwrap();
    let first = env.ok(&["ls", first_id, "--json"]).stdout;
    assert!(
        first.contains("index.html") && !first.contains("debug.log") && !first.contains("blob"),
        "{first}"
    );
    let count = |args: &[&str]| {
        let mut full = vec!["snapshots", "--json"];
        full.extend_from_slice(args);
        env.ok(&full).json().as_array().unwrap().len()
    };
    assert_eq!(count(&["--tag", "web"]), 1);
    assert_eq!(count(&["--kind", "pre-deploy"]), 1);
    assert_eq!(count(&["--kind", "files"]), 2);
    assert_eq!(count(&["--kind", "bucket"]), 0);
    assert_eq!(count(&["--since", "1h"]), 2);
    assert_eq!(count(&["--until", "1h"]), 0);
    assert_eq!(count(&["--until", "2999-01-01 00:00:00Z"]), 2);
    assert_eq!(count(&["--host", "no-such-host"]), 0);
    let out = env.run(&["snapshots", "--since", "last tuesday"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = env.run(&[
        "backup",
        "files",
        src.to_str().unwrap(),
        "--exclude-file",
        "/nonexistent",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(count(&[]), 2, "a refused backup wrote a snapshot");
}

/// A throwaway cluster listening on 127.0.0.1 with TLS, where `app` must
/// give a password and `certuser` a client certificate signed by the
/// test CA. Returns the cluster and the directory holding the CA and the
/// client's certificate and key.
fn tls_cluster(env: &Env) -> (Cluster, std::path::PathBuf) {
    let pki = env.path().join("pki");
    fs::create_dir_all(&pki).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&pki)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=lifeboat test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=certuser")] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        fs::write(pki.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        fs::write(pki.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &crt,
        ];
        // Extensions make them X.509 v3 certificates, as real ones are.
        args.extend_from_slice(&[
            "-extfile",
            if name == "server" {
                "san.ext"
            } else {
                "client.ext"
            },
        ]);
        openssl(&args);
    }
    fs::set_permissions(pki.join("client.key"), fs::Permissions::from_mode(0o600)).unwrap();
    // The server's files, readable by the server only.
    let server = env.path().join("server-tls");
    fs::create_dir_all(&server).unwrap();
    for f in ["server.crt", "server.key", "ca.crt"] {
        fs::copy(pki.join(f), server.join(f)).unwrap();
    }
    fs::set_permissions(server.join("server.key"), fs::Permissions::from_mode(0o600)).unwrap();
    give_to_postgres(&server);
    let conf = format!(
        "listen_addresses = '127.0.0.1'\nssl = on\nssl_cert_file = '{0}/server.crt'\n\
         ssl_key_file = '{0}/server.key'\nssl_ca_file = '{0}/ca.crt'\n\
         password_encryption = 'scram-sha-256'\nlog_connections = on\nlog_disconnections = on\n",
        server.display()
    );
    let c = Cluster::with(env, "tls", "postgres", &conf);
    fs::write(
        c.data.join("pg_hba.conf"),
        "local all all trust\nhostssl all certuser 127.0.0.1/32 cert\nhost all app 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    give_to_postgres(&c.data);
    c.stop();
    c.start();
    c.psql("CREATE ROLE app LOGIN SUPERUSER PASSWORD 'from-the-pgpass-file'; CREATE ROLE certuser LOGIN SUPERUSER; CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g;");
    (c, pki)
}

#[test]
fn libpq_password_files_client_certificates_and_application_name() {
    let env = Env::fs();
    env.init();
    let (c, pki) = tls_cluster(&env);
    let home = env.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let home_s = home.to_str().unwrap();
    let port = c.port.to_string();
    let tcp = format!("host=127.0.0.1 port={port} user=app dbname=postgres sslmode=require");

    // No password anywhere: the server refuses (exit 5).
    let out = env.run_with(
        &[("HOME", home_s)],
        &["backup", "postgres", "--logical", "--db", &tcp],
    );
    assert_eq!(out.code, 5, "{}", out.stderr);

    // ~/.pgpass that others can read is ignored, and the error says why.
    let pgpass = home.join(".pgpass");
    fs::write(
        &pgpass,
        format!("# test\n127.0.0.1:{port}:*:app:from-the-pgpass-file\n"),
    )
    .unwrap();
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run_with(
        &[("HOME", home_s)],
        &["backup", "postgres", "--logical", "--db", &tcp],
    );
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("chmod 0600"), "{}", out.stderr);

    // 0600: the password comes from the file.
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run_with(
        &[("HOME", home_s)],
        &["--json", "backup", "postgres", "--logical", "--db", &tcp],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    // PGPASSFILE points elsewhere; PGAPPNAME names the session.
    let elsewhere = env.path().join("pgpass-elsewhere");
    fs::rename(&pgpass, &elsewhere).unwrap();
    let out = env.run_with(
        &[
            ("HOME", home_s),
            ("PGPASSFILE", elsewhere.to_str().unwrap()),
        ],
        &["backup", "postgres", "--logical", "--db", &tcp],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    // A client certificate (hostssl … cert) and a verified server.
    let cert = format!(
        "host=127.0.0.1 port={port} user=certuser dbname=postgres sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        pki.join("ca.crt").display(),
        pki.join("client.crt").display(),
        pki.join("client.key").display()
    );
    let out = env.run_with(
        &[("HOME", home_s)],
        &["--json", "backup", "postgres", "--logical", "--db", &cert],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The same through PGSSLCERT / PGSSLKEY in a URL.
    let url = format!(
        "postgresql://certuser@127.0.0.1:{port}/postgres?sslmode=verify-ca&sslrootcert={}",
        pki.join("ca.crt").display()
    );
    let out = env.run_with(
        &[
            ("HOME", home_s),
            ("PGSSLCERT", pki.join("client.crt").to_str().unwrap()),
            ("PGSSLKEY", pki.join("client.key").to_str().unwrap()),
        ],
        &["backup", "postgres", "--logical", "--db", &url],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Without the certificate the server refuses.
    let out = env.run_with(
        &[("HOME", home_s)],
        &["backup", "postgres", "--logical", "--db", &url],
    );
    assert_eq!(out.code, 5, "{}", out.stderr);

    // A DBA sees the backup as `lifeboat` (or as PGAPPNAME says) in
    // pg_stat_activity and the server log, and its sessions end cleanly.
    let before = fs::read_to_string(&c.log).unwrap_or_default().len();
    let local = format!(
        "host={} port={port} user=postgres dbname=postgres",
        c.socket.display()
    );
    let out = env.run(&["--json", "backup", "postgres", "--logical", "--db", &local]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = env.run_with(
        &[("PGAPPNAME", "nightly-backup")],
        &["--json", "backup", "postgres", "--logical", "--db", &local],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let log = fs::read_to_string(&c.log).unwrap_or_default();
    let new = &log[before.min(log.len())..];
    assert!(new.contains("application_name=lifeboat"), "{new}");
    assert!(new.contains("application_name=nightly-backup"), "{new}");
    assert!(
        !new.contains("Connection reset by peer") && !new.contains("unexpected EOF"),
        "sessions were not closed cleanly:\n{new}"
    );
}

#[test]
fn s3_credentials_region_and_endpoint_come_from_an_aws_profile() {
    let endpoint = std::env::var("LIFEBOAT_TEST_S3_AUTH_ENDPOINT")
        .expect("LIFEBOAT_TEST_S3_AUTH_ENDPOINT is not set: run the suite with scripts/test.sh");
    let bucket = std::env::var("LIFEBOAT_TEST_S3_AUTH_BUCKET").unwrap();
    let key_id = std::env::var("LIFEBOAT_TEST_S3_AUTH_KEY_ID").unwrap();
    let secret = std::env::var("LIFEBOAT_TEST_S3_AUTH_SECRET").unwrap();
    let env = Env::fs();
    let home = env.path().join("home");
    fs::create_dir_all(home.join(".aws")).unwrap();
    // The keys only in the credentials file, region and endpoint only in the
    // config file, under a named profile; the default profile is wrong.
    fs::write(
        home.join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = {key_id}\naws_secret_access_key = wrong\n\n\
             [backup]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
        ),
    )
    .unwrap();
    fs::write(
        home.join(".aws/config"),
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = {endpoint}\n\n\
             [profile backup]\nregion = us-east-1\ns3 =\n  endpoint_url = {endpoint}\n"
        ),
    )
    .unwrap();
    let prefix = format!(
        "profile-{}",
        env.path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('.', "")
    );
    let repo = format!("s3://{bucket}/{prefix}");
    let home_s = home.to_str().unwrap();
    let with = |profile: &str, args: &[&str]| {
        env.run_with(
            &[
                ("HOME", home_s),
                ("AWS_PROFILE", profile),
                ("LIFEBOAT_REPOSITORY", &repo),
            ],
            args,
        )
    };
    let out = with(
        "backup",
        &["init", "--kdf-memory", "19", "--kdf-iterations", "2"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let src = env.path().join("etc");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("app.conf"), b"listen 8080\n").unwrap();
    let out = with("backup", &["backup", "files", src.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The wrong (default) profile is refused by the store: exit 3.
    let out = with("default", &["snapshots"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    // A bucket source reads the same profile (into a local repository,
    // which needs no credentials): the S3 repository's own objects are a
    // bucket to back up here.
    env.init();
    let local = env.repo.clone();
    let source = format!("s3://{bucket}/{prefix}");
    let bucket_backup = |profile: &str| {
        env.run_with(
            &[
                ("HOME", home_s),
                ("AWS_PROFILE", profile),
                ("LIFEBOAT_REPOSITORY", &local),
            ],
            &["--json", "backup", "bucket", &source],
        )
    };
    let out = bucket_backup("backup");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        summary["snapshot"]["bucket"]["objects_read"].as_u64() >= Some(3),
        "{summary}"
    );
    let out = bucket_backup("default");
    assert_eq!(out.code, 5, "{}", out.stderr);
}

#[test]
fn dry_runs_of_backups_and_restores_write_nothing() {
    // Files: the repository is byte-for-byte unchanged, the target not created.
    let (env, src) = repository_with_one_snapshot();
    fs::write(src.join("debug.log"), b"noise").unwrap();
    let before = common::repo_contents(&env.repo_dir());
    let plan = env
        .ok(&[
            "--json",
            "backup",
            "files",
            src.to_str().unwrap(),
            "--exclude",
            "*.log",
            "--dry-run",
        ])
        .json();
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(plan["would_back_up"]["files"], 1, "{plan}");
    assert_eq!(plan["would_back_up"]["excluded"], 1, "{plan}");
    let target = env.path().join("restored");
    let plan = env
        .ok(&[
            "--json",
            "restore",
            "files",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--dry-run",
        ])
        .json();
    assert_eq!(plan["plan"]["files"], 1, "{plan}");
    assert!(!target.exists());
    // Into a non-empty target without --overwrite: refused, as the restore would be.
    let out = env.run(&[
        "restore",
        "files",
        "latest",
        "--target",
        src.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let plan = env
        .ok(&[
            "--json",
            "restore",
            "files",
            "latest",
            "--target",
            "/",
            "--overwrite",
            "--dry-run",
        ])
        .json();
    assert_eq!(
        plan["plan"]["replaced"].as_array().map(Vec::len),
        Some(1),
        "{plan}"
    );
    assert_eq!(common::repo_contents(&env.repo_dir()), before);

    // PostgreSQL: a physical and a logical backup, and a point-in-time
    // restore, each planned and not done.
    let env = Env::fs();
    env.init();
    let c = Cluster::new(&env, "pg");
    c.psql("CREATE TABLE t AS SELECT 1 AS x");
    common::pg::base_backup(&env, &c);
    let snapshots = || {
        env.ok(&["snapshots", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len()
    };
    let count = snapshots();
    let out = env.ok(&[
        "--json",
        "backup",
        "postgres",
        "--pgdata",
        c.data.to_str().unwrap(),
        "--db",
        &c.conninfo(),
        "--dry-run",
    ]);
    assert!(
        out.json()["would_back_up"]["bytes"].as_u64() > Some(10 << 20),
        "{}",
        out.stdout
    );
    let out = env.ok(&[
        "--json",
        "backup",
        "postgres",
        "--logical",
        "--db",
        &c.conninfo(),
        "--dry-run",
    ]);
    assert_eq!(out.json()["databases"][0], "postgres", "{}", out.stdout);
    let target = env.path().join("pitr");
    let out = env.ok(&[
        "--json",
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        target.to_str().unwrap(),
        "--dry-run",
    ]);
    let plan = out.json();
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert!(plan["files"]["files"].as_u64() > Some(100), "{plan}");
    assert!(!target.exists(), "a dry run created {}", target.display());
    assert_eq!(snapshots(), count, "a dry run wrote a snapshot");
    // A target outside the window is refused by the dry run as by the restore.
    let out = env.run(&[
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        target.to_str().unwrap(),
        "--target-time",
        "2001-01-01 00:00:00Z",
        "--dry-run",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}
