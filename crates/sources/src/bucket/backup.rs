//! `backup bucket`: an incremental, deduplicated snapshot of a bucket.
//!
//! The bucket is listed first (nothing is registered in the repository if
//! that fails). Objects whose ETag, size and modification time equal the
//! parent snapshot's record are listed again without being downloaded;
//! the others are downloaded several at once and streamed through the
//! chunker, large ones in ranges. Every read carries `If-Match` with the
//! listed ETag, so an object that changes while it is read is noticed,
//! looked up again and re-read; one deleted meanwhile is left out with a
//! warning. A snapshot never holds parts of two versions of one object.

use std::io::Read;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lifeboat_format::snapshot::{BucketBackup, SourceKind};
use lifeboat_format::tree::ObjectAttrs;
use lifeboat_repo::backup::{StoredStream, StreamStore, TreeSource};
use lifeboat_repo::progress::{DynProgress, Event};
use lifeboat_repo::{BackupOptions, BackupResult, Repository};

use super::client::{BucketClient, Listed, attrs_of};
use super::error::{BucketError, Result};
use super::keys;
use super::listing::list_all;

/// Where drills restore bucket snapshots by default, inside the backed-up
/// bucket; backups leave it out.
pub const DRILL_PREFIX: &str = ".lifeboat-drills/";

/// Objects downloaded at once.
pub const DEFAULT_PARALLEL: usize = 8;
/// Objects larger than this are read in ranges of this size.
pub const RANGE_BYTES: u64 = 64 << 20;

/// How a bucket is read.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Objects downloaded at once.
    pub parallel: usize,
    /// Objects larger than this are read in ranges of this size, each
    /// checked against the listed ETag.
    pub range_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            parallel: DEFAULT_PARALLEL,
            range_bytes: RANGE_BYTES,
        }
    }
}
/// Reads of one object before it counts as changing too often.
const ATTEMPTS: usize = 3;

/// Backs up every object below `client`'s prefix into a snapshot of source
/// `bucket`.
pub async fn backup_bucket(
    repo: &Repository,
    client: &BucketClient,
    options: &BackupOptions,
    read: ReadOptions,
    progress: DynProgress,
) -> Result<BackupResult> {
    progress.event(Event::Phase("listing the bucket"));
    let (mut listed, list_requests) = list_all(client).await?;
    listed.retain(|o| !o.key.starts_with(DRILL_PREFIX));
    let source = TreeSource::virtual_tree(SourceKind::Bucket, vec![client.url().to_string()]);
    let mut backup = repo.start_backup(source, options, progress.clone()).await?;
    let dirs = keys::directories(listed.iter().map(|o| o.key.as_str()));
    let mut record = BucketBackup {
        endpoint: client.endpoint().to_string(),
        bucket: client.bucket_name().to_string(),
        prefix: client.prefix().to_string(),
        list_requests,
        ..BucketBackup::default()
    };
    let mut to_read = Vec::new();
    for object in listed {
        let at = keys::tree_path(&object.key, &dirs);
        let reuse = backup.reusable_parent_file(&at).and_then(|node| {
            let attrs = node.object.as_ref()?;
            let same = attrs.key == object.key
                && attrs.etag == object.etag
                && node.size == object.size
                && node.mtime_ns == nanos(&object);
            same.then(|| {
                (
                    StoredStream {
                        content: node.content.clone(),
                        bases: node.bases.clone(),
                        size: node.size,
                    },
                    attrs.clone(),
                )
            })
        });
        match reuse {
            Some((stored, attrs)) => {
                progress.event(Event::Advance {
                    items: 1,
                    bytes: stored.size,
                });
                backup.add_object(&at, stored, nanos(&object), attrs, true)?;
                record.objects += 1;
            }
            None => to_read.push((at, object)),
        }
    }
    progress.event(Event::Phase("downloading changed objects"));
    progress.event(Event::Total {
        items: to_read.len() as u64,
        bytes: to_read.iter().map(|(_, o)| o.size).sum(),
    });
    let store = backup.stream_store();
    let mut reads = futures::stream::iter(to_read)
        .map(|(at, object)| {
            let (client, store) = (client.clone(), store.clone());
            async move {
                let outcome = read_object(&client, &store, object.clone(), read.range_bytes).await;
                (at, object, outcome)
            }
        })
        .buffer_unordered(read.parallel.max(1));
    while let Some((at, object, outcome)) = reads.next().await {
        match outcome {
            Ok(read) => {
                record.objects += 1;
                record.objects_read += 1;
                record.bytes_read += read.stored.size;
                record.get_requests += read.requests;
                backup.add_object(&at, read.stored, nanos(&read.object), read.attrs, false)?;
            }
            Err(Failure { error, requests }) => {
                record.get_requests += requests;
                match error {
                    BucketError::Gone { key } => {
                        let w = format!("{key}: deleted during the backup; left out");
                        progress.event(Event::Warning(w.clone()));
                        record.warnings.push(w);
                    }
                    BucketError::Changed { key } => {
                        let w = format!(
                            "{key}: changed during each of {ATTEMPTS} reads; left out (the next backup tries again)"
                        );
                        record.warnings.push(w.clone());
                        backup.skip(w);
                    }
                    BucketError::Invalid(why) => {
                        let w = format!("{}: {why}", object.key);
                        record.warnings.push(w.clone());
                        backup.skip(w);
                    }
                    other => return Err(other),
                }
            }
        }
    }
    drop(reads);
    // Every handle on the backup's pack sink must be gone before `finish`
    // waits for the uploads to end.
    drop(store);
    backup
        .finish(|snapshot| snapshot.bucket = Some(record))
        .await
        .map_err(Into::into)
}

