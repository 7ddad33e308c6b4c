//! Logical restores bring back the whole database, judged by `pg_dump` on
//! schemas nobody here wrote: PostGIS with a user SRID and a topology,
//! pg_cron's jobs, a managed platform's roles, policies, grants, default
//! privileges and database settings, and Django's migrations. Restores go
//! into fresh clusters where none of the roles exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use common::pg::{Cluster, assert_same_text, free_port, give_to_postgres};
use common::{Env, Out};

const PLATFORM_ROLES: &str = include_str!("fixtures/platform-roles.sql");
const PLATFORM: &str = include_str!("fixtures/platform.sql");
/// pg_cron runs in the server and only in one database.
const PG_CRON: &str = "shared_preload_libraries = 'pg_cron'\ncron.database_name = 'app'";

/// The platform database on a cluster whose superuser is supabase_admin.
fn platform(env: &Env) -> Cluster {
    let c = Cluster::with(env, "platform", "supabase_admin", PG_CRON);
    c.script("postgres", PLATFORM_ROLES);
    c.script("app", PLATFORM);
    c
}

fn logical_backup(env: &Env, c: &Cluster, db: &str) -> serde_json::Value {
    common::pg::logical_backup(env, c, db, &[])
}

fn restore(env: &Env, target: &Cluster, db: &str, extra: &[&str]) -> Out {
    common::pg::logical_restore(env, target, db, extra)
}

/// The lines of `pg_dumpall --roles-only` about `role`.
fn role_lines(c: &Cluster, role: &str) -> Vec<String> {
    let out = c.client("pg_dumpall").arg("--roles-only").output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.contains(&format!("ROLE {role} "))
                || l.contains(&format!("ROLE {role};"))
                || (l.starts_with("GRANT ") && l.contains(&format!(" TO {role} ")))
        })
        .map(|l| l.replace(" GRANTED BY supabase_admin", " GRANTED BY <superuser>"))
        .map(|l| l.replace(" GRANTED BY postgres", " GRANTED BY <superuser>"))
        .collect()
}

const PLATFORM_ROLE_NAMES: [&str; 6] = [
    "anon",
    "authenticated",
    "service_role",
    "authenticator",
    "supabase_admin",
    "postgres",
];

