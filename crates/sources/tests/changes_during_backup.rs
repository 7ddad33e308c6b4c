//! Objects that change or disappear while a bucket backup reads them, and
//! a snapshot whose keys would escape a restore directory. Against the S3
//! test server; the bucket is changed by boto3 (AWS's SDK) from inside the
//! backup's progress events, at a moment the test chooses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lifeboat_format::keyslot::KdfCost;
use lifeboat_format::snapshot::SourceKind;
use lifeboat_format::tree::ObjectAttrs;
use lifeboat_repo::backup::TreeSource;
use lifeboat_repo::progress::{DynProgress, Event, Progress, none};
use lifeboat_repo::{BackupOptions, InitOptions, Repository};
use lifeboat_sources::bucket::{
    BucketClient, BucketSpec, BucketTarget, ReadOptions, apply_restore, backup_bucket,
    plan_restore, snapshot_objects,
};
use lifeboat_storage::DynStorage;
use lifeboat_storage::memory::MemoryStorage;

fn endpoint() -> String {
    std::env::var("LIFEBOAT_TEST_S3_ENDPOINT")
        .expect("LIFEBOAT_TEST_S3_ENDPOINT is not set: run the suite with scripts/test.sh")
}

/// Runs the boto3 helper the command-line tests use.
fn boto(args: &[&str]) -> String {
    let python = std::env::var("LIFEBOAT_TEST_PYTHON")
        .expect("LIFEBOAT_TEST_PYTHON is not set: run the suite with scripts/test.sh");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/fixtures/bucket.py");
    let out = Command::new(python)
        .arg(script)
        .arg(endpoint())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fresh_bucket(name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let suffix: String = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    let bucket = format!("{name}-{suffix}");
    boto(&["create", &bucket]);
    bucket
}

async fn repository() -> Repository {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let init = InitOptions {
        kdf: KdfCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    Repository::init(storage, "memory", b"pw", init)
        .await
        .unwrap()
}

fn client(bucket: &str) -> BucketClient {
    BucketClient::new(&BucketSpec {
        endpoint: Some(endpoint()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..BucketSpec::parse(&format!("s3://{bucket}")).unwrap()
    })
    .unwrap()
}

/// Runs `action` once, the first time the backup has stored a chunk of
/// object data (the big object is then partly read).
struct OnceMidRead {
    fired: AtomicBool,
    action: Box<dyn Fn() + Send + Sync>,
}

impl Progress for OnceMidRead {
    fn event(&self, event: Event) {
        if let Event::Advance { items: 0, bytes } = event
            && bytes > 0
            && !self.fired.swap(true, Ordering::SeqCst)
        {
            (self.action)();
        }
    }
}

/// Small ranges, one object at a time: the big object is read in 24 ranges.
const READ: ReadOptions = ReadOptions {
    parallel: 1,
    range_bytes: 1 << 20,
};

/// A bucket with a 24 MiB `big.bin` and a small `small.txt`, backed up
/// while `change` (boto3 arguments, the bucket added after the verb) runs
/// once in the middle of reading `big.bin`. Returns the bucket, the
/// repository and what the snapshot recorded.
async fn backup_changed_mid_read(
    name: &str,
    change: &'static [&'static str],
) -> (String, Repository, lifeboat_format::snapshot::BucketBackup) {
    let bucket = fresh_bucket(name);
    boto(&["put", &bucket, "big.bin", &(24 << 20).to_string()]);
    boto(&["put", &bucket, "small.txt", "100"]);
    let repo = repository().await;
    let b = bucket.clone();
    let progress: DynProgress = Arc::new(OnceMidRead {
        fired: AtomicBool::new(false),
        action: Box::new(move || {
            let mut args = vec![change[0], b.as_str()];
            args.extend_from_slice(&change[1..]);
            boto(&args);
        }),
    });
    let c = client(&bucket);
    let result = backup_bucket(&repo, &c, &BackupOptions::default(), READ, progress)
        .await
        .unwrap();
    let record = result.snapshot.bucket.clone().unwrap();
    (bucket, repo, record)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_rewritten_mid_read_is_read_again_whole() {
    // The same key, a different size and content.
    let (bucket, repo, record) =
        backup_changed_mid_read("rewritten", &["put", "big.bin", "20971520"]).await;
    assert!(record.warnings.is_empty(), "{:?}", record.warnings);
    assert_eq!(record.objects, 2);
    // The first read was cut short by If-Match and the object read again.
    assert!(record.get_requests > 2 + 20, "{record:?}");

    // What the snapshot holds is exactly the new version.
    let dir = tempfile::tempdir().unwrap();
    let restored = restore_to_dir(&repo, dir.path()).await;
    assert!(restored.refused.is_empty());
    let manifest: serde_json::Value = serde_json::from_str(&boto(&["manifest", &bucket])).unwrap();
    let big = std::fs::read(dir.path().join("big.bin")).unwrap();
    assert_eq!(big.len() as u64, 20 << 20);
    assert_eq!(
        sha256(&big),
        manifest["big.bin"]["sha256"].as_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_deleted_mid_read_is_left_out_with_a_warning() {
    let (_, repo, record) = backup_changed_mid_read("deleted", &["delete", "big.bin"]).await;
    assert_eq!(record.objects, 1);
    assert_eq!(record.warnings.len(), 1, "{:?}", record.warnings);
    assert!(
        record.warnings[0].contains("big.bin"),
        "{:?}",
        record.warnings
    );
    assert!(
        record.warnings[0].contains("deleted"),
        "{:?}",
        record.warnings
    );
    let dir = tempfile::tempdir().unwrap();
    restore_to_dir(&repo, dir.path()).await;
    assert!(!dir.path().join("big.bin").exists());
    assert_eq!(
        std::fs::read(dir.path().join("small.txt")).unwrap().len(),
        100
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_that_would_escape_a_directory_are_refused_on_restore() {
    // No store lets us read such a key over HTTP unchanged, so the snapshot
    // is made the way a tampered or foreign one could be.
    let repo = repository().await;
    let source = TreeSource::virtual_tree(SourceKind::Bucket, vec!["s3://crafted".into()]);
    let mut backup = repo
        .start_backup(source, &BackupOptions::default(), none())
        .await
        .unwrap();
    let store = backup.stream_store();
    for key in ["../../etc/passwd", "/etc/shadow", "fine/file.txt"] {
        let s = store.clone();
        let stored = tokio::task::spawn_blocking(move || s.store_blocking(&b"data"[..]))
            .await
            .unwrap()
            .unwrap();
        let attrs = ObjectAttrs {
            key: key.into(),
            etag: "\"x\"".into(),
            hash: blake3::hash(b"data").to_hex().to_string(),
            ..ObjectAttrs::default()
        };
        let at: PathBuf = key.replace("..", "%2E%2E").trim_start_matches('/').into();
        backup.add_object(&at, stored, 0, attrs, false).unwrap();
    }
    drop(store);
    backup.finish(|_| {}).await.unwrap();

    let parent = tempfile::tempdir().unwrap();
    let target = parent.path().join("a/b/restore");
    let report = restore_to_dir(&repo, &target).await;
    assert_eq!(report.refused.len(), 2, "{:?}", report.refused);
    assert!(
        report
            .refused
            .iter()
            .any(|r| r.contains("../../etc/passwd"))
    );
    assert_eq!(report.written, 1);
    assert!(target.join("fine/file.txt").exists());
    assert!(!parent.path().join("a/etc/passwd").exists());
    assert!(!parent.path().join("etc").exists());
}

async fn restore_to_dir(repo: &Repository, dir: &Path) -> lifeboat_sources::bucket::RestoreReport {
    let entry = repo.list_snapshots(&none()).await.unwrap().pop().unwrap();
    let index = Arc::new(repo.load_index(&none()).await.unwrap().index);
    let objects = snapshot_objects(repo, &index, &entry).await.unwrap();
    let target = BucketTarget::Directory(dir.to_path_buf());
    let plan = plan_restore(objects, &target, false).await.unwrap();
    apply_restore(repo, index, plan, &target, none())
        .await
        .unwrap()
}

fn sha256(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
