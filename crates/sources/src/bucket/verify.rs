//! Checking a restored bucket prefix against a snapshot's manifest, and
//! removing a scratch prefix afterwards (drills).

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};

use super::client::BucketClient;
use super::error::Result;
use super::listing::list_all;
use super::restore::SnapshotObject;

/// Objects read back at once.
const PARALLEL: usize = 8;

/// What comparing a prefix with a manifest found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Comparison {
    /// Objects the manifest lists.
    pub expected: u64,
    /// Objects found under the prefix.
    pub found: u64,
    /// Bytes read back and hashed.
    pub bytes: u64,
    /// Every difference, one line each (missing, extra, size, content).
    pub differences: Vec<String>,
}

/// Lists the client's prefix and reads every object back, comparing keys,
/// sizes and BLAKE3 content hashes with `objects`.
pub async fn compare(client: &BucketClient, objects: &[SnapshotObject]) -> Result<Comparison> {
    let (found, _) = list_all(client).await?;
    let mut out = Comparison {
        expected: objects.len() as u64,
        found: found.len() as u64,
        ..Comparison::default()
    };
    let mut present: BTreeMap<&str, &super::client::Listed> =
        found.iter().map(|o| (o.key.as_str(), o)).collect();
    let mut to_hash = Vec::new();
    for o in objects {
        match present.remove(o.key.as_str()) {
            None => out.differences.push(format!("{:?}: missing", o.key)),
            Some(l) if l.size != o.node.size => out.differences.push(format!(
                "{:?}: {} bytes where the backup has {}",
                o.key, l.size, o.node.size
            )),
            Some(l) => to_hash.push((l.clone(), o.attrs.hash.clone())),
        }
    }
    for key in present.keys() {
        out.differences
            .push(format!("{key:?}: present but not in the backup"));
    }
    let hashed: Vec<(String, u64, String, String)> = futures::stream::iter(to_hash)
        .map(|(listed, want)| async move {
            let resp = client.get(&listed.key, &listed.etag, None).await?;
            let mut hasher = blake3::Hasher::new();
            let mut body = resp.bytes_stream();
            let mut n = 0u64;
            while let Some(b) = body.next().await {
                let b = b.map_err(|e| super::error::BucketError::Unreachable {
                    endpoint: client.endpoint().to_string(),
                    detail: e.to_string(),
                })?;
                n += b.len() as u64;
                hasher.update(&b);
            }
            Ok::<_, super::error::BucketError>((
                listed.key,
                n,
                hasher.finalize().to_hex().to_string(),
                want,
            ))
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
    for (key, n, got, want) in hashed {
        out.bytes += n;
        if got != want {
            out.differences
                .push(format!("{key:?}: content differs from the backup"));
        }
    }
    out.differences.sort();
    Ok(out)
}

/// Deletes every object under the client's prefix; returns how many.
pub async fn remove_prefix(client: &BucketClient) -> Result<u64> {
    let (found, _) = list_all(client).await?;
    let n = found.len() as u64;
    futures::stream::iter(found)
        .map(|o| async move { client.delete(&o.key).await })
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(n)
}
