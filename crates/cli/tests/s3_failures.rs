//! S3 failure modes: wrong credentials and an endpoint that is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::{Env, PASSWORD};

fn auth_env(secret: &str) -> Env {
    let endpoint = std::env::var("LIFEBOAT_TEST_S3_AUTH_ENDPOINT")
        .expect("LIFEBOAT_TEST_S3_AUTH_ENDPOINT is not set: run the suite with scripts/test.sh");
    let bucket = std::env::var("LIFEBOAT_TEST_S3_AUTH_BUCKET").unwrap();
    let key_id = std::env::var("LIFEBOAT_TEST_S3_AUTH_KEY_ID").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace('.', "");
    Env {
        repo: format!("s3://{bucket}/{name}"),
        dir,
        vars: vec![
            ("LIFEBOAT_PASSWORD".into(), PASSWORD.into()),
            ("AWS_ENDPOINT_URL".into(), endpoint),
            ("AWS_ACCESS_KEY_ID".into(), key_id),
            ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ],
    }
}

#[test]
fn wrong_s3_credentials_exit_3_with_a_clear_message() {
    let good = auth_env(&std::env::var("LIFEBOAT_TEST_S3_AUTH_SECRET").unwrap());
    good.init();
    let src = good.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.env"), b"A=1").unwrap();
    good.backup(&[&src]);

    let bad = Env {
        vars: auth_env("wrong-secret").vars,
        repo: good.repo.clone(),
        dir: tempfile::tempdir().unwrap(),
    };
    let out = bad.run(&["snapshots"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("access denied"), "{}", out.stderr);
    assert!(
        out.stderr.contains("AWS_SECRET_ACCESS_KEY"),
        "{}",
        out.stderr
    );
    // The good credentials still see an intact repository.
    good.ok(&["check", "--read-data"]);
    assert!(good.ok(&["snapshots"]).stdout.contains("1 snapshot"));
}

#[test]
fn an_s3_endpoint_that_is_down_is_retried_then_fails_with_exit_3() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::s3("down");
    let settings = env.path().join("lifeboat.toml");
    std::fs::write(&settings, "[storage]\nretries = 2\n").unwrap();
    let started = Instant::now();
    let out = env.run_with(
        &[
            ("AWS_ENDPOINT_URL", &format!("http://127.0.0.1:{port}")),
            ("LIFEBOAT_CONFIG", settings.to_str().unwrap()),
        ],
        &["snapshots"],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
    assert!(
        out.stderr.contains("gave up after 3 attempts"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed().as_secs() < 60);
}
