//! The dashboard in a real browser: Debian's Chromium driven over WebDriver
//! (chromedriver), against a real daemon, PostgreSQL cluster and repository.
//! Screenshots of the main pages go to target/test-logs/dashboard/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use common::pg::{Cluster, free_port};
use fantoccini::{Client, ClientBuilder, Locator};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("waited 90 s for {what}");
}

/// Where screenshots go: beside the other test logs.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../test-logs/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

async fn sign_in(c: &Client, base: &str, user: &str) {
    c.delete_all_cookies().await.unwrap();
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Id("user"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("a long passphrase")
        .await
        .unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let Ok(header) = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("header.top"))
        .await
    else {
        panic!(
            "not signed in as {user}: at {} the page is {}",
            c.current_url().await.unwrap(),
            c.source().await.unwrap()
        );
    };
    let body = header.text().await.unwrap();
    assert!(body.contains(user), "not signed in as {user}: {body}");
}

async fn page_text(c: &Client) -> String {
    c.find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A POST with this browser's session cookie but no CSRF token, as a
/// forged cross-site form would send; returns the status.
fn forged_post(port: u16, path: &str, session: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = "hash=x";
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: lb_session={session}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn an_approver_approves_a_protected_restore_in_the_browser_and_everyone_sees_the_outcome() {
    let env = Env::fs();
    env.init();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE DATABASE app");
    c.psql_db(
        "app",
        "CREATE TABLE t AS SELECT generate_series(1, 1000) AS v",
    );
    let conn = c.conninfo_db("app");
    let cfg = env.path().join("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\nname = \"app\"\nkind = \"postgres-logical\"\ndb = \"{conn}\"\nprotected = true\n\n\
             [[job]]\nrun = \"backup\"\nsource = \"app\"\nevery = \"1h\"\n\n\
             [[job]]\nrun = \"drill\"\nsource = \"app\"\nevery = \"7d\"\n"
        ),
    )
    .unwrap();
    let cf = cfg.to_str().unwrap();
    env.ok(&["--config", cf, "--source", "app", "backup"]);
    c.psql_db("app", "DELETE FROM t WHERE v > 10");
    let state = env.path().join("state");
    let s = state.to_str().unwrap();
    for (name, role) in [
        ("rita", "restorer"),
        ("ann", "approver"),
        ("vera", "viewer"),
        ("otto", "operator"),
    ] {
        env.add_user(cf, s, name, role);
    }
    let rita = env.token(cf, s, "rita");

    // The daemon.
    let port = free_port();
    let log = std::fs::File::create(env.path().join("serve.log")).unwrap();
    let _daemon = Killed(
        env.cmd()
            .args([
                "--config",
                cf,
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--state-dir",
                s,
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // Chromium keeps Secure cookies from plain HTTP only on localhost.
    let base = format!("http://localhost:{port}");
    wait_for("the daemon", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let url = base.clone();

    // A real browser.
    let driver_port = free_port();
    let _driver = Killed(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; the test command installs it)"),
    );
    wait_for("chromedriver", || {
        std::net::TcpStream::connect(("127.0.0.1", driver_port)).is_ok()
    });
    let profile = tempfile::tempdir().unwrap();
    let caps: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }))
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .unwrap();

        // Without a session every page sends the browser to the login.
        b.goto(&format!("{base}/approvals")).await.unwrap();
        assert!(b.current_url().await.unwrap().as_str().ends_with("/login"));
        shot(&b, "login").await;

        // The restorer asks, on the protected source's page, for its
        // restore from the newest backup.
        sign_in(&b, &base, "rita").await;
        b.goto(&format!("{base}/sources/app")).await.unwrap();
        let page = page_text(&b).await;
        assert!(
            page.contains("restore postgres latest --logical --db") && page.contains("--clean"),
            "{page}"
        );
        shot(&b, "source").await;
        b.find(Locator::Css("button.request"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let asked = b
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id("message"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let id = asked
            .strip_prefix("asked for request ")
            .and_then(|r| r.split(':').next())
            .unwrap_or_else(|| panic!("{asked}"))
            .to_string();

        // The approver signs in and sees the request on the overview.
        sign_in(&b, &base, "ann").await;
        let overview = page_text(&b).await;
        assert!(
            overview.contains("1 restore request(s) wait for approval"),
            "{overview}"
        );
        assert!(
            overview.contains("app") && overview.contains("protected"),
            "{overview}"
        );
        shot(&b, "overview").await;

        b.goto(&format!("{base}/approvals")).await.unwrap();
        let queue = page_text(&b).await;
        assert!(
            queue.contains(&format!("Request {id}")) && queue.contains("rita"),
            "{queue}"
        );
        shot(&b, "approvals").await;

        // A form without its CSRF token is refused, session or not.
        let cookie = b.get_named_cookie("lb_session").await.unwrap();
        let session = cookie.value().to_string();
        assert_eq!(
            forged_post(port, &format!("/approvals/{id}/approve"), &session),
            403
        );

        // The approver approves; the daemon restores.
        b.find(Locator::Css(&format!("#request-{id} button.approve")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let message = b
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id("message"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(message.contains("approved request"), "{message}");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            b.goto(&format!("{base}/approvals")).await.unwrap();
            if page_text(&b).await.contains("restored") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the approved restore did not end"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        shot(&b, "approvals-done").await;

        // The audit page lists all of it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            b.goto(&format!("{base}/audit")).await.unwrap();
            let audit = page_text(&b).await;
            if [
                "rita (dashboard)",
                "ann (dashboard)",
                "run approved request",
                "restore postgres",
                "chain intact",
            ]
            .iter()
            .all(|w| audit.contains(w))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the audit page lacks entries: {audit}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        shot(&b, "audit").await;

        // An operator starts a drill from the overview and follows it: it
        // shows as running, then its run names who asked for it, and the
        // drill chart holds its recovery time.
        sign_in(&b, &base, "otto").await;
        b.find(Locator::XPath("//form[contains(@action, 'drill')]//button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let mut seen_running = false;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            b.goto(&format!("{base}/")).await.unwrap();
            if page_text(&b).await.contains("running for") {
                if !seen_running {
                    shot(&b, "overview-running").await;
                }
                seen_running = true;
            }
            b.goto(&format!("{base}/runs")).await.unwrap();
            let runs = page_text(&b).await;
            if runs.contains("drill app · asked by otto (dashboard)")
                && runs.contains("recovered in")
            {
                break;
            }
            assert!(Instant::now() < deadline, "the drill did not end: {runs}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(seen_running, "the overview never showed the drill running");
        assert!(page_text(&b).await.contains("RTO target"));
        shot(&b, "runs").await;
        b.goto(&format!("{base}/sources/app")).await.unwrap();
        let page = page_text(&b).await;
        assert!(page.contains("The last 30 days"), "{page}");
        // An operator may not ask for restores: no form.
        assert!(!page.contains("Ask for this restore"), "{page}");

        // A viewer sees no control to run, restore or approve anything.
        sign_in(&b, &base, "vera").await;
        let buttons = b.find_all(Locator::Css("main button")).await.unwrap();
        assert!(buttons.is_empty(), "a viewer has {} buttons", buttons.len());
        b.goto(&format!("{base}/approvals")).await.unwrap();
        assert!(
            b.find_all(Locator::Css("button.approve"))
                .await
                .unwrap()
                .is_empty()
        );
        let viewer = b
            .get_named_cookie("lb_session")
            .await
            .unwrap()
            .value()
            .to_string();
        assert_eq!(forged_post(port, "/jobs/backup%20app/run", &viewer), 403);

        // Usable at phone width.
        b.set_window_size(390, 844).await.unwrap();
        b.goto(&format!("{base}/")).await.unwrap();
        shot(&b, "overview-phone").await;
        b.close().await.unwrap();
    });

    // The data is back, and the requester sees the outcome too.
    assert_eq!(c.psql_db("app", "SELECT count(*) FROM t").trim(), "1000");
    let seen = env.run_with(
        &[
            ("LIFEBOAT_TOKEN", rita.as_str()),
            ("LIFEBOAT_DAEMON", url.as_str()),
        ],
        &["--config", cf, "requests"],
    );
    assert!(
        seen.stdout.contains("(done)") && seen.stdout.contains("ended with exit code 0"),
        "{}",
        seen.stdout
    );
}