#[test]
fn a_platform_database_comes_back_whole_into_a_fresh_cluster() {
    let env = Env::fs();
    env.init();
    let src = platform(&env);
    let backup = logical_backup(&env, &src, "app");
    let tables = backup["snapshot"]["logical"]["databases"][0]["tables"].to_string();
    for ext_table in ["spatial_ref_sys", "\"topology\"", "\"layer\"", "\"job\""] {
        assert!(
            tables.contains(ext_table),
            "{ext_table} not backed up: {tables}"
        );
    }

    // A fresh cluster of the same platform (a new project): its superuser,
    // none of the other roles — postgres neither. Extensions belong to the
    // role that creates them, as with pg_restore: here the same superuser.
    let fresh = Cluster::with(&env, "fresh", "supabase_admin", PG_CRON);
    fresh.psql("CREATE DATABASE app");
    let out = restore(&env, &fresh, "app", &["--jobs", "2"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = out.json();
    assert_eq!(report["failures"], serde_json::json!([]), "{report}");
    let created = report["roles_created"].to_string();
    for r in [
        "anon",
        "authenticated",
        "service_role",
        "authenticator",
        "postgres",
    ] {
        assert!(
            created.contains(&format!("\"{r}\"")),
            "{r} not created: {report}"
        );
    }
    assert_eq!(
        report["roles_existing"],
        serde_json::json!(["supabase_admin"])
    );
    assert!(
        report["objects"]["policies"].as_u64().unwrap() >= 3,
        "{report}"
    );

    // The judge: pg_dump --create (schema, data, extension rows, owners,
    // grants, policies, and the database's own settings and privileges).
    assert_same_text(
        "source",
        &src.pg_dump("app", &["--create"]),
        "restored",
        &fresh.pg_dump("app", &["--create"]),
    );
    // The roles came back as they were, postgres too (no superuser here).
    for role in PLATFORM_ROLE_NAMES {
        assert_eq!(role_lines(&src, role), role_lines(&fresh, role), "{role}");
    }
    assert_eq!(
        fresh.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'"),
        "f"
    );

    // Into a cluster whose superuser is postgres, the existing postgres
    // role is left as it is (a superuser), everything else comes back.
    let standard = Cluster::with(&env, "standard", "postgres", PG_CRON);
    standard.psql("CREATE DATABASE app");
    let out = restore(&env, &standard, "app", &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.json()["roles_existing"]
            .to_string()
            .contains("\"postgres\"")
    );
    assert_eq!(
        standard.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'"),
        "t"
    );
    assert_eq!(
        standard.psql_db(
            "app",
            "SELECT count(*) FROM pg_policies WHERE 'anon' = ANY (roles)"
        ),
        "1"
    );
    // The user SRID works again: ST_Transform needs its row.
    assert_eq!(
        fresh.psql_db(
            "app",
            "SELECT count(*) FROM public.profiles WHERE ST_X(ST_Transform(home, 4326)) BETWEEN 2.3 AND 2.5"
        ),
        "200"
    );
    assert_eq!(
        fresh.psql_db(
            "app",
            "SELECT string_agg(jobname, ',' ORDER BY jobid) FROM cron.job"
        ),
        "nightly-vacuum,forget-nameless"
    );

    // A drill rebuilds it in a scratch cluster (pg_cron preloaded there)
    // and compares rows and objects the same way.
    let drill = env.ok(&["--json", "drill", "latest"]).json();
    assert_eq!(drill["ok"], true, "{drill:#}");
}

#[test]
fn plain_and_custom_exports_load_into_fresh_clusters_with_their_roles() {
    let env = Env::fs();
    env.init();
    let src = platform(&env);
    logical_backup(&env, &src, "app");

    // Plain: psql alone, into an empty database of a fresh cluster.
    let plain = env.path().join("app.sql");
    env.ok(&[
        "export",
        "latest",
        "--format",
        "plain",
        "-o",
        plain.to_str().unwrap(),
    ]);
    give_to_postgres(&plain);
    let fresh = Cluster::with(&env, "plain", "supabase_admin", PG_CRON);
    fresh.psql("CREATE DATABASE app");
    let load = fresh
        .client("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "app", "-f"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert_same_text(
        "source",
        &src.pg_dump("app", &["--create"]),
        "from the plain export",
        &fresh.pg_dump("app", &["--create"]),
    );
    for role in PLATFORM_ROLE_NAMES {
        assert_eq!(role_lines(&src, role), role_lines(&fresh, role), "{role}");
    }

    // Custom: the roles script first, then pg_restore --create.
    let roles = env.path().join("roles.sql");
    let custom = env.path().join("app.dump");
    env.ok(&[
        "export",
        "latest",
        "--format",
        "roles",
        "-o",
        roles.to_str().unwrap(),
    ]);
    env.ok(&[
        "export",
        "latest",
        "--format",
        "custom",
        "-o",
        custom.to_str().unwrap(),
    ]);
    give_to_postgres(&roles);
    give_to_postgres(&custom);
    let other = Cluster::with(&env, "custom", "supabase_admin", PG_CRON);
    let load = other
        .client("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f"])
        .arg(&roles)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let load = other
        .client("pg_restore")
        .args(["--exit-on-error", "--create", "-d", "postgres"])
        .arg(&custom)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert_same_text(
        "source",
        &src.pg_dump("app", &["--create"]),
        "from the custom export",
        &other.pg_dump("app", &["--create"]),
    );
    for role in PLATFORM_ROLE_NAMES {
        assert_eq!(role_lines(&src, role), role_lines(&other, role), "{role}");
    }

    // A database named postgres exports too, although its roles demote the
    // postgres role (no superuser here) and it needs an untrusted extension.
    src.script(
        "postgres",
        "CREATE EXTENSION postgis; CREATE TABLE public.notes (id int PRIMARY KEY, at public.geometry); \
         INSERT INTO public.notes VALUES (1, 'POINT(1 2)'), (2, NULL);",
    );
    logical_backup(&env, &src, "postgres");
    let pg_dump_file = env.path().join("postgres.dump");
    env.ok(&[
        "export",
        "latest",
        "--format",
        "custom",
        "-o",
        pg_dump_file.to_str().unwrap(),
    ]);
    give_to_postgres(&pg_dump_file);
    let third = Cluster::new(&env, "third");
    let load = third
        .client("pg_restore")
        .args(["--exit-on-error", "--no-owner", "-d", "postgres"])
        .arg(&pg_dump_file)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert_eq!(third.psql("SELECT count(*) FROM public.notes"), "2");
}

/// Starts PgBouncer as the postgres user in transaction mode in front of
/// `c`; returns its port and the process.
fn pgbouncer(env: &Env, c: &Cluster) -> (u16, std::process::Child) {
    let dir = env.path().join("pgbouncer");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let ini = dir.join("pgbouncer.ini");
    std::fs::write(
        &ini,
        format!(
            "[databases]\n* = host={} port={} user=postgres\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = any\npool_mode = transaction\n\
             default_pool_size = 4\nlogfile = {}\npidfile = {}\n",
            c.socket.display(),
            c.port,
            dir.join("pgbouncer.log").display(),
            dir.join("pgbouncer.pid").display()
        ),
    )
    .unwrap();
    give_to_postgres(&dir);
    let mut child = Command::new("runuser")
        .args(["-u", "postgres", "--", "pgbouncer"])
        .arg(&ini)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (port, child);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "pgbouncer did not start: {}",
        std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
    );
}

/// User objects and roles of the platform in `db` of `c`, to prove nothing was written.
fn nothing_written(c: &Cluster, db: &str) {
    assert_eq!(
        c.psql_db(
            db,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
        ),
        "0"
    );
    assert_eq!(
        c.psql_db(db, "SELECT string_agg(nspname, ',') FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"),
        "public"
    );
    assert_eq!(
        c.psql_db(db, "SELECT string_agg(extname, ',') FROM pg_extension"),
        "plpgsql"
    );
    assert_eq!(
        c.psql("SELECT count(*) FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'authenticator', 'supabase_admin')"),
        "0"
    );
}

