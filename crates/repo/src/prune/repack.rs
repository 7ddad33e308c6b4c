//! Repacking: the used blobs of partly used packs are copied into new
//! packs (each verified as it is read) and indexed, so the old packs can be
//! marked for deletion.

use std::sync::Arc;

use futures::StreamExt;
use lifeboat_format::BlobType;
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::pack::{open_blob, open_record};

use super::PruneOptions;
use super::plan::RepackJob;
use crate::error::{RepoError, Result};
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::repository::{Repository, cpu};
use crate::uploader::{PackSink, Uploader};

impl Repository {
    /// Copies the listed blobs of each pack into new packs (verifying each
    /// as it is read) and indexes them; returns the new packs and bytes.
    pub(crate) async fn repack(
        &self,
        jobs: Vec<RepackJob>,
        options: &PruneOptions,
        progress: &DynProgress,
    ) -> Result<(u64, u64)> {
        progress.event(Event::Phase("repacking"));
        progress.event(Event::Total {
            items: jobs.len() as u64,
            bytes: jobs
                .iter()
                .flat_map(|j| &j.keep)
                .map(|e| u64::from(e.length))
                .sum(),
        });
        let uploader = Uploader::start(self.clone(), options.uploads);
        let data = Arc::new(PackSink::new(self.clone(), uploader.outlet()));
        let trees = Arc::new(PackSink::new(self.clone(), uploader.outlet()));
        let copied = async {
            let mut copies = futures::stream::iter(jobs)
                .map(|RepackJob { pack, salt, keep: entries, .. }| {
                    let (data, trees) = (data.clone(), trees.clone());
                    async move {
                        let key = layout::pack(&pack);
                        let bytes = self.storage().get(&key, None).await?;
                        let mk = self.key().clone();
                        let moved: u64 = entries.iter().map(|e| u64::from(e.length)).sum();
                        cpu(move || {
                            let mut enc = Encoder::new(Compression::DEFAULT)?;
                            for e in &entries {
                                let record = bytes
                                    .get(e.offset as usize..e.end() as usize)
                                    .ok_or_else(|| {
                                        RepoError::Damaged(format!(
                                            "{key} is shorter than its index says; run `lifeboat check`"
                                        ))
                                    })?;
                                let corrupt = |err| {
                                    RepoError::corrupt(
                                        format!("blob {} in pack {key}", e.id.short()),
                                        err,
                                    )
                                };
                                let sink = match e.blob_type {
                                    BlobType::Tree => &trees,
                                    _ => &data,
                                };
                                if e.blob_type == BlobType::Delta {
                                    // Moved as encoded: its base is kept (the
                                    // trees that use it list it) and the seal
                                    // authenticated the payload.
                                    let encoded = open_record(&mk.subkey(&salt), e, record)
                                        .map_err(corrupt)?;
                                    sink.add_encoded(
                                        e.blob_type,
                                        e.id,
                                        e.raw_length as usize,
                                        &encoded,
                                    )?;
                                    continue;
                                }
                                let blob = open_blob(&mk, &salt, e, record).map_err(corrupt)?;
                                sink.add(&mut enc, e.blob_type, e.id, &blob)?;
                            }
                            Ok::<_, RepoError>(moved)
                        })
                        .await?
                    }
                })
                // One pack read at a time (its blobs are verified and
                // re-packed while the uploader writes): memory stays at one
                // pack read plus the uploader's few pack buffers, whatever
                // the size of the repository.
                .buffer_unordered(1);
            while let Some(moved) = copies.next().await {
                progress.event(Event::Advance {
                    items: 1,
                    bytes: moved?,
                });
            }
            drop(copies);
            let (d, t) = (data.clone(), trees.clone());
            cpu(move || {
                d.flush()?;
                t.flush()
            })
            .await?
        }
        .await;
        drop((data, trees));
        // Always wait for the uploader, so no upload is left running.
        let uploaded = uploader.finish().await;
        copied?;
        let stats = uploaded?;
        Ok((stats.packs, stats.stored_bytes))
    }
}