fn nanos(object: &Listed) -> i64 {
    object.modified.timestamp_nanos_opt().unwrap_or_default()
}

/// An object read and stored.
struct ReadObject {
    object: Listed,
    stored: StoredStream,
    attrs: ObjectAttrs,
    requests: u64,
}

/// Why an object could not be read, and how many requests that took.
struct Failure {
    error: BucketError,
    requests: u64,
}

/// Reads one object, looking it up again and retrying when it changes
/// under the read.
async fn read_object(
    client: &BucketClient,
    store: &StreamStore,
    mut object: Listed,
    range_bytes: u64,
) -> std::result::Result<ReadObject, Failure> {
    let mut requests = 0;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match read_once(client, store, &object, range_bytes, &mut requests).await {
            Ok((stored, attrs)) => {
                return Ok(ReadObject {
                    object,
                    stored,
                    attrs,
                    requests,
                });
            }
            Err(e) if e.is_retryable() => {
                last = Some(e);
                requests += 1;
                match client.head(&object.key).await {
                    Ok(Some(now)) => object = now,
                    Ok(None) => {
                        return Err(Failure {
                            error: BucketError::Gone {
                                key: object.key.clone(),
                            },
                            requests,
                        });
                    }
                    Err(e) => return Err(Failure { error: e, requests }),
                }
            }
            Err(error) => return Err(Failure { error, requests }),
        }
    }
    Err(Failure {
        error: last.unwrap_or(BucketError::Changed {
            key: object.key.clone(),
        }),
        requests,
    })
}

/// One read of the whole object (in ranges when it is large), streamed
/// into the backup on a blocking thread.
async fn read_once(
    client: &BucketClient,
    store: &StreamStore,
    object: &Listed,
    range_bytes: u64,
    requests: &mut u64,
) -> Result<(StoredStream, ObjectAttrs)> {
    let range_bytes = range_bytes.max(1);
    let ranged = object.size > range_bytes;
    let first_range = ranged.then_some(0..range_bytes);
    let first = client.get(&object.key, &object.etag, first_range).await;
    if !matches!(first, Err(BucketError::Invalid(_))) {
        *requests += 1;
    }
    let first = first?;
    let mut attrs = attrs_of(&first, &object.key, &object.etag);
    let failure: Arc<Mutex<Option<BucketError>>> = Arc::default();
    let reader = ObjectReader {
        client: client.clone(),
        object: object.clone(),
        runtime: tokio::runtime::Handle::current(),
        body: Some(Box::pin(first.bytes_stream())),
        buffered: bytes::Bytes::new(),
        next_offset: object.size.min(range_bytes),
        range_bytes,
        ranged,
        read: 0,
        requests: 0,
        hasher: blake3::Hasher::new(),
        failure: failure.clone(),
    };
    let store = store.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let stored = store.store_blocking(&mut reader);
        (stored, reader)
    })
    .await;
    let (stored, reader) =
        outcome.map_err(|e| BucketError::Invalid(format!("a reader thread failed: {e}")))?;
    *requests += reader.requests;
    if let Some(e) = failure.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    let stored = stored?;
    if stored.size != object.size {
        // The listing and the bytes disagree: the object was replaced.
        return Err(BucketError::Changed {
            key: object.key.clone(),
        });
    }
    attrs.hash = reader.hasher.finalize().to_hex().to_string();
    Ok((stored, attrs))
}

type Body = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// A blocking reader over an object's bytes: one response body, or one
/// range after the other, each checked against the listed ETag. Keeps the
/// first error it meets for the caller.
struct ObjectReader {
    client: BucketClient,
    object: Listed,
    runtime: tokio::runtime::Handle,
    body: Option<Body>,
    buffered: bytes::Bytes,
    next_offset: u64,
    range_bytes: u64,
    ranged: bool,
    read: u64,
    requests: u64,
    hasher: blake3::Hasher,
    failure: Arc<Mutex<Option<BucketError>>>,
}

impl ObjectReader {
    fn fail(&self, e: BucketError) -> std::io::Error {
        let text = e.to_string();
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(e);
        }
        std::io::Error::other(text)
    }

    /// Fills `buffered` with the next bytes; false at the end of the object.
    fn refill(&mut self) -> std::io::Result<bool> {
        loop {
            if let Some(body) = self.body.as_mut() {
                match self.runtime.block_on(body.next()) {
                    Some(Ok(b)) if b.is_empty() => continue,
                    Some(Ok(b)) => {
                        self.buffered = b;
                        return Ok(true);
                    }
                    Some(Err(e)) => {
                        let endpoint = self.client.endpoint().to_string();
                        return Err(self.fail(BucketError::Unreachable {
                            endpoint,
                            detail: format!("reading {:?}: {e}", self.object.key),
                        }));
                    }
                    None => self.body = None,
                }
            }
            if !self.ranged || self.next_offset >= self.object.size {
                return Ok(false);
            }
            let start = self.next_offset;
            let end = (start + self.range_bytes).min(self.object.size);
            self.requests += 1;
            let got = self.runtime.block_on(self.client.get(
                &self.object.key,
                &self.object.etag,
                Some(start..end),
            ));
            match got {
                Ok(resp) => {
                    self.body = Some(Box::pin(resp.bytes_stream()));
                    self.next_offset = end;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.buffered.is_empty() && !self.refill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.buffered.len());
        let chunk = self.buffered.split_to(n);
        buf[..n].copy_from_slice(&chunk);
        self.hasher.update(&chunk);
        self.read += n as u64;
        if self.read > self.object.size {
            return Err(self.fail(BucketError::Changed {
                key: self.object.key.clone(),
            }));
        }
        Ok(n)
    }
}
