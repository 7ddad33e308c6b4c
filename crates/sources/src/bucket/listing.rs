//! Listing a bucket: the top level first, then each top-level prefix as a
//! shard of its own, several at once.

use futures::{StreamExt, TryStreamExt};

use super::client::{BucketClient, Listed};
use super::error::Result;

/// Shards listed at once.
const PARALLEL_SHARDS: usize = 8;

/// Every object below the client's prefix, sorted by key, and the number
/// of listing requests it took.
pub async fn list_all(client: &BucketClient) -> Result<(Vec<Listed>, u64)> {
    let mut requests = 0;
    let mut objects = Vec::new();
    let mut shards = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client.list_page("", true, next.as_deref()).await?;
        requests += 1;
        objects.extend(page.objects);
        shards.extend(page.prefixes);
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    let listed: Vec<(Vec<Listed>, u64)> = futures::stream::iter(shards)
        .map(|shard| async move { list_shard(client, &shard).await })
        .buffer_unordered(PARALLEL_SHARDS)
        .try_collect()
        .await?;
    for (found, n) in listed {
        objects.extend(found);
        requests += n;
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    objects.dedup_by(|a, b| a.key == b.key);
    Ok((objects, requests))
}

async fn list_shard(client: &BucketClient, shard: &str) -> Result<(Vec<Listed>, u64)> {
    let mut out = Vec::new();
    let mut requests = 0;
    let mut next: Option<String> = None;
    loop {
        let page = client.list_page(shard, false, next.as_deref()).await?;
        requests += 1;
        out.extend(page.objects);
        match page.next {
            Some(n) => next = Some(n),
            None => return Ok((out, requests)),
        }
    }
}
