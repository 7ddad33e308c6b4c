//! The storage contract against a real S3-compatible server (the test
//! server the test command starts on 127.0.0.1), bare and inside the
//! standard wrapper stack (retry and concurrency limit).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lifeboat_storage::s3::S3Storage;
use lifeboat_storage::{DynStorage, OpenOptions, contract, wrap};

fn endpoint_and_bucket() -> (String, String) {
    let endpoint = std::env::var("LIFEBOAT_TEST_S3_ENDPOINT").expect(
        "LIFEBOAT_TEST_S3_ENDPOINT is not set: run the suite with scripts/test.sh, which starts the S3 test server",
    );
    let bucket =
        std::env::var("LIFEBOAT_TEST_S3_BUCKET").unwrap_or_else(|_| "lifeboat-test".into());
    (endpoint, bucket)
}

/// A fresh, empty prefix of the test bucket for each case.
fn fresh_store(run: &str, n: &AtomicU64) -> DynStorage {
    let (endpoint, bucket) = endpoint_and_bucket();
    let prefix = format!("contract-{run}-{}", n.fetch_add(1, Ordering::Relaxed));
    Arc::new(
        S3Storage::with_settings(
            &bucket,
            &prefix,
            Some(&endpoint),
            "us-east-1",
            "test",
            "test",
        )
        .unwrap(),
    )
}

fn run_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_s3_driver_keeps_the_contract() {
    let (run, n) = (run_id(), AtomicU64::new(0));
    contract::assert_conforms(|| {
        let s = fresh_store(&run, &n);
        async move { s }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_s3_driver_keeps_it_inside_retry_and_limit() {
    let (run, n) = (run_id(), AtomicU64::new(0));
    contract::assert_conforms(|| {
        let s = wrap(
            fresh_store(&format!("{run}-wrapped"), &n),
            &OpenOptions::default(),
        );
        async move { s }
    })
    .await;
}