#[test]
fn restores_that_cannot_succeed_are_refused_or_undone() {
    let env = Env::fs();
    env.init();
    let src = platform(&env);
    logical_backup(&env, &src, "app");

    // A target that cannot create pg_cron (not preloaded): refused with the
    // reason, before anything is written.
    let plain = Cluster::new(&env, "nocron");
    plain.psql("CREATE DATABASE app");
    let out = restore(&env, &plain, "app", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot create the extension") && out.stderr.contains("pg_cron"),
        "{}",
        out.stderr
    );
    nothing_written(&plain, "app");

    // Through a transaction-mode pooler: refused, naming what to use.
    let (port, mut bouncer) = pgbouncer(&env, &plain);
    let ci = format!("host=127.0.0.1 port={port} user=postgres dbname=app sslmode=disable");
    let out = env.run(&["restore", "postgres", "--logical", "latest", "--db", &ci]);
    let _ = bouncer.kill();
    let _ = bouncer.wait();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("transaction-mode connection pooler")
            && out.stderr.contains("session-mode"),
        "{}",
        out.stderr
    );
    nothing_written(&plain, "app");

    // A restore that fails part way (a guard refuses one table) is undone:
    // the target is empty again and the roles it created are gone.
    let target = Cluster::with(&env, "guarded", "postgres", PG_CRON);
    target.psql("CREATE DATABASE app");
    target.script(
        "app",
        "CREATE FUNCTION pg_catalog.lifeboat_test_guard() RETURNS event_trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() \
                          WHERE object_identity = 'public.parcels') THEN \
             RAISE EXCEPTION 'no parcels here'; END IF; END $$; \
         CREATE EVENT TRIGGER lifeboat_test_guard ON ddl_command_end WHEN TAG IN ('CREATE TABLE') \
             EXECUTE FUNCTION pg_catalog.lifeboat_test_guard();",
    );
    let out = restore(&env, &target, "app", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("no parcels here") && out.stderr.contains("removed again"),
        "{}",
        out.stderr
    );
    nothing_written(&target, "app");
}

#[test]
fn a_django_schema_comes_back_identical() {
    let env = Env::fs();
    env.init();
    let src = Cluster::new(&env, "django");
    src.psql("CREATE DATABASE shop");
    let python = std::env::var("LIFEBOAT_TEST_PYTHON").expect(
        "LIFEBOAT_TEST_PYTHON is not set: run the suite with scripts/test.sh, which installs Django",
    );
    let migrate = format!(
        "import django\nfrom django.conf import settings\n\
         settings.configure(INSTALLED_APPS=['django.contrib.auth', 'django.contrib.contenttypes', \
         'django.contrib.sessions', 'django.contrib.admin', 'django.contrib.messages'], \
         DATABASES={{'default': {{'ENGINE': 'django.db.backends.postgresql', 'NAME': 'shop', \
         'USER': 'postgres', 'HOST': '{}', 'PORT': '{}'}}}}, USE_TZ=True)\n\
         django.setup()\nfrom django.core.management import call_command\n\
         call_command('migrate', verbosity=0)\n\
         from django.contrib.auth.models import User, Group\n\
         g = Group.objects.create(name='staff')\n\
         u = User.objects.create_superuser('admin', 'admin@example.com', 'a-password')\n\
         u.groups.add(g)\n",
        src.socket.display(),
        src.port
    );
    let out = Command::new(&python)
        .arg("-c")
        .arg(&migrate)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "django migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables: u32 = src
        .psql_db(
            "shop",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        )
        .parse()
        .unwrap();
    assert!(tables >= 10, "{tables} tables");
    logical_backup(&env, &src, "shop");
    let fresh = Cluster::new(&env, "fresh");
    fresh.psql("CREATE DATABASE shop");
    let out = restore(&env, &fresh, "shop", &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_same_text(
        "source",
        &src.pg_dump("shop", &["--create"]),
        "restored",
        &fresh.pg_dump("shop", &["--create"]),
    );
}

#[test]
fn a_base_backup_without_db_names_the_superuser_to_use() {
    let env = Env::fs();
    env.init();
    let c = Cluster::with(&env, "admin", "supabase_admin", "");
    c.psql("CREATE ROLE postgres LOGIN");
    let out = env.run_with(
        &[
            ("PGHOST", c.socket.to_str().unwrap()),
            ("PGPORT", &c.port.to_string()),
        ],
        &["backup", "postgres", "--pgdata", c.data.to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("supabase_admin") && out.stderr.contains("pg_backup_start"),
        "{}",
        out.stderr
    );
    let out = env.run(&[
        "backup",
        "postgres",
        "--pgdata",
        c.data.to_str().unwrap(),
        "--db",
        &c.conninfo(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
