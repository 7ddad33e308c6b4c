//! Shared helpers for the command-line tests: a repository in a temp
//! directory or on the S3 test server, running the real `lifeboat` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pg;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASSWORD: &str = "correct horse battery staple";

/// The result of one `lifeboat` run.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// A test repository plus a scratch directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: String,
    pub vars: Vec<(String, String)>,
}

/// The S3 test server's endpoint; the test command starts it.
pub fn s3_endpoint() -> String {
    std::env::var("LIFEBOAT_TEST_S3_ENDPOINT")
        .expect("LIFEBOAT_TEST_S3_ENDPOINT is not set: run the suite with scripts/test.sh, which starts the S3 test server")
}

impl Env {
    /// A repository location in a fresh temp directory (not yet initialised).
    pub fn fs() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo").display().to_string();
        Self {
            dir,
            repo,
            vars: vec![("LIFEBOAT_PASSWORD".into(), PASSWORD.into())],
        }
    }

    /// A repository under a fresh prefix of the S3 test server's bucket.
    pub fn s3(name: &str) -> Self {
        let bucket =
            std::env::var("LIFEBOAT_TEST_S3_BUCKET").unwrap_or_else(|_| "lifeboat-test".into());
        Self::s3_in(&bucket, name)
    }

    /// A repository under a fresh prefix of the S3 test server's bucket
    /// with Object Lock (a default retention of one day).
    pub fn s3_locked(name: &str) -> Self {
        let bucket = std::env::var("LIFEBOAT_TEST_S3_LOCK_BUCKET")
            .unwrap_or_else(|_| "lifeboat-locked".into());
        Self::s3_in(&bucket, name)
    }

    /// A repository under a fresh prefix of `bucket` on the S3 test server.
    pub fn s3_in(bucket: &str, name: &str) -> Self {
        let endpoint = s3_endpoint();
        let dir = tempfile::tempdir().unwrap();
        // The temp directory's random name keeps prefixes unique across runs.
        let suffix: String = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        Self {
            dir,
            repo: format!("s3://{bucket}/{name}-{suffix}"),
            vars: vec![
                ("LIFEBOAT_PASSWORD".into(), PASSWORD.into()),
                ("AWS_ENDPOINT_URL".into(), endpoint),
                ("AWS_ACCESS_KEY_ID".into(), "test".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
                ("AWS_REGION".into(), "us-east-1".into()),
            ],
        }
    }

    /// The same repository with one setting changed (another passphrase,
    /// another endpoint), and a scratch directory of its own.
    pub fn with_var(&self, key: &str, value: &str) -> Env {
        let mut vars: Vec<(String, String)> = self
            .vars
            .iter()
            .filter(|(k, _)| k != key)
            .cloned()
            .collect();
        vars.push((key.to_string(), value.to_string()));
        Env {
            dir: tempfile::tempdir().unwrap(),
            repo: self.repo.clone(),
            vars,
        }
    }

    /// The scratch directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The local repository directory (fs repositories only).
    pub fn repo_dir(&self) -> PathBuf {
        PathBuf::from(&self.repo)
    }

    /// A `lifeboat` command with this environment and nothing inherited that
    /// could change its behaviour.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        self.configure(&mut c);
        c
    }

    /// Clears inherited lifeboat and AWS settings and applies this environment's.
    fn configure(&self, c: &mut Command) {
        for (k, _) in std::env::vars() {
            if k.starts_with("LIFEBOAT_") || k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        if let Ok(bin) = std::env::var("LIFEBOAT_PG_BIN") {
            c.env("LIFEBOAT_PG_BIN", bin);
        }
        c.env("LIFEBOAT_REPOSITORY", &self.repo);
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
    }

    /// Runs `lifeboat ARGS`.
    pub fn run(&self, args: &[&str]) -> Out {
        Out::from(self.cmd().args(args).output().unwrap())
    }

    /// Runs `lifeboat ARGS` with extra environment variables.
    pub fn run_with(&self, vars: &[(&str, &str)], args: &[&str]) -> Out {
        let mut c = self.cmd();
        for (k, v) in vars {
            c.env(k, v);
        }
        Out::from(c.args(args).output().unwrap())
    }

    /// Runs `lifeboat ARGS` as the postgres user (as PostgreSQL's archiver does).
    pub fn run_as_postgres(&self, args: &[&str]) -> Out {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", env!("CARGO_BIN_EXE_lifeboat")]);
        self.configure(&mut c);
        Out::from(c.args(args).output().unwrap())
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_eq!(
            out.code, 0,
            "lifeboat {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out
    }

    /// `copy --to TO --init` with a cheap KDF, the new repository's
    /// passphrase given by `LIFEBOAT_TO_PASSWORD`.
    pub fn copy_init(&self, to: &str, to_password: &str) -> Out {
        self.run_with(
            &[("LIFEBOAT_TO_PASSWORD", to_password)],
            &[
                "copy",
                "--to",
                to,
                "--init",
                "--kdf-memory",
                "19",
                "--kdf-iterations",
                "2",
            ],
        )
    }

    /// `user add NAME --role ROLE` for the daemon of `config` keeping its
    /// state in `state`, with the password "a long passphrase".
    pub fn try_add_user(&self, config: &str, state: &str, name: &str, role: &str) -> Out {
        self.run_with(
            &[("LIFEBOAT_NEW_PASSWORD", "a long passphrase")],
            &[
                "--config",
                config,
                "user",
                "add",
                name,
                "--role",
                role,
                "--state-dir",
                state,
            ],
        )
    }

    /// [`Env::try_add_user`], which must succeed.
    pub fn add_user(&self, config: &str, state: &str, name: &str, role: &str) {
        let out = self.try_add_user(config, state, name, role);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }

    /// A new API token for `name`.
    pub fn token(&self, config: &str, state: &str, name: &str) -> String {
        let out = self.ok(&[
            "--config",
            config,
            "token",
            "create",
            name,
            "--state-dir",
            state,
        ]);
        out.stdout.trim().to_string()
    }

    /// The entries of the repository's own audit log.
    pub fn audit_entries(&self) -> Vec<serde_json::Value> {
        let logs = self.ok(&["--json", "audit"]).json();
        logs[0]["entries"].as_array().cloned().unwrap_or_default()
    }

    /// Initialises the repository with a cheap KDF (tests only).
    pub fn init(&self) {
        self.ok(&["init", "--kdf-memory", "19", "--kdf-iterations", "2"]);
    }

    /// Backs up `paths` and returns the snapshot JSON.
    pub fn backup(&self, paths: &[&Path]) -> serde_json::Value {
        let mut args: Vec<String> = vec!["--json".into(), "backup".into(), "files".into()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&a).json()
    }
}

/// Whether an audit entry records `action` by an actor whose name starts
/// with `actor`, ending in `outcome`.
pub fn audited(entries: &[serde_json::Value], action: &str, actor: &str, outcome: &str) -> bool {
    entries.iter().any(|e| {
        e["action"] == action
            && e["actor"].as_str().unwrap_or("").starts_with(actor)
            && e["outcome"] == outcome
    })
}

/// Deterministic pseudo-random bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `diff -r --no-dereference` of two trees must be clean.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "diff -r {} {} found differences:\n{}{}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mode, mtime, size and link target of every entry below `root`.
pub fn metadata_map(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let link = if m.file_type().is_symlink() {
            format!(" -> {:?}", fs::read_link(&p).unwrap())
        } else {
            String::new()
        };
        let size = if m.is_file() { m.len() } else { 0 };
        out.insert(
            rel,
            format!(
                "{:o} {}.{:09} {} {}:{}{}",
                m.permissions().mode() & 0o7777,
                m.mtime(),
                m.mtime_nsec(),
                size,
                m.uid(),
                m.gid(),
                link
            ),
        );
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

/// Restored metadata must equal the source's (the root directory itself excepted).
pub fn assert_same_metadata(a: &Path, b: &Path) {
    let mut ma = metadata_map(a);
    let mut mb = metadata_map(b);
    ma.remove(Path::new(""));
    mb.remove(Path::new(""));
    for (k, v) in &ma {
        assert_eq!(Some(v), mb.get(k), "metadata of {} differs", k.display());
    }
    assert_eq!(ma.len(), mb.len(), "different entry counts");
}

/// Every object in a local repository with its bytes, to prove nothing changed.
pub fn repo_contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(&path).unwrap(),
                );
            }
        }
    }
    out
}

