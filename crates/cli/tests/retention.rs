//! `forget` with retention rules and pins, against a real repository.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Env;

fn snapshot_count(env: &Env) -> usize {
    env.ok(&["--json", "snapshots"])
        .json()
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn forget_keeps_what_the_rules_and_pins_say() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut ids = Vec::new();
    for (i, kind) in [
        "scheduled",
        "pre-deploy",
        "scheduled",
        "pre-deploy",
        "manual",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(src.join("f"), format!("version {i}")).unwrap();
        let j = env
            .ok(&[
                "--json",
                "backup",
                "files",
                src.to_str().unwrap(),
                "--kind",
                kind,
            ])
            .json();
        ids.push(j["id"].as_str().unwrap().to_string());
    }
    env.ok(&["pin", &ids[0], "--reason", "legal hold: case 42"]);

    // A dry run decides but changes nothing.
    let plan = env
        .ok(&["--json", "forget", "--keep-last", "2", "--dry-run"])
        .json();
    assert_eq!(plan["kept"], 3);
    assert_eq!(plan["removed"], 2);
    let decisions = plan["sources"][0]["snapshots"].as_array().unwrap();
    let oldest = decisions.last().unwrap();
    assert_eq!(oldest["id"], ids[0].as_str());
    assert_eq!(oldest["reasons"][0]["rule"], "pinned");
    assert_eq!(snapshot_count(&env), 5);

    // The runbook policy: the newest of the day, pre-deploy ones, the pin.
    let plan = env.ok(&["--json", "forget", "--dry-run"]).json();
    let kept: Vec<&str> = plan["sources"][0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        [
            ids[4].as_str(),
            ids[3].as_str(),
            ids[1].as_str(),
            ids[0].as_str()
        ]
    );

    // For real: the pinned snapshot survives, the others removed are gone.
    let out = env.ok(&["forget", "--keep-last", "2"]);
    assert!(out.stdout.contains("remove"), "{}", out.stdout);
    assert_eq!(snapshot_count(&env), 3);
    let target = env.path().join("restored");
    env.ok(&[
        "restore",
        "files",
        &ids[0],
        "--target",
        target.to_str().unwrap(),
    ]);
    let restored = target.join(src.strip_prefix("/").unwrap()).join("f");
    assert_eq!(std::fs::read_to_string(restored).unwrap(), "version 0");
    env.ok(&["check", "--read-data"]);

    // Unpinned, it goes too.
    env.ok(&["unpin", &ids[0]]);
    assert_eq!(env.run(&["unpin", &ids[0]]).code, 2);
    env.ok(&["forget", "--keep-last", "2"]);
    assert_eq!(snapshot_count(&env), 2);

    // Bad rules are refused before anything happens.
    let out = env.run(&["forget", "--keep-within", "soon"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = env.run(&["forget", "--keep-kind", "nightly=3d"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = env.run(&["forget", "--keep-last", "0"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(snapshot_count(&env), 2);
}

#[test]
fn lifeboat_toml_sets_a_policy_per_source() {
    let env = Env::fs();
    env.init();
    let (a, b) = (env.path().join("app-config"), env.path().join("uploads"));
    for dir in [&a, &b] {
        std::fs::create_dir_all(dir).unwrap();
        for i in 0..4 {
            std::fs::write(dir.join("f"), format!("version {i}")).unwrap();
            env.backup(&[dir]);
        }
    }
    let toml = env.path().join("lifeboat.toml");
    std::fs::write(
        &toml,
        "[retention]\nkeep_last = 1\npitr_window = \"7d\"\n\n\
         [[retention.source]]\nmatch = \"uploads\"\nkeep_last = 3\n",
    )
    .unwrap();
    let cfg = toml.to_str().unwrap();
    let plan = env.ok(&["--json", "--config", cfg, "forget"]).json();
    assert_eq!(plan["kept"], 4, "{plan}");
    let sources = plan["sources"].as_array().unwrap();
    let uploads = sources
        .iter()
        .find(|s| s["source"].as_str().unwrap().contains("uploads"))
        .unwrap();
    assert_eq!(uploads["matched"], "uploads");
    let kept = |s: &serde_json::Value| {
        s["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["keep"] == true)
            .count()
    };
    assert_eq!(kept(uploads), 3);
    let other = sources.iter().find(|s| s["matched"].is_null()).unwrap();
    assert_eq!(kept(other), 1);
    assert_eq!(snapshot_count(&env), 4);

    // Flags win over the file; a source rule without `match` is refused.
    let plan = env
        .ok(&[
            "--json",
            "--config",
            cfg,
            "forget",
            "--dry-run",
            "--keep-last",
            "2",
        ])
        .json();
    assert_eq!(plan["kept"], 3, "{plan}");
    std::fs::write(&toml, "[retention]\n[[retention.source]]\nkeep_last = 3\n").unwrap();
    let out = env.run(&["--config", cfg, "forget"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("needs `match`"), "{}", out.stderr);
    assert_eq!(snapshot_count(&env), 4);
}