/// The pack files of a local repository, largest first.
pub fn packs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = repo_contents(dir)
        .into_iter()
        .filter(|(k, _)| k.starts_with("data"))
        .map(|(k, b)| (b.len() as u64, dir.join(k)))
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.0));
    v.into_iter().map(|(_, p)| p).collect()
}

/// Files under `sub` of a local repository.
pub fn objects(dir: &Path, sub: &str) -> Vec<PathBuf> {
    repo_contents(dir)
        .into_keys()
        .filter(|k| k.starts_with(sub))
        .map(|k| dir.join(k))
        .collect()
}

/// Builds a tree with the awkward cases: empty, 1-byte, exactly-one-chunk and
/// many-chunk files, a sparse file, binary data, symlinks (relative, absolute,
/// dangling), unusual names, and unusual permissions.
pub fn make_sample_tree(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("one-byte"), b"x").unwrap();
    // Below the 512 KiB minimum chunk size: exactly one chunk.
    fs::write(root.join("one-chunk.bin"), pseudo_random(300 * 1024, 1)).unwrap();
    // A run of zeros is cut at the 8 MiB maximum: exactly one full chunk.
    fs::write(root.join("one-max-chunk.zero"), vec![0u8; 8 << 20]).unwrap();
    fs::write(root.join("sub/many-chunks.bin"), pseudo_random(12 << 20, 2)).unwrap();
    fs::write(
        root.join("sub/deeper/text.env"),
        b"DATABASE_URL=postgres://app@db/app\nSECRET=s3cr3t\n".repeat(50),
    )
    .unwrap();
    let sparse = fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"middle", 32 << 20).unwrap();
    sparse.write_all_at(b"end", (64 << 20) - 3).unwrap();
    drop(sparse);
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    fs::write(root.join("binary.dat"), binary).unwrap();
    std::os::unix::fs::symlink("sub/deeper/text.env", root.join("link-relative")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("link-absolute")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("link-dangling")).unwrap();
    for name in [
        &b"with space"[..],
        b"new\nline",
        b"caf\xc3\xa9 \xe2\x98\x83",
        b"-leading-dash",
        b"*star?",
        b"bad\xff\xfeutf8",
        b".hidden",
    ] {
        fs::write(root.join(std::ffi::OsStr::from_bytes(name)), name).unwrap();
    }
    fs::write(root.join("private.key"), b"secret").unwrap();
    fs::set_permissions(root.join("private.key"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(root.join("locked")).unwrap();
    fs::write(root.join("locked/inside"), b"inside").unwrap();
    fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::create_dir(root.join("empty-dir")).unwrap();
}
